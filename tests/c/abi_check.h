/*
 * abi_check.h - compile-time checks of nexvitad.h, shared by the C99 and the C++ check.
 * Pins ABI version 1 for x86_64/aarch64 Linux (LP64): struct sizes and field offsets, and
 * every function's exact signature. A change here is an ABI change: bump
 * NEXVITAD_ABI_VERSION (and the soname) instead of editing these numbers. Additions (new
 * functions and types, fields appended to struct_size structs) raise NEXVITAD_ABI_REVISION
 * and get new checks below the old ones.
 */
#include <nexvitad.h>
#include <nexvitad.h> /* the include guard holds */
#include "selftest.h" /* the test-only hook: exported, but not in the public header */

#include <stddef.h>

#ifdef __cplusplus
#define ABI_ASSERT(name, cond) static_assert(cond, #name)
#else
#define ABI_ASSERT(name, cond) typedef char abi_check_##name[(cond) ? 1 : -1]
#endif

ABI_ASSERT(abi_version, NEXVITAD_ABI_VERSION == 1);
ABI_ASSERT(status_size, sizeof(nexvitad_status) == 4);
ABI_ASSERT(status_cancelled, NEXVITAD_CANCELLED == 8 && NEXVITAD_INTERNAL == 9);

ABI_ASSERT(image_size, sizeof(nexvitad_image) == 32);
ABI_ASSERT(image_stride, offsetof(nexvitad_image, stride) == 16 && offsetof(nexvitad_image, format) == 24);

/* Revisions 0-5: nexvitad_options was 48 bytes (its revision-6 fields follow; see below). */
ABI_ASSERT(options_size, offsetof(nexvitad_options, tile_batch) == 48);
ABI_ASSERT(options_ep, offsetof(nexvitad_options, execution_provider) == 16);
ABI_ASSERT(options_pixels, offsetof(nexvitad_options, max_image_pixels) == 40);

/* Revisions 0-2: nexvitad_bank_options was 72 bytes and nexvitad_bank_info 88 (their
   revision-3 fields follow; see below). */
ABI_ASSERT(bank_options_size, offsetof(nexvitad_bank_options, tile) == 72);
ABI_ASSERT(bank_options_seed, offsetof(nexvitad_bank_options, seed) == 56);
ABI_ASSERT(bank_options_max_vectors, offsetof(nexvitad_bank_options, max_vectors) == 64);

ABI_ASSERT(bank_info_size, offsetof(nexvitad_bank_info, tile) == 88);
ABI_ASSERT(bank_info_vectors, offsetof(nexvitad_bank_info, vectors) == 32);
ABI_ASSERT(bank_info_seed, offsetof(nexvitad_bank_info, seed) == 80);

/* Revisions 0-2: nexvitad_result was 80 bytes (its revision-3 fields follow; see below). */
ABI_ASSERT(result_size, offsetof(nexvitad_result, threshold_flags) == 80);
ABI_ASSERT(result_width, offsetof(nexvitad_result, width) == 24);
ABI_ASSERT(result_timings, offsetof(nexvitad_result, prepare_s) == 32);

/* Revision 1 (training). */
ABI_ASSERT(abi_revision, NEXVITAD_ABI_REVISION >= 1);
ABI_ASSERT(train_phase, NEXVITAD_TRAIN_ENCODE == 0 && NEXVITAD_TRAIN_STEP == 1);
/* Revision 1's sizes, as the end of its last field (revision 7 grows both structs). */
ABI_ASSERT(train_options_size, offsetof(nexvitad_train_options, target_test) + 4 == 104);
ABI_ASSERT(train_options_seed, offsetof(nexvitad_train_options, seed) == 56);
ABI_ASSERT(train_options_noise, offsetof(nexvitad_train_options, noise_std) == 80);
ABI_ASSERT(train_options_flags, offsetof(nexvitad_train_options, resume) == 96 &&
                                    offsetof(nexvitad_train_options, target_test) == 100);
