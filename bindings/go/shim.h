/*
 * shim.h - thin C helpers between the Go package and libnexvitad.
 *
 * Why they exist: nexvitad_last_error() is per OS thread, and a goroutine may move to
 * another thread (or another goroutine may use this one) between two cgo calls. Each
 * helper therefore makes the library call and, on failure, copies the message on the
 * same thread in the same cgo call. The copy is malloc'd; the Go side frees it.
 */
#ifndef NEXVITAD_GO_SHIM_H
#define NEXVITAD_GO_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <nexvitad.h>

nexvitad_status nxgo_options_default(nexvitad_options *o, char **err);
nexvitad_status nxgo_bank_options_default(nexvitad_bank_options *o, char **err);
nexvitad_status nxgo_model_open(const char *dir, const nexvitad_options *o, nexvitad_model **out,
                                char **fingerprint, char **err);
nexvitad_status nxgo_model_free(nexvitad_model *m, char **err);
/* `user` is a runtime/cgo.Handle value; the progress callback, when `progress` is set, is
 * a C function that hands it back to Go (no Go pointer ever reaches the library). */
nexvitad_status nxgo_bank_build(const nexvitad_model *m, const nexvitad_image *images, size_t n,
                                const nexvitad_bank_options *o, int progress, uintptr_t user,
                                nexvitad_bank **out, char **err);
nexvitad_status nxgo_bank_load(const nexvitad_model *m, const char *path, nexvitad_bank **out, char **err);
nexvitad_status nxgo_bank_save(const nexvitad_bank *b, const char *path, char **err);
nexvitad_status nxgo_bank_get_info(const nexvitad_bank *b, nexvitad_bank_info *info, char **err);
nexvitad_status nxgo_bank_free(nexvitad_bank *b, char **err);
/* Regions of interest and recalibration (ABI revision 4). */
nexvitad_status nxgo_bank_get_roi(const nexvitad_bank *b, uint8_t *out, size_t out_len, char **err);
nexvitad_status nxgo_bank_recalibrate(const nexvitad_bank *b, float target_fpr, nexvitad_bank **out, char **err);
/* Banks that grow (ABI revision 5); `progress` and `user` as for nxgo_bank_build. */
nexvitad_status nxgo_bank_add(const nexvitad_bank *b, const nexvitad_image *images, size_t n, int progress,
                              uintptr_t user, nexvitad_bank **out, char **err);
nexvitad_status nxgo_bank_merge(const nexvitad_bank *a, const nexvitad_bank *b, int progress, uintptr_t user,
                                nexvitad_bank **out, char **err);
nexvitad_status nxgo_score(const nexvitad_model *m, const nexvitad_bank *b, const nexvitad_image *image,
                           float *map, size_t map_len, nexvitad_result *out, char **err);
nexvitad_status nxgo_score_batch(const nexvitad_model *m, const nexvitad_bank *b, const nexvitad_image *images,
                                 size_t n, float *const *maps, const size_t *map_lens,
                                 nexvitad_result *results, char **err);
/* Per-call options for every image of a batch (ABI revision 5). */
nexvitad_status nxgo_score_batch_with_options(const nexvitad_model *m, const nexvitad_bank *b,
                                              const nexvitad_image *images, size_t n, const nexvitad_score_options *o,
                                              float *const *maps, const size_t *map_lens, nexvitad_result *results,
                                              char **err);
/* Per-call thresholds and defect regions (ABI revision 3). */
nexvitad_status nxgo_score_options_default(nexvitad_score_options *o, char **err);
nexvitad_status nxgo_score_with_options(const nexvitad_model *m, const nexvitad_bank *b, const nexvitad_image *image,
                                        const nexvitad_score_options *o, float *map, size_t map_len,
                                        nexvitad_region *regions, size_t regions_cap, size_t *region_count,
                                        nexvitad_result *out, char **err);
/* Training: the progress callback, always installed, hands `user` (a cgo.Handle) back to Go. */
nexvitad_status nxgo_train_options_default(nexvitad_train_options *o, char **err);
nexvitad_status nxgo_train(const nexvitad_model *m, const char *data_root, char *const *sources, size_t n_sources,
                           const char *target, const char *out_dir, const nexvitad_train_options *o, uintptr_t user,
                           nexvitad_train_result *result, char **err);

/* Installs (on != 0) or removes the trampoline that hands log messages to Go. */
nexvitad_status nxgo_set_log(int on, char **err);

#endif
