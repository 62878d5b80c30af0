/*
 * nexvitad_example - the whole C workflow in one program:
 *   open a model -> build a memory bank from a folder of good images -> save and reload it
 *   -> score images -> write each anomaly map as a PGM heatmap -> print the scores.
 *
 * Usage: nexvitad_example MODEL_DIR GOOD_DIR OUT_DIR IMAGE.ppm|.pgm...
 *   e.g. nexvitad_example models/tiny examples/c/data/good out examples/c/data/test/scratch.ppm
 *
 * Images are binary PPM (P6) or PGM (P5); see ppm.h. Build against an installed nexvitad:
 *   cc -std=c99 nexvitad_example.c $(pkg-config --cflags --libs nexvitad) -o nexvitad_example
 * or with CMake (CMakeLists.txt here): find_package(nexvitad) + nexvitad::nexvitad.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nexvitad.h>

#include "ppm.h"

#define MAX_GOOD 256

/* Prints the failed call, its status and the library's message; returns 1 for main. */
static int fail(const char *what, nexvitad_status st) {
    fprintf(stderr, "%s failed: %s: %s\n", what, nexvitad_status_name(st), nexvitad_last_error());
    return 1;
}

static void on_log(void *user, int level, const char *message) {
    (void)user;
    printf("[nexvitad %s] %s\n", level == NEXVITAD_LOG_WARN ? "warn" : "info", message);
}

static int on_progress(void *user, int stage, size_t done, size_t total) {
    static const char *names[] = {"encode", "cluster", "calibrate"};
    (void)user;
    if (stage >= 0 && stage <= 2 && (done == total || stage != NEXVITAD_STAGE_CLUSTER))
        printf("  %-9s %zu/%zu\n", names[stage], done, total);
    return 0; /* non-zero would cancel the build */
}

static int is_image_name(const char *name) {
    size_t n = strlen(name);
    return n > 4 && (strcmp(name + n - 4, ".ppm") == 0 || strcmp(name + n - 4, ".pgm") == 0);
}

/* Reads every .ppm/.pgm in `dir`, in name order; returns how many, or -1. */
static int read_folder(const char *dir, ppm_image *out, int max) {
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return -1;
    }
    char *names[MAX_GOOD];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max)
        if (is_image_name(e->d_name)) names[n++] = strdup(e->d_name);
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort: deterministic order, few files */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    int ok = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (ppm_read(path, &out[ok]) == 0) ok++;
        free(names[i]);
    }
    if (ok == n) return n;
    for (int i = 0; i < ok; i++) ppm_free(&out[i]);
    return -1;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL_DIR GOOD_DIR OUT_DIR IMAGE...\n", argv[0]);
        return 2;
    }
    const char *model_dir = argv[1], *good_dir = argv[2], *out_dir = argv[3];
    if (nexvitad_abi_version() != NEXVITAD_ABI_VERSION) {
        fprintf(stderr, "libnexvitad ABI %u, header ABI %d\n", nexvitad_abi_version(), NEXVITAD_ABI_VERSION);
        return 1;
    }
    printf("nexvitad %s (ABI %u)\n", nexvitad_version(), nexvitad_abi_version());
    nexvitad_set_log_callback(on_log, NULL);

    int rc = 1;
    nexvitad_status st;
    nexvitad_model *model = NULL;
    nexvitad_bank *bank = NULL;
    ppm_image good[MAX_GOOD];
    nexvitad_image views[MAX_GOOD];
    int n_good = 0;
    char bank_path[4096];
    snprintf(bank_path, sizeof bank_path, "%s/bank.safetensors", out_dir);

    /* 1. Open the model (ONNX Runtime is found beside libnexvitad.so). */
    nexvitad_options opts;
    opts.struct_size = sizeof opts;
    nexvitad_options_default(&opts);
    opts.intra_threads = 2;
    if ((st = nexvitad_model_open(model_dir, &opts, &model)) != NEXVITAD_OK) {
        rc = fail("nexvitad_model_open", st);
        goto done;
    }
    printf("model fingerprint %s\n", nexvitad_model_fingerprint(model));

    /* 2. Build a bank from the good images, save it, and load it back. */
    n_good = read_folder(good_dir, good, MAX_GOOD);
    if (n_good <= 0) {
        fprintf(stderr, "no readable .ppm/.pgm images in %s\n", good_dir);
        n_good = n_good < 0 ? 0 : n_good;
        goto done;
    }
    for (int i = 0; i < n_good; i++) views[i] = good[i].view;
    nexvitad_bank_options bopts;
    bopts.struct_size = sizeof bopts;
    nexvitad_bank_options_default(&bopts);
    bopts.seed = 7;
    printf("building a bank from %d images\n", n_good);
    if ((st = nexvitad_bank_build(model, views, (size_t)n_good, &bopts, on_progress, NULL, &bank)) != NEXVITAD_OK) {
        rc = fail("nexvitad_bank_build", st);
        goto done;
    }
    if ((st = nexvitad_bank_save(bank, bank_path)) != NEXVITAD_OK) {
        rc = fail("nexvitad_bank_save", st);
        goto done;
    }
    nexvitad_bank_free(bank);
    bank = NULL;
    if ((st = nexvitad_bank_load(model, bank_path, &bank)) != NEXVITAD_OK) {
        rc = fail("nexvitad_bank_load", st);
        goto done;
    }
    nexvitad_bank_info info;
    info.struct_size = sizeof info;
    nexvitad_bank_get_info(bank, &info);
    printf("bank: %llu vectors of width %u, grid %ux%u, image threshold %.4f, pixel threshold %.4f\n",
           (unsigned long long)info.vectors, info.dim, info.grid_w, info.grid_h, info.image_threshold,
           info.pixel_threshold);

    /* 3. Score each image, write its heatmap (pixel threshold = mid gray), print the verdict. */
    printf("%-28s %10s %10s  %s\n", "image", "score", "threshold", "verdict");
    rc = 0;
    for (int a = 4; a < argc; a++) {
        ppm_image im;
        if (ppm_read(argv[a], &im) != 0) {
            rc = 1;
            continue;
        }
        size_t len = (size_t)im.view.width * im.view.height;
        float *map = (float *)malloc(len * sizeof *map);
        nexvitad_result r;
        r.struct_size = sizeof r;
        st = map ? nexvitad_score(model, bank, &im.view, map, len, &r) : NEXVITAD_INTERNAL;
        if (st == NEXVITAD_OK) {
            const char *base = strrchr(argv[a], '/') ? strrchr(argv[a], '/') + 1 : argv[a];
            char heat[4096];
            snprintf(heat, sizeof heat, "%s/%s.heat.pgm", out_dir, base);
            if (pgm_write_map(heat, map, r.width, r.height, 2.0f * r.pixel_threshold) != 0) rc = 1;
            printf("%-28s %10.4f %10.4f  %s\n", base, r.image_score, r.image_threshold,
                   r.is_anomalous ? "DEFECT" : "ok");
        } else {
            rc = fail(argv[a], st);
        }
        free(map);
        ppm_free(&im);
    }

done:
    for (int i = 0; i < n_good; i++) ppm_free(&good[i]);
    nexvitad_bank_free(bank); /* NULL-safe; either order works */
    nexvitad_model_free(model);
    nexvitad_set_log_callback(NULL, NULL);
    return rc;
}
