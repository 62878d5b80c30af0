/* See shim.h for why these helpers exist. */
#include <stdlib.h>
#include <string.h>
#include "shim.h"

/* Defined in Go (progress.go, //export nexvitadGoProgress). */
extern int nexvitadGoProgress(uintptr_t user, int stage, size_t done, size_t total);

static int nxgo_progress(void *user, int stage, size_t done, size_t total) {
    return nexvitadGoProgress((uintptr_t)user, stage, done, total);
}

/* Defined in Go (train.go, //export nexvitadGoTrainProgress). */
extern int nexvitadGoTrainProgress(uintptr_t user, nexvitad_train_progress *progress);

static int nxgo_train_progress(void *user, const nexvitad_train_progress *progress) {
    return nexvitadGoTrainProgress((uintptr_t)user, (nexvitad_train_progress *)progress);
}

/* Defined in Go (log.go, //export nexvitadGoLog). */
extern void nexvitadGoLog(int level, char *message);

static void nxgo_log(void *user, int level, const char *message) {
    (void)user;
    nexvitadGoLog(level, (char *)message);
}

static nexvitad_status fail(nexvitad_status s, char **err) {
    if (s != NEXVITAD_OK && err != NULL) *err = strdup(nexvitad_last_error());
    return s;
}

nexvitad_status nxgo_options_default(nexvitad_options *o, char **err) {
    return fail(nexvitad_options_default(o), err);
}

nexvitad_status nxgo_bank_options_default(nexvitad_bank_options *o, char **err) {
    return fail(nexvitad_bank_options_default(o), err);
}

nexvitad_status nxgo_model_open(const char *dir, const nexvitad_options *o, nexvitad_model **out,
                                char **fingerprint, char **err) {
    nexvitad_status s = nexvitad_model_open(dir, o, out);
    if (s != NEXVITAD_OK) return fail(s, err);
    const char *fp = nexvitad_model_fingerprint(*out);
    if (fp == NULL) {
        s = fail(NEXVITAD_INTERNAL, err);
        nexvitad_model_free(*out);
        *out = NULL;
        return s;
    }
    *fingerprint = strdup(fp);
    return NEXVITAD_OK;
}

nexvitad_status nxgo_model_free(nexvitad_model *m, char **err) {
    return fail(nexvitad_model_free(m), err);
}

nexvitad_status nxgo_bank_build(const nexvitad_model *m, const nexvitad_image *images, size_t n,
                                const nexvitad_bank_options *o, int progress, uintptr_t user,
                                nexvitad_bank **out, char **err) {
    return fail(nexvitad_bank_build(m, images, n, o, progress ? nxgo_progress : NULL, (void *)user, out), err);
}

nexvitad_status nxgo_bank_load(const nexvitad_model *m, const char *path, nexvitad_bank **out, char **err) {
    return fail(nexvitad_bank_load(m, path, out), err);
}

nexvitad_status nxgo_bank_save(const nexvitad_bank *b, const char *path, char **err) {
    return fail(nexvitad_bank_save(b, path), err);
}

nexvitad_status nxgo_bank_get_info(const nexvitad_bank *b, nexvitad_bank_info *info, char **err) {
    return fail(nexvitad_bank_get_info(b, info), err);
}

nexvitad_status nxgo_bank_free(nexvitad_bank *b, char **err) {
    return fail(nexvitad_bank_free(b), err);
}

nexvitad_status nxgo_bank_get_roi(const nexvitad_bank *b, uint8_t *out, size_t out_len, char **err) {
    return fail(nexvitad_bank_get_roi(b, out, out_len), err);
}

nexvitad_status nxgo_bank_recalibrate(const nexvitad_bank *b, float target_fpr, nexvitad_bank **out, char **err) {
    return fail(nexvitad_bank_recalibrate(b, target_fpr, out), err);
}

nexvitad_status nxgo_bank_add(const nexvitad_bank *b, const nexvitad_image *images, size_t n, int progress,
                              uintptr_t user, nexvitad_bank **out, char **err) {
    return fail(nexvitad_bank_add(b, images, n, progress ? nxgo_progress : NULL, (void *)user, out), err);
}

nexvitad_status nxgo_bank_merge(const nexvitad_bank *a, const nexvitad_bank *b, int progress, uintptr_t user,
                                nexvitad_bank **out, char **err) {
    return fail(nexvitad_bank_merge(a, b, progress ? nxgo_progress : NULL, (void *)user, out), err);
}

nexvitad_status nxgo_score(const nexvitad_model *m, const nexvitad_bank *b, const nexvitad_image *image,
                           float *map, size_t map_len, nexvitad_result *out, char **err) {
    return fail(nexvitad_score(m, b, image, map, map_len, out), err);
}

nexvitad_status nxgo_score_batch(const nexvitad_model *m, const nexvitad_bank *b, const nexvitad_image *images,
                                 size_t n, float *const *maps, const size_t *map_lens,
                                 nexvitad_result *results, char **err) {
    return fail(nexvitad_score_batch(m, b, images, n, maps, map_lens, results), err);
}

nexvitad_status nxgo_score_batch_with_options(const nexvitad_model *m, const nexvitad_bank *b,
                                              const nexvitad_image *images, size_t n, const nexvitad_score_options *o,
                                              float *const *maps, const size_t *map_lens, nexvitad_result *results,
                                              char **err) {
    return fail(nexvitad_score_batch_with_options(m, b, images, n, o, maps, map_lens, results), err);
}

nexvitad_status nxgo_score_options_default(nexvitad_score_options *o, char **err) {
    return fail(nexvitad_score_options_default(o), err);
}

nexvitad_status nxgo_score_with_options(const nexvitad_model *m, const nexvitad_bank *b, const nexvitad_image *image,
                                        const nexvitad_score_options *o, float *map, size_t map_len,
                                        nexvitad_region *regions, size_t regions_cap, size_t *region_count,
                                        nexvitad_result *out, char **err) {
    return fail(nexvitad_score_with_options(m, b, image, o, map, map_len, regions, regions_cap, region_count, out),
                err);
}

nexvitad_status nxgo_train_options_default(nexvitad_train_options *o, char **err) {
    return fail(nexvitad_train_options_default(o), err);
}

nexvitad_status nxgo_train(const nexvitad_model *m, const char *data_root, char *const *sources, size_t n_sources,
                           const char *target, const char *out_dir, const nexvitad_train_options *o, uintptr_t user,
                           nexvitad_train_result *result, char **err) {
    return fail(nexvitad_train(m, data_root, (const char *const *)sources, n_sources, target, out_dir, o,
                               nxgo_train_progress, (void *)user, result),
                err);
}

nexvitad_status nxgo_set_log(int on, char **err) {
    return fail(nexvitad_set_log_callback(on ? nxgo_log : NULL, NULL), err);
}
