/*
 * test_tiles.c - tiled banks through the C ABI (revision 3), built against the *installed*
 * library: the new option and info fields, shared and per-position tile banks built with
 * the tiny model, saved and loaded, the shared cross-language fixture (whole-image and
 * tiled bank) reproduced to the last bit, and a caller built against a revision-2 header.
 *
 * Usage: test_tiles MODEL_DIR DATA_DIR FIXTURE_DIR WORK_DIR
 *   MODEL_DIR    models/tiny
 *   DATA_DIR     examples/c/data (good/ and test/ hold 96 x 72 .ppm/.pgm files)
 *   FIXTURE_DIR  tests/fixtures/crosslang (tiny.bank, tiled.bank, image.rgb, expected*.json)
 *   WORK_DIR     an empty writable folder
 * NEXVITAD_TEST_QUICK=1 (valgrind) builds from 2 images with 5 k-means iterations.
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
#include "ppm.h"
#include "sha256.h"

static int g_quick;
static int g_n_good = 4;
static const char *g_model_dir, *g_data_dir, *g_fixture_dir, *g_work_dir;
static ppm_image g_good[4], g_test[3];
static nexvitad_image g_good_views[4], g_test_views[3]; /* all 96 x 72 */

static int load_images(void) {
    static const char *good[] = {"good/good_0.ppm", "good/good_1.ppm", "good/good_2.ppm", "good/good_3.ppm"};
    static const char *test[] = {"test/good_4.ppm", "test/scratch.ppm", "test/spot_gray.pgm"};
    char p[4096];
    for (int i = 0; i < 4; i++) {
        path_in(p, sizeof p, g_data_dir, good[i]);
        if (ppm_read(p, &g_good[i]) != 0) return -1;
        g_good_views[i] = g_good[i].view;
    }
    for (int i = 0; i < 3; i++) {
        path_in(p, sizeof p, g_data_dir, test[i]);
        if (ppm_read(p, &g_test[i]) != 0) return -1;
        g_test_views[i] = g_test[i].view;
    }
    return 0;
}

/* The top-left w x h of `im`, without a copy (the stride keeps the full rows). */
static nexvitad_image crop(const nexvitad_image *im, uint32_t w, uint32_t h) {
    nexvitad_image c = *im;
    c.stride = im->stride ? im->stride : (size_t)im->width * (im->format == NEXVITAD_PIXEL_GRAY8 ? 1 : 3);
    c.width = w;
    c.height = h;
    return c;
}

static size_t npix(const nexvitad_image *im) {
    return (size_t)im->width * im->height;
}

static nexvitad_bank_options bank_options(void) {
    nexvitad_bank_options o;
    o.struct_size = sizeof o;
    nexvitad_bank_options_default(&o);
    o.k = 8;
    if (g_quick) o.max_iters = 5;
    return o;
}

static nexvitad_bank_options tiled_options(uint32_t tile, float overlap, uint32_t layout) {
    nexvitad_bank_options o = bank_options();
    o.tile = tile;
    o.tile_overlap = overlap;
    o.tile_layout = layout;
    return o;
}

static nexvitad_bank_info info_of(const nexvitad_bank *b) {
    nexvitad_bank_info i;
    memset(&i, 0xCD, sizeof i);
    i.struct_size = sizeof i;
    OK(nexvitad_bank_get_info(b, &i));
    return i;
}

/* Scores into a new map (caller frees); NULL on failure. */
static float *score_map(const nexvitad_bank *b, const nexvitad_image *im, nexvitad_result *r) {
    float *map = (float *)malloc(npix(im) * sizeof *map);
    r->struct_size = sizeof *r;
    if (nexvitad_score(NULL, b, im, map, npix(im), r) != NEXVITAD_OK) {
        free(map);
        return NULL;
    }
    return map;
}

/* Each test image scores with a map of its own size whose max is the image score. */
static void check_scores(const nexvitad_bank *b, const char *what) {
    for (int i = 0; i < 3; i++) {
        nexvitad_result r;
        float *map = score_map(b, &g_test_views[i], &r);
        CHECK(map != NULL, "%s: score test image %d: %s", what, i, nexvitad_last_error());
        if (!map) continue;
        float mx = -INFINITY;
        int finite = 1;
        for (size_t k = 0; k < npix(&g_test_views[i]); k++) {
            finite &= isfinite(map[k]) && map[k] >= 0;
            if (map[k] > mx) mx = map[k];
        }
        CHECK(finite, "%s: map %d finite and >= 0", what, i);
        CHECK(r.width == 96 && r.height == 72, "%s: map %ux%u", what, r.width, r.height);
        CHECK(r.image_score == mx, "%s: image score %g is the map max %g", what, r.image_score, mx);
        CHECK(r.is_anomalous == (r.image_score > r.image_threshold), "%s: decision", what);
        free(map);
    }
}

