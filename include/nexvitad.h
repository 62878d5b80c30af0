/*
 * nexvitad.h - C API of libnexvitad: few-shot cross-domain industrial defect detection
 * (NexViTAD: frozen Hiera + DINOv2 encoders, a fusion head, a Sinkhorn K-means memory bank).
 *
 * Usage (error handling shortened; every call returns a nexvitad_status):
 *
 *     #include <nexvitad.h>
 *
 *     nexvitad_model *model = NULL;
 *     nexvitad_bank *bank = NULL;
 *     if (nexvitad_model_open("models/tiny", NULL, &model) != NEXVITAD_OK) {
 *         fprintf(stderr, "%s\n", nexvitad_last_error());
 *         return 1;
 *     }
 *     nexvitad_image good[4];   // caller pixels: {data, width, height, stride, format}
 *     ...
 *     nexvitad_bank_build(model, good, 4, NULL, NULL, NULL, &bank);
 *     nexvitad_bank_save(bank, "part.bank");        // later: nexvitad_bank_load()
 *
 *     nexvitad_image img = {pixels, 640, 480, 0, NEXVITAD_PIXEL_BGR8};
 *     float *map = malloc(sizeof(float) * 640 * 480);
 *     nexvitad_result r;
 *     r.struct_size = sizeof r;
 *     if (nexvitad_score(model, bank, &img, map, 640 * 480, &r) == NEXVITAD_OK)
 *         printf("score %.3f threshold %.3f -> %s\n", r.image_score, r.image_threshold,
 *                r.is_anomalous ? "DEFECT" : "ok");
 *     free(map);
 *     nexvitad_bank_free(bank);    // either order: a bank keeps its model alive
 *     nexvitad_model_free(model);
 *
 * Scoring needs only the bank: nexvitad_score(NULL, bank, ...) scores with the model the
 * bank was built or loaded with, which the bank keeps alive (ABI revision 2). A non-NULL
 * model must have the bank's fingerprint (its own model, or the same folder opened again,
 * e.g. with other options), else NEXVITAD_MISMATCH. Handles may be freed in any order.
 *
 * Region of interest (revision 4): a nexvitad_mask (8-bit, any size, scaled to each image;
 * non-zero = inspect) given at nexvitad_bank_build() (options->roi: patches wholly outside
 * never enter the bank, and the bank keeps the mask as its default) or per call
 * (nexvitad_score_options.roi, which replaces the bank's). Map pixels outside are 0; the
 * image score, the defect regions and the calibration's statistics come from inside. The
 * edge: a patch with any pixel inside counts as inside (a defect touching the edge still
 * counts); before smoothing, patches wholly outside take the median score of those inside,
 * so the ignored area neither lights up the edge nor darkens it. The encoders never see the
 * area the bank's ROI ignores: it is filled with a constant in the shots and in every image
 * scored with that bank, so content that changes there (a serial number) does not leak
 * into the patches beside it. A per-call ROI only confines the map, score and regions.
 *
 * Option structs: the "use the default" rule. In nexvitad_options, nexvitad_bank_options,
 * nexvitad_score_options and nexvitad_train_options, 0 (or NULL) means the default, except
 * in the fields marked * where 0 is a real setting: there any negative value means the
 * default (in a uint32_t field, a negative int stored in it, e.g. -1, i.e. any value
 * >= 0x80000000). NaN is never a default: it is NEXVITAD_INVALID_ARGUMENT. The one field without a "use the default"
 * value is nexvitad_train_options.checkpoint_every (every value is a real setting). The
 * *_options_default() functions write the values of the "writes" column; every one of them
 * is the default (or means it), so both ways give the same result.
 *
 *     field                         default                     use the default   writes
 *     nexvitad_options
 *       ort_library                 search (see the field)      NULL              NULL
 *       execution_provider          "cpu"                       NULL              "cpu"
 *       intra_threads               ONNX Runtime chooses        0                 0
 *     * optimization_level          3 (all; 0 = off)            negative, e.g. -1 3
 *       max_image_side              16384                       0                 16384
 *       max_image_pixels            64 Mi                       0                 64 Mi
 *       reserved0                   (must be 0)                 -                 0
 *       tile_batch                  4 on the CPU, 16 on CUDA    0                 0
 *       parallel_encoders           0 (one after the other)     0                 0
 *     nexvitad_bank_options
 *       scorer                      NEXVITAD_SCORER_SINKHORN    0                 0
 *       k                           the model's (30)            0                 0
 *       epsilon                     0.05                        0                 0.05
 *       max_iters                   50                          0                 50
 *     * tol                         1e-4 (0 = run to max_iters) negative          1e-4
 *       coreset_ratio               0.1                         0                 0.1
 *     * sigma                       the model's (4; 0 = none)   negative          -1
 *       image_score_mode            NEXVITAD_IMAGE_SCORE_MAX    0                 0
 *       image_score_top_fraction    0.1                         0                 0.1
 *       augment                     none                        0                 0
 *       target_fpr                  the model's                 0                 0
 *       batch_size                  4                           0                 4
 *       seed                        0                           0                 0
 *       max_vectors                 4 Mi                        0                 4 Mi
 *       tile                        off (whole-image resize)    0                 0
 *       tile_overlap                0 (no overlap)              0                 0
 *       tile_layout                 NEXVITAD_TILE_SHARED        0                 0
 *       reserved1                   (must be 0)                 -                 0
 *       roi                         none (the whole image)      NULL              NULL
 *       growable                    0 (no)                      0                 0
 *       reserved2                   (must be 0)                 -                 0
 *     nexvitad_score_options
 *     * image_threshold             the bank's (0 is real)      negative          -1
 *     * pixel_threshold             the bank's (0 is real)      negative          -1
 *       min_region_area             1 (every region)            0                 0
 *       roi                         the bank's ROI, if any      NULL              NULL
 *       ignore_bank_roi             0 (use the bank's ROI)      0                 0
 *       reserved0                   (must be 0)                 -                 0
 *     nexvitad_train_options
 *       epochs                      4                           0                 4
 *       batch                       8                           0                 8
 *       lr                          1e-3                        0                 1e-3
 *     * weight_decay                0.01                        negative          0.01
 *       theta                       the model's (0.7)           0                 0
 *     * lambda1                     the model's (1.0)           negative          -1
 *     * lambda2                     the model's (0.5)           negative          -1
 *       seed                        0                           0                 0
 *       decoder_width               32                          0                 32
 *       checkpoint_every            20 (0 = only at the end)    (none)            20
 *       copies                      2                           0                 2
 *     * flips                       1 (0 = no flips)            negative, e.g. -1 1
 *     * noise_std                   8                           negative          8
 *     * jitter                      0.2                         negative          0.2
 *       resume                      0                           0                 0
 *       target_test                 0                           0                 0
 *       cache_dir                   the output folder           NULL              NULL
 *       cache_mem                   1/8 of RAM, <= 512 MiB      0                 0
 *
 * (Revision 2 made every field follow this rule; earlier libraries refuse the values that
 * became defaults - 0 epsilon, a negative sigma other than -1, and so on - with
 * NEXVITAD_INVALID_ARGUMENT, so call the *_options_default() functions when
 * nexvitad_abi_revision() < 2.)
 *
 * Build: `pkg-config --cflags --libs nexvitad`, or in CMake `find_package(nexvitad)` and
 * `target_link_libraries(app nexvitad::nexvitad)`. libonnxruntime.so is installed beside
 * libnexvitad.so and found there at run time; no environment variable is needed. (When
 * linking libnexvitad.a statically, put libonnxruntime.so beside the executable, set
 * NEXVITAD_ORT_LIBRARY, or pass nexvitad_options.ort_library.)
 *
 * Conventions, for every function below:
 * - Every function that can fail returns a nexvitad_status; NEXVITAD_OK (0) is success.
 *   On failure nexvitad_last_error() names what was wrong (the parameter, the file, the
 *   limit), and no output was written: `*out` pointers, maps and result structs are
 *   written only on success.
 * - NULL or out-of-range arguments give NEXVITAD_INVALID_ARGUMENT naming the parameter.
 * - Pointers passed in are borrowed for the duration of the call only; the library keeps
 *   none of them (except the `user` pointer of nexvitad_set_log_callback()).
 * - Handles (nexvitad_model, nexvitad_bank) are created by the library and released with
 *   their _free function; freeing NULL is a no-op. A freed, foreign or wrong-kind handle
 *   (e.g. a double free) is detected and gives NEXVITAD_INVALID_ARGUMENT instead of a crash
 *   (detection covers the last 4096 freed handles).
 * - Handles are immutable: one model and one bank may be used from any number of threads
 *   at once. A bank keeps its model alive, so they may be freed in any order.
 * - Structs whose first field is `struct_size` may grow at their end in later versions:
 *   set `struct_size = sizeof(that struct)` before passing one; the library reads and
 *   writes only fields within it, so a program built against an older nexvitad.h keeps
 *   working with a newer library.
 * - No panic or exception crosses this API: internal failures give NEXVITAD_INTERNAL.
 * - Callbacks must not throw C++ exceptions or longjmp out of the library.
 * - The library must not be unloaded: never dlclose() libnexvitad.so (ONNX Runtime and the
 *   library keep process-wide state and threads that cannot be torn down safely).
 *
 * Training (ABI revision 1): nexvitad_train() adapts a model's fusion head to labelled
 * source domains and one unlabeled target domain (MVTec AD folders) and writes a new model
 * folder, open it with nexvitad_model_open() and build banks with it. It reports progress
 * (phase, step, loss terms, pseudo-label coverage) through a callback that can cancel; a
 * cancelled run leaves a checkpoint that options->resume = 1 continues to the same result
 * as an unbroken run:
 *
 *     const char *sources[] = {"bottle", "cable"};
 *     nexvitad_train_options to;
 *     to.struct_size = sizeof to;
 *     nexvitad_train_options_default(&to);
 *     to.epochs = 10;
 *     nexvitad_train(model, "mvtec", sources, 2, "screw", "models/screw", &to,
 *                    NULL, NULL, NULL);   // then nexvitad_model_open("models/screw", ...)
 */