ABI_ASSERT(train_progress_size, sizeof(nexvitad_train_progress) == 128);
ABI_ASSERT(train_progress_done, offsetof(nexvitad_train_progress, done) == 32);
ABI_ASSERT(train_progress_means, offsetof(nexvitad_train_progress, mean_loss) == 88);
ABI_ASSERT(train_result_size, offsetof(nexvitad_train_result, train_s) + 8 == 96);
ABI_ASSERT(train_result_loss, offsetof(nexvitad_train_result, loss) == 40);
ABI_ASSERT(train_result_times, offsetof(nexvitad_train_result, train_s) == 88);

/* Revision 3 (tiled banks): nexvitad_bank_options and nexvitad_bank_info grow at their end. */
ABI_ASSERT(abi_revision_3, NEXVITAD_ABI_REVISION >= 3);
/* Revision 3 sizes (later revisions append: see below). */
ABI_ASSERT(bank_options_size_r3, offsetof(nexvitad_bank_options, roi) == 88);
ABI_ASSERT(bank_options_tiling, offsetof(nexvitad_bank_options, tile_overlap) == 76 &&
                                    offsetof(nexvitad_bank_options, tile_layout) == 80 &&
                                    offsetof(nexvitad_bank_options, reserved1) == 84);
ABI_ASSERT(bank_info_size_r3, offsetof(nexvitad_bank_info, roi_width) == 120);
ABI_ASSERT(bank_info_tiling, offsetof(nexvitad_bank_info, tile_h) == 92 &&
                                 offsetof(nexvitad_bank_info, tile_overlap) == 96 &&
                                 offsetof(nexvitad_bank_info, tile_layout) == 100 &&
                                 offsetof(nexvitad_bank_info, tile_cols) == 104 &&
                                 offsetof(nexvitad_bank_info, tile_rows) == 108 &&
                                 offsetof(nexvitad_bank_info, image_width) == 112 &&
                                 offsetof(nexvitad_bank_info, image_height) == 116);
ABI_ASSERT(tile_layout, NEXVITAD_TILE_SHARED == 0 && NEXVITAD_TILE_PER_POSITION == 1 &&
                            sizeof(nexvitad_tile_layout) == 4);

/* Revision 3 (inspection outputs): nexvitad_result grows at its end; nexvitad_score_options
   and nexvitad_region are new (nexvitad_region never grows: it has no struct_size). */
ABI_ASSERT(result_size_r3, offsetof(nexvitad_result, roi_source) == 96);
ABI_ASSERT(result_regions, offsetof(nexvitad_result, reserved0) == 84 &&
                               offsetof(nexvitad_result, region_count) == 88);
ABI_ASSERT(threshold_source, NEXVITAD_IMAGE_THRESHOLD_FROM_CALLER == 1 && NEXVITAD_PIXEL_THRESHOLD_FROM_CALLER == 2 &&
                                 sizeof(nexvitad_threshold_source) == 4);
ABI_ASSERT(score_options_size, offsetof(nexvitad_score_options, roi) == 24);
ABI_ASSERT(score_options_fields, offsetof(nexvitad_score_options, image_threshold) == 8 &&
                                     offsetof(nexvitad_score_options, pixel_threshold) == 12 &&
                                     offsetof(nexvitad_score_options, min_region_area) == 16);
ABI_ASSERT(region_size, sizeof(nexvitad_region) == 40);
ABI_ASSERT(region_fields, offsetof(nexvitad_region, y) == 4 && offsetof(nexvitad_region, width) == 8 &&
                              offsetof(nexvitad_region, height) == 12 && offsetof(nexvitad_region, area) == 16 &&
                              offsetof(nexvitad_region, centroid_x) == 24 &&
                              offsetof(nexvitad_region, centroid_y) == 28 && offsetof(nexvitad_region, peak) == 32 &&
                              offsetof(nexvitad_region, mean) == 36);

