/*
 * test_capi.c - tests of the nexvitad C ABI, built against the *installed* library.
 *
 * Usage: test_capi MODEL_DIR OTHER_MODEL_DIR DATA_DIR WORK_DIR
 *   MODEL_DIR        models/tiny
 *   OTHER_MODEL_DIR  a copy of it with another fusion setting (another fingerprint)
 *   DATA_DIR         examples/c/data (good/ and test/ hold .ppm/.pgm files)
 *   WORK_DIR         an empty writable folder
 * NEXVITAD_TEST_QUICK=1 runs the multi-thread test with 2 threads and 1 round (valgrind).
 *
 * Prints one line per failure and a closing "N passed, N failed"; exits non-zero on failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nexvitad.h>

#include "selftest.h"

#include "check.h"
#include "ppm.h"

/* NEXVITAD_TEST_QUICK=1 (valgrind): skip the cases that only repeat encoder work. */
static int g_quick;
/* Good images in the main bank (2 in quick mode). */
static int g_n_good = 4;

/* ---- fixtures ---------------------------------------------------------------------- */

static const char *g_model_dir, *g_other_dir, *g_data_dir, *g_work_dir;
static ppm_image g_good[4], g_test[3]; /* test: good_4, scratch (RGB), spot_gray (GRAY8) */
static nexvitad_image g_good_views[4], g_test_views[3];

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

static size_t npix(const nexvitad_image *im) {
    return (size_t)im->width * im->height;
}

static nexvitad_options test_options(void) {
    nexvitad_options o;
    o.struct_size = sizeof o;
    nexvitad_options_default(&o);
    o.intra_threads = 1; /* the multi-thread test runs its own threads */
    return o;
}

static nexvitad_model *open_model(const char *dir) {
    nexvitad_options o = test_options();
    nexvitad_model *m = NULL;
    OK(nexvitad_model_open(dir, &o, &m));
    return m;
}

static nexvitad_bank *build_bank(nexvitad_model *m) {
    nexvitad_bank_options bo;
    bo.struct_size = sizeof bo;
    nexvitad_bank_options_default(&bo);
    if (g_quick) bo.max_iters = 5; /* k-means under valgrind is slow; the API is the same */
    nexvitad_bank *b = NULL;
    OK(nexvitad_bank_build(m, g_good_views, (size_t)g_n_good, &bo, NULL, NULL, &b));
    return b;
}

/* Scores one image into a new map (caller frees); NULL on failure. */
static float *score_map(nexvitad_model *m, nexvitad_bank *b, const nexvitad_image *im, nexvitad_result *r) {
    float *map = (float *)malloc(npix(im) * sizeof *map);
    r->struct_size = sizeof *r;
    if (nexvitad_score(m, b, im, map, npix(im), r) != NEXVITAD_OK) {
        free(map);
        return NULL;
    }
    return map;
}

/* ---- log and progress callbacks ---------------------------------------------------- */

static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_log_info, g_log_warn, g_log_saw_build, g_log_saw_load;

static void count_log(void *user, int level, const char *message) {
    (void)user;
    pthread_mutex_lock(&g_log_lock);
    if (level == NEXVITAD_LOG_INFO) g_log_info++;
    if (level == NEXVITAD_LOG_WARN) g_log_warn++;
    if (strstr(message, "built bank") != NULL) g_log_saw_build++;
    if (strstr(message, "loaded bank") != NULL) g_log_saw_load++;
    pthread_mutex_unlock(&g_log_lock);
}

static nexvitad_status g_nested_status = NEXVITAD_OK;
static char g_nested_msg[512];

static void reentrant_log(void *user, int level, const char *message) {
    (void)user, (void)level, (void)message;
    g_nested_status = nexvitad_set_log_callback(NULL, NULL);
    snprintf(g_nested_msg, sizeof g_nested_msg, "%s", nexvitad_last_error());
}

typedef struct progress_log {
    int calls, seen[3], bad_stage, cancel_stage, went_backwards;
    size_t last_done[3];
} progress_log;

static int record_progress(void *user, int stage, size_t done, size_t total) {
    progress_log *p = (progress_log *)user;
    p->calls++;
    if (stage < 0 || stage > 2 || done > total) {
        p->bad_stage++;
        return 0;
    }
    if (p->seen[stage] && done < p->last_done[stage] && stage != NEXVITAD_STAGE_CALIBRATE) p->went_backwards++;
    p->seen[stage]++;
    p->last_done[stage] = done;
    return stage == p->cancel_stage ? 1 : 0;
}

/* ---- success paths ----------------------------------------------------------------- */

static void test_library_info(void) {
    CHECK(nexvitad_abi_version() == NEXVITAD_ABI_VERSION, "abi %u", nexvitad_abi_version());
    CHECK(strcmp(nexvitad_version(), NEXVITAD_VERSION) == 0, "version %s", nexvitad_version());
    CHECK(strcmp(nexvitad_status_name(NEXVITAD_OK), "NEXVITAD_OK") == 0, "%s", nexvitad_status_name(0));
    CHECK(strcmp(nexvitad_status_name(NEXVITAD_CANCELLED), "NEXVITAD_CANCELLED") == 0, "name");
    CHECK(strcmp(nexvitad_status_name(NEXVITAD_INTERNAL), "NEXVITAD_INTERNAL") == 0, "name");
    CHECK(strcmp(nexvitad_status_name(99), "NEXVITAD_UNKNOWN_STATUS") == 0, "unknown status name");
    CHECK(nexvitad_last_error() != NULL, "last_error never NULL");
    /* A panic inside the library comes back as a status, not as a crash. */
    BAD(nexvitad_selftest_panic(), NEXVITAD_INTERNAL, "deliberate panic");
    OK(nexvitad_options_default(&(nexvitad_options){.struct_size = sizeof(nexvitad_options)}));
    CHECK(strcmp(nexvitad_last_error(), "") == 0, "a successful call clears the message: '%s'",
          nexvitad_last_error());
}

