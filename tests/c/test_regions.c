/*
 * test_regions.c - per-call thresholds and defect regions through the C ABI (revision 3:
 * nexvitad_score_with_options, nexvitad_score_options, nexvitad_region, and the result's
 * threshold_flags and region_count), built against the *installed* library:
 *   - nexvitad_score_options_default() values, and a smaller caller struct;
 *   - NULL options give nexvitad_score()'s map and result bit for bit (both fixture banks,
 *     with and without a model), and nexvitad_score/nexvitad_score_batch report no flags and
 *     no regions;
 *   - the cross-language fixture's region list (expected_tiled.json: image.rgb scored with
 *     tiled.bank at its `regions_pixel_threshold_bits`) reproduced to the last bit, in order;
 *   - a too-small array (the count exceeds the cap, only the cap is written), count-only
 *     queries, min_region_area, caller and bank thresholds and their flags.
 * The bad-input rows of the same function are in test_matrix.c.
 *
 * Usage: test_regions MODEL_DIR FIXTURE_DIR
 *   MODEL_DIR    models/tiny
 *   FIXTURE_DIR  tests/fixtures/crosslang (tiny.bank, tiled.bank, image.rgb, expected*.json)
 *
 * Prints one line per failure and a closing "N passed, N failed"; exits non-zero on failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nexvitad.h>

#include "check.h"
#include "json.h"
#include "sha256.h"

static const char *g_model_dir, *g_fixture_dir;
static uint8_t *g_rgb;     /* image.rgb */
static nexvitad_image g_im; /* a view of it */
static size_t g_npix;

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = (char *)malloc((size_t)n + 1);
    size_t got = b ? fread(b, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!b || got != (size_t)n) {
        free(b);
        return NULL;
    }
    b[n] = '\0';
    return b;
}