/* Revision 4 (regions of interest, recalibration): nexvitad_mask is new and fixed;
   nexvitad_bank_options, nexvitad_score_options, nexvitad_result and nexvitad_bank_info grow
   at their end. */
ABI_ASSERT(abi_revision_4, NEXVITAD_ABI_REVISION >= 4);
ABI_ASSERT(mask_size, sizeof(nexvitad_mask) == 24);
ABI_ASSERT(mask_fields, offsetof(nexvitad_mask, width) == 8 && offsetof(nexvitad_mask, height) == 12 &&
                            offsetof(nexvitad_mask, stride) == 16);
ABI_ASSERT(score_options_roi, offsetof(nexvitad_score_options, ignore_bank_roi) == 32 &&
                                  offsetof(nexvitad_score_options, reserved0) == 36 &&
                                  sizeof(nexvitad_score_options) == 40);
ABI_ASSERT(result_roi, offsetof(nexvitad_result, reserved1) == 100);
ABI_ASSERT(bank_info_roi, offsetof(nexvitad_bank_info, roi_height) == 124);
ABI_ASSERT(roi_source, NEXVITAD_ROI_NONE == 0 && NEXVITAD_ROI_FROM_BANK == 1 && NEXVITAD_ROI_FROM_CALLER == 2 &&
                           sizeof(nexvitad_roi_source) == 4);

/* Revision 5 (banks that grow): nexvitad_bank_options and nexvitad_bank_info grow at their
   end. */
ABI_ASSERT(abi_revision_5, NEXVITAD_ABI_REVISION >= 5);
ABI_ASSERT(bank_options_growable, offsetof(nexvitad_bank_options, growable) == 96 &&
                                      offsetof(nexvitad_bank_options, reserved2) == 100 &&
                                      sizeof(nexvitad_bank_options) == 104);
ABI_ASSERT(bank_info_growable, offsetof(nexvitad_bank_info, growable) == 128 &&
                                   offsetof(nexvitad_bank_info, reserved1) == 132 &&
                                   sizeof(nexvitad_bank_info) == 136);
ABI_ASSERT(result_size_r5, sizeof(nexvitad_result) == 104);

/* Revision 6: nexvitad_options grows `tile_batch` and `parallel_encoders` at its end. */
ABI_ASSERT(abi_revision_6, NEXVITAD_ABI_REVISION >= 6);
ABI_ASSERT(options_tile_batch, offsetof(nexvitad_options, tile_batch) == 48 &&
                                   offsetof(nexvitad_options, parallel_encoders) == 52 && sizeof(nexvitad_options) == 56);

/* Revision 7 (training's feature cache): nexvitad_train_options grows `cache_dir` and
   `cache_mem`, nexvitad_train_result grows `cache_bytes`, `encoded` and `reused`. */
ABI_ASSERT(abi_revision_7, NEXVITAD_ABI_REVISION >= 7);
ABI_ASSERT(train_options_cache, offsetof(nexvitad_train_options, cache_dir) == 104 &&
                                    offsetof(nexvitad_train_options, cache_mem) == 112 &&
                                    sizeof(nexvitad_train_options) == 120);
ABI_ASSERT(train_result_cache, offsetof(nexvitad_train_result, cache_bytes) == 96 &&
                                   offsetof(nexvitad_train_result, encoded) == 104 &&
                                   offsetof(nexvitad_train_result, reused) == 112 && sizeof(nexvitad_train_result) == 120);

/* Each function with the exact type it must have: a table of typed function pointers (a
   mismatch is a compile error in C++ and an incompatible-pointer warning, made an error by
   -Werror, in C). */