static void test_defaults(void) {
    nexvitad_options o;
    memset(&o, 0xAB, sizeof o);
    o.struct_size = sizeof o;
    OK(nexvitad_options_default(&o));
    CHECK(o.ort_library == NULL, "ort_library default NULL");
    CHECK(o.execution_provider && strcmp(o.execution_provider, "cpu") == 0, "ep default cpu");
    CHECK(o.intra_threads == 0 && o.optimization_level == 3 && o.reserved0 == 0, "session defaults");
    CHECK(o.tile_batch == 0 && o.parallel_encoders == 0, "tile_batch default 0 (the provider's), encoders in turn");
    CHECK(o.max_image_side == 16384 && o.max_image_pixels == (64u << 20), "limits %u %llu", o.max_image_side,
          (unsigned long long)o.max_image_pixels);

    nexvitad_bank_options b;
    memset(&b, 0xAB, sizeof b);
    b.struct_size = sizeof b;
    OK(nexvitad_bank_options_default(&b));
    CHECK(b.scorer == NEXVITAD_SCORER_SINKHORN && b.k == 0 && b.sigma == -1.0f && b.target_fpr == 0.0f,
          "bank defaults scorer %u k %u sigma %g fpr %g", b.scorer, b.k, b.sigma, b.target_fpr);
    CHECK(b.max_iters == 50 && b.batch_size == 4 && b.augment == 0 && b.seed == 0 && b.epsilon > 0,
          "bank defaults iters %u batch %u", b.max_iters, b.batch_size);
    CHECK(b.image_score_mode == NEXVITAD_IMAGE_SCORE_MAX && b.max_vectors > 0, "mode/max_vectors");

    /* An older caller whose struct ends before `max_image_side`: nothing beyond is written. */
    struct {
        nexvitad_options o;
        uint32_t canary;
    } old;
    memset(&old, 0x5A, sizeof old);
    old.o.struct_size = offsetof(nexvitad_options, max_image_side);
    OK(nexvitad_options_default(&old.o));
    CHECK(old.o.optimization_level == 3, "field within struct_size written");
    CHECK(old.o.max_image_side == 0x5A5A5A5Au && old.canary == 0x5A5A5A5Au, "fields beyond struct_size untouched");
}

static void test_model(nexvitad_model *m, nexvitad_model *other) {
    const char *fp = nexvitad_model_fingerprint(m);
    CHECK(fp != NULL && strlen(fp) == 64 && strspn(fp, "0123456789abcdef") == 64, "fingerprint '%s'",
          fp ? fp : "(NULL)");
    /* A changed fusion is another model. */
    CHECK(fp && strcmp(nexvitad_model_fingerprint(other), fp) != 0, "other fusion, other fingerprint");
    OK(nexvitad_model_free(NULL));
    OK(nexvitad_bank_free(NULL));
    if (g_quick) return; /* each open builds two ONNX Runtime sessions: slow under valgrind */
    /* A second handle to the same folder, opened with NULL options (the defaults), has the
       same fingerprint. */
    nexvitad_model *same = NULL;
    OK(nexvitad_model_open(g_model_dir, NULL, &same));
    CHECK(same && fp && strcmp(nexvitad_model_fingerprint(same), fp) == 0, "same folder, same fingerprint");
    OK(nexvitad_model_free(same));
}

static void test_build_and_info(nexvitad_model *m, nexvitad_bank *b) {
    nexvitad_bank_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    OK(nexvitad_bank_get_info(b, &info));
    CHECK(info.scorer == NEXVITAD_SCORER_SINKHORN && info.k == 30 && info.vectors == 30, "scorer %u k %u vectors %llu",
          info.scorer, info.k, (unsigned long long)info.vectors);
    CHECK(info.shots == (uint32_t)g_n_good && info.dim > 0 && info.grid_w > 0 && info.grid_h > 0, "shots %u dim %u grid %ux%u",
          info.shots, info.dim, info.grid_w, info.grid_h);
    CHECK(info.sigma == 4.0f && info.target_fpr > 0 && info.target_fpr < 1, "sigma %g fpr %g", info.sigma,
          info.target_fpr);
    CHECK(isfinite(info.image_threshold) && info.image_threshold > 0 && isfinite(info.pixel_threshold) &&
              info.pixel_threshold > 0,
          "thresholds %g %g", info.image_threshold, info.pixel_threshold);
    CHECK(info.iterations > 0 && info.iterations <= (g_quick ? 5u : 50u), "iterations %u", info.iterations);

    if (g_quick) return;
    /* Progress: every stage reported, in order within a stage; a rebuild is the same bank,
       and the build is logged. */
    progress_log p;
    memset(&p, 0, sizeof p);
    p.cancel_stage = -1;
    nexvitad_bank *again = NULL;
    OK(nexvitad_set_log_callback(count_log, NULL));
    OK(nexvitad_bank_build(m, g_good_views, 4, NULL, record_progress, &p, &again));
    OK(nexvitad_set_log_callback(NULL, NULL));
    CHECK(g_log_saw_build == 1, "the build was logged once (%d)", g_log_saw_build);
    CHECK(p.seen[0] > 0 && p.seen[1] > 0 && p.seen[2] > 0, "stages seen %d %d %d", p.seen[0], p.seen[1], p.seen[2]);
    CHECK(p.bad_stage == 0 && p.went_backwards == 0, "progress values sane");
    nexvitad_bank_info info2;
    info2.struct_size = sizeof info2;
    OK(nexvitad_bank_get_info(again, &info2));
    CHECK(info2.image_threshold == info.image_threshold && info2.pixel_threshold == info.pixel_threshold,
          "rebuild is deterministic");

    /* Other scorers and options go through. */
    nexvitad_bank_options bo;
    bo.struct_size = sizeof bo;
    OK(nexvitad_bank_options_default(&bo));
    bo.scorer = NEXVITAD_SCORER_CORESET;
    bo.coreset_ratio = 0.05f;
    bo.image_score_mode = NEXVITAD_IMAGE_SCORE_TOP_MEAN;
    bo.image_score_top_fraction = 0.01f;
    bo.augment = NEXVITAD_AUGMENT_HFLIP;
    bo.seed = 3;
    nexvitad_bank *cs = NULL;
    OK(nexvitad_bank_build(m, g_good_views, 2, &bo, NULL, NULL, &cs));
    nexvitad_bank_info ci;
    ci.struct_size = sizeof ci;
    OK(nexvitad_bank_get_info(cs, &ci));
    CHECK(ci.scorer == NEXVITAD_SCORER_CORESET && ci.augment == NEXVITAD_AUGMENT_HFLIP && ci.seed == 3 &&
              ci.image_score_mode == NEXVITAD_IMAGE_SCORE_TOP_MEAN && ci.image_score_top_fraction == 0.01f,
          "coreset bank info");
    /* 2 images x 2 copies x patches, 5 % kept */
    CHECK(ci.vectors == (uint64_t)ceil(2.0 * 2 * ci.grid_w * ci.grid_h * 0.05), "coreset vectors %llu",
          (unsigned long long)ci.vectors);
    OK(nexvitad_bank_free(cs));
    OK(nexvitad_bank_free(again));
}