static uint32_t bits_of(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static float float_of(uint32_t b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}

/* A hex "bits" member of `obj` as a uint32; 0 with a failed CHECK when missing. */
static uint32_t hex_field(const char *obj, const char *key) {
    char v[32];
    unsigned long x = 0;
    int ok = json_field(obj, key, v, sizeof v) == 0 && sscanf(v, "%lx", &x) == 1;
    CHECK(ok, "expected_tiled.json: field %s", key);
    return (uint32_t)x;
}

static unsigned long long num_field(const char *obj, const char *key) {
    char v[32];
    unsigned long long x = 0;
    int ok = json_field(obj, key, v, sizeof v) == 0 && sscanf(v, "%llu", &x) == 1;
    CHECK(ok, "expected_tiled.json: field %s", key);
    return x;
}

static nexvitad_bank *load_fixture_bank(nexvitad_model *m, const char *file) {
    char path[4096];
    path_in(path, sizeof path, g_fixture_dir, file);
    nexvitad_bank *b = NULL;
    OK(nexvitad_bank_load(m, path, &b));
    return b;
}

static nexvitad_score_options defaults(void) {
    nexvitad_score_options o;
    o.struct_size = sizeof o;
    OK(nexvitad_score_options_default(&o));
    return o;
}

/* ---- defaults ------------------------------------------------------------------------- */

static void test_defaults(void) {
    CHECK(nexvitad_abi_revision() >= 3, "revision 3 library: %u", nexvitad_abi_revision());
    nexvitad_score_options o;
    memset(&o, 0xAB, sizeof o);
    o.struct_size = sizeof o;
    OK(nexvitad_score_options_default(&o));
    CHECK(o.struct_size == sizeof o && o.image_threshold == -1.0f && o.pixel_threshold == -1.0f &&
              o.min_region_area == 0,
          "defaults: struct_size %zu image %g pixel %g min area %llu", o.struct_size, o.image_threshold,
          o.pixel_threshold, (unsigned long long)o.min_region_area);

    /* A caller whose struct ends before min_region_area: only its fields are written. */
    memset(&o, 0xAB, sizeof o);
    o.struct_size = offsetof(nexvitad_score_options, min_region_area);
    OK(nexvitad_score_options_default(&o));
    CHECK(o.image_threshold == -1.0f && o.pixel_threshold == -1.0f &&
              o.struct_size == offsetof(nexvitad_score_options, min_region_area),
          "a 16-byte struct gets its two thresholds");
    CHECK(o.min_region_area == 0xABABABABABABABABull, "the field beyond struct_size is untouched");
    BAD(nexvitad_score_options_default(NULL), NEXVITAD_INVALID_ARGUMENT, "options is NULL");
    o.struct_size = sizeof o + 8;
    BAD(nexvitad_score_options_default(&o), NEXVITAD_INVALID_ARGUMENT, "newer nexvitad.h");
}

/* ---- NULL options = nexvitad_score ----------------------------------------------------- */

static void check_same_as_score(nexvitad_model *m, nexvitad_bank *b, const char *what) {
    float *a = (float *)malloc(g_npix * sizeof *a), *c = (float *)malloc(g_npix * sizeof *c);
    nexvitad_result ra, rc;
    memset(&ra, 0xCD, sizeof ra);
    memset(&rc, 0xCD, sizeof rc);
    ra.struct_size = rc.struct_size = sizeof ra;
    OK(nexvitad_score_with_options(m, b, &g_im, NULL, a, g_npix, NULL, 0, NULL, &ra));
    OK(nexvitad_score(m, b, &g_im, c, g_npix, &rc));
    CHECK(memcmp(a, c, g_npix * sizeof *a) == 0, "%s: NULL options give nexvitad_score's map", what);
    CHECK(bits_of(ra.image_score) == bits_of(rc.image_score) &&
              bits_of(ra.image_threshold) == bits_of(rc.image_threshold) &&
              bits_of(ra.pixel_threshold) == bits_of(rc.pixel_threshold) && ra.is_anomalous == rc.is_anomalous &&
              ra.width == rc.width && ra.height == rc.height,
          "%s: NULL options give nexvitad_score's result", what);
    CHECK(ra.threshold_flags == 0 && ra.reserved0 == 0 && ra.region_count == 0,
          "%s: with options NULL: flags %u reserved0 %u region_count %llu", what, ra.threshold_flags, ra.reserved0,
          (unsigned long long)ra.region_count);
    CHECK(rc.threshold_flags == 0 && rc.reserved0 == 0 && rc.region_count == 0,
          "%s: nexvitad_score: flags %u reserved0 %u region_count %llu", what, rc.threshold_flags, rc.reserved0,
          (unsigned long long)rc.region_count);

    /* The defaults' struct is the same as NULL; asking for regions changes nothing else. */
    nexvitad_score_options o = defaults();
    size_t count = 0;
    memset(a, 0, g_npix * sizeof *a);
    OK(nexvitad_score_with_options(m, b, &g_im, &o, a, g_npix, NULL, 0, &count, &ra));
    CHECK(memcmp(a, c, g_npix * sizeof *a) == 0 && bits_of(ra.image_score) == bits_of(rc.image_score) &&
              ra.threshold_flags == 0 && ra.region_count == count,
          "%s: default options and a count query: the same map and score, no flags", what);

    /* nexvitad_score_batch writes the new fields as 0 into every element. */
    nexvitad_image two[2] = {g_im, g_im};
    nexvitad_result rs[2];
    memset(rs, 0xCD, sizeof rs);
    rs[0].struct_size = sizeof rs[0];
    OK(nexvitad_score_batch(m, b, two, 2, NULL, NULL, rs));
    CHECK(rs[1].threshold_flags == 0 && rs[1].reserved0 == 0 && rs[1].region_count == 0 &&
              bits_of(rs[1].image_score) == bits_of(rc.image_score),
          "%s: batch results carry no flags and no regions", what);
    free(a);
    free(c);
}

static void test_null_options(nexvitad_model *m) {
    const char *banks[] = {"tiny.bank", "tiled.bank"};
    for (int i = 0; i < 2; i++) {
        nexvitad_bank *b = load_fixture_bank(m, banks[i]);
        if (!b) continue;
        char what[64];
        snprintf(what, sizeof what, "%s, model", banks[i]);
        check_same_as_score(m, b, what);
        snprintf(what, sizeof what, "%s, model NULL", banks[i]);
        check_same_as_score(NULL, b, what);
        OK(nexvitad_bank_free(b));
    }
}

/* ---- the cross-language region list ---------------------------------------------------- */

/* A region of the fixture list: the JSON object `obj` against `r`. */
static int region_matches(const char *obj, const nexvitad_region *r) {
    return num_field(obj, "x") == r->x && num_field(obj, "y") == r->y && num_field(obj, "width") == r->width &&
           num_field(obj, "height") == r->height && num_field(obj, "area") == r->area &&
           hex_field(obj, "peak_bits") == bits_of(r->peak) && hex_field(obj, "mean_bits") == bits_of(r->mean) &&
           hex_field(obj, "centroid_x_bits") == bits_of(r->centroid_x) &&
           hex_field(obj, "centroid_y_bits") == bits_of(r->centroid_y);
}

static void print_region(const char *what, size_t i, const nexvitad_region *r) {
    fprintf(stderr, "  %s[%zu]: x %u y %u %ux%u area %llu peak %08x mean %08x centroid %08x %08x\n", what, i, r->x,
            r->y, r->width, r->height, (unsigned long long)r->area, (unsigned)bits_of(r->peak),
            (unsigned)bits_of(r->mean), (unsigned)bits_of(r->centroid_x), (unsigned)bits_of(r->centroid_y));
}

static void test_fixture_regions(nexvitad_model *m) {
    char path[4096];
    path_in(path, sizeof path, g_fixture_dir, "expected_tiled.json");
    char *json = read_all(path);
    CHECK(json != NULL, "read %s", path);
    if (!json) return;
    const char *list = json_member(json, "regions");
    CHECK(list != NULL && *list == '[', "expected_tiled.json has a regions array");
    size_t n_want = 0;
    while (json_element(list, n_want)) n_want++;
    CHECK(n_want >= 3, "the fixture lists %zu regions (want several)", n_want);
    const uint32_t t_bits = hex_field(json, "regions_pixel_threshold_bits");
    const uint32_t score_bits = hex_field(json, "image_score_bits");
    const uint32_t image_threshold_bits = hex_field(json, "image_threshold_bits");
    char want_sha[80] = "";
    json_field(json, "map_sha256", want_sha, sizeof want_sha);
    CHECK(num_field(json, "width") == g_im.width && num_field(json, "height") == g_im.height,
          "the top-level width/height, not a region's, are read: %llux%llu", num_field(json, "width"),
          num_field(json, "height"));

    nexvitad_bank *b = load_fixture_bank(m, "tiled.bank");
    if (!b || n_want == 0) {
        nexvitad_bank_free(b);
        free(json);
        return;
    }
    nexvitad_score_options o = defaults();
    o.pixel_threshold = float_of(t_bits);
    o.min_region_area = 0;

    for (int with_model = 0; with_model < 2; with_model++) {
        const nexvitad_model *mm = with_model ? m : NULL;
        /* Count only. */
        size_t count = 0;
        nexvitad_result r;
        r.struct_size = sizeof r;
        OK(nexvitad_score_with_options(mm, b, &g_im, &o, NULL, 0, NULL, 0, &count, &r));
        CHECK(count == n_want && r.region_count == n_want, "count-only query: %zu (out %llu), want %zu", count,
              (unsigned long long)r.region_count, n_want);

        /* The whole list, one spare element that must stay untouched. */
        nexvitad_region *got = (nexvitad_region *)malloc((n_want + 1) * sizeof *got);
        float *map = (float *)malloc(g_npix * sizeof *map);
        memset(got, 0x5A, (n_want + 1) * sizeof *got);
        count = 0;
        OK(nexvitad_score_with_options(mm, b, &g_im, &o, map, g_npix, got, n_want + 1, &count, &r));
        CHECK(count == n_want, "full query: %zu regions, want %zu", count, n_want);
        for (size_t i = 0; i < n_want && i < count; i++) {
            int ok = region_matches(json_element(list, i), &got[i]);
            CHECK(ok, "region %zu equals the fixture's to the last bit (with_model %d)", i, with_model);
            if (!ok) print_region("got", i, &got[i]);
        }
        const unsigned char *spare = (const unsigned char *)&got[n_want];
        int untouched = 1;
        for (size_t k = 0; k < sizeof *got; k++) untouched &= spare[k] == 0x5A;
        CHECK(untouched, "the element after the last region is untouched");
        CHECK(r.threshold_flags == NEXVITAD_PIXEL_THRESHOLD_FROM_CALLER, "flags %u: the pixel threshold is the caller's",
              r.threshold_flags);
        CHECK(bits_of(r.pixel_threshold) == t_bits, "result pixel_threshold is the caller's: %08x",
              (unsigned)bits_of(r.pixel_threshold));
        CHECK(bits_of(r.image_threshold) == image_threshold_bits && bits_of(r.image_score) == score_bits,
              "image threshold (the bank's) and score as expected_tiled.json");
        char sha[65];
        sha256_floats_hex(map, g_npix, sha);
        CHECK(strcmp(sha, want_sha) == 0, "the map with regions is the fixture's map");
        /* Properties of every region: inside the image, above the threshold, highest peak first. */
        for (size_t i = 0; i < count && i < n_want; i++) {
            const nexvitad_region *g = &got[i];
            CHECK(g->width > 0 && g->height > 0 && g->x + g->width <= g_im.width && g->y + g->height <= g_im.height &&
                      g->area >= 1 && g->area <= (uint64_t)g->width * g->height,
                  "region %zu box and area", i);
            CHECK(g->peak > o.pixel_threshold && g->mean > o.pixel_threshold && g->mean <= g->peak,
                  "region %zu: threshold < mean %g <= peak %g", i, g->mean, g->peak);
            CHECK(g->centroid_x >= (float)g->x && g->centroid_x <= (float)(g->x + g->width - 1) &&
                      g->centroid_y >= (float)g->y && g->centroid_y <= (float)(g->y + g->height - 1),
                  "region %zu centroid inside its box", i);
            if (i > 0) CHECK(got[i - 1].peak >= g->peak, "region %zu: highest peak first", i);
        }
        if (count > 0) CHECK(bits_of(got[0].peak) == score_bits, "the first region's peak is the image score (map max)");

        /* A too-small array: success, the count, and only the first 3 written. */
        nexvitad_region few[4];
        memset(few, 0x5A, sizeof few);
        count = 0;
        OK(nexvitad_score_with_options(mm, b, &g_im, &o, NULL, 0, few, 3, &count, &r));
        CHECK(count == n_want && r.region_count == n_want, "cap 3: count %zu, want %zu", count, n_want);
        CHECK(memcmp(few, got, 3 * sizeof *few) == 0, "cap 3: the first 3 regions");
        const unsigned char *after = (const unsigned char *)&few[3];
        untouched = 1;
        for (size_t k = 0; k < sizeof few[3]; k++) untouched &= after[k] == 0x5A;
        CHECK(untouched, "cap 3: regions[3] untouched");

        /* min_region_area 20: the fixture's regions of at least 20 pixels, in the same order. */
        nexvitad_score_options big = o;
        big.min_region_area = 20;
        nexvitad_region *kept = (nexvitad_region *)calloc(n_want, sizeof *kept);
        count = 0;
        OK(nexvitad_score_with_options(mm, b, &g_im, &big, NULL, 0, kept, n_want, &count, &r));
        size_t k = 0, n_big = 0;
        int same = 1;
        for (size_t i = 0; i < n_want; i++) {
            if (got[i].area < 20) continue;
            n_big++;
            same &= k < count && memcmp(&kept[k], &got[i], sizeof *kept) == 0;
            k++;
        }
        CHECK(count == n_big && same, "min_region_area 20: %zu regions, want the %zu of at least 20 pixels", count,
              n_big);
        free(kept);
        free(got);
        free(map);
    }

    /* The bank's pixel threshold (negative) and a caller image threshold 0. */
    nexvitad_bank_info info;
    info.struct_size = sizeof info;
    OK(nexvitad_bank_get_info(b, &info));
    o = defaults();
    o.image_threshold = 0.0f;
    size_t count = 0;
    nexvitad_result r;
    r.struct_size = sizeof r;
    OK(nexvitad_score_with_options(m, b, &g_im, &o, NULL, 0, NULL, 0, &count, &r));
    CHECK(r.threshold_flags == NEXVITAD_IMAGE_THRESHOLD_FROM_CALLER && r.image_threshold == 0.0f && r.is_anomalous,
          "image threshold 0 (a real setting): flags %u, threshold %g, anomalous %d", r.threshold_flags,
          r.image_threshold, r.is_anomalous);
    CHECK(bits_of(r.pixel_threshold) == bits_of(info.pixel_threshold), "the bank's pixel threshold is used");
    CHECK(bits_of(r.pixel_threshold) != t_bits || count == n_want, "count at the bank's pixel threshold: %zu", count);
    OK(nexvitad_bank_free(b));
    free(json);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL_DIR FIXTURE_DIR\n", argv[0]);
        return 2;
    }
    g_model_dir = argv[1], g_fixture_dir = argv[2];
    char path[4096];
    path_in(path, sizeof path, g_fixture_dir, "expected_tiled.json");
    char *json = read_all(path);
    char v[32];
    unsigned w = 0, h = 0;
    if (!json || json_field(json, "width", v, sizeof v) != 0 || sscanf(v, "%u", &w) != 1 ||
        json_field(json, "height", v, sizeof v) != 0 || sscanf(v, "%u", &h) != 1) {
        fprintf(stderr, "cannot read the image size from %s\n", path);
        return 2;
    }
    free(json);
    path_in(path, sizeof path, g_fixture_dir, "image.rgb");
    FILE *f = fopen(path, "rb");
    g_npix = (size_t)w * h;
    g_rgb = (uint8_t *)malloc(g_npix * 3 + 1);
    size_t got = f ? fread(g_rgb, 1, g_npix * 3 + 1, f) : 0;
    if (f) fclose(f);
    if (got != g_npix * 3) {
        fprintf(stderr, "%s is not %ux%u RGB8\n", path, w, h);
        return 2;
    }
    nexvitad_image im = {g_rgb, w, h, 0, NEXVITAD_PIXEL_RGB8};
    g_im = im;

    nexvitad_options mo;
    mo.struct_size = sizeof mo;
    nexvitad_options_default(&mo);
    mo.intra_threads = 1;
    nexvitad_model *m = NULL;
    OK(nexvitad_model_open(g_model_dir, &mo, &m));
    if (!m) {
        fprintf(stderr, "cannot open %s: %s\n", g_model_dir, nexvitad_last_error());
        return 1;
    }
    test_defaults();
    test_null_options(m);
    test_fixture_regions(m);
    OK(nexvitad_model_free(m));
    free(g_rgb);
    printf("regions: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail == 0 ? 0 : 1;
}