#ifndef NEXVITAD_H
#define NEXVITAD_H

/* Generated by cbindgen from src/capi/ (build.rs). Do not edit: change the Rust doc comments. */

#include <stddef.h>
#include <stdint.h>

/** The library version this header was generated for. */
#define NEXVITAD_VERSION "0.1.0"


/**
 * The C ABI version this header describes; nexvitad_abi_version() returns the library's.
 * It changes only when an existing function, struct field or constant changes meaning or
 * layout; additions (new functions, fields appended to struct_size structs) keep it and
 * raise NEXVITAD_ABI_REVISION instead.
 */
#define NEXVITAD_ABI_VERSION 1

/**
 * The additions this header has on top of NEXVITAD_ABI_VERSION; nexvitad_abi_revision()
 * returns the library's. Revisions only add, so a library of revision R serves every
 * program built against a header of revision <= R with the same NEXVITAD_ABI_VERSION.
 *   0: the first release of ABI version 1 (models, banks, scoring, logging).
 *   1: training: nexvitad_train(), nexvitad_train_options_default() and the
 *      nexvitad_train_* types.
 *   2: nexvitad_score() and nexvitad_score_batch() accept a NULL model (the bank's own);
 *      every option field follows the "use the default" rule of the table at the top
 *      (values that were errors before now select the default; no valid value changed).
 *   3: tiled banks: nexvitad_bank_options grows `tile`, `tile_overlap`, `tile_layout`
 *      (nexvitad_tile_layout), nexvitad_bank_info grows the tiling it was built with. A
 *      tiled bank file is format version 2, which older libraries refuse.
 *      Inspection outputs: nexvitad_score_with_options() (per-call thresholds, defect
 *      regions into a caller array), nexvitad_score_options(_default), nexvitad_region;
 *      nexvitad_result grows `threshold_flags` and `region_count`.
 *   4: regions of interest: nexvitad_mask; nexvitad_bank_options grows `roi` (the bank
 *      keeps it as its default), nexvitad_score_options grows `roi` and
 *      `ignore_bank_roi`, nexvitad_result grows `roi_source` (nexvitad_roi_source),
 *      nexvitad_bank_info grows `roi_width`/`roi_height`; nexvitad_bank_get_roi().
 *      A bank with a ROI is format version 3, which older libraries refuse.
 *      nexvitad_bank_recalibrate(): thresholds at another target FPR without re-encoding.
 *   5: banks that grow: nexvitad_bank_options grows `growable`, nexvitad_bank_info grows
 *      `growable`; nexvitad_bank_add() and nexvitad_bank_merge();
 *      nexvitad_score_batch_with_options().
 *   6: nexvitad_options grows `tile_batch` (tiles per encoder call when scoring tiled
 *      images) and `parallel_encoders` (the two encoders side by side).
 *   7: the training feature cache: nexvitad_train_options grows `cache_dir` and
 *      `cache_mem`, nexvitad_train_result grows `cache_bytes`, `encoded` and `reused`;
 *      options->resume = 1 also continues a run cancelled while encoding.
 */
#define NEXVITAD_ABI_REVISION 7

/**
 * Status returned by every function that can fail. Each value is one class of failure;
 * nexvitad_last_error() holds the detailed message, which names the offending argument,
 * file or limit.
 */
enum nexvitad_status
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * Success.
     */
    NEXVITAD_OK = 0,
    /**
     * An argument is NULL, out of range or malformed (the message names the parameter).
     */
    NEXVITAD_INVALID_ARGUMENT = 1,
    /**
     * A file or folder could not be read or written.
     */
    NEXVITAD_IO = 2,
    /**
     * A file exists but is corrupt, truncated or of the wrong kind.
     */
    NEXVITAD_FORMAT = 3,
    /**
     * Two things that must belong together do not (a bank built by another model).
     */
    NEXVITAD_MISMATCH = 4,
    /**
     * ONNX Runtime could not be loaded or failed while running the model.
     */
    NEXVITAD_RUNTIME = 5,
    /**
     * The request needs something this build or machine lacks (e.g. CUDA).
     */
    NEXVITAD_UNSUPPORTED = 6,
    /**
     * A configured limit (image size, bank size) would be exceeded.
     */
    NEXVITAD_LIMIT_EXCEEDED = 7,
    /**
     * A progress callback returned non-zero; nothing was produced (except the checkpoint a
     * cancelled nexvitad_train() leaves to resume from).
     */
    NEXVITAD_CANCELLED = 8,
    /**
     * A bug in nexvitad (a caught panic); the message says where. Please report it.
     */
    NEXVITAD_INTERNAL = 9,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum nexvitad_status nexvitad_status;
#else
typedef int32_t nexvitad_status;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Pixel layouts accepted in nexvitad_image.format (8 bits per channel).
 */
enum nexvitad_pixel_format
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * One byte per pixel, gray.
     */
    NEXVITAD_PIXEL_GRAY8 = 0,
    /**
     * Three bytes per pixel, R G B.
     */
    NEXVITAD_PIXEL_RGB8 = 1,
    /**
     * Three bytes per pixel, B G R (OpenCV's default).
     */
    NEXVITAD_PIXEL_BGR8 = 2,
    /**
     * Four bytes per pixel, R G B A (alpha ignored).
     */
    NEXVITAD_PIXEL_RGBA8 = 3,
    /**
     * Four bytes per pixel, B G R A (alpha ignored).
     */
    NEXVITAD_PIXEL_BGRA8 = 4,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum nexvitad_pixel_format nexvitad_pixel_format;
#else
typedef uint32_t nexvitad_pixel_format;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * How patches are matched against the bank (nexvitad_bank_options.scorer).
 */