static void test_score(nexvitad_model *m, nexvitad_bank *b) {
    /* A caller built against an older header, whose nexvitad_result ends before `width`:
       only the fields it has are written. */
    struct {
        nexvitad_result r;
        uint64_t canary;
    } old;
    memset(&old, 0x5A, sizeof old);
    old.r.struct_size = offsetof(nexvitad_result, width);
    OK(nexvitad_score(m, b, &g_test_views[2], NULL, 0, &old.r));
    CHECK(isfinite(old.r.image_score) && (old.r.is_anomalous == 0 || old.r.is_anomalous == 1), "old result written");
    const unsigned char *tail = (const unsigned char *)&old + offsetof(nexvitad_result, width);
    size_t untouched = 0, tail_len = sizeof old - offsetof(nexvitad_result, width);
    while (untouched < tail_len && tail[untouched] == 0x5A) untouched++;
    CHECK(untouched == tail_len, "fields beyond an old struct_size untouched (%zu of %zu bytes)", untouched, tail_len);
    for (int i = g_quick ? 2 : 0; i < 3; i++) {
        const nexvitad_image *im = &g_test_views[i];
        nexvitad_result r;
        float *map = score_map(m, b, im, &r);
        CHECK(map != NULL, "score test image %d: %s", i, nexvitad_last_error());
        if (!map) continue;
        float mx = -INFINITY;
        int finite = 1;
        for (size_t k = 0; k < npix(im); k++) {
            finite &= isfinite(map[k]) && map[k] >= 0;
            if (map[k] > mx) mx = map[k];
        }
        CHECK(finite, "map %d finite and >= 0", i);
        CHECK(r.width == im->width && r.height == im->height, "map size %ux%u", r.width, r.height);
        CHECK(r.image_score == mx, "image score %g is the map max %g", r.image_score, mx);
        CHECK(r.is_anomalous == (r.image_score > r.image_threshold), "decision");
        CHECK(r.prepare_s >= 0 && r.hiera_s > 0 && r.matching_s >= 0, "timings");

        /* Without a map, and with a longer buffer: the same result. */
        nexvitad_result r2;
        r2.struct_size = sizeof r2;
        OK(nexvitad_score(m, b, im, NULL, 0, &r2));
        CHECK(r2.image_score == r.image_score, "score without map");
        float *big = (float *)malloc((npix(im) + 7) * sizeof *big);
        big[npix(im)] = 12345.0f;
        OK(nexvitad_score(m, b, im, big, npix(im) + 7, &r2));
        CHECK(memcmp(big, map, npix(im) * sizeof *map) == 0 && big[npix(im)] == 12345.0f,
              "long buffer: map written, tail untouched");
        free(big);
        free(map);
    }
}

/* BGR, BGRA, padded rows: the same pixels in another layout give the identical map. */
static void test_layouts(nexvitad_model *m, nexvitad_bank *b) {
    const nexvitad_image *rgb = &g_test_views[1];
    size_t w = rgb->width, h = rgb->height, pad = 13;
    uint8_t *bgr = (uint8_t *)malloc(w * h * 3), *bgra = (uint8_t *)malloc(w * h * 4);
    uint8_t *padded = (uint8_t *)malloc((w * 3 + pad) * h);
    for (size_t i = 0; i < w * h; i++) {
        const uint8_t *s = rgb->data + 3 * i;
        bgr[3 * i] = s[2], bgr[3 * i + 1] = s[1], bgr[3 * i + 2] = s[0];
        bgra[4 * i] = s[2], bgra[4 * i + 1] = s[1], bgra[4 * i + 2] = s[0], bgra[4 * i + 3] = 77;
    }
    for (size_t y = 0; y < h; y++) {
        memcpy(padded + y * (w * 3 + pad), rgb->data + y * w * 3, w * 3);
        memset(padded + y * (w * 3 + pad) + w * 3, 0xEE, pad);
    }
    nexvitad_image views[3] = {
        {bgr, (uint32_t)w, (uint32_t)h, 0, NEXVITAD_PIXEL_BGR8},
        {bgra, (uint32_t)w, (uint32_t)h, w * 4, NEXVITAD_PIXEL_BGRA8},
        {padded, (uint32_t)w, (uint32_t)h, w * 3 + pad, NEXVITAD_PIXEL_RGB8},
    };
    nexvitad_result r0, r;
    float *ref = score_map(m, b, rgb, &r0);
    for (int i = g_quick ? 2 : 0; i < 3 && ref; i++) {
        float *map = score_map(m, b, &views[i], &r);
        CHECK(map && memcmp(map, ref, w * h * sizeof *map) == 0, "layout %d gives the identical map", i);
        free(map);
    }
    free(ref);
    free(bgr);
    free(bgra);
    free(padded);
}

