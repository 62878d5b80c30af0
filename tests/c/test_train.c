/*
 * test_train.c - tests of nexvitad_train() through the *installed* C library.
 *
 * Usage: test_train MODEL_DIR TRAIN_ROOT IMAGE_DIR WORK_DIR
 *   MODEL_DIR   models/tiny
 *   TRAIN_ROOT  tests/fixtures/train/data (synthetic MVTec-layout domains stripes, weave, grain)
 *   IMAGE_DIR   examples/c/data (good/ and test/ hold .ppm files, to score with the trained model)
 *   WORK_DIR    an empty writable folder
 * NEXVITAD_TEST_QUICK=1 (valgrind) runs only the option and bad-input cases, which fail
 * before any image is encoded: training under valgrind would take far too long.
 *
 * Prints one line per failure and a closing "N passed, N failed"; exits non-zero on failure.
 */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nexvitad.h>

#include "check.h"
#include "ppm.h"

static const char *g_model_dir, *g_root, *g_image_dir, *g_work;
static const char *const g_sources[] = {"stripes", "weave"};
static const char *const g_target = "grain";

static int is_file(const char *dir, const char *name) {
    char p[4096];
    struct stat st;
    path_in(p, sizeof p, dir, name);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Reads a whole file; NULL on error. */
static unsigned char *read_all(const char *dir, const char *name, size_t *n) {
    char p[4096];
    path_in(p, sizeof p, dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len == cap) {
            cap = cap ? 2 * cap : 1 << 16;
            unsigned char *nb = (unsigned char *)realloc(buf, cap);
            if (!nb) break;
            buf = nb;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
    } while (got > 0);
    fclose(f);
    *n = len;
    return buf;
}

/* Whether two files have the same bytes. */
static int same_file(const char *dir_a, const char *dir_b, const char *name) {
    size_t na = 0, nb = 0;
    unsigned char *a = read_all(dir_a, name, &na), *b = read_all(dir_b, name, &nb);
    int same = a && b && na == nb && na > 0 && memcmp(a, b, na) == 0;
    free(a);
    free(b);
    return same;
}

static int make_dir(const char *dir, const char *name, char *out, size_t n) {
    path_in(out, n, dir, name);
    return mkdir(out, 0755);
}

static nexvitad_model *open_model(const char *dir) {
    nexvitad_options o;
    o.struct_size = sizeof o;
    nexvitad_options_default(&o);
    o.intra_threads = 1;
    nexvitad_model *m = NULL;
    nexvitad_status s = nexvitad_model_open(dir, &o, &m);
    return s == NEXVITAD_OK ? m : NULL;
}

/* Small and quick: 2 epochs of batch 4 over the fixture, 1 perturbed copy per target image. */
static nexvitad_train_options small_options(void) {
    nexvitad_train_options o;
    o.struct_size = sizeof o;
    nexvitad_train_options_default(&o);
    o.epochs = 2;
    o.batch = 4;
    o.decoder_width = 8;
    o.copies = 1;
    o.checkpoint_every = 0;
    o.seed = 5;
    return o;
}

/* ---- progress recording ------------------------------------------------------------- */

typedef struct train_log {
    int encode_calls, step_calls, bad, went_backwards, step_before_encode_done;
    uint64_t last_encode, encode_total, last_step, step_total, first_step;
    uint32_t epochs, steps_per_epoch;
    double last_coverage, last_mean_loss;
    /* Cancel once this phase reaches `cancel_at` (done); cancel_phase -1: never. */
    int cancel_phase;
    uint64_t cancel_at;
} train_log;

static void log_init(train_log *t, int cancel_phase, uint64_t cancel_at) {
    memset(t, 0, sizeof *t);
    t->cancel_phase = cancel_phase;
    t->cancel_at = cancel_at;
}

static int record(void *user, const nexvitad_train_progress *p) {
    train_log *t = (train_log *)user;
    if (p == NULL || p->struct_size != sizeof(nexvitad_train_progress) || p->done > p->total || p->reserved0 != 0) {
        t->bad++;
        return 0;
    }
    if (p->phase == NEXVITAD_TRAIN_ENCODE) {
        if (t->encode_calls && p->done < t->last_encode) t->went_backwards++;
        if (t->step_calls) t->bad++;
        if (p->loss != 0.0 || p->epochs != 0) t->bad++;
        t->encode_calls++;
        t->last_encode = p->done;
        t->encode_total = p->total;
    } else if (p->phase == NEXVITAD_TRAIN_STEP) {
        if (t->step_calls && p->done != t->last_step + 1) t->went_backwards++;
        if (t->encode_calls == 0 || t->last_encode != t->encode_total) t->step_before_encode_done++;
        if (!t->step_calls) t->first_step = p->done;
        int finite = isfinite(p->loss) && isfinite(p->l_src) && isfinite(p->l_pl) && isfinite(p->l_cons) &&
                     isfinite(p->mean_loss);
        int sane = p->coverage >= 0.0 && p->coverage <= 1.0 && p->mean_coverage >= 0.0 && p->mean_coverage <= 1.0 &&
                   p->l_src > 0.0 && p->step >= 1 && p->step <= p->steps_per_epoch && p->epoch < p->epochs &&
                   p->total == (uint64_t)p->epochs * p->steps_per_epoch &&
                   p->done == (uint64_t)p->epoch * p->steps_per_epoch + p->step;
        if (!finite || !sane) t->bad++;
        t->step_calls++;
        t->last_step = p->done;
        t->step_total = p->total;
        t->epochs = p->epochs;
        t->steps_per_epoch = p->steps_per_epoch;
        t->last_coverage = p->coverage;
        t->last_mean_loss = p->mean_loss;
    } else {
        t->bad++;
    }
    return (int)p->phase == t->cancel_phase && p->done >= t->cancel_at;
}

/* ---- option defaults ---------------------------------------------------------------- */

static void test_defaults(void) {
    CHECK(nexvitad_abi_revision() == NEXVITAD_ABI_REVISION && NEXVITAD_ABI_REVISION >= 1, "revision %u",
          nexvitad_abi_revision());
    nexvitad_train_options o;
    memset(&o, 0xab, sizeof o);
    o.struct_size = sizeof o;
    OK(nexvitad_train_options_default(&o));
    CHECK(o.struct_size == sizeof o, "struct_size kept");
    CHECK(o.epochs == 4 && o.batch == 8 && o.lr == 1e-3 && o.weight_decay == 0.01, "schedule defaults");
    CHECK(o.theta == 0.0 && o.lambda1 == -1.0 && o.lambda2 == -1.0, "model-default sentinels");
    CHECK(o.seed == 0 && o.decoder_width == 32 && o.checkpoint_every == 20, "seed/width/checkpoint");
    CHECK(o.copies == 2 && o.flips == 1 && o.noise_std == 8.0 && o.jitter == 0.2, "perturbation defaults");
    CHECK(o.resume == 0 && o.target_test == 0, "flags off");

    /* An older caller's smaller struct: nothing beyond its struct_size is written. */
    memset(&o, 0xab, sizeof o);
    o.struct_size = offsetof(nexvitad_train_options, lr);
    OK(nexvitad_train_options_default(&o));
    CHECK(o.epochs == 4 && o.batch == 8, "fields within struct_size written");
    unsigned char tail[sizeof o - offsetof(nexvitad_train_options, lr)];
    memset(tail, 0xab, sizeof tail);
    CHECK(memcmp((unsigned char *)&o + offsetof(nexvitad_train_options, lr), tail, sizeof tail) == 0,
          "fields beyond struct_size untouched");

    BAD(nexvitad_train_options_default(NULL), NEXVITAD_INVALID_ARGUMENT, "options is NULL");
    o.struct_size = 4;
    BAD(nexvitad_train_options_default(&o), NEXVITAD_INVALID_ARGUMENT, "sizeof(nexvitad_train_options)");
    o.struct_size = sizeof o + 8;
    BAD(nexvitad_train_options_default(&o), NEXVITAD_INVALID_ARGUMENT, "newer nexvitad.h");
}

/* ---- bad input: every case fails before any image is encoded ------------------------ */

static void test_bad_inputs(nexvitad_model *m) {
    char out[4096], root2[4096], p[4096];
    nexvitad_train_options o = small_options();
    const char *const *src = g_sources;
    path_in(out, sizeof out, g_work, "bad-out");

    BAD(nexvitad_train(NULL, g_root, src, 2, g_target, out, &o, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "model is NULL");
    BAD(nexvitad_train((const nexvitad_model *)&o, g_root, src, 2, g_target, out, &o, NULL, NULL, NULL),
        NEXVITAD_INVALID_ARGUMENT, "model");
    BAD(nexvitad_train(m, NULL, src, 2, g_target, out, &o, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "data_root is NULL");
    BAD(nexvitad_train(m, "", src, 2, g_target, out, &o, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "data_root is an empty string");
    BAD(nexvitad_train(m, g_root, NULL, 2, g_target, out, &o, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "sources is NULL");
    BAD(nexvitad_train(m, g_root, src, 0, g_target, out, &o, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "n_sources is 0");
    const char *with_null[] = {"stripes", NULL};
    BAD(nexvitad_train(m, g_root, with_null, 2, g_target, out, &o, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "sources[1] is NULL");
    BAD(nexvitad_train(m, g_root, src, 2, NULL, out, &o, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "target is NULL");
    BAD(nexvitad_train(m, g_root, src, 2, g_target, NULL, &o, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "out_dir is NULL");
    const char *with_target[] = {"stripes", "grain"};
    BAD(nexvitad_train(m, g_root, with_target, 2, g_target, out, &o, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "also a source domain");
    const char *twice[] = {"stripes", "stripes"};
    BAD(nexvitad_train(m, g_root, twice, 2, g_target, out, &o, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "listed twice");

    /* θ outside (0, 1) (0 itself means the model's default). */
    const double thetas[] = {1.0, 1.5, -0.25, NAN};
    for (size_t i = 0; i < sizeof thetas / sizeof thetas[0]; i++) {
        nexvitad_train_options t = o;
        t.theta = thetas[i];
        BAD(nexvitad_train(m, g_root, src, 2, g_target, out, &t, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
            "must be in (0, 1)");
    }
    /* Negative lambda2 is the model's (revision 2's option rule); NaN is never a default. */
    nexvitad_train_options t = o;
    t.lambda2 = NAN;
    BAD(nexvitad_train(m, g_root, src, 2, g_target, out, &t, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "lambda2 NaN");
    t = o;
    t.lr = -1.0; /* 0 is the default; negative is refused */
    BAD(nexvitad_train(m, g_root, src, 2, g_target, out, &t, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "learning rate -1");
    t = o;
    t.flips = 2;
    BAD(nexvitad_train(m, g_root, src, 2, g_target, out, &t, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "options->flips is 2");
    t = o;
    t.resume = 7;
    BAD(nexvitad_train(m, g_root, src, 2, g_target, out, &t, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "options->resume is 7");
    t = o;
    t.struct_size = 3;
    BAD(nexvitad_train(m, g_root, src, 2, g_target, out, &t, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "sizeof(nexvitad_train_options)");
    t.struct_size = sizeof t + 16;
    BAD(nexvitad_train(m, g_root, src, 2, g_target, out, &t, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "newer nexvitad.h");
    nexvitad_train_result r;
    r.struct_size = 0;
    BAD(nexvitad_train(m, g_root, src, 2, g_target, out, &o, NULL, NULL, &r), NEXVITAD_INVALID_ARGUMENT,
        "result->struct_size is 0");

    /* Data that is not there. */
    path_in(p, sizeof p, g_work, "no-such-root");
    BAD(nexvitad_train(m, p, src, 2, g_target, out, &o, NULL, NULL, NULL), NEXVITAD_IO, "no-such-root");
    const char *missing[] = {"stripes", "nope"};
    BAD(nexvitad_train(m, g_root, missing, 2, g_target, out, &o, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "source domain 'nope'");
    BAD(nexvitad_train(m, g_root, src, 2, "nope", out, &o, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "target domain 'nope'");

    /* A source without masks: a domain holding only the target's normal images. */
    char plain_dir[4096], train_dir[4096];
    if (make_dir(g_work, "root2", root2, sizeof root2) == 0 &&
        make_dir(root2, "plain", plain_dir, sizeof plain_dir) == 0 &&
        make_dir(plain_dir, "train", train_dir, sizeof train_dir) == 0 &&
        make_dir(train_dir, "good", p, sizeof p) == 0) {
        char from[4096];
        path_in(from, sizeof from, g_root, "grain/train/good/000.png");
        size_t n = 0;
        unsigned char *png = read_all(g_root, "grain/train/good/000.png", &n);
        char to[4096];
        path_in(to, sizeof to, p, "000.png");
        FILE *f = fopen(to, "wb");
        CHECK(png && f && fwrite(png, 1, n, f) == n, "copy %s", from);
        if (f) fclose(f);
        free(png);
        char link_from[4096], link_to[4096];
        path_in(link_to, sizeof link_to, root2, "grain");
        path_in(link_from, sizeof link_from, g_root, "grain");
        char *abs = realpath(link_from, NULL);
        CHECK(abs && symlink(abs, link_to) == 0, "symlink %s", link_to);
        free(abs);
        const char *plain[] = {"plain"};
        BAD(nexvitad_train(m, root2, plain, 1, g_target, out, &o, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
            "has no defective images with masks");
    } else {
        CHECK(0, "cannot make %s", root2);
    }

    /* A non-empty output folder without resume; resume without a checkpoint. */
    CHECK(make_dir(g_work, "not-empty", out, sizeof out) == 0, "mkdir");
    path_in(p, sizeof p, out, "keep.txt");
    FILE *f = fopen(p, "w");
    if (f) fclose(f);
    BAD(nexvitad_train(m, g_root, src, 2, g_target, out, &o, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "is not empty");
    t = o;
    t.resume = 1;
    BAD(nexvitad_train(m, g_root, src, 2, g_target, out, &t, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "cannot resume: no checkpoint");

    /* The feature cache (revision 7): a budget below one step, a cache folder that is a file,
       a cache folder that cannot be made. All fail before anything is encoded. */
    char fresh[4096];
    path_in(fresh, sizeof fresh, g_work, "cache-bad");
    t = o;
    t.cache_mem = 1 << 20;
    BAD(nexvitad_train(m, g_root, src, 2, g_target, fresh, &t, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "below one training step");
    CHECK(!is_file(fresh, "features.nxcache"), "no cache written for a refused budget");
    path_in(p, sizeof p, out, "keep.txt");
    t = o;
    t.cache_dir = p;
    path_in(fresh, sizeof fresh, g_work, "cache-bad2");
    BAD(nexvitad_train(m, g_root, src, 2, g_target, fresh, &t, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "is not a folder");
    t.cache_dir = "/proc/nexvitad-cache";
    path_in(fresh, sizeof fresh, g_work, "cache-bad3");
    BAD(nexvitad_train(m, g_root, src, 2, g_target, fresh, &t, NULL, NULL, NULL), NEXVITAD_IO,
        "cannot create the feature cache folder");
    t.cache_dir = "";
    BAD(nexvitad_train(m, g_root, src, 2, g_target, fresh, &t, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "cache_dir");
}

/* ---- training ------------------------------------------------------------------------- */

static nexvitad_status train_into(nexvitad_model *m, const char *out, const nexvitad_train_options *o,
                                  train_log *t, nexvitad_train_result *r) {
    return nexvitad_train(m, g_root, g_sources, 2, g_target, out, o, record, t, r);
}

/* Builds a bank with the trained model from the example's good images and scores one. */
static void check_trained_model_scores(const char *dir, const char *base_fingerprint) {
    nexvitad_model *tm = open_model(dir);
    CHECK(tm != NULL, "open the trained model %s: %s", dir, nexvitad_last_error());
    if (!tm) return;
    const char *fp = nexvitad_model_fingerprint(tm);
    CHECK(fp && strlen(fp) == 64 && strcmp(fp, base_fingerprint) != 0, "a new fingerprint %s", fp ? fp : "(NULL)");
    ppm_image good[2], test;
    char p[4096];
    int loaded = 1;
    for (int i = 0; i < 2; i++) {
        char name[64];
        snprintf(name, sizeof name, "good/good_%d.ppm", i);
        path_in(p, sizeof p, g_image_dir, name);
        loaded &= ppm_read(p, &good[i]) == 0;
    }
    path_in(p, sizeof p, g_image_dir, "test/scratch.ppm");
    loaded &= ppm_read(p, &test) == 0;
    CHECK(loaded, "read the example images");
    if (loaded) {
        nexvitad_image views[2] = {good[0].view, good[1].view};
        nexvitad_bank_options bo;
        bo.struct_size = sizeof bo;
        nexvitad_bank_options_default(&bo);
        bo.k = 4;
        nexvitad_bank *b = NULL;
        OK(nexvitad_bank_build(tm, views, 2, &bo, NULL, NULL, &b));
        if (b) {
            size_t n = (size_t)test.view.width * test.view.height;
            float *map = (float *)malloc(n * sizeof *map);
            nexvitad_result r;
            r.struct_size = sizeof r;
            OK(nexvitad_score(tm, b, &test.view, map, n, &r));
            CHECK(isfinite(r.image_score) && r.width == test.view.width && isfinite(map[n / 2]), "score %g",
                  r.image_score);
            free(map);
            OK(nexvitad_bank_free(b));
        }
        for (int i = 0; i < 2; i++) ppm_free(&good[i]);
        ppm_free(&test);
    }
    OK(nexvitad_model_free(tm));
}

static void test_train(nexvitad_model *m) {
    const char *base_fp = nexvitad_model_fingerprint(m);
    nexvitad_train_options o = small_options();
    char full[4096], part[4096], enc[4096];
    path_in(full, sizeof full, g_work, "full");
    path_in(part, sizeof part, g_work, "part");
    path_in(enc, sizeof enc, g_work, "enc");

    /* An unbroken run. */
    train_log t;
    log_init(&t, -1, 0);
    nexvitad_train_result r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    OK(train_into(m, full, &o, &t, &r));
    CHECK(t.bad == 0 && t.went_backwards == 0 && t.step_before_encode_done == 0, "progress: bad %d back %d early %d",
          t.bad, t.went_backwards, t.step_before_encode_done);
    CHECK(t.encode_calls > 0 && t.last_encode == t.encode_total && t.encode_total > 0, "encode %d calls, %llu/%llu",
          t.encode_calls, (unsigned long long)t.last_encode, (unsigned long long)t.encode_total);
    CHECK(t.step_calls > 0 && t.first_step == 1 && t.last_step == t.step_total && t.epochs == 2,
          "steps %d, first %llu, last %llu of %llu", t.step_calls, (unsigned long long)t.first_step,
          (unsigned long long)t.last_step, (unsigned long long)t.step_total);
    CHECK(r.steps == t.step_total && r.steps_run == r.steps && r.epochs == 2 && r.steps_per_epoch == t.steps_per_epoch,
          "result steps %llu run %llu", (unsigned long long)r.steps, (unsigned long long)r.steps_run);
    CHECK(r.source_images > 0 && r.target_images == 3, "images %u source, %u target", r.source_images,
          r.target_images);
    CHECK(isfinite(r.loss) && r.loss > 0 && r.coverage >= 0 && r.coverage <= 1 && r.loss == t.last_mean_loss,
          "result loss %g (last epoch mean %g)", r.loss, t.last_mean_loss);
    CHECK(r.encode_s >= 0 && r.train_s > 0, "timings");
    const char *files[] = {"model.json", "head.safetensors", "decoder.safetensors", "checkpoint.safetensors",
                           "hiera.onnx", "dinov2.onnx"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) CHECK(is_file(full, files[i]), "%s", files[i]);
    check_trained_model_scores(full, base_fp);

    /* Training into a finished run's folder again is refused; nothing there changes. */
    BAD(nexvitad_train(m, g_root, g_sources, 2, g_target, full, &o, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "is not empty");

    /* Cancelled after step 2: CANCELLED, a checkpoint, no model yet; the result untouched. */
    log_init(&t, NEXVITAD_TRAIN_STEP, 2);
    nexvitad_train_result untouched;
    memset(&untouched, 0x5a, sizeof untouched);
    untouched.struct_size = sizeof untouched;
    BAD(train_into(m, part, &o, &t, &untouched), NEXVITAD_CANCELLED, "cancelled");
    CHECK(t.last_step == 2 && t.bad == 0, "stopped at step %llu", (unsigned long long)t.last_step);
    CHECK(untouched.steps == 0x5a5a5a5a5a5a5a5aULL, "result untouched on cancel");
    CHECK(is_file(part, "checkpoint.safetensors") && !is_file(part, "model.json") && !is_file(part, "head.safetensors"),
          "checkpoint only");
    nexvitad_model *none = NULL;
    BAD(nexvitad_model_open(part, NULL, &none), NEXVITAD_IO, "model.json");

    /* Resumed: continues at step 3 and ends bit-identical to the unbroken run. */
    nexvitad_train_options ro = o;
    ro.resume = 1;
    log_init(&t, -1, 0);
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    OK(train_into(m, part, &ro, &t, &r));
    CHECK(t.first_step == 3 && t.last_step == t.step_total && t.bad == 0, "resumed from %llu",
          (unsigned long long)t.first_step);
    CHECK(r.steps_run == r.steps - 2, "steps run %llu of %llu", (unsigned long long)r.steps_run,
          (unsigned long long)r.steps);
    CHECK(same_file(full, part, "head.safetensors"), "resumed head.safetensors equals the unbroken run's");
    CHECK(same_file(full, part, "decoder.safetensors"), "resumed decoder.safetensors equals the unbroken run's");
    CHECK(same_file(full, part, "checkpoint.safetensors"), "final checkpoints equal");

    /* A resume with other options is refused (the checkpoint records them). */
    ro.theta = 0.8;
    BAD(nexvitad_train(m, g_root, g_sources, 2, g_target, part, &ro, NULL, NULL, NULL), NEXVITAD_MISMATCH,
        "other training settings");

    /* Cancelled while encoding: no checkpoint, but the feature sets encoded so far are in the
       feature cache (revision 7). A new run into that folder is refused; a resume continues
       from the cache and ends bit-identical to the unbroken run. */
    const uint64_t total_sets = t.encode_total;
    log_init(&t, NEXVITAD_TRAIN_ENCODE, 0);
    BAD(train_into(m, enc, &o, &t, NULL), NEXVITAD_CANCELLED, "cancelled");
    CHECK(t.step_calls == 0 && !is_file(enc, "checkpoint.safetensors") && is_file(enc, "features.nxcache"),
          "an encode cancel leaves the feature cache and no checkpoint");
    BAD(nexvitad_train(m, g_root, g_sources, 2, g_target, enc, &o, NULL, NULL, NULL), NEXVITAD_INVALID_ARGUMENT,
        "is not empty");
    ro = o;
    ro.resume = 1;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    OK(nexvitad_train(m, g_root, g_sources, 2, g_target, enc, &ro, NULL, NULL, &r));
    CHECK(r.reused == t.last_encode && r.reused > 0 && r.encoded + r.reused == total_sets,
          "resume reused %llu and encoded %llu of %llu feature sets", (unsigned long long)r.reused,
          (unsigned long long)r.encoded, (unsigned long long)total_sets);
    CHECK(same_file(full, enc, "head.safetensors"), "head after an encode cancel and resume equals the unbroken run's");
}

/* The feature cache in a shared folder (revision 7): encoded once, the memory budget does not
   change the model, a cache of other data is refused. */
static void test_cache(nexvitad_model *m) {
    nexvitad_train_options o = small_options();
    char shared[4096], a[4096], b[4096], c[4096], full[4096];
    path_in(shared, sizeof shared, g_work, "shared-cache");
    path_in(a, sizeof a, g_work, "cache-a");
    path_in(b, sizeof b, g_work, "cache-b");
    path_in(c, sizeof c, g_work, "cache-c");
    path_in(full, sizeof full, g_work, "full");
    o.cache_dir = shared;
    nexvitad_train_result r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    OK(nexvitad_train(m, g_root, g_sources, 2, g_target, a, &o, NULL, NULL, &r));
    struct stat st;
    char p[4096];
    path_in(p, sizeof p, shared, "features.nxcache");
    CHECK(stat(p, &st) == 0 && (uint64_t)st.st_size == r.cache_bytes, "cache_bytes %llu is the file's size",
          (unsigned long long)r.cache_bytes);
    CHECK(r.encoded > 0 && r.reused == 0 && !is_file(a, "features.nxcache"), "first run encodes %llu into cache_dir",
          (unsigned long long)r.encoded);
    const uint64_t sets = r.encoded, per_set = (r.cache_bytes - 4096) / sets;

    /* One step's feature sets (4 sources + 3 targets + 3 copies): the rest read from the file. */
    o.cache_mem = 10 * per_set;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    OK(nexvitad_train(m, g_root, g_sources, 2, g_target, b, &o, NULL, NULL, &r));
    CHECK(r.encoded == 0 && r.reused == sets, "second run reuses %llu of %llu", (unsigned long long)r.reused,
          (unsigned long long)sets);
    CHECK(same_file(full, b, "head.safetensors") && same_file(full, b, "decoder.safetensors"),
          "streamed from the cache = held in memory, bit for bit");

    /* Other data (another seed draws other perturbations): refused, the file left alone. */
    o.seed = 6;
    BAD(nexvitad_train(m, g_root, g_sources, 2, g_target, c, &o, NULL, NULL, NULL), NEXVITAD_MISMATCH,
        "holds the features of other data");
    CHECK(stat(p, &st) == 0 && (uint64_t)st.st_size == sets * per_set + 4096, "the refused cache is intact");
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s MODEL_DIR TRAIN_ROOT IMAGE_DIR WORK_DIR\n", argv[0]);
        return 2;
    }
    g_model_dir = argv[1], g_root = argv[2], g_image_dir = argv[3], g_work = argv[4];
    const char *q = getenv("NEXVITAD_TEST_QUICK");
    int quick = q && strcmp(q, "1") == 0;

    test_defaults();
    nexvitad_model *m = open_model(g_model_dir);
    if (!m) {
        fprintf(stderr, "cannot open %s: %s\n", g_model_dir, nexvitad_last_error());
        return 1;
    }
    test_bad_inputs(m);
    if (quick) {
        printf("quick mode: training runs skipped\n");
    } else {
        test_train(m);
        test_cache(m);
    }
    OK(nexvitad_model_free(m));

    printf("bad-input cases: %d\n", g_bad_inputs);
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail == 0 ? 0 : 1;
}