/* Saves `b`, loads it back and checks the loaded bank reports the same info and scores
   every test image to the identical map. */
static void check_save_load(nexvitad_model *m, const nexvitad_bank *b, const char *file) {
    char path[4096];
    path_in(path, sizeof path, g_work_dir, file);
    OK(nexvitad_bank_save(b, path));
    nexvitad_bank *loaded = NULL;
    OK(nexvitad_bank_load(m, path, &loaded));
    if (!loaded) return;
    nexvitad_bank_info a = info_of(b), c = info_of(loaded);
    CHECK(a.tile == c.tile && a.tile_h == c.tile_h && a.tile_overlap == c.tile_overlap &&
              a.tile_layout == c.tile_layout && a.tile_cols == c.tile_cols && a.tile_rows == c.tile_rows &&
              a.image_width == c.image_width && a.image_height == c.image_height,
          "%s: the loaded bank keeps its tiling", file);
    CHECK(a.vectors == c.vectors && a.image_threshold == c.image_threshold && a.pixel_threshold == c.pixel_threshold,
          "%s: the loaded bank keeps its vectors and thresholds", file);
    for (int i = 0; i < 3; i++) {
        nexvitad_result r1, r2;
        float *x = score_map(b, &g_test_views[i], &r1), *y = score_map(loaded, &g_test_views[i], &r2);
        CHECK(x && y && memcmp(x, y, npix(&g_test_views[i]) * sizeof *x) == 0 && r1.image_score == r2.image_score,
              "%s: image %d scores identically after save and load", file, i);
        free(x);
        free(y);
    }
    OK(nexvitad_bank_free(loaded));
}

typedef struct encode_log {
    size_t encode_total;
    int encode_calls;
} encode_log;

static int record_encode(void *user, int stage, size_t done, size_t total) {
    encode_log *l = (encode_log *)user;
    (void)done;
    if (stage == NEXVITAD_STAGE_ENCODE) {
        l->encode_total = total;
        l->encode_calls++;
    }
    return 0;
}

/* ---- option struct: defaults and the revision-2 caller ------------------------------------ */

static void test_revision_and_defaults(void) {
    CHECK(nexvitad_abi_revision() >= 3, "the library has revision 3 (tiling): %u", nexvitad_abi_revision());
    CHECK(NEXVITAD_ABI_REVISION >= 3, "the header has revision 3");
    nexvitad_bank_options o;
    memset(&o, 0xAB, sizeof o);
    o.struct_size = sizeof o;
    OK(nexvitad_bank_options_default(&o));
    CHECK(o.tile == 0 && o.tile_overlap == 0.0f && o.tile_layout == NEXVITAD_TILE_SHARED && o.reserved1 == 0,
          "tiling defaults: tile %u overlap %g layout %u reserved1 %u", o.tile, o.tile_overlap, o.tile_layout,
          o.reserved1);
}

/* A program built against a revision-2 nexvitad.h: its nexvitad_bank_options ends at
   max_vectors and its nexvitad_bank_info at seed. Nothing beyond is read or written, and
   its banks are whole-image banks. */