static void test_batch(nexvitad_model *m, nexvitad_bank *b) {
    nexvitad_result results[3];
    float *maps[3];
    size_t lens[3];
    for (int i = 0; i < 3; i++) {
        lens[i] = npix(&g_test_views[i]);
        maps[i] = (float *)malloc(lens[i] * sizeof(float));
    }
    results[0].struct_size = sizeof results[0];
    results[1].struct_size = results[2].struct_size = 0; /* the library fills them from [0] */
    OK(nexvitad_score_batch(m, b, g_test_views, 3, maps, lens, results));
    for (int i = g_quick ? 2 : 0; i < 3; i++) {
        nexvitad_result single;
        float *ref = score_map(m, b, &g_test_views[i], &single);
        if (!ref) continue;
        /* A batch may run the encoders with another blocking than one image does: allow
           rounding-level differences, nothing more. */
        double worst = 0;
        for (size_t k = 0; k < lens[i]; k++) {
            double d = fabs((double)maps[i][k] - ref[k]) / (fabs(ref[k]) + 1e-6);
            if (d > worst) worst = d;
        }
        CHECK(worst < 1e-3, "batch map %d within 1e-3 of single (worst %g)", i, worst);
        CHECK(results[i].struct_size == sizeof(nexvitad_result) && results[i].width == g_test_views[i].width &&
                  fabs((double)results[i].image_score - single.image_score) <= 1e-3 * fabs(single.image_score),
              "batch result %d", i);
        free(ref);
    }
    if (g_quick) {
        for (int i = 0; i < 3; i++) free(maps[i]);
        return;
    }
    /* More images than one encoder group (16): results keep their order across groups. */
    enum { MANY = 17 };
    nexvitad_image many[MANY];
    nexvitad_result many_results[MANY];
    for (int i = 0; i < MANY; i++) many[i] = g_test_views[i % 3];
    many_results[0].struct_size = sizeof many_results[0];
    OK(nexvitad_score_batch(m, b, many, MANY, NULL, NULL, many_results));
    for (int i = 0; i < MANY; i++)
        CHECK(many_results[i].width == many[i].width &&
                  fabs((double)many_results[i].image_score - results[i % 3].image_score) <=
                      1e-3 * fabs(results[i % 3].image_score),
              "batch of %d: result %d in order", MANY, i);
    /* No maps at all; and one NULL entry among the maps. */
    nexvitad_result r2[3];
    r2[0].struct_size = sizeof r2[0];
    OK(nexvitad_score_batch(m, b, g_test_views, 3, NULL, NULL, r2));
    CHECK(r2[2].image_score == results[2].image_score, "batch without maps");
    float *saved = maps[1];
    maps[1] = NULL;
    OK(nexvitad_score_batch(m, b, g_test_views, 3, maps, lens, r2));
    maps[1] = saved;
    for (int i = 0; i < 3; i++) free(maps[i]);
}

static void test_save_load(nexvitad_model *m, nexvitad_bank *b) {
    char path[4096];
    path_in(path, sizeof path, g_work_dir, "bank.safetensors");
    OK(nexvitad_bank_save(b, path));
    nexvitad_bank *loaded = NULL;
    OK(nexvitad_bank_load(m, path, &loaded));
    nexvitad_result r1, r2;
    float *a = score_map(m, b, &g_test_views[1], &r1), *c = loaded ? score_map(m, loaded, &g_test_views[1], &r2) : NULL;
    CHECK(a && c && memcmp(a, c, npix(&g_test_views[1]) * sizeof *a) == 0 && r1.image_threshold == r2.image_threshold,
          "a loaded bank scores identically");
    free(a);
    free(c);
    OK(nexvitad_bank_free(loaded));
}

/* A bank keeps its model alive: free the model first, then keep using the bank. */
static void test_lifetimes(nexvitad_model *m) {
    nexvitad_model *m2 = open_model(g_model_dir);
    char path[4096];
    path_in(path, sizeof path, g_work_dir, "bank.safetensors");
    nexvitad_bank *b2 = NULL;
    OK(nexvitad_bank_load(m2, path, &b2));
    OK(nexvitad_model_free(m2));
    nexvitad_bank_info info;
    info.struct_size = sizeof info;
    OK(nexvitad_bank_get_info(b2, &info));
    nexvitad_result r;
    r.struct_size = sizeof r;
    OK(nexvitad_score(m, b2, &g_test_views[0], NULL, 0, &r)); /* any handle of the same model */
    /* Revision 2: model NULL scores with the bank's own model, freed by the caller above. */
    CHECK(nexvitad_abi_revision() >= 2, "revision 2: NULL model in nexvitad_score");
    nexvitad_result rn;
    rn.struct_size = sizeof rn;
    OK(nexvitad_score(NULL, b2, &g_test_views[0], NULL, 0, &rn));
    CHECK(rn.image_score == r.image_score && rn.image_threshold == r.image_threshold,
          "NULL model = the bank's model: %g vs %g", rn.image_score, r.image_score);
    nexvitad_result rb[2];
    rb[0].struct_size = sizeof rb[0];
    OK(nexvitad_score_batch(NULL, b2, g_test_views, 2, NULL, NULL, rb));
    CHECK(rb[0].image_score == r.image_score, "score_batch with NULL model");
    /* The freed model handle itself is refused; a model of another fingerprint too. */
    BAD(nexvitad_score(m2, b2, &g_test_views[0], NULL, 0, &rn), NEXVITAD_INVALID_ARGUMENT, "not a live nexvitad_model");
    path_in(path, sizeof path, g_work_dir, "bank_after_model_free.safetensors");
    OK(nexvitad_bank_save(b2, path));
    OK(nexvitad_bank_free(b2));
}

