/* Prints the size of every nexvitad.h struct and the offset of every field, one per line
 * ("struct field offset"; "struct sizeof size"), for the C# layout test (Tests.cs) to compare
 * with Marshal.SizeOf / Marshal.OffsetOf of the mirrored structs in NativeMethods.cs, and the
 * enum constants the C# enums mirror ("enum NAME value"). */
#include <stddef.h>
#include <stdio.h>
#include <nexvitad.h>

#define S(T) printf(#T " sizeof %zu\n", sizeof(struct T));
#define F(T, f) printf(#T " " #f " %zu\n", offsetof(struct T, f));
#define E(C) printf("enum " #C " %ld\n", (long)(C));

int main(void) {
    S(nexvitad_options)
    F(nexvitad_options, struct_size) F(nexvitad_options, ort_library)
    F(nexvitad_options, execution_provider) F(nexvitad_options, intra_threads)
    F(nexvitad_options, optimization_level) F(nexvitad_options, max_image_side)
    F(nexvitad_options, reserved0) F(nexvitad_options, max_image_pixels)
    F(nexvitad_options, tile_batch) F(nexvitad_options, parallel_encoders)

    S(nexvitad_bank_options)
    F(nexvitad_bank_options, struct_size) F(nexvitad_bank_options, scorer)
    F(nexvitad_bank_options, k) F(nexvitad_bank_options, epsilon)
    F(nexvitad_bank_options, max_iters) F(nexvitad_bank_options, tol)
    F(nexvitad_bank_options, coreset_ratio) F(nexvitad_bank_options, sigma)
    F(nexvitad_bank_options, image_score_mode) F(nexvitad_bank_options, image_score_top_fraction)
    F(nexvitad_bank_options, augment) F(nexvitad_bank_options, target_fpr)
    F(nexvitad_bank_options, batch_size) F(nexvitad_bank_options, seed)
    F(nexvitad_bank_options, max_vectors) F(nexvitad_bank_options, tile)
    F(nexvitad_bank_options, tile_overlap) F(nexvitad_bank_options, tile_layout)
    F(nexvitad_bank_options, reserved1) F(nexvitad_bank_options, roi)
    F(nexvitad_bank_options, growable) F(nexvitad_bank_options, reserved2)

    S(nexvitad_mask)
    F(nexvitad_mask, data) F(nexvitad_mask, width) F(nexvitad_mask, height) F(nexvitad_mask, stride)

    S(nexvitad_image)
    F(nexvitad_image, data) F(nexvitad_image, width) F(nexvitad_image, height)
    F(nexvitad_image, stride) F(nexvitad_image, format)

    S(nexvitad_bank_info)
    F(nexvitad_bank_info, struct_size) F(nexvitad_bank_info, scorer) F(nexvitad_bank_info, k)
    F(nexvitad_bank_info, dim) F(nexvitad_bank_info, grid_w) F(nexvitad_bank_info, grid_h)
    F(nexvitad_bank_info, shots) F(nexvitad_bank_info, vectors) F(nexvitad_bank_info, sigma)
    F(nexvitad_bank_info, image_threshold) F(nexvitad_bank_info, pixel_threshold)
    F(nexvitad_bank_info, target_fpr) F(nexvitad_bank_info, image_score_mode)
    F(nexvitad_bank_info, image_score_top_fraction) F(nexvitad_bank_info, augment)
    F(nexvitad_bank_info, converged) F(nexvitad_bank_info, iterations)
    F(nexvitad_bank_info, reserved0) F(nexvitad_bank_info, seed) F(nexvitad_bank_info, tile)
    F(nexvitad_bank_info, tile_h) F(nexvitad_bank_info, tile_overlap)
    F(nexvitad_bank_info, tile_layout) F(nexvitad_bank_info, tile_cols)
    F(nexvitad_bank_info, tile_rows) F(nexvitad_bank_info, image_width)
    F(nexvitad_bank_info, image_height) F(nexvitad_bank_info, roi_width)
    F(nexvitad_bank_info, roi_height) F(nexvitad_bank_info, growable)
    F(nexvitad_bank_info, reserved1)

    S(nexvitad_result)
    F(nexvitad_result, struct_size) F(nexvitad_result, image_score)
    F(nexvitad_result, image_threshold) F(nexvitad_result, pixel_threshold)
    F(nexvitad_result, is_anomalous) F(nexvitad_result, width) F(nexvitad_result, height)
    F(nexvitad_result, prepare_s) F(nexvitad_result, hiera_s) F(nexvitad_result, dinov2_s)
    F(nexvitad_result, head_s) F(nexvitad_result, matching_s) F(nexvitad_result, upsample_smooth_s)
    F(nexvitad_result, threshold_flags) F(nexvitad_result, reserved0) F(nexvitad_result, region_count)
    F(nexvitad_result, roi_source) F(nexvitad_result, reserved1)

    S(nexvitad_score_options)
    F(nexvitad_score_options, struct_size) F(nexvitad_score_options, image_threshold)
    F(nexvitad_score_options, pixel_threshold) F(nexvitad_score_options, min_region_area)
    F(nexvitad_score_options, roi) F(nexvitad_score_options, ignore_bank_roi)
    F(nexvitad_score_options, reserved0)

    S(nexvitad_region)
    F(nexvitad_region, x) F(nexvitad_region, y) F(nexvitad_region, width) F(nexvitad_region, height)
    F(nexvitad_region, area) F(nexvitad_region, centroid_x) F(nexvitad_region, centroid_y)
    F(nexvitad_region, peak) F(nexvitad_region, mean)

    S(nexvitad_train_options)
    F(nexvitad_train_options, struct_size) F(nexvitad_train_options, epochs)
    F(nexvitad_train_options, batch) F(nexvitad_train_options, lr)
    F(nexvitad_train_options, weight_decay) F(nexvitad_train_options, theta)
    F(nexvitad_train_options, lambda1) F(nexvitad_train_options, lambda2)
    F(nexvitad_train_options, seed) F(nexvitad_train_options, decoder_width)
    F(nexvitad_train_options, checkpoint_every) F(nexvitad_train_options, copies)
    F(nexvitad_train_options, flips) F(nexvitad_train_options, noise_std)
    F(nexvitad_train_options, jitter) F(nexvitad_train_options, resume)
    F(nexvitad_train_options, target_test) F(nexvitad_train_options, cache_dir)
    F(nexvitad_train_options, cache_mem)

    S(nexvitad_train_progress)
    F(nexvitad_train_progress, struct_size) F(nexvitad_train_progress, phase)
    F(nexvitad_train_progress, epoch) F(nexvitad_train_progress, epochs)
    F(nexvitad_train_progress, step) F(nexvitad_train_progress, steps_per_epoch)
    F(nexvitad_train_progress, reserved0) F(nexvitad_train_progress, done)
    F(nexvitad_train_progress, total) F(nexvitad_train_progress, loss)
    F(nexvitad_train_progress, l_src) F(nexvitad_train_progress, l_pl)
    F(nexvitad_train_progress, l_cons) F(nexvitad_train_progress, coverage)
    F(nexvitad_train_progress, mean_loss) F(nexvitad_train_progress, mean_l_src)
    F(nexvitad_train_progress, mean_l_pl) F(nexvitad_train_progress, mean_l_cons)
    F(nexvitad_train_progress, mean_coverage)

    S(nexvitad_train_result)
    F(nexvitad_train_result, struct_size) F(nexvitad_train_result, steps)
    F(nexvitad_train_result, steps_run) F(nexvitad_train_result, epochs)
    F(nexvitad_train_result, steps_per_epoch) F(nexvitad_train_result, source_images)
    F(nexvitad_train_result, target_images) F(nexvitad_train_result, loss)
    F(nexvitad_train_result, l_src) F(nexvitad_train_result, l_pl)
    F(nexvitad_train_result, l_cons) F(nexvitad_train_result, coverage)
    F(nexvitad_train_result, encode_s) F(nexvitad_train_result, train_s)
    F(nexvitad_train_result, cache_bytes) F(nexvitad_train_result, encoded)
    F(nexvitad_train_result, reused)

    E(NEXVITAD_TILE_SHARED) E(NEXVITAD_TILE_PER_POSITION)
    E(NEXVITAD_IMAGE_THRESHOLD_FROM_CALLER) E(NEXVITAD_PIXEL_THRESHOLD_FROM_CALLER)
    E(NEXVITAD_ROI_NONE) E(NEXVITAD_ROI_FROM_BANK) E(NEXVITAD_ROI_FROM_CALLER)
    return 0;
}