static void test_revision2_caller(nexvitad_model *m) {
    struct {
        nexvitad_bank_options o;
    } old;
    const size_t old_size = offsetof(nexvitad_bank_options, tile);
    CHECK(old_size == 72, "the revision-2 nexvitad_bank_options was 72 bytes (%zu)", old_size);
    memset(&old, 0x5A, sizeof old);
    old.o.struct_size = old_size;
    OK(nexvitad_bank_options_default(&old.o));
    CHECK(old.o.max_iters == 50 && old.o.max_vectors == (4u << 20), "fields within the old size written");
    CHECK(old.o.tile == 0x5A5A5A5Au && old.o.reserved1 == 0x5A5A5A5Au, "fields beyond the old size untouched");

    /* The bytes beyond struct_size (0x5A: a huge tile, a bad layout, reserved1 != 0) are
       never read: the build is the whole-image build of the defaults. */
    old.o.k = 8;
    old.o.max_iters = 5;
    nexvitad_bank *b = NULL, *ref = NULL;
    OK(nexvitad_bank_build(m, g_good_views, 2, &old.o, NULL, NULL, &b));
    nexvitad_bank_options cur = bank_options();
    cur.max_iters = 5;
    OK(nexvitad_bank_build(m, g_good_views, 2, &cur, NULL, NULL, &ref));
    if (!b || !ref) {
        nexvitad_bank_free(b);
        nexvitad_bank_free(ref);
        return;
    }
    nexvitad_bank_info bi = info_of(b), ri = info_of(ref);
    CHECK(bi.tile == 0 && bi.tile_h == 0 && bi.tile_overlap == 0.0f && bi.tile_layout == NEXVITAD_TILE_SHARED && bi.tile_cols == 0 &&
              bi.tile_rows == 0 && bi.image_width == 0 && bi.image_height == 0,
          "a revision-2 caller's bank is a whole-image bank: tile %u %ux%u layout %u", bi.tile, bi.tile_cols,
          bi.tile_rows, bi.tile_layout);
    CHECK(bi.vectors == ri.vectors && bi.image_threshold == ri.image_threshold &&
              bi.pixel_threshold == ri.pixel_threshold && bi.sigma == ri.sigma,
          "the revision-2 caller's bank equals the defaults' (thresholds %g / %g)", bi.image_threshold,
          ri.image_threshold);

    /* Its nexvitad_bank_info ends at seed: the tiling fields are not written. */
    struct {
        nexvitad_bank_info i;
    } old_info;
    memset(&old_info, 0x5A, sizeof old_info);
    old_info.i.struct_size = offsetof(nexvitad_bank_info, tile);
    CHECK(old_info.i.struct_size == 88, "the revision-2 nexvitad_bank_info was 88 bytes");
    OK(nexvitad_bank_get_info(b, &old_info.i));
    CHECK(old_info.i.shots == 2 && old_info.i.k == 8, "old info written: shots %u k %u", old_info.i.shots,
          old_info.i.k);
    CHECK(old_info.i.tile == 0x5A5A5A5Au && old_info.i.image_height == 0x5A5A5A5Au,
          "info fields beyond the old size untouched");
    OK(nexvitad_bank_free(b));
    OK(nexvitad_bank_free(ref));
}

/* ---- tiled banks ------------------------------------------------------------------------ */

static void test_shared_bank(nexvitad_model *m) {
    /* 48 px tiles at overlap 0.25 on 96 x 72: columns at 0, 36, 48, rows at 0, 24: 6 tiles. */
    nexvitad_bank_options o = tiled_options(48, 0.25f, NEXVITAD_TILE_SHARED);
    encode_log log = {0, 0};
    nexvitad_bank *b = NULL;
    OK(nexvitad_bank_build(m, g_good_views, (size_t)g_n_good, &o, record_encode, &log, &b));
    if (!b) return;
    CHECK(log.encode_total == (size_t)g_n_good * 6, "encode progress counts tiles: total %zu, want %d",
          log.encode_total, g_n_good * 6);
    nexvitad_bank_info i = info_of(b);
    CHECK(i.tile == 48 && i.tile_h == 48 && i.tile_overlap == 0.25f && i.tile_layout == NEXVITAD_TILE_SHARED,
          "shared bank info: tile %u x %u overlap %g layout %u", i.tile, i.tile_h, i.tile_overlap, i.tile_layout);
    CHECK(i.tile_cols == 0 && i.tile_rows == 0 && i.image_width == 0 && i.image_height == 0,
          "a shared bank scores any size: cols %u rows %u image %ux%u", i.tile_cols, i.tile_rows, i.image_width,
          i.image_height);
    CHECK(i.shots == (uint32_t)g_n_good && i.k == 8 && i.vectors == 8 && i.scorer == NEXVITAD_SCORER_SINKHORN,
          "shots %u k %u vectors %llu", i.shots, i.k, (unsigned long long)i.vectors);
    CHECK(isfinite(i.image_threshold) && i.image_threshold > 0 && isfinite(i.pixel_threshold) && i.pixel_threshold > 0,
          "thresholds %g %g", i.image_threshold, i.pixel_threshold);
    check_scores(b, "shared");

    /* Any image size at least one tile large; one smaller than a tile is refused. */
    nexvitad_image smaller = crop(&g_test_views[1], 80, 64), tiny = crop(&g_test_views[1], 40, 40);
    nexvitad_result r;
    float *map = score_map(b, &smaller, &r);
    CHECK(map != NULL && r.width == 80 && r.height == 64, "a shared bank scores an 80x64 image: %s",
          nexvitad_last_error());
    free(map);
    r.struct_size = sizeof r;
    BAD(nexvitad_score(NULL, b, &tiny, NULL, 0, &r), NEXVITAD_INVALID_ARGUMENT, "tile 48x48 is larger than the 40x40 image");

    check_save_load(m, b, "shared-tiles.bank");
    if (!g_quick) {
        /* Deterministic: the same images and options give the same bank. */
        nexvitad_bank *again = NULL;
        OK(nexvitad_bank_build(m, g_good_views, (size_t)g_n_good, &o, NULL, NULL, &again));
        nexvitad_result r1, r2;
        float *x = score_map(b, &g_test_views[1], &r1), *y = again ? score_map(again, &g_test_views[1], &r2) : NULL;
        CHECK(x && y && memcmp(x, y, npix(&g_test_views[1]) * sizeof *x) == 0, "a rebuilt tiled bank is identical");
        free(x);
        free(y);
        nexvitad_bank_free(again);
    }
    OK(nexvitad_bank_free(b));
}