static void test_log(nexvitad_model *m) {
    char path[4096];
    path_in(path, sizeof path, g_work_dir, "bank.safetensors");
    pthread_mutex_lock(&g_log_lock);
    g_log_info = g_log_warn = g_log_saw_load = 0;
    pthread_mutex_unlock(&g_log_lock);
    OK(nexvitad_set_log_callback(count_log, NULL));
    nexvitad_model *m2 = g_quick ? m : open_model(g_model_dir);
    nexvitad_bank *b = NULL;
    OK(nexvitad_bank_load(m2, path, &b));
    OK(nexvitad_set_log_callback(NULL, NULL));
    int want = g_quick ? 1 : 2; /* (model opened,) bank loaded */
    CHECK(g_log_info == want && g_log_saw_load == 1, "model open and bank load logged (%d info messages)", g_log_info);
    nexvitad_bank_free(b);
    if (m2 != m) nexvitad_model_free(m2);
    b = NULL;
    OK(nexvitad_bank_load(m, path, &b));
    CHECK(g_log_info == want, "no messages after removing the callback");
    nexvitad_bank_free(b);
    /* A callback may not replace itself (that would deadlock); it is told so. */
    OK(nexvitad_set_log_callback(reentrant_log, NULL));
    b = NULL;
    OK(nexvitad_bank_load(m, path, &b));
    OK(nexvitad_set_log_callback(NULL, NULL));
    CHECK(g_nested_status == NEXVITAD_INVALID_ARGUMENT && strstr(g_nested_msg, "inside the log callback"),
          "nested set_log_callback: %s", g_nested_msg);
    g_bad_inputs++;
    nexvitad_bank_free(b);
}

/* ---- bad inputs ------------------------------------------------------------------- */

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static void test_bad_model_inputs(void) {
    nexvitad_model *m = (nexvitad_model *)(uintptr_t)0x1; /* must stay untouched */
    nexvitad_model *const sentinel = m;
    nexvitad_options o = test_options();
    BAD(nexvitad_model_open(NULL, &o, &m), NEXVITAD_INVALID_ARGUMENT, "dir is NULL");
    BAD(nexvitad_model_open(g_model_dir, &o, NULL), NEXVITAD_INVALID_ARGUMENT, "out is NULL");
    BAD(nexvitad_model_open("", &o, &m), NEXVITAD_INVALID_ARGUMENT, "dir is an empty string");
    BAD(nexvitad_model_open("/nonexistent/model", &o, &m), NEXVITAD_IO, "/nonexistent/model");
    BAD(nexvitad_model_open(g_data_dir, &o, &m), NEXVITAD_IO, "model.json");
    o.struct_size = 0;
    BAD(nexvitad_model_open(g_model_dir, &o, &m), NEXVITAD_INVALID_ARGUMENT, "options->struct_size is 0");
    o.struct_size = sizeof o + 64;
    BAD(nexvitad_model_open(g_model_dir, &o, &m), NEXVITAD_INVALID_ARGUMENT, "newer nexvitad.h");
    o = test_options();
    o.optimization_level = 7;
    BAD(nexvitad_model_open(g_model_dir, &o, &m), NEXVITAD_INVALID_ARGUMENT, "optimization_level 7");
    o = test_options();
    o.execution_provider = "tpu:0";
    BAD(nexvitad_model_open(g_model_dir, &o, &m), NEXVITAD_INVALID_ARGUMENT, "unknown execution provider 'tpu:0'");
    o = test_options();
    o.reserved0 = 1;
    BAD(nexvitad_model_open(g_model_dir, &o, &m), NEXVITAD_INVALID_ARGUMENT, "reserved0");
    o = test_options();
    o.parallel_encoders = 2;
    BAD(nexvitad_model_open(g_model_dir, &o, &m), NEXVITAD_INVALID_ARGUMENT, "options->parallel_encoders is 2");
    o = test_options();
    o.tile_batch = 257;
    BAD(nexvitad_model_open(g_model_dir, &o, &m), NEXVITAD_INVALID_ARGUMENT, "options->tile_batch 257");
    o = test_options();
    o.ort_library = "/nonexistent/libonnxruntime.so";
    BAD(nexvitad_model_open(g_model_dir, &o, &m), NEXVITAD_RUNTIME, "already loaded");
    BAD(nexvitad_options_default(NULL), NEXVITAD_INVALID_ARGUMENT, "options is NULL");
    BAD(nexvitad_bank_options_default(NULL), NEXVITAD_INVALID_ARGUMENT, "options is NULL");
    CHECK(m == sentinel, "out untouched on failure");
    CHECK(nexvitad_model_fingerprint(NULL) == NULL && strstr(nexvitad_last_error(), "model is NULL"),
          "fingerprint(NULL)");
    g_bad_inputs++;
}