struct abi_functions {
    const char *(*version)(void);
    uint32_t (*abi_version)(void);
    const char *(*last_error)(void);
    const char *(*status_name)(int);
    nexvitad_status (*selftest_panic)(void);
    nexvitad_status (*set_log_callback)(nexvitad_log_cb, void *);
    nexvitad_status (*options_default)(nexvitad_options *);
    nexvitad_status (*model_open)(const char *, const nexvitad_options *, nexvitad_model **);
    const char *(*model_fingerprint)(const nexvitad_model *);
    nexvitad_status (*model_free)(nexvitad_model *);
    nexvitad_status (*bank_options_default)(nexvitad_bank_options *);
    nexvitad_status (*bank_build)(const nexvitad_model *, const nexvitad_image *, size_t, const nexvitad_bank_options *,
                                  nexvitad_progress_cb, void *, nexvitad_bank **);
    nexvitad_status (*bank_save)(const nexvitad_bank *, const char *);
    nexvitad_status (*bank_load)(const nexvitad_model *, const char *, nexvitad_bank **);
    nexvitad_status (*bank_get_info)(const nexvitad_bank *, nexvitad_bank_info *);
    nexvitad_status (*bank_free)(nexvitad_bank *);
    nexvitad_status (*score)(const nexvitad_model *, const nexvitad_bank *, const nexvitad_image *, float *, size_t,
                             nexvitad_result *);
    nexvitad_status (*score_batch)(const nexvitad_model *, const nexvitad_bank *, const nexvitad_image *, size_t,
                                   float *const *, const size_t *, nexvitad_result *);
    uint32_t (*abi_revision)(void);
    nexvitad_status (*train_options_default)(nexvitad_train_options *);
    nexvitad_status (*train)(const nexvitad_model *, const char *, const char *const *, size_t, const char *,
                             const char *, const nexvitad_train_options *, nexvitad_train_progress_cb, void *,
                             nexvitad_train_result *);
    nexvitad_status (*score_options_default)(nexvitad_score_options *);
    nexvitad_status (*score_with_options)(const nexvitad_model *, const nexvitad_bank *, const nexvitad_image *,
                                          const nexvitad_score_options *, float *, size_t, nexvitad_region *, size_t,
                                          size_t *, nexvitad_result *);
    nexvitad_status (*bank_get_roi)(const nexvitad_bank *, uint8_t *, size_t);
    nexvitad_status (*bank_recalibrate)(const nexvitad_bank *, float, nexvitad_bank **);
    nexvitad_status (*bank_add)(const nexvitad_bank *, const nexvitad_image *, size_t, nexvitad_progress_cb, void *,
                                nexvitad_bank **);
    nexvitad_status (*bank_merge)(const nexvitad_bank *, const nexvitad_bank *, nexvitad_progress_cb, void *,
                                  nexvitad_bank **);
    nexvitad_status (*score_batch_with_options)(const nexvitad_model *, const nexvitad_bank *, const nexvitad_image *,
                                                size_t, const nexvitad_score_options *, float *const *,
                                                const size_t *, nexvitad_result *);
};

static const struct abi_functions abi_table = {
    nexvitad_version,       nexvitad_abi_version,  nexvitad_last_error,          nexvitad_status_name,
    nexvitad_selftest_panic, nexvitad_set_log_callback, nexvitad_options_default, nexvitad_model_open,
    nexvitad_model_fingerprint, nexvitad_model_free, nexvitad_bank_options_default, nexvitad_bank_build,
    nexvitad_bank_save,     nexvitad_bank_load,    nexvitad_bank_get_info,       nexvitad_bank_free,
    nexvitad_score,         nexvitad_score_batch,  nexvitad_abi_revision,        nexvitad_train_options_default,
    nexvitad_train,         nexvitad_score_options_default, nexvitad_score_with_options,
    nexvitad_bank_get_roi,  nexvitad_bank_recalibrate, nexvitad_bank_add, nexvitad_bank_merge,
    nexvitad_score_batch_with_options,
};

/* Links and calls through the table: the loaded library matches this header. */
static int abi_runtime_check(void) {
    return abi_table.abi_version() == NEXVITAD_ABI_VERSION && abi_table.abi_revision() >= NEXVITAD_ABI_REVISION &&
           abi_table.status_name(NEXVITAD_MISMATCH)[9] == 'M' && abi_table.last_error() != NULL;
}