enum nexvitad_scorer
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * K prototypes from Sinkhorn K-means (the method's choice, default).
     */
    NEXVITAD_SCORER_SINKHORN = 0,
    /**
     * Every normal patch vector (exact nearest neighbour; largest bank).
     */
    NEXVITAD_SCORER_FULL = 1,
    /**
     * A greedy-coreset subsample of the normal patch vectors.
     */
    NEXVITAD_SCORER_CORESET = 2,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum nexvitad_scorer nexvitad_scorer;
#else
typedef uint32_t nexvitad_scorer;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * How the image score is drawn from the anomaly map (nexvitad_bank_options.image_score_mode).
 */
enum nexvitad_image_score_mode
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * The map's maximum (default).
     */
    NEXVITAD_IMAGE_SCORE_MAX = 0,
    /**
     * Mean of the top `image_score_top_fraction` of the map's values.
     */
    NEXVITAD_IMAGE_SCORE_TOP_MEAN = 1,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum nexvitad_image_score_mode nexvitad_image_score_mode;
#else
typedef uint32_t nexvitad_image_score_mode;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Bits of nexvitad_bank_options.augment: extra copies of each normal image in the bank.
 */
enum nexvitad_augment
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * Mirror left-right.
     */
    NEXVITAD_AUGMENT_HFLIP = 1,
    /**
     * Mirror top-bottom.
     */
    NEXVITAD_AUGMENT_VFLIP = 2,
    /**
     * Rotations by 90, 180 and 270 degrees (needs a square encoder input).
     */
    NEXVITAD_AUGMENT_ROT90 = 4,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum nexvitad_augment nexvitad_augment;
#else
typedef uint32_t nexvitad_augment;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * The `stage` argument of a nexvitad_progress_cb: the phase a bank build (or an
 * evaluation) is in, as nexvitad_train_phase is a training run's. The Rust API calls it
 * `bank::Phase`; the C name is kept for ABI 1.
 */
enum nexvitad_stage
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * Running the encoders over the normal images (`total` = number of images, or of
     * tiles for a tiled bank).
     */
    NEXVITAD_STAGE_ENCODE = 0,
    /**
     * Sinkhorn K-means iterations (`total` = the iteration cap).
     */
    NEXVITAD_STAGE_CLUSTER = 1,
    /**
     * Leave-one-out calibration of the thresholds (`total` = number of images).
     */
    NEXVITAD_STAGE_CALIBRATE = 2,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum nexvitad_stage nexvitad_stage;
#else
typedef uint32_t nexvitad_stage;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * The `level` argument of a nexvitad_log_cb.
 */
enum nexvitad_log_level
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * Something worth knowing (a model opened, a bank built or saved).
     */
    NEXVITAD_LOG_INFO = 1,
    /**
     * Something that worked but may not be what was wanted (k-means did not converge).
     */
    NEXVITAD_LOG_WARN = 2,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum nexvitad_log_level nexvitad_log_level;
#else
typedef uint32_t nexvitad_log_level;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * The `phase` of a nexvitad_train_progress.
 */
enum nexvitad_train_phase
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * Encoding the training images once each (and each perturbed target copy):
     * `done` of `total` images; the loss fields are 0.
     */
    NEXVITAD_TRAIN_ENCODE = 0,
    /**
     * A training step finished: `done` of `total` steps of the whole run (a resumed run
     * starts past 0), with this step's loss terms and the epoch's running means.
     */
    NEXVITAD_TRAIN_STEP = 1,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum nexvitad_train_phase nexvitad_train_phase;
#else
typedef uint32_t nexvitad_train_phase;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Where a tiled bank keeps its normal features (nexvitad_bank_options.tile_layout).
 */
enum nexvitad_tile_layout
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * One bank for the tiles of every position (textures, webs, surfaces); default.
     */
    NEXVITAD_TILE_SHARED = 0,
    /**
     * One bank per tile position (aligned objects); scores only images of the size it
     * was built from.
     */
    NEXVITAD_TILE_PER_POSITION = 1,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum nexvitad_tile_layout nexvitad_tile_layout;
#else
typedef uint32_t nexvitad_tile_layout;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Bits of nexvitad_result.threshold_flags.
 */
enum nexvitad_threshold_source
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * `image_threshold` is the caller's (nexvitad_score_options.image_threshold).
     */
    NEXVITAD_IMAGE_THRESHOLD_FROM_CALLER = 1,
    /**
     * `pixel_threshold` is the caller's (nexvitad_score_options.pixel_threshold).
     */
    NEXVITAD_PIXEL_THRESHOLD_FROM_CALLER = 2,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum nexvitad_threshold_source nexvitad_threshold_source;
#else
typedef uint32_t nexvitad_threshold_source;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Values of nexvitad_result.roi_source (revision 4).
 */
enum nexvitad_roi_source
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * No region of interest: the whole image.
     */
    NEXVITAD_ROI_NONE = 0,
    /**
     * The bank's default ROI (given at nexvitad_bank_build()).
     */
    NEXVITAD_ROI_FROM_BANK = 1,
    /**
     * The caller's nexvitad_score_options.roi.
     */
    NEXVITAD_ROI_FROM_CALLER = 2,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum nexvitad_roi_source nexvitad_roi_source;
#else
typedef uint32_t nexvitad_roi_source;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * A memory bank of normal features plus its decision thresholds.
 *
 * Opaque: only ever handled through a pointer returned by nexvitad_bank_build() or
 * nexvitad_bank_load(). Immutable; usable from any number of threads at once. A bank
 * keeps its model alive, so the model may be freed first.
 */
typedef struct nexvitad_bank nexvitad_bank;

/**
 * An opened model: the encoders, the fusion head and the model fingerprint.
 *
 * Opaque: only ever handled through a pointer returned by nexvitad_model_open().
 * Immutable once opened; one handle may be used from any number of threads at once.
 */
typedef struct nexvitad_model nexvitad_model;

/**
 * Receives the library's log messages. `level` is a nexvitad_log_level value; `message` is
 * valid only during the call. Called on whichever thread logs, possibly from several
 * threads at once, so it must be thread-safe; it must not call
 * nexvitad_set_log_callback() and must not throw.
 */
typedef void (*nexvitad_log_cb)(void *user, int level, const char *message);

/**
 * How to open a model. Set `struct_size = sizeof(nexvitad_options)`, then call
 * nexvitad_options_default() and change what you need. Fields beyond `struct_size` are
 * neither read nor written, so a program built against an older header keeps working.
 */
typedef struct nexvitad_options {
    /**
     * sizeof(nexvitad_options) as the caller compiled it. Set it before any call.
     */
    size_t struct_size;
    /**
     * Path of libonnxruntime.so to load, or NULL to search: $NEXVITAD_ORT_LIBRARY,
     * $ORT_DYLIB_PATH, then the folder holding libnexvitad.so. A process loads ONNX Runtime
     * once; a later model asking for a different file fails with NEXVITAD_RUNTIME.
     * Read during nexvitad_model_open() only (the caller keeps ownership).
     */
    const char *ort_library;
    /**
     * "cpu" (the default; NULL also means "cpu") or "cuda:N" (needs a CUDA build of
     * ONNX Runtime). Read during nexvitad_model_open() only.
     */
    const char *execution_provider;
    /**
     * ONNX Runtime intra-op threads per session; 0 lets ONNX Runtime choose.
     */
    uint32_t intra_threads;
    /**
     * Graph optimisation level: 0 off (a real setting), 1 basic, 2 extended, 3 all; a
     * negative value stored in it (e.g. -1, read as int32_t) = the default (3).
     */
    uint32_t optimization_level;
    /**
     * Largest accepted image width or height; 0 = library default (16384).
     */
    uint32_t max_image_side;
    /**
     * Reserved, must be 0.
     */
    uint32_t reserved0;
    /**
     * Largest accepted width x height; 0 = library default (64 Mi pixels).
     */
    uint64_t max_image_pixels;
    /**
     * Tiles per encoder call when scoring tiled images (revision 6); 0 = the default for
     * the execution provider (4 on the CPU, 16 on CUDA), at most 256. The tiles of one
     * image, and of the next images of a batch, fill each call. Larger calls hold more
     * memory and are not faster on the CPU; on a GPU they keep the device busy.
     */
    uint32_t tile_batch;
    /**
     * 1 = run the two encoders side by side, each on its own thread, instead of one after
     * the other (revision 6); 0 = off, the default. Faster at batch 1 on CPUs with few cores
     * (1.05-1.31x on 2 cores for the fp32 encoders). With intra_threads 0 each encoder then gets
     * half the cores.
     */
    uint32_t parallel_encoders;
} nexvitad_options;

/**
 * A caller-owned region-of-interest mask (revision 4): one byte per pixel, non-zero =
 * inspect, 0 = ignore. Any size: it is scaled to each image (nearest neighbour), so one
 * mask drawn at the camera's resolution serves every image of that camera. The library
 * copies what it keeps (a bank's default ROI) and never keeps the pointer. Not versioned:
 * this layout is fixed.
 */
typedef struct nexvitad_mask {
    /**
     * First byte of the top row. Must not be NULL. The buffer must hold at least
     * `stride * (height - 1) + width` bytes.
     */
    const uint8_t *data;
    /**
     * Width in pixels, > 0.
     */
    uint32_t width;
    /**
     * Height in pixels, > 0.
     */
    uint32_t height;
    /**
     * Bytes from the start of one row to the next; 0 means `width`.
     */
    size_t stride;
} nexvitad_mask;

/**
 * How to build a bank. Set `struct_size = sizeof(nexvitad_bank_options)`, then call
 * nexvitad_bank_options_default() and change what you need. The defaults follow the
 * method: Sinkhorn K-means, K and sigma from the model's model.json, image score = max.
 */
typedef struct nexvitad_bank_options {
    /**
     * sizeof(nexvitad_bank_options) as the caller compiled it.
     */
    size_t struct_size;
    /**
     * A nexvitad_scorer value.
     */
    uint32_t scorer;
    /**
     * Prototypes for the Sinkhorn scorer; 0 = the model's default (30).
     */
    uint32_t k;
    /**
     * Entropic regulariser of Sinkhorn, relative to the mean cost; > 0; 0 = the default (0.05).
     */
    float epsilon;
    /**
     * K-means iteration cap; 0 = the default (50).
     */
    uint32_t max_iters;
    /**
     * K-means relative centroid-shift tolerance; >= 0 (0 is a real setting: run to
     * max_iters); negative = the default (1e-4).
     */
    float tol;
    /**
     * Share of vectors kept by the coreset scorer, in (0, 1]; 0 = the default (0.1).
     */
    float coreset_ratio;
    /**
     * Gaussian smoothing sigma in pixels of the scored image, finite, <= 1000 (0 is a real
     * setting: no smoothing); negative = the model's default. NaN is an error.
     */
    float sigma;
    /**
     * A nexvitad_image_score_mode value.
     */
    uint32_t image_score_mode;
    /**
     * Fraction for NEXVITAD_IMAGE_SCORE_TOP_MEAN, in (0, 1]; 0 = the default (0.1);
     * ignored for MAX.
     */
    float image_score_top_fraction;
    /**
     * OR of nexvitad_augment bits; 0 = no augmentation.
     */
    uint32_t augment;
    /**
     * False-positive rate the stored thresholds aim at, in (0, 1); 0 = the model's default.
     */
    float target_fpr;
    /**
     * Images per encoder call; 0 = the default (4).
     */
    uint32_t batch_size;
    /**
     * Seed of every random choice; the same seed and images give the same bank.
     */
    uint64_t seed;
    /**
     * Cap on bank vectors (images x copies x patches), to bound memory; 0 = the default
     * (4 Mi).
     */
    uint64_t max_vectors;
    /**
     * Tiling (revision 3): image pixels one encoder input covers, along its width (the
     * tile's height follows the encoder input's aspect ratio). 0 = off, the default: each
     * image is resized whole to the encoder input. E.g. 224 on a 224 model = native
     * resolution, 448 = half resolution. A tile larger than an image is an error.
     */
    uint32_t tile;
    /**
     * Share of a tile that overlaps its neighbour, in [0, 1) (0 = none, the default);
     * ignored when `tile` is 0.
     */
    float tile_overlap;
    /**
     * A nexvitad_tile_layout value; ignored when `tile` is 0.
     */
    uint32_t tile_layout;
    /**
     * Reserved, must be 0.
     */
    uint32_t reserved1;
    /**
     * Region of interest (revision 4): only patches inside it enter the bank, and the
     * bank keeps a copy as the default ROI of every score call (saved with it). NULL = the
     * whole image, the default. Read during nexvitad_bank_build() only. A mask that
     * selects no pixel is NEXVITAD_INVALID_ARGUMENT. See "Region of interest" at the top.
     */
    const struct nexvitad_mask *roi;
    /**
     * 1 = keep the shots' features in the bank, so good images can be added later
     * (nexvitad_bank_add()) and banks merged (nexvitad_bank_merge()) with the result of a
     * build from all images at once (revision 5). Costs file size for the Sinkhorn and
     * coreset scorers (about 12 MB for 8 shots at 224 px); nothing for FULL. Tiled banks
     * grow too (a per-position bank only with images of its size). 0 = the default (no).
     */
    uint32_t growable;
    /**
     * Reserved, must be 0.
     */
    uint32_t reserved2;
} nexvitad_bank_options;

/**
 * A caller-owned image. The library reads the pixels during the call only and never keeps
 * the pointer. Not versioned: this layout is fixed for ABI version 1.
 */
typedef struct nexvitad_image {
    /**
     * First byte of the top row. Must not be NULL. The buffer must hold at least
     * `stride * (height - 1) + width * bytes_per_pixel` bytes.
     */
    const uint8_t *data;
    /**
     * Width in pixels, > 0.
     */
    uint32_t width;
    /**
     * Height in pixels, > 0.
     */
    uint32_t height;
    /**
     * Bytes from the start of one row to the next; 0 means tightly packed
     * (`width * bytes_per_pixel`). Must not be smaller than one row.
     */
    size_t stride;
    /**
     * A nexvitad_pixel_format value.
     */
    uint32_t format;
} nexvitad_image;

/**
 * Progress of a long call. `stage` is a nexvitad_stage value; `done` of `total` steps of it
 * are finished. Return 0 to continue, non-zero to cancel: the call then returns
 * NEXVITAD_CANCELLED and produces nothing. Called on the thread that made the call; must
 * not throw (C++) or longjmp out.
 */
typedef int (*nexvitad_progress_cb)(void *user, int stage, size_t done, size_t total);

/**
 * What a bank holds (nexvitad_bank_get_info()). Set `struct_size = sizeof(nexvitad_bank_info)`.
 */
typedef struct nexvitad_bank_info {
    /**
     * sizeof(nexvitad_bank_info) as the caller compiled it.
     */
    size_t struct_size;
    /**
     * A nexvitad_scorer value.
     */
    uint32_t scorer;
    /**
     * Prototypes asked for (Sinkhorn scorer).
     */
    uint32_t k;
    /**
     * Width of each bank vector.
     */
    uint32_t dim;
    /**
     * Patch grid of the bank features, width.
     */
    uint32_t grid_w;
    /**
     * Patch grid of the bank features, height.
     */
    uint32_t grid_h;
    /**
     * Number of normal images the bank was built from.
     */
    uint32_t shots;
    /**
     * Rows stored in the bank.
     */
    uint64_t vectors;
    /**
     * Gaussian smoothing sigma in pixels.
     */
    float sigma;
    /**
     * Image scores above this are anomalous.
     */
    float image_threshold;
    /**
     * Pixels scoring above this are anomalous (for defect masks).
     */
    float pixel_threshold;
    /**
     * False-positive rate the thresholds aim at.
     */
    float target_fpr;
    /**
     * A nexvitad_image_score_mode value.
     */
    uint32_t image_score_mode;
    /**
     * Fraction for NEXVITAD_IMAGE_SCORE_TOP_MEAN (0 for MAX).
     */
    float image_score_top_fraction;
    /**
     * OR of nexvitad_augment bits used when building.
     */
    uint32_t augment;
    /**
     * 1 if Sinkhorn K-means converged within max_iters, else 0 (0 for other scorers).
     */
    uint32_t converged;
    /**
     * Sinkhorn K-means iterations run (0 for other scorers).
     */
    uint32_t iterations;
    /**
     * Reserved, written as 0.
     */
    uint32_t reserved0;
    /**
     * Seed the bank was built with.
     */
    uint64_t seed;
    /**
     * Tile width in image pixels (revision 3); 0 = whole images resized to the encoder
     * input (no tiling).
     */
    uint32_t tile;
    /**
     * Tile height in image pixels; 0 without tiling.
     */
    uint32_t tile_h;
    /**
     * Share of a tile that overlaps its neighbour; 0 without tiling.
     */
    float tile_overlap;
    /**
     * A nexvitad_tile_layout value (0 without tiling).
     */
    uint32_t tile_layout;
    /**
     * NEXVITAD_TILE_PER_POSITION: tile columns and rows, and the one image size the bank
     * scores; all 0 for other banks, which score any size.
     */
    uint32_t tile_cols;
    /**
     * See `tile_cols`.
     */
    uint32_t tile_rows;
    /**
     * See `tile_cols`.
     */
    uint32_t image_width;
    /**
     * See `tile_cols`.
     */
    uint32_t image_height;
    /**
     * Size of the bank's default region of interest (revision 4); 0 x 0 = none. Read it
     * with nexvitad_bank_get_roi().
     */
    uint32_t roi_width;
    /**
     * See `roi_width`.
     */
    uint32_t roi_height;
    /**
     * 1 if the bank is growable (nexvitad_bank_add(), nexvitad_bank_merge()), else 0
     * (revision 5).
     */
    uint32_t growable;
    /**
     * Reserved, written as 0.
     */
    uint32_t reserved1;
} nexvitad_bank_info;

/**
 * The outcome of scoring one image. Set `struct_size = sizeof(nexvitad_result)`.
 */
typedef struct nexvitad_result {
    /**
     * sizeof(nexvitad_result) as the caller compiled it.
     */
    size_t struct_size;
    /**
     * The image's anomaly score (the map's max, or its top-fraction mean).
     */
    float image_score;
    /**
     * The bank's image threshold.
     */
    float image_threshold;
    /**
     * The bank's pixel threshold (compare map values with it for a defect mask).
     */
    float pixel_threshold;
    /**
     * 1 if image_score > image_threshold, else 0.
     */
    int32_t is_anomalous;
    /**
     * Width of the anomaly map (= the input image's width).
     */
    uint32_t width;
    /**
     * Height of the anomaly map (= the input image's height).
     */
    uint32_t height;
    /**
     * Seconds spent resizing and normalising (batch time split evenly over its images).
     */
    double prepare_s;
    /**
     * Seconds in the Hiera encoder.
     */
    double hiera_s;
    /**
     * Seconds in the DINOv2 encoder.
     */
    double dinov2_s;
    /**
     * Seconds in the fusion head.
     */
    double head_s;
    /**
     * Seconds matching patches against the bank.
     */
    double matching_s;
    /**
     * Seconds upsampling and smoothing the map.
     */
    double upsample_smooth_s;
    /**
     * Where the thresholds above came from (revision 3): OR of
     * nexvitad_threshold_source bits; 0 = both are the bank's.
     */
    uint32_t threshold_flags;
    /**
     * Reserved, written as 0.
     */
    uint32_t reserved0;
    /**
     * Defect regions found (revision 3; nexvitad_score_with_options() with regions asked
     * for), which may exceed the caller's array; 0 otherwise.
     */
    uint64_t region_count;
    /**
     * Which region of interest the map, score and regions were confined to (revision 4):
     * a nexvitad_roi_source value.
     */
    uint32_t roi_source;
    /**
     * Reserved, written as 0.
     */
    uint32_t reserved1;
} nexvitad_result;

/**
 * Per-call scoring choices (revision 3). Set `struct_size = sizeof(nexvitad_score_options)`
 * and call nexvitad_score_options_default(), or follow the option table at the top.
 */
typedef struct nexvitad_score_options {
    /**
     * sizeof(nexvitad_score_options) as the caller compiled it.
     */
    size_t struct_size;
    /**
     * Decide at this image threshold instead of the bank's: finite, >= 0 (0 is a real
     * setting); negative (-0.0 too) = the bank's. NaN and infinity are errors.
     */
    float image_threshold;
    /**
     * Draw defect regions at this pixel threshold instead of the bank's: finite, >= 0;
     * negative (-0.0 too) = the bank's. NaN and infinity are errors.
     */
    float pixel_threshold;
    /**
     * Smallest defect region kept, in pixels; 0 = keep every region.
     */
    uint64_t min_region_area;
    /**
     * Region of interest for this call (revision 4), replacing the bank's default: map
     * pixels outside are 0, and the image score and regions come from inside. NULL = the
     * bank's default ROI (or the whole image if it has none). Read during the call only.
     */
    const struct nexvitad_mask *roi;
    /**
     * 1 = score the whole image even if the bank has a default ROI (when `roi` is NULL);
     * 0 = the default. Other values are NEXVITAD_INVALID_ARGUMENT.
     */
    uint32_t ignore_bank_roi;
    /**
     * Reserved, must be 0.
     */
    uint32_t reserved0;
} nexvitad_score_options;

/**
 * One defect region: a connected (8-neighbour) piece of the map above the pixel
 * threshold (revision 3). Arrays of it are filled by nexvitad_score_with_options().
 */
typedef struct nexvitad_region {
    /**
     * Bounding box: left edge, in image pixels.
     */
    uint32_t x;
    /**
     * Bounding box: top edge.
     */
    uint32_t y;
    /**
     * Bounding box: width.
     */
    uint32_t width;
    /**
     * Bounding box: height.
     */
    uint32_t height;
    /**
     * Pixels in the region.
     */
    uint64_t area;
    /**
     * Centroid x (pixel centres; the top-left pixel's centre is 0.0).
     */
    float centroid_x;
    /**
     * Centroid y.
     */
    float centroid_y;
    /**
     * Highest map value in the region.
     */
    float peak;
    /**
     * Mean map value over the region.
     */
    float mean;
} nexvitad_region;

/**
 * How to train (nexvitad_train()). Set `struct_size = sizeof(nexvitad_train_options)`, then
 * call nexvitad_train_options_default() and change what you need. The defaults are those of
 * `nexvitad train`: 4 epochs, batch 8, AdamW lr 1e-3 / weight decay 0.01, theta, lambda1, lambda2 from the
 * model's model.json (0.7, 1.0, 0.5), seed 0, decoder width 32, a checkpoint every 20
 * steps, 2 perturbed copies per target image (noise 8, jitter 0.2, flips).
 */
typedef struct nexvitad_train_options {
    /**
     * sizeof(nexvitad_train_options) as the caller compiled it.
     */
    size_t struct_size;
    /**
     * Passes over the source images; 0 = the default (4).
     */
    uint32_t epochs;
    /**
     * Source images per step (plus as many target images and their perturbed copies);
     * 0 = the default (8).
     */
    uint32_t batch;
    /**
     * AdamW learning rate; finite, > 0; 0 = the default (1e-3).
     */
    double lr;
    /**
     * AdamW decoupled weight decay; finite, >= 0 (0 is a real setting); negative = the
     * default (0.01).
     */
    double weight_decay;
    /**
     * Pseudo-label confidence threshold theta, in (0, 1); 0 = the model's default.
     */
    double theta;
    /**
     * Weight lambda1 of the pseudo-label loss, finite, >= 0 (0 is a real setting);
     * negative = the model's default. NaN is an error.
     */
    double lambda1;
    /**
     * Weight lambda2 of the consistency loss, finite, >= 0 (0 is a real setting);
     * negative = the model's default. NaN is an error.
     */
    double lambda2;
    /**
     * Seed of initialisation, batch order and perturbations: the same seed, data and
     * options give the same model, bit for bit.
     */
    uint64_t seed;
    /**
     * Channels of the decoder trunk; 0 = the default (32).
     */
    uint32_t decoder_width;
    /**
     * Steps between checkpoints; 0 = only when cancelled and at the end (a real setting).
     * The one field with no "use the default" value: every uint32_t value is a real
     * setting; nexvitad_train_options_default() writes the default (20).
     */
    uint32_t checkpoint_every;
    /**
     * Perturbed copies per target image (each encoded once); 0 = the default (2).
     */
    uint32_t copies;
    /**
     * 1: the perturbed copies may be flipped (mapped back before comparing); 0: no flips
     * (a real setting); a negative value stored in it (e.g. -1) = the default (1).
     */
    uint32_t flips;
    /**
     * Pixel noise std of the perturbed copies, in 8-bit levels; finite, >= 0 (0 is a real
     * setting); negative = the default (8).
     */
    double noise_std;
    /**
     * Colour jitter of the perturbed copies (brightness/contrast 1 +/- j, gains 1 +/- j/2),
     * in [0, 1) (0 is a real setting); negative = the default (0.2).
     */
    double jitter;
    /**
     * 1: continue the run whose checkpoint is in `out_dir` (same data and options; only
     * `epochs` and `checkpoint_every` may differ); 0: start a new run in a new or empty folder.
     */
    uint32_t resume;
    /**
     * 1: also train on the target's test images, unlabeled (their masks are never read).
     */
    uint32_t target_test;
    /**
     * Folder of the feature cache (revision 7), `features.nxcache`: every training image's
     * encoder outputs, written once and reused by a resumed run; NULL = `out_dir`. A
     * folder shared by runs on the same data encodes the images once; a cache there of
     * other data is refused (NEXVITAD_MISMATCH), never overwritten. It stays after the run
     * (a resume with more epochs reuses it); delete it when the model is final.
     */
    const char *cache_dir;
    /**
     * Bytes of feature sets held in memory (revision 7); the others are read from the
     * cache file when a step uses them, so memory stops growing with the number of images.
     * 0 = the default: 1/8 of the machine's memory, at most 512 MiB. It must hold one
     * step's feature sets (min(batch, source images) + 2 x min(batch, target images)
     * images) or the call fails with NEXVITAD_INVALID_ARGUMENT naming the least.
     */
    uint64_t cache_mem;
} nexvitad_train_options;

/**
 * What a training run reports to its callback. Written by the library; `struct_size` is
 * the library's sizeof(nexvitad_train_progress): a program built against a newer header
 * must read only the fields that lie below it.
 */
typedef struct nexvitad_train_progress {
    /**
     * sizeof(nexvitad_train_progress) of the library that wrote it.
     */
    size_t struct_size;
    /**
     * A nexvitad_train_phase value.
     */
    uint32_t phase;
    /**
     * The step's epoch, counted from 0 (0 while encoding).
     */
    uint32_t epoch;
    /**
     * Epochs of the run.
     */
    uint32_t epochs;
    /**
     * Steps done in this epoch (1..=steps_per_epoch; 0 while encoding).
     */
    uint32_t step;
    /**
     * Steps per epoch (0 while encoding).
     */
    uint32_t steps_per_epoch;
    /**
     * Reserved, written as 0.
     */
    uint32_t reserved0;
    /**
     * ENCODE: images encoded; STEP: steps done in the whole run.
     */
    uint64_t done;
    /**
     * ENCODE: images to encode; STEP: steps of the whole run (epochs x steps_per_epoch).
     */
    uint64_t total;
    /**
     * This step's loss L = L_src + lambda1*L_pl + lambda2*L_cons.
     */
    double loss;
    /**
     * This step's supervised source loss (BCE + Dice).
     */
    double l_src;
    /**
     * This step's pseudo-label loss.
     */
    double l_pl;
    /**
     * This step's consistency loss.
     */
    double l_cons;
    /**
     * This step's pseudo-label coverage: share of target cells whose label passed theta, in [0, 1].
     */
    double coverage;
    /**
     * Running mean of `loss` over this epoch's steps so far.
     */
    double mean_loss;
    /**
     * Running mean of `l_src` over this epoch.
     */
    double mean_l_src;
    /**
     * Running mean of `l_pl` over this epoch.
     */
    double mean_l_pl;
    /**
     * Running mean of `l_cons` over this epoch.
     */
    double mean_l_cons;
    /**
     * Running mean of `coverage` over this epoch.
     */
    double mean_coverage;
} nexvitad_train_progress;

/**
 * Progress of nexvitad_train(), after each encoded image and each training step.
 * `progress` is valid during the call only. Return 0 to continue, non-zero to cancel: the
 * call then returns NEXVITAD_CANCELLED (after a step: with a checkpoint written, so the run
 * can be resumed). Called on the thread that called nexvitad_train(); must not throw (C++)
 * or longjmp out.
 */
typedef int (*nexvitad_train_progress_cb)(void *user, const struct nexvitad_train_progress *progress);

/**
 * The outcome of nexvitad_train(). Set `struct_size = sizeof(nexvitad_train_result)`.
 */
typedef struct nexvitad_train_result {
    /**
     * sizeof(nexvitad_train_result) as the caller compiled it.
     */
    size_t struct_size;
    /**
     * Steps of the whole run (epochs x steps_per_epoch).
     */
    uint64_t steps;
    /**
     * Steps this call ran (fewer than `steps` after a resume).
     */
    uint64_t steps_run;
    /**
     * Epochs of the run.
     */
    uint32_t epochs;
    /**
     * Steps per epoch.
     */
    uint32_t steps_per_epoch;
    /**
     * Source images trained on (good and defective).
     */
    uint32_t source_images;
    /**
     * Target images trained on (each with its perturbed copies).
     */
    uint32_t target_images;
    /**
     * Mean loss of the last epoch.
     */
    double loss;
    /**
     * Mean L_src of the last epoch.
     */
    double l_src;
    /**
     * Mean L_pl of the last epoch.
     */
    double l_pl;
    /**
     * Mean L_cons of the last epoch.
     */
    double l_cons;
    /**
     * Mean pseudo-label coverage of the last epoch.
     */
    double coverage;
    /**
     * Seconds spent encoding the images (once per call).
     */
    double encode_s;
    /**
     * Seconds spent in training steps in this call.
     */
    double train_s;
    /**
     * Size of the feature cache file, in bytes (revision 7).
     */
    uint64_t cache_bytes;
    /**
     * Feature sets (images and perturbed copies) this call encoded (revision 7).
     */
    uint64_t encoded;
    /**
     * Feature sets this call found in the cache, from a stopped or earlier run (revision 7).
     */
    uint64_t reused;
} nexvitad_train_result;

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * The library version, e.g. "0.1.0". Static storage; never NULL. Any thread.
 */
const char *nexvitad_version(void);

/**
 * The C ABI version of the loaded library. A program should check at start-up that it
 * equals the NEXVITAD_ABI_VERSION it was compiled with. Any thread.
 */
uint32_t nexvitad_abi_version(void);

/**
 * The ABI revision of the loaded library (see NEXVITAD_ABI_REVISION). A program that uses a
 * function added in revision R should check `nexvitad_abi_revision() >= R` before calling
 * it: with lazy symbol binding an older library would otherwise fail only at that call.
 * (Libraries of revision 0 lack this function too; `dlsym` tells them apart.) Any thread.
 */
uint32_t nexvitad_abi_revision(void);

/**
 * The message of the last failed nexvitad call on the calling thread, naming what was
 * wrong; "" when the last call succeeded. Never NULL.
 *
 * The string is owned by the library and stays valid until the next nexvitad call on the
 * same thread (nexvitad_last_error(), nexvitad_status_name(), nexvitad_version() and
 * nexvitad_abi_version() do not count). Each thread has its own message.
 */
const char *nexvitad_last_error(void);

/**
 * The name of a status code, e.g. "NEXVITAD_MISMATCH"; "NEXVITAD_UNKNOWN_STATUS" for a
 * value that is not one. Static storage; never NULL. Any thread.
 */
const char *nexvitad_status_name(int status);

/**
 * Sets (or, with `cb` = NULL, removes) the process-wide log callback.
 *
 * The library logs at NEXVITAD_LOG_INFO when a model is opened and when a bank is built,
 * loaded or saved, and at NEXVITAD_LOG_WARN when something succeeded in a way the caller
 * may not want (Sinkhorn K-means stopped at max_iters without converging). Errors are not
 * logged: they come back as status codes with nexvitad_last_error(). Without a callback
 * the library writes nothing anywhere.
 *
 * `user` is passed back to every call of `cb`; the library never dereferences it. When
 * this function returns, no thread is still running the previous callback, so its `user`
 * may be freed.
 *
 * Thread-safety: may be called from any thread, but not from inside the log callback
 * itself (that returns NEXVITAD_INVALID_ARGUMENT instead of deadlocking).
 *
 * Errors: NEXVITAD_INVALID_ARGUMENT when called from inside the log callback.
 */
nexvitad_status nexvitad_set_log_callback(nexvitad_log_cb cb, void *user);

/**
 * Fills `options` with the defaults: ONNX Runtime found by search, CPU, ONNX Runtime's own
 * thread count, full graph optimisation, the default image limits.
 *
 * Set `options->struct_size = sizeof(nexvitad_options)` first; only fields within it are
 * written. String fields receive pointers to static strings (or NULL), never to be freed.
 *
 * Thread-safety: any thread. Errors: NEXVITAD_INVALID_ARGUMENT when `options` is NULL or
 * its struct_size is too small or larger than this library knows.
 */
nexvitad_status nexvitad_options_default(struct nexvitad_options *options);

/**
 * Opens the model folder `dir` (model.json, hiera.onnx, dinov2.onnx, optional
 * head.safetensors), loading ONNX Runtime on first use.
 *
 * `dir`: NUL-terminated path, read during the call only. `options`: NULL for the
 * defaults, else read during the call only. `out`: receives the new handle on success,
 * which the caller owns and releases with nexvitad_model_free(); untouched on failure.
 *
 * Thread-safety: any thread; several models may be opened at once. The handle is
 * immutable and may be used from any number of threads at once.
 *
 * Errors: NEXVITAD_INVALID_ARGUMENT (NULL `dir` or `out`, bad option), NEXVITAD_IO (folder
 * or file missing), NEXVITAD_FORMAT (bad model.json or ONNX file), NEXVITAD_MISMATCH
 * (ONNX graphs disagree with model.json), NEXVITAD_RUNTIME (ONNX Runtime not found or not
 * loadable), NEXVITAD_UNSUPPORTED (execution provider not available).
 */
nexvitad_status nexvitad_model_open(const char *dir,
                                    const struct nexvitad_options *options,
                                    struct nexvitad_model **out);

/**
 * The model's fingerprint: 64 lowercase hex digits identifying the encoders, the fusion
 * configuration and the head. A bank records it and refuses any other model.
 *
 * Returns a string owned by the model, valid until nexvitad_model_free(model); NULL (with
 * nexvitad_last_error() set) when `model` is not a live model handle.
 *
 * Thread-safety: any thread.
 */
const char *nexvitad_model_fingerprint(const struct nexvitad_model *model);

/**
 * Releases a model handle. NULL is a no-op. Banks built or loaded with the model keep
 * what they need, so they remain usable.
 *
 * Thread-safety: any thread, but not while another thread is still passing the same handle
 * to nexvitad (the library stays memory-safe then, but the other call may fail).
 *
 * Errors: NEXVITAD_INVALID_ARGUMENT when `model` is not a live model handle (already
 * freed, a bank handle, or a stray pointer); nothing is freed then.
 */
nexvitad_status nexvitad_model_free(struct nexvitad_model *model);

/**
 * Fills `options` with the defaults: Sinkhorn K-means with the model's K (0 = model
 * default), epsilon 0.05, 50 iterations, tol 1e-4, coreset ratio 0.1, the model's sigma
 * (-1), image score = max (top fraction 0.1 if switched to TOP_MEAN), no augmentation,
 * the model's target FPR (0), seed 0, batch size 4, at most 4 Mi bank vectors. (A struct
 * of zeros except `sigma` and `tol` < 0 means the same: see the option table at the top.)
 *
 * Set `options->struct_size = sizeof(nexvitad_bank_options)` first; only fields within it
 * are written.
 *
 * Thread-safety: any thread. Errors: NEXVITAD_INVALID_ARGUMENT (NULL or bad struct_size).
 */
nexvitad_status nexvitad_bank_options_default(struct nexvitad_bank_options *options);

/**
 * Builds a memory bank from `n` normal (defect-free) images of the product: encodes them,
 * fits the bank (Sinkhorn K-means prototypes by default) and calibrates the decision
 * thresholds by leave-one-out over the images. Minutes for many large images on CPU; use
 * `cb` to show progress or cancel.
 *
 * `model`: a live model handle. `images`: `n` caller-owned images (any sizes and formats
 * mixed), read during the call only. `options`: NULL for the defaults, else read during
 * the call only. `cb`: NULL, or called after each batch/iteration on the calling thread
 * with `user`; returning non-zero cancels. `out`: receives the new bank on success, owned
 * by the caller (nexvitad_bank_free()); untouched on any failure, including cancellation.
 *
 * The result depends only on the images, the options (including the seed) and the model:
 * building twice gives the same bank.
 *
 * Thread-safety: any thread; builds on one model may run concurrently.
 *
 * Errors: NEXVITAD_INVALID_ARGUMENT (NULL pointer, n = 0, bad image or option, k larger
 * than the number of patch vectors), NEXVITAD_LIMIT_EXCEEDED (image above the model's
 * limits, more than max_vectors bank vectors), NEXVITAD_CANCELLED (the callback returned
 * non-zero), NEXVITAD_RUNTIME (ONNX Runtime failed).
 */
nexvitad_status nexvitad_bank_build(const struct nexvitad_model *model,
                                    const struct nexvitad_image *images,
                                    size_t n,
                                    const struct nexvitad_bank_options *options,
                                    nexvitad_progress_cb cb,
                                    void *user,
                                    struct nexvitad_bank **out);

/**
 * Saves the bank to `path` (a safetensors file, readable from Python). The write is
 * atomic: a temp file beside `path` is written, synced and renamed over it, so a crash
 * never leaves a half-written bank and an existing file is replaced only on success.
 *
 * `path`: NUL-terminated, read during the call only.
 *
 * Thread-safety: any thread; do not save two banks to the same path at the same moment.
 *
 * Errors: NEXVITAD_INVALID_ARGUMENT (NULL or empty argument, not a live bank),
 * NEXVITAD_IO (cannot write).
 */
nexvitad_status nexvitad_bank_save(const struct nexvitad_bank *bank, const char *path);

/**
 * Loads a bank saved by nexvitad_bank_save() and checks that `model` built it.
 *
 * `model`: a live model handle (the bank keeps it alive). `path`: NUL-terminated, read
 * during the call only. `out`: receives the new bank on success, owned by the caller
 * (nexvitad_bank_free()); untouched on failure.
 *
 * Thread-safety: any thread.
 *
 * Errors: NEXVITAD_INVALID_ARGUMENT (NULL or empty argument), NEXVITAD_IO (missing or
 * unreadable file), NEXVITAD_FORMAT (not a bank, corrupt or truncated),
 * NEXVITAD_MISMATCH (built by another model), NEXVITAD_LIMIT_EXCEEDED (file above 8 GiB).
 */
nexvitad_status nexvitad_bank_load(const struct nexvitad_model *model,
                                   const char *path,
                                   struct nexvitad_bank **out);

/**
 * Describes the bank: scorer, sizes, sigma, thresholds, build settings.
 *
 * Set `info->struct_size = sizeof(nexvitad_bank_info)` first; only fields within it are
 * written, and nothing is written on failure.
 *
 * Thread-safety: any thread. Errors: NEXVITAD_INVALID_ARGUMENT (NULL, bad struct_size, not
 * a live bank).
 */
nexvitad_status nexvitad_bank_get_info(const struct nexvitad_bank *bank,
                                       struct nexvitad_bank_info *info);

/**
 * Copies the bank's default region of interest into `out`, `roi_width * roi_height` bytes
 * (nexvitad_bank_info), row-major, 1 = inspect and 0 = ignore (revision 4).
 *
 * `out_len`: bytes `out` holds; at least the mask's size. Nothing is written on failure.
 *
 * Thread-safety: any thread. Errors: NEXVITAD_INVALID_ARGUMENT (NULL `out`, not a live
 * bank, a bank without a ROI, `out_len` smaller than the mask).
 */
nexvitad_status nexvitad_bank_get_roi(const struct nexvitad_bank *bank,
                                      uint8_t *out,
                                      size_t out_len);

/**
 * A copy of `bank` whose thresholds aim at another false-positive rate (revision 4):
 * computed from the normal-image scores the bank stored when it was built, so nothing is
 * re-encoded and it takes microseconds. The image threshold is exactly what a build at
 * `target_fpr` would set; the pixel threshold comes from the stored tail of normal pixel
 * scores (20 points per decade from 0.89 down to 1e-5; between two points, the stricter).
 * Save the new bank with nexvitad_bank_save() to keep it.
 *
 * `target_fpr`: in (0, 1). `out`: receives the new bank (same model, vectors and ROI),
 * owned by the caller; untouched on failure. The original bank is unchanged (banks are
 * immutable, so threads scoring with it are unaffected).
 *
 * Thread-safety: any thread. Errors: NEXVITAD_INVALID_ARGUMENT (NULL `out`, not a live
 * bank, `target_fpr` outside (0, 1) or NaN, a bank saved before banks stored their
 * pixel-score tail: rebuild it).
 */
nexvitad_status nexvitad_bank_recalibrate(const struct nexvitad_bank *bank,
                                          float target_fpr,
                                          struct nexvitad_bank **out);

/**
 * A new bank: `bank` with `n` more good images, fitted and calibrated again (leave-one-out
 * over all its images) exactly as nexvitad_bank_build() would from all of them at once:
 * the result equals that build bit for bit (revision 5). The bank must be growable
 * (nexvitad_bank_options.growable); the new images get its augmentation and region of
 * interest. `bank` is unchanged (handles are immutable); save the new one to keep it.
 *
 * `images`, `cb`, `user`: as nexvitad_bank_build() (encoding, then clustering and
 * calibration over all images). `out`: the new bank, owned by the caller; untouched on
 * failure.
 *
 * Thread-safety: any thread. Errors: NEXVITAD_INVALID_ARGUMENT (NULL argument, n = 0, a
 * bad image, a bank that is not growable, an image of another size than a per-position
 * tile bank's), NEXVITAD_LIMIT_EXCEEDED (more than max_vectors rows), NEXVITAD_CANCELLED,
 * NEXVITAD_RUNTIME.
 */
nexvitad_status nexvitad_bank_add(const struct nexvitad_bank *bank,
                                  const struct nexvitad_image *images,
                                  size_t n,
                                  nexvitad_progress_cb cb,
                                  void *user,
                                  struct nexvitad_bank **out);

/**
 * A new bank from the images of two growable banks, `a`'s first: bit for bit the bank
 * nexvitad_bank_build() makes from all of them at once, fitted and calibrated again
 * (revision 5). Both banks must come from the same model and agree on every setting that
 * shapes a bank (scorer, k, sigma, image score, augmentation, seed, target FPR, Sinkhorn
 * and coreset parameters, region of interest, tiling); the first that differs is named.
 *
 * `cb`, `user`: clustering and calibration progress, as nexvitad_bank_build(). `out`: the
 * new bank, owned by the caller, scoring with `a`'s model; untouched on failure.
 *
 * Thread-safety: any thread. Errors: NEXVITAD_INVALID_ARGUMENT (NULL argument, a bank that
 * is not growable), NEXVITAD_MISMATCH (banks of different models or settings),
 * NEXVITAD_LIMIT_EXCEEDED, NEXVITAD_CANCELLED.
 */
nexvitad_status nexvitad_bank_merge(const struct nexvitad_bank *a,
                                    const struct nexvitad_bank *b,
                                    nexvitad_progress_cb cb,
                                    void *user,
                                    struct nexvitad_bank **out);

/**
 * Releases a bank handle (and, if it was the last user, its model). NULL is a no-op.
 *
 * Thread-safety: any thread, but not while another thread still passes the same handle.
 *
 * Errors: NEXVITAD_INVALID_ARGUMENT when `bank` is not a live bank handle (already freed,
 * a model handle, or a stray pointer); nothing is freed then.
 */
nexvitad_status nexvitad_bank_free(struct nexvitad_bank *bank);

/**
 * Scores one image: its anomaly map at the image's own width x height, its image score,
 * the bank's thresholds and the decision.
 *
 * `bank`: a live bank handle. `model`: NULL to score with the model the bank was built or
 * loaded with, which the bank keeps alive (ABI revision 2; check
 * `nexvitad_abi_revision() >= 2`, older libraries refuse NULL), else a live model handle
 * with the bank's fingerprint: the bank's own model or one opened from the same folder
 * (e.g. with other options); its encoders then run the image, and any other model gives
 * NEXVITAD_MISMATCH. Handles may be freed in any order: after nexvitad_model_free() the
 * bank alone still scores with a NULL `model`. `image`: caller-owned, read during the call only. `map_out`:
 * NULL if only the result is wanted, else a caller buffer of `map_len` floats that
 * receives the row-major map (width x height floats; `map_len` may be larger). `out`:
 * caller struct with `struct_size` set; receives the result. Nothing is written unless the
 * call succeeds.
 *
 * Thread-safety: any thread; any number of threads may score with the same model and bank
 * at once, with results identical to scoring one at a time.
 *
 * Errors: NEXVITAD_INVALID_ARGUMENT (NULL bank, image or out; `model` or `bank` not a live
 * handle of its kind; bad image; map_len below width x height), NEXVITAD_LIMIT_EXCEEDED
 * (image above the model's limits), NEXVITAD_MISMATCH (`model` is not NULL and has another
 * fingerprint than the bank's), NEXVITAD_RUNTIME (ONNX Runtime failed).
 */
nexvitad_status nexvitad_score(const struct nexvitad_model *model,
                               const struct nexvitad_bank *bank,
                               const struct nexvitad_image *image,
                               float *map_out,
                               size_t map_len,
                               struct nexvitad_result *out);

/**
 * Scores `n` images in one call (the encoders run on groups of up to 16 images, which is
 * faster than one at a time on most machines).
 *
 * `images`: `n` caller-owned images, any sizes. `maps_out`: NULL if no maps are wanted,
 * else an array of `n` pointers, each NULL (no map for that image) or a buffer of
 * `map_lens[i]` floats that receives image i's row-major map. `map_lens`: `n` lengths;
 * may be NULL only when `maps_out` is NULL. `results`: an array of `n` nexvitad_result;
 * set `results[0].struct_size = sizeof(nexvitad_result)`, which the library also takes as
 * the array's element size and writes into every element. Nothing is written unless the
 * whole call succeeds.
 *
 * `model`: as in nexvitad_score(): NULL for the bank's own model (ABI revision 2), else a
 * live model with the bank's fingerprint.
 *
 * Thread-safety and errors: as nexvitad_score(); messages name the image index.
 */
nexvitad_status nexvitad_score_batch(const struct nexvitad_model *model,
                                     const struct nexvitad_bank *bank,
                                     const struct nexvitad_image *images,
                                     size_t n,
                                     float *const *maps_out,
                                     const size_t *map_lens,
                                     struct nexvitad_result *results);

/**
 * nexvitad_score_batch() with per-call options for every image (revision 5): thresholds,
 * the region of interest and `min_region_area` as in nexvitad_score_with_options(). Each
 * result's `region_count` counts that image's defect regions (of at least
 * `min_region_area` pixels); the regions themselves come from
 * nexvitad_score_with_options(), one image at a time. `options` NULL = the defaults.
 *
 * Arguments, thread-safety and errors: as nexvitad_score_batch(), plus the option errors of
 * nexvitad_score_with_options().
 */
nexvitad_status nexvitad_score_batch_with_options(const struct nexvitad_model *model,
                                                  const struct nexvitad_bank *bank,
                                                  const struct nexvitad_image *images,
                                                  size_t n,
                                                  const struct nexvitad_score_options *options,
                                                  float *const *maps_out,
                                                  const size_t *map_lens,
                                                  struct nexvitad_result *results);

/**
 * Fills `options` with the defaults: the bank's image and pixel thresholds (-1), every
 * region kept (min_region_area 0). Set `options->struct_size` first. (Revision 3.)
 *
 * Errors: NEXVITAD_INVALID_ARGUMENT (NULL `options`, bad struct_size).
 */
nexvitad_status nexvitad_score_options_default(struct nexvitad_score_options *options);

/**
 * Scores one image as nexvitad_score() does, with per-call thresholds and defect regions
 * (revision 3; check `nexvitad_abi_revision() >= 3`).
 *
 * `options`: NULL for the defaults (the bank's thresholds), else a caller struct with
 * `struct_size` set: a non-negative `image_threshold` decides at that threshold instead
 * of the bank's, a non-negative `pixel_threshold` draws the regions there; the result's
 * `threshold_flags` says which were the caller's and its thresholds are the ones used.
 *
 * Regions (connected pieces of the map above the pixel threshold, 8-neighbour, of at
 * least `min_region_area` pixels, highest peak first) are found when `region_count` is
 * not NULL (and `regions` without `region_count` is an error, not silently ignored): `*region_count` (and `out->region_count`) receive how many there are, and the
 * first min(count, `regions_cap`) are written to `regions`, a caller array of
 * `regions_cap` nexvitad_region. Like snprintf, a count above `regions_cap` is not an
 * error: call again with a larger array, or pass `regions` = NULL with `regions_cap` = 0
 * to ask only for the count. nexvitad_region never grows (a larger record would come with
 * a new function), so no element size is passed. No memory crosses the boundary.
 *
 * `model`, `bank`, `image`, `map_out`, `map_len`, `out`, thread-safety: as nexvitad_score().
 * Nothing is written unless the call succeeds.
 *
 * Region of interest (revision 4): `options->roi` replaces the bank's default ROI for this
 * call; NULL keeps the bank's (or the whole image when `ignore_bank_roi` is 1). Map
 * pixels outside it are 0, and the image score and the regions come from inside; the
 * result's `roi_source` says which ROI applied.
 *
 * Errors: as nexvitad_score(), and NEXVITAD_INVALID_ARGUMENT for a NaN or infinite
 * threshold, a bad `options->struct_size`, `regions` NULL with `regions_cap` > 0,
 * `regions` given with `region_count` NULL, a bad `options->roi` (NULL data, 0 width or
 * height, stride below width, all zero: it selects nothing) or `ignore_bank_roi` not 0/1.
 */
nexvitad_status nexvitad_score_with_options(const struct nexvitad_model *model,
                                            const struct nexvitad_bank *bank,
                                            const struct nexvitad_image *image,
                                            const struct nexvitad_score_options *options,
                                            float *map_out,
                                            size_t map_len,
                                            struct nexvitad_region *regions,
                                            size_t regions_cap,
                                            size_t *region_count,
                                            struct nexvitad_result *out);

/**
 * Fills `options` with the defaults of `nexvitad train`: 4 epochs, batch 8, lr 1e-3,
 * weight decay 0.01, theta 0 and lambda1, lambda2 -1 (= the model's model.json values, normally 0.7,
 * 1.0, 0.5), seed 0, decoder width 32, a checkpoint every 20 steps, 2 perturbed copies
 * per target image with flips, noise 8, jitter 0.2, resume 0, target_test 0.
 *
 * Set `options->struct_size = sizeof(nexvitad_train_options)` first; only fields within it
 * are written.
 *
 * Thread-safety: any thread. Errors: NEXVITAD_INVALID_ARGUMENT (NULL or bad struct_size).
 */
nexvitad_status nexvitad_train_options_default(struct nexvitad_train_options *options);

/**
 * Trains `model`'s fusion head on labelled source domains and one unlabeled target domain
 * (adapters and projections through a multi-task decoder with pseudo-labels and a
 * consistency loss; the encoders stay frozen) and writes the trained model to `out_dir`.
 * Minutes or more on CPU for real data; use `cb` to show progress or cancel.
 *
 * `model`: a live model handle, the base model (its head, trained or not, is the start).
 * `data_root`: a dataset folder in MVTec AD layout, one sub-folder per domain. `sources`:
 * `n_sources` (>= 1) distinct domain names, each with defective test images and masks
 * (`<domain>/test/<defect>/<stem>.png` with `<domain>/ground_truth/<defect>/<stem>_mask.png`; its
 * good images count as all-normal). `target`: the unlabeled domain to adapt to (its
 * train/good images; with options->target_test also its test images; its masks are never
 * read); it must not be among the sources. `out_dir`: the new model folder; it must be new
 * or empty, unless options->resume is 1. `options`: NULL for the defaults, else read
 * during the call only. Strings are NUL-terminated and read during the call only.
 * `cb`: NULL, or called with `user` on the calling thread after each encoded image and
 * each step; returning non-zero cancels. `result`: NULL, or (with its struct_size set)
 * receives the run's summary on success; untouched on failure.
 *
 * What is written to `out_dir`: hiera.onnx and dinov2.onnx (hard links to the base
 * model's, copies where linking fails), head.safetensors (the trained head),
 * decoder.safetensors (the decoder and its heads), model.json (the base model's, plus a
 * `training` record of the data, domains and options) and checkpoint.safetensors
 * (weights, optimiser state and position). Each file is written atomically (temp file,
 * sync, rename), model.json last: a folder with a model.json always holds its head, and
 * only after success is `out_dir` a model folder for nexvitad_model_open() (its banks
 * must be built with it: the fingerprint differs from the base model's).
 *
 * Checkpoints: every options->checkpoint_every steps, when cancelled after a step, and at
 * the end. Cancelling (`cb` returns non-zero) returns NEXVITAD_CANCELLED and leaves the
 * checkpoint of the last finished step, or when cancelled while encoding the feature sets
 * encoded so far in the feature cache. Calling again with the same model, data, domains
 * and options plus options->resume = 1 continues from there; the finished model is then
 * bit-identical to that of an unbroken run (`epochs` may be raised to train longer).
 *
 * Feature cache (revision 7): the encoder outputs of every image and perturbed copy go to
 * `features.nxcache` in options->cache_dir (NULL: `out_dir`), each record checksummed:
 * a resumed call reuses every record that verifies and encodes only the others (a
 * truncated or corrupt file is repaired, never read as features). Up to options->cache_mem
 * bytes of them stay in memory, the rest are read from the file at each step; the trained
 * model is the same bit for bit whatever the budget. The file's space is reserved before
 * encoding, so a disk too small fails at once (NEXVITAD_IO, naming the size needed) and
 * leaves no cache behind.
 *
 * Deterministic: the same base model, data, domains and options (seed included) give the
 * same files, bit for bit, with the same number of compute threads. Training runs on the
 * CPU through candle; its kernel threads come from the environment variable
 * CANDLE_NUM_THREADS (read at each call; unset = every core; 1 is fastest on a few busy
 * cores), the encoders from the model's options.
 *
 * Thread-safety: any thread; trainings on one model may run concurrently (and so may
 * scoring with it), but never two into the same `out_dir`.
 *
 * Errors: NEXVITAD_INVALID_ARGUMENT (NULL pointer or empty string, n_sources = 0, a
 * repeated source, the target among the sources, a domain that is missing or has no
 * images, a source without masks, `out_dir` not empty without resume, resume without a
 * checkpoint or feature cache, an option out of range such as theta outside (0, 1), a
 * cache_mem below one step's feature sets, a cache in use by another run - the message
 * names it),
 * NEXVITAD_IO (data_root missing, a file unreadable or unwritable), NEXVITAD_FORMAT (a
 * corrupt image or checkpoint), NEXVITAD_MISMATCH (resume with a checkpoint of other
 * data or options; a feature cache in cache_dir of other data), NEXVITAD_CANCELLED (the callback returned non-zero), NEXVITAD_RUNTIME
 * (ONNX Runtime failed), NEXVITAD_INTERNAL (training diverged: the loss is not finite).
 */
nexvitad_status nexvitad_train(const struct nexvitad_model *model,
                               const char *data_root,
                               const char *const *sources,
                               size_t n_sources,
                               const char *target,
                               const char *out_dir,
                               const struct nexvitad_train_options *options,
                               nexvitad_train_progress_cb cb,
                               void *user,
                               struct nexvitad_train_result *result);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* NEXVITAD_H */