static void test_bad_build_inputs(nexvitad_model *m) {
    nexvitad_bank *b = (nexvitad_bank *)(uintptr_t)0x1;
    nexvitad_bank *const sentinel = b;
    nexvitad_bank_options bo;
    bo.struct_size = sizeof bo;
    nexvitad_bank_options_default(&bo);
    nexvitad_image im[4];
    memcpy(im, g_good_views, sizeof im);

    BAD(nexvitad_bank_build(NULL, im, 4, &bo, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "model is NULL");
    BAD(nexvitad_bank_build(m, NULL, 4, &bo, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "images is NULL");
    BAD(nexvitad_bank_build(m, im, 0, &bo, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "n is 0");
    BAD(nexvitad_bank_build(m, im, SIZE_MAX, &bo, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "images one call accepts");
    BAD(nexvitad_bank_build(m, im, 4, &bo, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT, "out is NULL");

    im[1].data = NULL;
    BAD(nexvitad_bank_build(m, im, 4, &bo, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "images[1].data is NULL");
    memcpy(im, g_good_views, sizeof im);
    im[2].width = 0;
    BAD(nexvitad_bank_build(m, im, 4, &bo, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "width and height must be > 0");
    memcpy(im, g_good_views, sizeof im);
    im[0].width = 100000; /* checked against the limits before the buffer is touched */
    BAD(nexvitad_bank_build(m, im, 4, &bo, NULL, NULL, &b), NEXVITAD_LIMIT_EXCEEDED, "images[0]: image size 100000x72");
    memcpy(im, g_good_views, sizeof im);
    im[0].height = UINT32_MAX;
    BAD(nexvitad_bank_build(m, im, 4, &bo, NULL, NULL, &b), NEXVITAD_LIMIT_EXCEEDED, "exceeds the model's limits");
    memcpy(im, g_good_views, sizeof im);
    im[0].stride = 10;
    BAD(nexvitad_bank_build(m, im, 4, &bo, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "images[0].stride 10 is smaller");
    memcpy(im, g_good_views, sizeof im);
    im[3].format = 9;
    BAD(nexvitad_bank_build(m, im, 4, &bo, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "unknown pixel format 9");
    memcpy(im, g_good_views, sizeof im);
    im[0].stride = SIZE_MAX / 2;
    BAD(nexvitad_bank_build(m, im, 4, &bo, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "overflows");
    memcpy(im, g_good_views, sizeof im);

    bo.scorer = 5;
    BAD(nexvitad_bank_build(m, im, 4, &bo, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "options->scorer 5");
    nexvitad_bank_options_default(&bo);
    bo.image_score_mode = 3;
    BAD(nexvitad_bank_build(m, im, 4, &bo, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "options->image_score_mode 3");
    nexvitad_bank_options_default(&bo);
    bo.augment = 0x10;
    BAD(nexvitad_bank_build(m, im, 4, &bo, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "options->augment");
    nexvitad_bank_options_default(&bo);
    bo.sigma = NAN; /* negative sigma is the model's (revision 2); NaN is never a default */
    BAD(nexvitad_bank_build(m, im, 4, &bo, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "sigma NaN");
    nexvitad_bank_options_default(&bo);
    bo.epsilon = -1.0f; /* 0 is the default (revision 2); negative is refused */
    BAD(nexvitad_bank_build(m, im, 4, &bo, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "epsilon -1");
    nexvitad_bank_options_default(&bo);
    bo.target_fpr = 1.5f;
    BAD(nexvitad_bank_build(m, im, 4, &bo, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "target_fpr 1.5");
    nexvitad_bank_options_default(&bo);
    bo.max_vectors = 10;
    BAD(nexvitad_bank_build(m, im, 4, &bo, NULL, NULL, &b), NEXVITAD_LIMIT_EXCEEDED, "max_vectors 10");
    nexvitad_bank_options_default(&bo);
    bo.k = 100000;
    if (!g_quick) /* runs the encoder before it can tell */
        BAD(nexvitad_bank_build(m, im, 1, &bo, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "k = 100000 is larger");
    nexvitad_bank_options_default(&bo);
    bo.struct_size = 3;
    BAD(nexvitad_bank_build(m, im, 4, &bo, NULL, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "options->struct_size is 3");
    nexvitad_bank_options_default(&(nexvitad_bank_options){.struct_size = sizeof bo});
    bo.struct_size = sizeof bo;
    nexvitad_bank_options_default(&bo);

    /* Cancel from the callback, in the first and in the second stage. */
    progress_log p;
    memset(&p, 0, sizeof p);
    p.cancel_stage = NEXVITAD_STAGE_ENCODE;
    bo.batch_size = 1; /* a callback after each image: the build stops after the first */
    BAD(nexvitad_bank_build(m, im, 4, &bo, record_progress, &p, &b), NEXVITAD_CANCELLED, "cancelled");
    CHECK(p.calls == 1 && p.last_done[0] == 1, "cancel stops at the first callback (%d calls)", p.calls);
    nexvitad_bank_options_default(&bo);
    if (!g_quick) {
        memset(&p, 0, sizeof p);
        p.cancel_stage = NEXVITAD_STAGE_CLUSTER;
        BAD(nexvitad_bank_build(m, im, 2, &bo, record_progress, &p, &b), NEXVITAD_CANCELLED, "cancelled");
        CHECK(p.seen[1] == 1 && p.seen[2] == 0, "cancel in clustering stops before calibration");
    }
    CHECK(b == sentinel, "out untouched after every failure");
}

static void test_bad_bank_files(nexvitad_model *m, nexvitad_model *other, nexvitad_bank *bank) {
    nexvitad_bank *b = NULL;
    char path[4096], good_path[4096];
    path_in(good_path, sizeof good_path, g_work_dir, "bank.safetensors");

    BAD(nexvitad_bank_save(NULL, good_path), NEXVITAD_INVALID_ARGUMENT, "bank is NULL");
    BAD(nexvitad_bank_save(bank, NULL), NEXVITAD_INVALID_ARGUMENT, "path is NULL");
    BAD(nexvitad_bank_save(bank, "/nonexistent/dir/bank.safetensors"), NEXVITAD_IO, "/nonexistent/dir/bank.safetensors");
    BAD(nexvitad_bank_load(NULL, good_path, &b), NEXVITAD_INVALID_ARGUMENT, "model is NULL");
    BAD(nexvitad_bank_load(m, NULL, &b), NEXVITAD_INVALID_ARGUMENT, "path is NULL");
    BAD(nexvitad_bank_load(m, good_path, NULL), NEXVITAD_INVALID_ARGUMENT, "out is NULL");
    path_in(path, sizeof path, g_work_dir, "missing.safetensors");
    BAD(nexvitad_bank_load(m, path, &b), NEXVITAD_IO, "missing.safetensors");

    path_in(path, sizeof path, g_work_dir, "garbage.safetensors");
    static const char garbage[] = "this is not a safetensors file at all, just text";
    write_file(path, garbage, sizeof garbage);
    BAD(nexvitad_bank_load(m, path, &b), NEXVITAD_FORMAT, "garbage.safetensors");

    path_in(path, sizeof path, g_work_dir, "empty.safetensors");
    write_file(path, "", 0);
    BAD(nexvitad_bank_load(m, path, &b), NEXVITAD_FORMAT, "empty");

    /* A real bank cut in half. */
    FILE *f = fopen(good_path, "rb");
    static char buf[1 << 20];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    CHECK(n > 100 && n < sizeof buf, "bank file read (%zu bytes)", n);
    path_in(path, sizeof path, g_work_dir, "truncated.safetensors");
    write_file(path, buf, n / 2);
    BAD(nexvitad_bank_load(m, path, &b), NEXVITAD_FORMAT, "truncated.safetensors");

    /* A bank from another model is refused at load and at scoring. */
    BAD(nexvitad_bank_load(other, good_path, &b), NEXVITAD_MISMATCH, "built by model");
    nexvitad_result r;
    r.struct_size = sizeof r;
    BAD(nexvitad_score(other, bank, &g_test_views[0], NULL, 0, &r), NEXVITAD_MISMATCH, "rebuild the bank");
    CHECK(b == NULL, "out untouched");
}

static void test_bad_score_inputs(nexvitad_model *m, nexvitad_bank *bank) {
    const nexvitad_image *im = &g_test_views[0];
    size_t need = npix(im);
    float *map = (float *)malloc(need * sizeof *map);
    for (size_t i = 0; i < need; i++) map[i] = -7.0f;
    nexvitad_result r;
    memset(&r, 0x33, sizeof r);
    r.struct_size = sizeof r;

    /* A NULL model is valid since revision 2 (the bank's own; see test_lifetimes); a bank
       passed as the model is not. */
    BAD(nexvitad_score((const nexvitad_model *)bank, bank, im, map, need, &r), NEXVITAD_INVALID_ARGUMENT,
        "is a nexvitad_bank, not a nexvitad_model");
    BAD(nexvitad_score(m, NULL, im, map, need, &r), NEXVITAD_INVALID_ARGUMENT, "bank is NULL");
    BAD(nexvitad_score(NULL, NULL, im, map, need, &r), NEXVITAD_INVALID_ARGUMENT, "bank is NULL");
    BAD(nexvitad_score(m, bank, NULL, map, need, &r), NEXVITAD_INVALID_ARGUMENT, "image is NULL");
    BAD(nexvitad_score(m, bank, im, map, need, NULL), NEXVITAD_INVALID_ARGUMENT, "out is NULL");
    BAD(nexvitad_score(m, bank, im, map, 10, &r), NEXVITAD_INVALID_ARGUMENT, "map_len 10 is smaller than the 96x72 map");
    BAD(nexvitad_score(m, bank, im, map, 0, &r), NEXVITAD_INVALID_ARGUMENT, "6912 floats");
    CHECK(map[0] == -7.0f && map[need - 1] == -7.0f && r.width == 0x33333333u, "nothing written on failure");
    nexvitad_image bad = *im;
    bad.format = 42;
    BAD(nexvitad_score(m, bank, &bad, map, need, &r), NEXVITAD_INVALID_ARGUMENT, "image.format: unknown pixel format 42");
    bad = *im;
    bad.stride = 1;
    BAD(nexvitad_score(m, bank, &bad, map, need, &r), NEXVITAD_INVALID_ARGUMENT, "image.stride 1");
    r.struct_size = 0;
    BAD(nexvitad_score(m, bank, im, map, need, &r), NEXVITAD_INVALID_ARGUMENT, "out->struct_size is 0");
    r.struct_size = sizeof r;
    /* Handles of the wrong kind, and stray pointers. */
    BAD(nexvitad_score((const nexvitad_model *)bank, bank, im, NULL, 0, &r), NEXVITAD_INVALID_ARGUMENT,
        "is a nexvitad_bank, not a nexvitad_model");
    int on_stack = 0;
    BAD(nexvitad_score(m, (const nexvitad_bank *)&on_stack, im, NULL, 0, &r), NEXVITAD_INVALID_ARGUMENT,
        "is not a live nexvitad_bank");

    /* Batch. */
    nexvitad_result rs[2];
    rs[0].struct_size = sizeof rs[0];
    float *maps[2] = {map, map};
    size_t lens[2] = {need, 5};
    BAD(nexvitad_score_batch(m, bank, g_test_views, 2, maps, NULL, rs), NEXVITAD_INVALID_ARGUMENT,
        "map_lens is NULL but maps_out is not");
    BAD(nexvitad_score_batch(m, bank, g_test_views, 2, maps, lens, rs), NEXVITAD_INVALID_ARGUMENT, "map_lens[1] 5");
    BAD(nexvitad_score_batch(m, bank, g_test_views, 2, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT, "results is NULL");
    BAD(nexvitad_score_batch(m, bank, NULL, 2, NULL, NULL, rs), NEXVITAD_INVALID_ARGUMENT, "images is NULL");
    BAD(nexvitad_score_batch(m, bank, g_test_views, 0, NULL, NULL, rs), NEXVITAD_INVALID_ARGUMENT, "n is 0");
    rs[0].struct_size = sizeof rs[0] * 4;
    BAD(nexvitad_score_batch(m, bank, g_test_views, 2, NULL, NULL, rs), NEXVITAD_INVALID_ARGUMENT, "results->struct_size");

    BAD(nexvitad_bank_get_info(bank, NULL), NEXVITAD_INVALID_ARGUMENT, "info is NULL");
    BAD(nexvitad_bank_get_info(NULL, NULL), NEXVITAD_INVALID_ARGUMENT, "bank is NULL");
    free(map);
}

static void test_double_free(void) {
    char path[4096];
    path_in(path, sizeof path, g_work_dir, "bank.safetensors");
    nexvitad_model *m = open_model(g_model_dir);
    nexvitad_bank *b = NULL;
    OK(nexvitad_bank_load(m, path, &b));
    OK(nexvitad_bank_free(b));
    BAD(nexvitad_bank_free(b), NEXVITAD_INVALID_ARGUMENT, "not a live nexvitad_bank");
    nexvitad_result r;
    r.struct_size = sizeof r;
    BAD(nexvitad_score(m, b, &g_test_views[0], NULL, 0, &r), NEXVITAD_INVALID_ARGUMENT, "already freed");
    BAD(nexvitad_model_free((nexvitad_model *)b), NEXVITAD_INVALID_ARGUMENT, "not a live nexvitad_model");
    OK(nexvitad_model_free(m));
    BAD(nexvitad_model_free(m), NEXVITAD_INVALID_ARGUMENT, "not a live nexvitad_model");
    CHECK(nexvitad_model_fingerprint(m) == NULL && strstr(nexvitad_last_error(), "already freed"),
          "fingerprint of a freed model");
    g_bad_inputs++;
}

/* A live handle of the other kind is refused, and stays usable. */
static void test_wrong_kind_free(nexvitad_model *m, nexvitad_bank *b) {
    BAD(nexvitad_bank_free((nexvitad_bank *)m), NEXVITAD_INVALID_ARGUMENT, "is a nexvitad_model, not a nexvitad_bank");
    BAD(nexvitad_model_free((nexvitad_model *)b), NEXVITAD_INVALID_ARGUMENT, "is a nexvitad_bank, not a nexvitad_model");
    CHECK(nexvitad_model_fingerprint(m) != NULL, "the model survived");
    nexvitad_bank_info info;
    info.struct_size = sizeof info;
    OK(nexvitad_bank_get_info(b, &info));
}

/* ---- threads ----------------------------------------------------------------------- */

typedef struct thread_job {
    nexvitad_model *model;
    nexvitad_bank *bank;
    float *const *refs;
    const nexvitad_result *ref_results;
    int rounds, mismatches, failures;
} thread_job;

static void *score_worker(void *arg) {
    thread_job *j = (thread_job *)arg;
    for (int round = 0; round < j->rounds; round++)
        for (int i = g_quick ? 2 : 0; i < 3; i++) {
            nexvitad_result r;
            float *map = score_map(j->model, j->bank, &g_test_views[i], &r);
            if (!map) {
                j->failures++;
                continue;
            }
            if (memcmp(map, j->refs[i], npix(&g_test_views[i]) * sizeof *map) != 0 ||
                r.image_score != j->ref_results[i].image_score || r.is_anomalous != j->ref_results[i].is_anomalous)
                j->mismatches++;
            free(map);
        }
    return NULL;
}

static void test_threads(nexvitad_model *m, nexvitad_bank *b, int quick) {
    enum { THREADS = 8 };
    int threads = quick ? 2 : THREADS, rounds = quick ? 1 : 3;
    float *refs[3] = {NULL, NULL, NULL};
    nexvitad_result ref_results[3];
    int first = quick ? 2 : 0, images = 3 - first;
    for (int i = first; i < 3; i++) {
        refs[i] = score_map(m, b, &g_test_views[i], &ref_results[i]);
        if (!refs[i]) {
            CHECK(0, "reference score %d: %s", i, nexvitad_last_error());
            for (int k = first; k < 3; k++) free(refs[k]);
            return;
        }
    }
    pthread_t tid[THREADS];
    thread_job jobs[THREADS];
    for (int t = 0; t < threads; t++) {
        jobs[t] = (thread_job){m, b, refs, ref_results, rounds, 0, 0};
        CHECK(pthread_create(&tid[t], NULL, score_worker, &jobs[t]) == 0, "pthread_create");
    }
    int mismatches = 0, failures = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        mismatches += jobs[t].mismatches;
        failures += jobs[t].failures;
    }
    CHECK(failures == 0, "%d scoring failures in threads", failures);
    CHECK(mismatches == 0, "%d of %d threaded maps differ from the single-thread ones", mismatches,
          threads * rounds * images);
    printf("threads: %d threads x %d rounds x %d images, bit-identical to one thread: %s\n", threads, rounds,
           images, mismatches == 0 && failures == 0 ? "yes" : "NO");
    for (int i = first; i < 3; i++) free(refs[i]);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s MODEL_DIR OTHER_MODEL_DIR DATA_DIR WORK_DIR\n", argv[0]);
        return 2;
    }
    g_model_dir = argv[1], g_other_dir = argv[2], g_data_dir = argv[3], g_work_dir = argv[4];
    const char *q = getenv("NEXVITAD_TEST_QUICK");
    g_quick = q && strcmp(q, "1") == 0;
    if (g_quick) g_n_good = 2;
    if (load_images() != 0) return 2;

    test_library_info();
    test_defaults();
    nexvitad_model *m = open_model(g_model_dir);
    nexvitad_model *other = open_model(g_other_dir);
    if (!m || !other) {
        fprintf(stderr, "cannot open the test models: %s\n", nexvitad_last_error());
        return 1;
    }
    test_model(m, other);
    nexvitad_bank *b = build_bank(m);
    if (!b) {
        fprintf(stderr, "cannot build the test bank: %s\n", nexvitad_last_error());
        return 1;
    }
    test_build_and_info(m, b);
    test_score(m, b);
    test_layouts(m, b);
    test_batch(m, b);
    test_save_load(m, b);
    test_lifetimes(m);
    test_log(m);
    test_bad_model_inputs();
    test_bad_build_inputs(m);
    test_bad_bank_files(m, other, b);
    test_bad_score_inputs(m, b);
    test_double_free();
    test_wrong_kind_free(m, b);
    test_threads(m, b, g_quick);

    OK(nexvitad_model_free(m)); /* the model first: the bank keeps it alive */
    OK(nexvitad_bank_free(b));
    OK(nexvitad_model_free(other));
    for (int i = 0; i < 4; i++) ppm_free(&g_good[i]);
    for (int i = 0; i < 3; i++) ppm_free(&g_test[i]);

    CHECK(g_bad_inputs >= 25, "at least 25 bad-input cases (%d)", g_bad_inputs);
    printf("bad-input cases: %d\n", g_bad_inputs);
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail == 0 ? 0 : 1;
}
