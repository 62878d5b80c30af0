/*
 * ppm.h - read binary PPM (P6, RGB) and PGM (P5, gray) images with maxval 255, and write
 * PGM. Header-only and dependency-free, so the example needs nothing but libnexvitad.
 * Any tool writes these formats (e.g. ImageMagick `convert in.png out.ppm`, Pillow).
 */
#ifndef NEXVITAD_EXAMPLE_PPM_H
#define NEXVITAD_EXAMPLE_PPM_H

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <nexvitad.h>

/* An image read from disk; `view` points into `pixels` (free with ppm_free). */
typedef struct ppm_image {
    uint8_t *pixels;
    nexvitad_image view;
} ppm_image;

/* Next header number, skipping whitespace and '#' comments; -1 on error. */
static inline long ppm_header_number(FILE *f) {
    int c = fgetc(f);
    for (;;) {
        while (c != EOF && isspace(c)) c = fgetc(f);
        if (c != '#') break;
        while (c != EOF && c != '\n') c = fgetc(f);
    }
    if (c == EOF || !isdigit(c)) return -1;
    long v = 0;
    while (c != EOF && isdigit(c)) {
        v = v * 10 + (c - '0');
        if (v > 1000000) return -1;
        c = fgetc(f);
    }
    /* exactly one whitespace byte ends the header's last number; it is consumed here */
    return v;
}

/* Reads `path` into `out`; returns 0 on success, -1 (with a message on stderr) on failure. */
static inline int ppm_read(const char *path, ppm_image *out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    int channels = 0;
    if (fgetc(f) == 'P') {
        int t = fgetc(f);
        channels = t == '6' ? 3 : t == '5' ? 1 : 0;
    }
    long w = ppm_header_number(f), h = ppm_header_number(f), maxval = ppm_header_number(f);
    if (channels == 0 || w <= 0 || h <= 0 || maxval != 255) {
        fprintf(stderr, "%s: not a binary 8-bit PPM (P6) or PGM (P5) file\n", path);
        fclose(f);
        return -1;
    }
    size_t n = (size_t)w * (size_t)h * (size_t)channels;
    uint8_t *px = (uint8_t *)malloc(n);
    if (!px || fread(px, 1, n, f) != n) {
        fprintf(stderr, "%s: truncated pixel data\n", path);
        free(px);
        fclose(f);
        return -1;
    }
    fclose(f);
    out->pixels = px;
    out->view.data = px;
    out->view.width = (uint32_t)w;
    out->view.height = (uint32_t)h;
    out->view.stride = (size_t)w * (size_t)channels;
    out->view.format = channels == 3 ? NEXVITAD_PIXEL_RGB8 : NEXVITAD_PIXEL_GRAY8;
    return 0;
}

static inline void ppm_free(ppm_image *im) {
    free(im->pixels);
    im->pixels = NULL;
}

/* Writes a w x h map as an 8-bit PGM, mapping [0, hi] linearly to [0, 255]. */
static inline int pgm_write_map(const char *path, const float *map, uint32_t w, uint32_t h, float hi) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return -1;
    }
    fprintf(f, "P5\n%u %u\n255\n", w, h);
    for (size_t i = 0; i < (size_t)w * h; i++) {
        float v = hi > 0 ? map[i] / hi * 255.0f : 0.0f;
        fputc(v <= 0 ? 0 : v >= 255 ? 255 : (int)(v + 0.5f), f);
    }
    return fclose(f) == 0 ? 0 : -1;
}

#endif /* NEXVITAD_EXAMPLE_PPM_H */