static void test_per_position_bank(nexvitad_model *m) {
    /* 48 px tiles without overlap on 96 x 72: 2 columns (0, 48) and 2 rows (0, 24). */
    nexvitad_bank_options o = tiled_options(48, 0.0f, NEXVITAD_TILE_PER_POSITION);
    nexvitad_bank *b = NULL;
    OK(nexvitad_bank_build(m, g_good_views, (size_t)g_n_good, &o, NULL, NULL, &b));
    if (!b) return;
    nexvitad_bank_info i = info_of(b);
    CHECK(i.tile == 48 && i.tile_h == 48 && i.tile_overlap == 0.0f && i.tile_layout == NEXVITAD_TILE_PER_POSITION,
          "per-position bank info: tile %u x %u overlap %g layout %u", i.tile, i.tile_h, i.tile_overlap,
          i.tile_layout);
    CHECK(i.tile_cols == 2 && i.tile_rows == 2 && i.image_width == 96 && i.image_height == 72,
          "per-position grid %ux%u of %ux%u images", i.tile_cols, i.tile_rows, i.image_width, i.image_height);
    CHECK(i.vectors == 4 * 8, "one bank of k = 8 per position: %llu vectors", (unsigned long long)i.vectors);
    check_scores(b, "per-position");

    /* Only images of the size it was built from. */
    nexvitad_image other = crop(&g_test_views[0], 80, 64);
    nexvitad_result r;
    r.struct_size = sizeof r;
    BAD(nexvitad_score(NULL, b, &other, NULL, 0, &r), NEXVITAD_INVALID_ARGUMENT, "one bank per tile position of 96x72 images");
    CHECK(strstr(nexvitad_last_error(), "an image of 80x64 cannot be scored") != NULL, "the size is named: %s",
          nexvitad_last_error());
    nexvitad_image pair[2] = {g_test_views[0], other};
    nexvitad_result rs[2];
    rs[0].struct_size = sizeof rs[0];
    BAD(nexvitad_score_batch(NULL, b, pair, 2, NULL, NULL, rs), NEXVITAD_INVALID_ARGUMENT,
        "images[1]: this bank keeps one bank per tile position of 96x72 images; an image of 80x64 cannot");
    check_save_load(m, b, "per-position-tiles.bank");
    OK(nexvitad_bank_free(b));

    /* Built from images of one size only. */
    nexvitad_image mixed[2] = {g_good_views[0], crop(&g_good_views[1], 80, 64)};
    b = NULL;
    BAD(nexvitad_bank_build(m, mixed, 2, &o, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "needs images of one size: images[0] is 96x72, images[1] is 80x64");
    CHECK(b == NULL, "out untouched");
}

static void test_bad_tile_options(nexvitad_model *m) {
    nexvitad_bank *b = NULL;
    nexvitad_bank_options o = tiled_options(48, 1.0f, NEXVITAD_TILE_SHARED);
    BAD(nexvitad_bank_build(m, g_good_views, 2, &o, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "options->tile_overlap 1 must be in [0, 1)");
    o.tile_overlap = -0.5f;
    BAD(nexvitad_bank_build(m, g_good_views, 2, &o, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "must be in [0, 1)");
    o.tile_overlap = NAN;
    BAD(nexvitad_bank_build(m, g_good_views, 2, &o, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "options->tile_overlap is NaN");
    o.tile = 0; /* NaN is refused even with tiling off */
    BAD(nexvitad_bank_build(m, g_good_views, 2, &o, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "options->tile_overlap is NaN");
    o = tiled_options(48, 0.0f, 7);
    BAD(nexvitad_bank_build(m, g_good_views, 2, &o, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "options->tile_layout 7 is not a nexvitad_tile_layout");
    o = tiled_options(48, 0.0f, NEXVITAD_TILE_SHARED);
    o.reserved1 = 3;
    BAD(nexvitad_bank_build(m, g_good_views, 2, &o, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "reserved1");
    o = tiled_options(224, 0.0f, NEXVITAD_TILE_SHARED);
    BAD(nexvitad_bank_build(m, g_good_views, 2, &o, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "images[0]: tile 224x224 is larger than the 96x72 image");
    o = tiled_options(20000, 0.0f, NEXVITAD_TILE_SHARED); /* no fixed bound: larger than the image */
    BAD(nexvitad_bank_build(m, g_good_views, 2, &o, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "images[0]: tile 20000x20000 is larger than the 96x72 image");
    o = tiled_options(2, 0.9f, NEXVITAD_TILE_SHARED); /* 95 x 71 tiles of 2 px */
    BAD(nexvitad_bank_build(m, g_good_views, 2, &o, NULL, NULL, &b), NEXVITAD_LIMIT_EXCEEDED, "MAX_TILES");
    /* With tiling off the other tiling fields are ignored. */
    o = tiled_options(0, 5.0f, 7);
    if (!g_quick) {
        OK(nexvitad_bank_build(m, g_good_views, 2, &o, NULL, NULL, &b));
        if (b) {
            nexvitad_bank_info i = info_of(b);
            CHECK(i.tile == 0 && i.tile_layout == NEXVITAD_TILE_SHARED && i.tile_overlap == 0.0f, "tile 0: a whole-image bank");
            OK(nexvitad_bank_free(b));
        }
    }
}

/* ---- the cross-language fixture ----------------------------------------------------------- */

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Scores image.rgb with `bank_path` and compares with `expected_file` bit for bit. */
static void check_fixture(nexvitad_model *m, const char *bank_path, const char *expected_file, const char *what) {
    char path[4096], v[128];
    path_in(path, sizeof path, g_fixture_dir, expected_file);
    const char *json = read_text(path);
    CHECK(json != NULL, "%s: read %s", what, path);
    if (!json) return;
    char want_score[16] = "", want_threshold[16] = "", want_anomalous[16] = "", want_sha[80] = "";
    unsigned width = 0, height = 0;
    size_t map_len = 0;
    int ok = json_field(json, "image_score_bits", want_score, sizeof want_score) == 0 &&
             json_field(json, "image_threshold_bits", want_threshold, sizeof want_threshold) == 0 &&
             json_field(json, "is_anomalous", want_anomalous, sizeof want_anomalous) == 0 &&
             json_field(json, "map_sha256", want_sha, sizeof want_sha) == 0 &&
             json_field(json, "width", v, sizeof v) == 0 && sscanf(v, "%u", &width) == 1 &&
             json_field(json, "height", v, sizeof v) == 0 && sscanf(v, "%u", &height) == 1 &&
             json_field(json, "map_len", v, sizeof v) == 0 && sscanf(v, "%zu", &map_len) == 1 &&
             json_field(json, "format", v, sizeof v) == 0 && strcmp(v, "rgb8") == 0;
    CHECK(ok, "%s: %s has every field", what, expected_file);
    if (!ok) return;

    path_in(path, sizeof path, g_fixture_dir, "image.rgb");
    FILE *f = fopen(path, "rb");
    size_t n = (size_t)width * height * 3;
    uint8_t *px = (uint8_t *)malloc(n + 1);
    size_t got = f ? fread(px, 1, n + 1, f) : 0;
    if (f) fclose(f);
    CHECK(got == n, "%s: image.rgb holds %ux%u RGB8 (%zu bytes, want %zu)", what, width, height, got, n);
    nexvitad_bank *b = NULL;
    OK(nexvitad_bank_load(m, bank_path, &b));
    if (got != n || !b) {
        free(px);
        nexvitad_bank_free(b);
        return;
    }
    nexvitad_image im = {px, width, height, 0, NEXVITAD_PIXEL_RGB8};
    for (int with_model = 0; with_model < 2; with_model++) {
        nexvitad_result r;
        float *map = (float *)malloc(map_len * sizeof *map);
        r.struct_size = sizeof r;
        OK(nexvitad_score(with_model ? m : NULL, b, &im, map, map_len, &r));
        uint32_t sb, tb;
        memcpy(&sb, &r.image_score, 4);
        memcpy(&tb, &r.image_threshold, 4);
        char score_hex[16], threshold_hex[16], sha[65];
        snprintf(score_hex, sizeof score_hex, "%08x", (unsigned)sb);
        snprintf(threshold_hex, sizeof threshold_hex, "%08x", (unsigned)tb);
        sha256_floats_hex(map, map_len, sha);
        CHECK(strcmp(score_hex, want_score) == 0, "%s: image_score bits %s (%.9g), want %s", what, score_hex,
              r.image_score, want_score);
        CHECK(strcmp(threshold_hex, want_threshold) == 0, "%s: image_threshold bits %s, want %s", what,
              threshold_hex, want_threshold);
        CHECK(r.is_anomalous == (strcmp(want_anomalous, "true") == 0), "%s: is_anomalous %d, want %s", what,
              r.is_anomalous, want_anomalous);
        CHECK(r.width == width && r.height == height && (size_t)r.width * r.height == map_len, "%s: map %ux%u", what,
              r.width, r.height);
        CHECK(strcmp(sha, want_sha) == 0, "%s: map sha256 %s, want %s", what, sha, want_sha);
        free(map);
    }
    OK(nexvitad_bank_free(b));
    free(px);
}

static void test_fixture(nexvitad_model *m) {
    char path[4096];
    path_in(path, sizeof path, g_fixture_dir, "tiny.bank");
    check_fixture(m, path, "expected.json", "whole-image fixture");
    path_in(path, sizeof path, g_fixture_dir, "tiled.bank");
    check_fixture(m, path, "expected_tiled.json", "tiled fixture");

    /* tiled.bank: 48 px tiles at overlap 0.25, one shared bank of k = 8 from 3 images. */
    nexvitad_bank *b = NULL;
    OK(nexvitad_bank_load(m, path, &b));
    if (!b) return;
    nexvitad_bank_info i = info_of(b);
    CHECK(i.tile == 48 && i.tile_h == 48 && i.tile_overlap == 0.25f && i.tile_layout == NEXVITAD_TILE_SHARED &&
              i.tile_cols == 0 && i.image_width == 0 && i.k == 8 && i.shots == 3,
          "tiled.bank info: tile %u x %u overlap %g layout %u k %u shots %u", i.tile, i.tile_h, i.tile_overlap,
          i.tile_layout, i.k, i.shots);
    /* Saved again by this library and loaded back, it still reproduces the fixture. */
    char copy[4096];
    path_in(copy, sizeof copy, g_work_dir, "tiled-copy.bank");
    OK(nexvitad_bank_save(b, copy));
    OK(nexvitad_bank_free(b));
    check_fixture(m, copy, "expected_tiled.json", "tiled fixture, saved and loaded");

    /* The whole-image fixture bank reports no tiling. */
    path_in(path, sizeof path, g_fixture_dir, "tiny.bank");
    b = NULL;
    OK(nexvitad_bank_load(m, path, &b));
    if (!b) return;
    i = info_of(b);
    CHECK(i.tile == 0 && i.tile_h == 0 && i.tile_overlap == 0.0f && i.tile_layout == NEXVITAD_TILE_SHARED && i.tile_cols == 0 &&
              i.tile_rows == 0 && i.image_width == 0 && i.image_height == 0,
          "tiny.bank (whole-image) info has no tiling: tile %u", i.tile);
    OK(nexvitad_bank_free(b));
}

/* The region-of-interest fixture (revision 4): roi.bank scores inside its own mask as
   expected_roi.json says; its mask comes back as roi.mask; roi.mask given per call to
   tiny.bank, and roi.bank with its ROI ignored, give the caller_roi_* and ignore_roi_* bits. */
static void roi_case(nexvitad_bank *b, const nexvitad_image *im, const nexvitad_score_options *o, size_t map_len,
                     const char *json, const char *score_key, const char *sha_key, uint32_t want_source, const char *what) {
    char want_score[16] = "", want_sha[80] = "";
    CHECK(json_field(json, score_key, want_score, sizeof want_score) == 0 &&
              json_field(json, sha_key, want_sha, sizeof want_sha) == 0,
          "%s: expected_roi.json has %s and %s", what, score_key, sha_key);
    float *map = (float *)malloc(map_len * sizeof *map);
    nexvitad_result r;
    r.struct_size = sizeof r;
    OK(nexvitad_score_with_options(NULL, b, im, o, map, map_len, NULL, 0, NULL, &r));
    uint32_t sb;
    memcpy(&sb, &r.image_score, 4);
    char hex[16], sha[65];
    snprintf(hex, sizeof hex, "%08x", (unsigned)sb);
    sha256_floats_hex(map, map_len, sha);
    CHECK(strcmp(hex, want_score) == 0, "%s: image_score bits %s, want %s", what, hex, want_score);
    CHECK(strcmp(sha, want_sha) == 0, "%s: map sha256 %s, want %s", what, sha, want_sha);
    CHECK(r.roi_source == want_source, "%s: roi_source %u, want %u", what, r.roi_source, want_source);
    free(map);
}

static void test_roi_fixture(nexvitad_model *m) {
    char path[4096], v[64];
    path_in(path, sizeof path, g_fixture_dir, "roi.bank");
    check_fixture(m, path, "expected_roi.json", "ROI fixture (the bank's own ROI)");
    nexvitad_bank *b = NULL, *plain = NULL;
    OK(nexvitad_bank_load(m, path, &b));
    path_in(path, sizeof path, g_fixture_dir, "tiny.bank");
    OK(nexvitad_bank_load(m, path, &plain));
    path_in(path, sizeof path, g_fixture_dir, "expected_roi.json");
    const char *json = read_text(path);
    unsigned rw = 0, rh = 0;
    CHECK(json && json_field(json, "roi_width", v, sizeof v) == 0 && sscanf(v, "%u", &rw) == 1 &&
              json_field(json, "roi_height", v, sizeof v) == 0 && sscanf(v, "%u", &rh) == 1,
          "expected_roi.json has roi_width and roi_height");
    path_in(path, sizeof path, g_fixture_dir, "roi.mask");
    FILE *f = fopen(path, "rb");
    uint8_t mask[4096];
    size_t got = f ? fread(mask, 1, sizeof mask, f) : 0;
    if (f) fclose(f);
    CHECK(got == (size_t)rw * rh && got > 0, "roi.mask holds %zu bytes, want %ux%u", got, rw, rh);
    path_in(path, sizeof path, g_fixture_dir, "image.rgb");
    f = fopen(path, "rb");
    uint8_t *px = (uint8_t *)malloc(96 * 72 * 3);
    size_t n = f ? fread(px, 1, 96 * 72 * 3, f) : 0;
    if (f) fclose(f);
    if (!b || !plain || !json || got != (size_t)rw * rh || n != 96 * 72 * 3) {
        nexvitad_bank_free(b);
        nexvitad_bank_free(plain);
        free(px);
        return;
    }
    nexvitad_bank_info i = info_of(b);
    CHECK(i.roi_width == rw && i.roi_height == rh, "roi.bank info roi %ux%u, want %ux%u", i.roi_width, i.roi_height, rw, rh);
    uint8_t back[4096];
    OK(nexvitad_bank_get_roi(b, back, sizeof back));
    CHECK(memcmp(back, mask, got) == 0, "nexvitad_bank_get_roi gives roi.mask");
    CHECK(info_of(plain).roi_width == 0, "tiny.bank has no ROI");

    nexvitad_image im = {px, 96, 72, 0, NEXVITAD_PIXEL_RGB8};
    nexvitad_mask mk = {mask, rw, rh, 0};
    nexvitad_score_options o;
    o.struct_size = sizeof o;
    OK(nexvitad_score_options_default(&o));
    roi_case(b, &im, &o, 96 * 72, json, "image_score_bits", "map_sha256", NEXVITAD_ROI_FROM_BANK, "roi.bank, default options");
    o.roi = &mk;
    roi_case(plain, &im, &o, 96 * 72, json, "caller_roi_image_score_bits", "caller_roi_map_sha256", NEXVITAD_ROI_FROM_CALLER,
             "tiny.bank with roi.mask per call");
    /* The same mask with padded rows (stride > width) reads the same pixels. */
    uint8_t padded[4096 * 2];
    for (unsigned y = 0; y < rh; y++) {
        memcpy(padded + y * (rw + 5), mask + y * rw, rw);
        memset(padded + y * (rw + 5) + rw, 0, 5);
    }
    nexvitad_mask strided = {padded, rw, rh, rw + 5};
    o.roi = &strided;
    roi_case(plain, &im, &o, 96 * 72, json, "caller_roi_image_score_bits", "caller_roi_map_sha256", NEXVITAD_ROI_FROM_CALLER,
             "tiny.bank with roi.mask per call, stride + 5");
    o.roi = NULL;
    o.ignore_bank_roi = 1;
    roi_case(b, &im, &o, 96 * 72, json, "ignore_roi_image_score_bits", "ignore_roi_map_sha256", NEXVITAD_ROI_NONE,
             "roi.bank with ignore_bank_roi");
    OK(nexvitad_bank_free(b));
    OK(nexvitad_bank_free(plain));
    free(px);
}

/* The growth fixture (revision 5): grow2.bank plus grow_add.rgb is the bank built on all
   three images, whose score of image.rgb expected_grow.json holds. */
static void test_grow_fixture(nexvitad_model *m) {
    char path[4096], v[64];
    path_in(path, sizeof path, g_fixture_dir, "expected_grow.json");
    char *json = read_text(path);
    unsigned w = 0, h = 0;
    char want_px[16] = "";
    CHECK(json && json_field(json, "grow_add_width", v, sizeof v) == 0 && sscanf(v, "%u", &w) == 1 &&
              json_field(json, "grow_add_height", v, sizeof v) == 0 && sscanf(v, "%u", &h) == 1 &&
              json_field(json, "pixel_threshold_bits", want_px, sizeof want_px) == 0,
          "expected_grow.json has grow_add_width, grow_add_height and pixel_threshold_bits");
    path_in(path, sizeof path, g_fixture_dir, "grow_add.rgb");
    FILE *f = fopen(path, "rb");
    size_t n = (size_t)w * h * 3;
    uint8_t *px = (uint8_t *)malloc(n + 1);
    size_t got = f ? fread(px, 1, n + 1, f) : 0;
    if (f) fclose(f);
    CHECK(got == n && n > 0, "grow_add.rgb holds %ux%u RGB8", w, h);
    nexvitad_bank *b = NULL, *grown = NULL;
    path_in(path, sizeof path, g_fixture_dir, "grow2.bank");
    OK(nexvitad_bank_load(m, path, &b));
    if (b && got == n && n > 0) {
        CHECK(info_of(b).growable == 1 && info_of(b).shots == 2, "grow2.bank is growable with 2 shots");
        nexvitad_image im = {px, w, h, 0, NEXVITAD_PIXEL_RGB8};
        OK(nexvitad_bank_add(b, &im, 1, NULL, NULL, &grown));
    }
    if (grown) {
        nexvitad_bank_info i = info_of(grown);
        uint32_t pb;
        memcpy(&pb, &i.pixel_threshold, 4);
        snprintf(v, sizeof v, "%08x", (unsigned)pb);
        CHECK(i.shots == 3 && i.growable == 1, "grown bank: %u shots, growable %u", i.shots, i.growable);
        CHECK(strcmp(v, want_px) == 0, "grown bank: pixel_threshold bits %s, want %s", v, want_px);
        char saved[4096];
        path_in(saved, sizeof saved, g_work_dir, "grown.bank");
        OK(nexvitad_bank_save(grown, saved));
        check_fixture(m, saved, "expected_grow.json", "growth fixture (grow2.bank + grow_add.rgb)");
    }
    nexvitad_bank_free(grown);
    nexvitad_bank_free(b);
    free(px);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s MODEL_DIR DATA_DIR FIXTURE_DIR WORK_DIR\n", argv[0]);
        return 2;
    }
    g_model_dir = argv[1], g_data_dir = argv[2], g_fixture_dir = argv[3], g_work_dir = argv[4];
    const char *q = getenv("NEXVITAD_TEST_QUICK");
    g_quick = q && strcmp(q, "1") == 0;
    if (g_quick) g_n_good = 2;
    if (load_images() != 0) return 2;

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
    test_revision_and_defaults();
    test_revision2_caller(m);
    test_fixture(m);
    test_roi_fixture(m);
    test_grow_fixture(m);
    test_shared_bank(m);
    test_per_position_bank(m);
    test_bad_tile_options(m);

    OK(nexvitad_model_free(m));
    for (int i = 0; i < 4; i++) ppm_free(&g_good[i]);
    for (int i = 0; i < 3; i++) ppm_free(&g_test[i]);
    printf("tiling: bad-input cases: %d\n", g_bad_inputs);
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail == 0 ? 0 : 1;
}
