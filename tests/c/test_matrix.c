/*
 * test_matrix.c - the bad-input matrix of the nexvitad C ABI: one table row per input class,
 * with the status code and the message a caller sees. The table below is the single source:
 * `test_matrix --markdown` prints it as the table of docs/reliability.md, and
 * tests/c/matrix-doc.sh checks (or rewrites) that section from it, so the two cannot drift.
 *
 * Usage: test_matrix MODEL_DIR DATA_DIR WORK_DIR FAKE_ORT_SO
 *        test_matrix --markdown
 *   MODEL_DIR    models/tiny
 *   DATA_DIR     examples/c/data (its good/ images)
 *   WORK_DIR     an empty writable folder; every damaged file and model folder is made there
 *   FAKE_ORT_SO  tests/c/fake_ort.c built as a shared library (an "ONNX Runtime 1.10.0")
 *
 * A message template must equal nexvitad_last_error() after the call, where {work} and
 * {model} stand for the folders above, {lib} for the loaded libnexvitad.so and {libdir} for its
 * folder, {fake_ort} for FAKE_ORT_SO, {addr} for a hex address; a template ending in "..." is a prefix (the rest
 * comes from errno text, ONNX Runtime, or a parser and may vary between versions).
 *
 * Prints one line per failing row and "N rows: N passed, N failed"; exits non-zero on failure.
 */
#define _GNU_SOURCE /* syscall */

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nexvitad.h>

#include "selftest.h"

#include "ppm.h"

/* ---- fixtures ------------------------------------------------------------------------ */

static const char *g_model_dir, *g_data_dir, *g_work_dir, *g_fake_ort;
static char g_lib_path[4096];      /* the libnexvitad.so this process loaded */
static char g_lib_dir[4096];       /* its folder, where ONNX Runtime is found */
static nexvitad_model *g_m;        /* models/tiny */
static nexvitad_model *g_other;    /* the same with another fusion: another fingerprint */
static nexvitad_bank *g_b;         /* built by g_m from 2 good images */
static char g_bank_path[4096];     /* g_b, saved */
static ppm_image g_good[2];
static nexvitad_image g_views[2];  /* the good images; g_views[0] is also the scored image */

/* The message of the row's failing call, copied right after it (later calls reset it). */
static char g_msg[8192];

static nexvitad_status keep(nexvitad_status s) {
    snprintf(g_msg, sizeof g_msg, "%s", nexvitad_last_error());
    return s;
}

static const char *in_work(const char *name) {
    static char p[8][4096];
    static int next;
    char *out = p[next++ % 8];
    snprintf(out, sizeof p[0], "%s/%s", g_work_dir, name);
    return out;
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

/* Reads a whole file into a malloc'd buffer (NUL-terminated); NULL on failure. */
static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = (char *)malloc((size_t)len + 1);
    size_t got = fread(buf, 1, (size_t)len, f);
    fclose(f);
    if (got != (size_t)len) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    *n = (size_t)len;
    return buf;
}

static int copy_file(const char *from, const char *to) {
    size_t n;
    char *b = read_file(from, &n);
    if (!b) return -1;
    int r = write_file(to, b, n);
    free(b);
    return r;
}

/* A sparse file of `len` bytes: huge on paper, nothing on disk. */
static int sparse_file(const char *path, long long len) {
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd < 0) return -1;
    int r = ftruncate(fd, (off_t)len);
    close(fd);
    return r;
}

/* ---- model folders ------------------------------------------------------------------- */

/* Copies MODEL_DIR to WORK_DIR/name (model.json, hiera.onnx, dinov2.onnx) and returns its
   path. With `old` set, the first occurrence of `old` in model.json is replaced by `new_`. */
static const char *model_variant(const char *name, const char *old, const char *new_) {
    static const char *files[] = {"model.json", "hiera.onnx", "dinov2.onnx"};
    const char *dir = in_work(name);
    mkdir(dir, 0755);
    char from[4096], to[4096];
    for (int i = 0; i < 3; i++) {
        snprintf(from, sizeof from, "%s/%s", g_model_dir, files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        unlink(to);
        if (copy_file(from, to) != 0) fprintf(stderr, "cannot copy %s\n", from);
    }
    if (old) {
        snprintf(to, sizeof to, "%s/model.json", dir);
        size_t n;
        char *json = read_file(to, &n);
        char *at = json ? strstr(json, old) : NULL;
        if (!at) {
            fprintf(stderr, "model_variant %s: '%s' not in model.json\n", name, old);
        } else {
            size_t ol = strlen(old), nl = strlen(new_);
            char *out = (char *)malloc(n - ol + nl + 1);
            size_t head = (size_t)(at - json);
            memcpy(out, json, head);
            memcpy(out + head, new_, nl);
            memcpy(out + head + nl, at + ol, n - head - ol);
            write_file(to, out, n - ol + nl);
            free(out);
        }
        free(json);
    }
    return dir;
}

/* The path of `file` inside a model variant folder. */
static const char *in_dir(const char *dir, const char *file) {
    static char p[4][4096];
    static int next;
    char *out = p[next++ % 4];
    snprintf(out, sizeof p[0], "%s/%s", dir, file);
    return out;
}

static nexvitad_options options(void) {
    nexvitad_options o;
    o.struct_size = sizeof o;
    nexvitad_options_default(&o);
    o.intra_threads = 1;
    return o;
}

/* Opens `dir`; the status and message of the open are kept; a model that opens is freed. */
static nexvitad_status open_dir_with(const char *dir, const nexvitad_options *o) {
    nexvitad_model *m = NULL;
    nexvitad_status s = keep(nexvitad_model_open(dir, o, &m));
    if (s == NEXVITAD_OK) nexvitad_model_free(m);
    return s;
}

static nexvitad_status open_dir(const char *dir) {
    nexvitad_options o = options();
    return open_dir_with(dir, &o);
}

/* model.json edited: the first `old` becomes `new_`. */
static nexvitad_status open_edited(const char *name, const char *old, const char *new_) {
    return open_dir(model_variant(name, old, new_));
}

/* Raises (on != 0, as far as the permitted set allows) or drops CAP_DAC_OVERRIDE and
   CAP_DAC_READ_SEARCH in the calling thread's effective capabilities. 0 on success. */
static int set_dac_caps(int on) {
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    const uint32_t dac = (1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH);
    if (syscall(SYS_capget, &hdr, data) != 0) return -1;
    data[0].effective = on ? data[0].effective | (dac & data[0].permitted) : data[0].effective & ~dac;
    return (int)syscall(SYS_capset, &hdr, data);
}

/* Runs `call` with the file access of an ordinary owner. As root, permission bits do not stop
   reads (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so those two capabilities leave the calling
   thread's effective set for the call: a mode-000 file of root's is then unreadable while the
   folders above it stay traversable (root owns them, or they are open to all), wherever the
   work folder is. */
static nexvitad_status unprivileged(nexvitad_status (*call)(const char *), const char *arg) {
    if (geteuid() != 0) return call(arg);
    if (set_dac_caps(0) != 0) {
        snprintf(g_msg, sizeof g_msg, "(capset failed: cannot drop root's file access)");
        return (nexvitad_status)-1;
    }
    nexvitad_status s = call(arg);
    set_dac_caps(1);
    return s;
}

/* ---- banks --------------------------------------------------------------------------- */

static nexvitad_status load_path(const char *path) {
    nexvitad_bank *b = NULL;
    nexvitad_status s = keep(nexvitad_bank_load(g_m, path, &b));
    if (s == NEXVITAD_OK) nexvitad_bank_free(b);
    return s;
}

/* The saved bank, changed by `edit`, written to WORK_DIR/name and loaded. */
static nexvitad_status load_edited(const char *name, void (*edit)(char *bytes, size_t *n)) {
    size_t n;
    char *b = read_file(g_bank_path, &n);
    if (!b) return (nexvitad_status)-1;
    edit(b, &n);
    const char *p = in_work(name);
    write_file(p, b, n);
    free(b);
    return load_path(p);
}

/* Offset of the first tensor byte: 8-byte little-endian header length, then the header. */
static size_t data_offset(const char *b) {
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = (h << 8) | (unsigned char)b[i];
    return 8 + (size_t)h;
}

/* Replaces `old` by `new_` of the same length in the header (keeps every offset). */
static void header_replace(char *b, const char *old, const char *new_) {
    size_t end = data_offset(b), ol = strlen(old);
    for (size_t i = 8; i + ol <= end; i++)
        if (memcmp(b + i, old, ol) == 0) {
            memcpy(b + i, new_, ol);
            return;
        }
    fprintf(stderr, "header_replace: '%s' not found\n", old);
}

static void edit_truncate(char *b, size_t *n) {
    (void)b;
    *n /= 2;
}
static void edit_header_only(char *b, size_t *n) {
    *n = data_offset(b);
}
static void edit_huge_header_len(char *b, size_t *n) {
    (void)n;
    memset(b, 0xff, 7);
    b[7] = 0x7f;
}
static void edit_flip_header_brace(char *b, size_t *n) {
    (void)n;
    b[8] ^= 0x01; /* '{' becomes 'z' */
}
static void edit_flip_threshold_digit(char *b, size_t *n) {
    (void)n;
    /* Inside the "meta" JSON the thresholds are written as "image_threshold\":<digits>. */
    const char *key = "image_threshold\\\":";
    size_t end = data_offset(b), kl = strlen(key);
    for (size_t i = 8; i + kl < end; i++)
        if (memcmp(b + i, key, kl) == 0) {
            size_t d = i + kl;
            while (d < end && !isdigit((unsigned char)b[d])) d++;
            b[d] = b[d] == '1' ? '2' : '1'; /* still a valid number: only a checksum can tell */
            return;
        }
    fprintf(stderr, "edit_flip_threshold_digit: key not found\n");
}
static void edit_flip_vector_bit(char *b, size_t *n) {
    size_t off = data_offset(b) + (*n - data_offset(b)) / 2;
    b[off & ~(size_t)3] ^= 0x01; /* the lowest mantissa bit of one float: still finite */
}
static void edit_nan_vector(char *b, size_t *n) {
    (void)n;
    size_t off = data_offset(b);
    static const unsigned char qnan[4] = {0x00, 0x00, 0xc0, 0x7f};
    memcpy(b + off, qnan, 4);
}
static void edit_future_version(char *b, size_t *n) {
    (void)n;
    header_replace(b, "\"format_version\":\"1\"", "\"format_version\":\"9\"");
}
static void edit_not_a_bank(char *b, size_t *n) {
    (void)n;
    header_replace(b, "nexvitad-bank", "nexvitad-bonk");
}

/* ---- images and scoring -------------------------------------------------------------- */

static nexvitad_status score_image(const nexvitad_model *m, nexvitad_image im) {
    nexvitad_result r;
    r.struct_size = sizeof r;
    return keep(nexvitad_score(m, g_b, &im, NULL, 0, &r));
}

static nexvitad_status score_sized(uint32_t w, uint32_t h, size_t stride, uint32_t format) {
    static const uint8_t pixels[4 * 4 * 4] = {0};
    nexvitad_image im = {pixels, w, h, stride, format};
    return score_image(g_m, im);
}

/* ---- bank builds --------------------------------------------------------------------- */

static nexvitad_bank_options bank_options(void) {
    nexvitad_bank_options o;
    o.struct_size = sizeof o;
    nexvitad_bank_options_default(&o);
    o.max_iters = 5;
    return o;
}

static nexvitad_status build_n(const nexvitad_bank_options *o, size_t n, nexvitad_progress_cb cb, void *user) {
    nexvitad_bank *b = NULL;
    nexvitad_status s = keep(nexvitad_bank_build(g_m, g_views, n, o, cb, user, &b));
    if (s == NEXVITAD_OK) nexvitad_bank_free(b);
    return s;
}

static nexvitad_status build_with(const nexvitad_bank_options *o) {
    return build_n(o, 2, NULL, NULL);
}

static int cancel_at(void *user, int stage, size_t done, size_t total) {
    (void)done, (void)total;
    return stage == *(const int *)user;
}

static nexvitad_status g_nested = NEXVITAD_OK;
static char g_nested_msg[1024];
static void nested_log(void *user, int level, const char *message) {
    (void)user, (void)level, (void)message;
    g_nested = nexvitad_set_log_callback(NULL, NULL);
    snprintf(g_nested_msg, sizeof g_nested_msg, "%s", nexvitad_last_error());
}

/* ---- ONNX Runtime in a fresh process -------------------------------------------------- */

/* A process loads ONNX Runtime once, so each library case runs in a child: this program
   again with --ort-child LIB MODEL_DIR, which opens the model with options->ort_library =
   LIB and writes "<status>\n<message>" to stdout. */
static int ort_child_main(const char *lib, const char *model_dir) {
    nexvitad_options o = options();
    o.ort_library = lib;
    nexvitad_model *m = NULL;
    nexvitad_status s = nexvitad_model_open(model_dir, &o, &m);
    printf("%d\n%s", (int)s, nexvitad_last_error());
    if (s == NEXVITAD_OK) nexvitad_model_free(m);
    return 0;
}

static nexvitad_status open_in_child(const char *lib) {
    int fd[2];
    if (pipe(fd) != 0) return (nexvitad_status)-1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl("/proc/self/exe", "test_matrix", "--ort-child", lib, g_model_dir, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    char out[8192];
    size_t n = 0;
    ssize_t r;
    while (n + 1 < sizeof out && (r = read(fd[0], out + n, sizeof out - 1 - n)) > 0) n += (size_t)r;
    out[n] = '\0';
    close(fd[0]);
    int wst = 0;
    waitpid(pid, &wst, 0);
    char *nl = strchr(out, '\n');
    if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0 || !nl) {
        snprintf(g_msg, sizeof g_msg, "(child failed: wait status %d, output '%.2000s')", wst, out);
        return (nexvitad_status)-1;
    }
    snprintf(g_msg, sizeof g_msg, "%s", nl + 1);
    return (nexvitad_status)atoi(out);
}

/* ===================================================================================== */
/* The rows. Each returns the status of the call under test, its message kept in g_msg.  */
/* ===================================================================================== */

/* Images */
static nexvitad_status i_zero(void) { return score_sized(0, 0, 0, NEXVITAD_PIXEL_RGB8); }
static nexvitad_status i_zero_w(void) { return score_sized(0, 72, 0, NEXVITAD_PIXEL_RGB8); }
static nexvitad_status i_one(void) { return score_sized(1, 1, 0, NEXVITAD_PIXEL_RGB8); }
static nexvitad_status i_one_gray(void) { return score_sized(1, 1, 0, NEXVITAD_PIXEL_GRAY8); }
static nexvitad_status i_huge(void) { return score_sized(100000, 100000, 0, NEXVITAD_PIXEL_RGB8); }
static nexvitad_status i_wide(void) { return score_sized(20000, 1, 0, NEXVITAD_PIXEL_GRAY8); }
static nexvitad_status i_area(void) { return score_sized(8193, 8193, 0, NEXVITAD_PIXEL_GRAY8); }
static nexvitad_status i_tall(void) { return score_sized(1, UINT32_MAX, 0, NEXVITAD_PIXEL_GRAY8); }
static nexvitad_status i_own_limit(void) {
    nexvitad_options o = options();
    o.max_image_side = 64;
    nexvitad_model *small = NULL;
    if (nexvitad_model_open(g_model_dir, &o, &small) != NEXVITAD_OK) return keep(NEXVITAD_INTERNAL);
    nexvitad_status s = score_image(small, g_views[0]);
    nexvitad_model_free(small);
    return s;
}
static nexvitad_status i_stride_overflow(void) {
    nexvitad_image im = g_views[0];
    im.stride = SIZE_MAX / 2;
    return score_image(g_m, im);
}
static nexvitad_status i_stride_short(void) {
    nexvitad_image im = g_views[0];
    im.stride = im.width * 3 - 1;
    return score_image(g_m, im);
}
static nexvitad_status i_data_null(void) {
    nexvitad_image im = g_views[0];
    im.data = NULL;
    return score_image(g_m, im);
}
static nexvitad_status i_format(void) {
    nexvitad_image im = g_views[0];
    im.format = 42;
    return score_image(g_m, im);
}
static nexvitad_status i_image_null(void) {
    nexvitad_result r;
    r.struct_size = sizeof r;
    return keep(nexvitad_score(g_m, g_b, NULL, NULL, 0, &r));
}
static nexvitad_status i_map_short(void) {
    float map[10];
    nexvitad_result r;
    r.struct_size = sizeof r;
    return keep(nexvitad_score(g_m, g_b, &g_views[0], map, 10, &r));
}
static nexvitad_status i_result_size(void) {
    nexvitad_result r;
    r.struct_size = 0;
    return keep(nexvitad_score(g_m, g_b, &g_views[0], NULL, 0, &r));
}
static nexvitad_status i_result_null(void) { return keep(nexvitad_score(g_m, g_b, &g_views[0], NULL, 0, NULL)); }
static nexvitad_status i_build_index(void) {
    nexvitad_image im[2] = {g_views[0], g_views[1]};
    im[1].data = NULL;
    nexvitad_bank *b = NULL;
    return keep(nexvitad_bank_build(g_m, im, 2, NULL, NULL, NULL, &b));
}
static nexvitad_status i_batch_zero(void) {
    nexvitad_result r[1];
    r[0].struct_size = sizeof r[0];
    return keep(nexvitad_score_batch(g_m, g_b, g_views, 0, NULL, NULL, r));
}
static nexvitad_status i_batch_lens(void) {
    nexvitad_result r[2];
    r[0].struct_size = sizeof r[0];
    float a[1], b[1];
    float *maps[2] = {a, b};
    return keep(nexvitad_score_batch(g_m, g_b, g_views, 2, maps, NULL, r));
}
static nexvitad_status i_batch_short(void) {
    nexvitad_result r[2];
    r[0].struct_size = sizeof r[0];
    size_t need = (size_t)g_views[0].width * g_views[0].height;
    float *a = (float *)malloc(need * sizeof *a), b[5];
    float *maps[2] = {a, b};
    size_t lens[2] = {need, 5};
    nexvitad_status s = keep(nexvitad_score_batch(g_m, g_b, g_views, 2, maps, lens, r));
    free(a);
    return s;
}
static nexvitad_status i_batch_results(void) { return keep(nexvitad_score_batch(g_m, g_b, g_views, 2, NULL, NULL, NULL)); }

/* Bank options */
static nexvitad_status o_k0(void) {
    nexvitad_bank_options o = bank_options();
    o.k = 0;
    return build_with(&o);
}
static nexvitad_status o_k_big(void) {
    nexvitad_bank_options o = bank_options();
    o.k = 100000;
    return build_n(&o, 1, NULL, NULL);
}
#define OPT_ROW(fn, field, value)                  \
    static nexvitad_status fn(void) {              \
        nexvitad_bank_options o = bank_options();  \
        o.field = value;                           \
        return build_with(&o);                     \
    }
OPT_ROW(o_sigma_nan, sigma, NAN)
OPT_ROW(o_sigma_inf, sigma, INFINITY)
OPT_ROW(o_eps_neg, epsilon, -1.0f)
OPT_ROW(o_eps_nan, epsilon, NAN)
OPT_ROW(o_tol_nan, tol, NAN)
OPT_ROW(o_fpr_big, target_fpr, 1.5f)
OPT_ROW(o_fpr_nan, target_fpr, NAN)
OPT_ROW(o_fpr_one, target_fpr, 1.0f)
OPT_ROW(o_max_vectors, max_vectors, 10)
OPT_ROW(o_scorer, scorer, 5)
OPT_ROW(o_mode, image_score_mode, 3)
OPT_ROW(o_augment, augment, 0x10)
OPT_ROW(o_struct_small, struct_size, 3)
OPT_ROW(o_struct_big, struct_size, sizeof(nexvitad_bank_options) + 64)
/* The "use the default" rule (header, revision 2): builds with `o` and with the defaults
   and checks the two banks record the same settings and thresholds. */
static nexvitad_status same_as_defaults(const nexvitad_bank_options *o) {
    nexvitad_bank_options d = bank_options();
    nexvitad_bank *a = NULL, *b = NULL;
    nexvitad_status s = keep(nexvitad_bank_build(g_m, g_views, 2, o, NULL, NULL, &a));
    if (s != NEXVITAD_OK) return s;
    if (nexvitad_bank_build(g_m, g_views, 2, &d, NULL, NULL, &b) != NEXVITAD_OK) {
        nexvitad_bank_free(a);
        return keep(NEXVITAD_INTERNAL);
    }
    nexvitad_bank_info ia, ib;
    ia.struct_size = ib.struct_size = sizeof ia;
    nexvitad_bank_get_info(a, &ia);
    nexvitad_bank_get_info(b, &ib);
    nexvitad_bank_free(a);
    nexvitad_bank_free(b);
    if (ia.sigma != ib.sigma || ia.k != ib.k || ia.image_threshold != ib.image_threshold ||
        ia.pixel_threshold != ib.pixel_threshold || ia.target_fpr != ib.target_fpr || ia.vectors != ib.vectors) {
        snprintf(g_msg, sizeof g_msg, "not the defaults: sigma %g/%g k %u/%u thresholds %g/%g", ia.sigma, ib.sigma,
                 ia.k, ib.k, ia.image_threshold, ib.image_threshold);
        return NEXVITAD_INTERNAL;
    }
    return s;
}
static nexvitad_status o_sigma_neg(void) {
    nexvitad_bank_options o = bank_options();
    o.sigma = -5.0f;
    return same_as_defaults(&o);
}
static nexvitad_status o_sigma_neg_inf(void) {
    nexvitad_bank_options o = bank_options();
    o.sigma = -INFINITY;
    return same_as_defaults(&o);
}
static nexvitad_status o_tol_neg(void) {
    nexvitad_bank_options o = bank_options();
    o.tol = -1.0f;
    return same_as_defaults(&o);
}
/* Every field at its "use the default" value: 0, and negative where 0 is a setting. */
static nexvitad_status o_all_default_markers(void) {
    nexvitad_bank_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.sigma = -1.0f;
    o.tol = -1.0f;
    o.max_iters = 5; /* as bank_options(), to compare like with like */
    return same_as_defaults(&o);
}
static nexvitad_status o_zero_defaults(void) {
    nexvitad_bank_options o = bank_options();
    o.epsilon = 0.0f;
    o.batch_size = 0;
    o.coreset_ratio = 0.0f;
    o.max_vectors = 0;
    return same_as_defaults(&o);
}
static nexvitad_status o_iters_zero(void) {
    nexvitad_bank_options o = bank_options();
    o.max_iters = 0; /* 50, the default */
    return build_with(&o);
}
static nexvitad_status o_coreset_zero(void) {
    nexvitad_bank_options o = bank_options();
    o.scorer = NEXVITAD_SCORER_CORESET;
    o.coreset_ratio = 0.0f;
    return build_with(&o);
}
static nexvitad_status o_coreset_big(void) {
    nexvitad_bank_options o = bank_options();
    o.scorer = NEXVITAD_SCORER_CORESET;
    o.coreset_ratio = 1.5f;
    return build_with(&o);
}
static nexvitad_status o_top_neg(void) {
    nexvitad_bank_options o = bank_options();
    o.image_score_mode = NEXVITAD_IMAGE_SCORE_TOP_MEAN;
    o.image_score_top_fraction = -0.5f;
    return build_with(&o);
}
static nexvitad_status o_top_zero(void) {
    nexvitad_bank_options o = bank_options();
    o.image_score_mode = NEXVITAD_IMAGE_SCORE_TOP_MEAN;
    o.image_score_top_fraction = 0.0f;
    return build_with(&o);
}
static nexvitad_status o_top_nan(void) {
    nexvitad_bank_options o = bank_options();
    o.image_score_mode = NEXVITAD_IMAGE_SCORE_TOP_MEAN;
    o.image_score_top_fraction = NAN;
    return build_with(&o);
}
static nexvitad_status o_n_zero(void) { return build_n(NULL, 0, NULL, NULL); }
static nexvitad_status o_n_huge(void) { return build_n(NULL, SIZE_MAX, NULL, NULL); }
static nexvitad_status o_images_null(void) {
    nexvitad_bank *b = NULL;
    return keep(nexvitad_bank_build(g_m, NULL, 2, NULL, NULL, NULL, &b));
}
static nexvitad_status o_out_null(void) { return keep(nexvitad_bank_build(g_m, g_views, 2, NULL, NULL, NULL, NULL)); }

/* Tiling (revision 3): nexvitad_bank_options.tile, tile_overlap, tile_layout, reserved1 */
static nexvitad_bank_options tile_options(uint32_t tile, float overlap, uint32_t layout) {
    nexvitad_bank_options o = bank_options();
    o.k = 8;
    o.tile = tile;
    o.tile_overlap = overlap;
    o.tile_layout = layout;
    return o;
}
#define TILE_ROW(fn, tile, overlap, layout)                              \
    static nexvitad_status fn(void) {                                    \
        nexvitad_bank_options o = tile_options(tile, overlap, layout);   \
        return build_with(&o);                                           \
    }
TILE_ROW(t_overlap_one, 48, 1.0f, NEXVITAD_TILE_SHARED)
TILE_ROW(t_overlap_neg, 48, -0.25f, NEXVITAD_TILE_SHARED)
TILE_ROW(t_overlap_nan, 48, NAN, NEXVITAD_TILE_SHARED)
TILE_ROW(t_layout, 48, 0.0f, 7)
TILE_ROW(t_larger_than_image, 224, 0.0f, NEXVITAD_TILE_SHARED)
TILE_ROW(t_over_image, 20000, 0.0f, NEXVITAD_TILE_SHARED)
TILE_ROW(t_off_overlap_nan, 0, NAN, NEXVITAD_TILE_SHARED)
static nexvitad_status t_max_vectors(void) {
    nexvitad_bank_options o = tile_options(48, 0.0f, NEXVITAD_TILE_SHARED);
    o.max_vectors = 10;
    return build_with(&o);
}
static nexvitad_status t_reserved(void) {
    nexvitad_bank_options o = tile_options(48, 0.0f, NEXVITAD_TILE_SHARED);
    o.reserved1 = 1;
    return build_with(&o);
}
/* A bank's info must report `tile` 0 (a whole-image bank); else INTERNAL with a message. */
static nexvitad_status whole_image_build(const nexvitad_bank_options *o) {
    nexvitad_bank *b = NULL;
    nexvitad_status s = keep(nexvitad_bank_build(g_m, g_views, 2, o, NULL, NULL, &b));
    if (s != NEXVITAD_OK) return s;
    nexvitad_bank_info i;
    i.struct_size = sizeof i;
    nexvitad_bank_get_info(b, &i);
    nexvitad_bank_free(b);
    if (i.tile != 0 || i.tile_h != 0 || i.tile_layout != NEXVITAD_TILE_SHARED || i.tile_overlap != 0.0f) {
        snprintf(g_msg, sizeof g_msg, "not a whole-image bank: tile %u x %u layout %u overlap %g", i.tile, i.tile_h,
                 i.tile_layout, i.tile_overlap);
        return NEXVITAD_INTERNAL;
    }
    return s;
}
/* tile 0 (off): tile_overlap and tile_layout are ignored, however wrong. */
static nexvitad_status t_off_ignores(void) {
    nexvitad_bank_options o = tile_options(0, 5.0f, 7);
    return whole_image_build(&o);
}
/* A caller built against a revision-2 nexvitad.h: struct_size ends before `tile`; the bytes
   after it (here a tiling) are never read. */
static nexvitad_status t_revision2_struct(void) {
    nexvitad_bank_options o = tile_options(48, 0.25f, NEXVITAD_TILE_PER_POSITION);
    o.struct_size = offsetof(nexvitad_bank_options, tile);
    return whole_image_build(&o);
}
/* 512 x 512 in 8 px tiles at overlap 0.9 (a 1 px step): 505 x 505 tiles. */
static nexvitad_status t_too_many(void) {
    static uint8_t gray[512 * 512];
    nexvitad_image im = {gray, 512, 512, 0, NEXVITAD_PIXEL_GRAY8};
    nexvitad_bank_options o = tile_options(8, 0.9f, NEXVITAD_TILE_SHARED);
    nexvitad_bank *b = NULL;
    nexvitad_status s = keep(nexvitad_bank_build(g_m, &im, 1, &o, NULL, NULL, &b));
    if (s == NEXVITAD_OK) nexvitad_bank_free(b);
    return s;
}
/* g_views[i] cut to its top-left w x h (the stride keeps the whole rows). */
static nexvitad_image cut(int i, uint32_t w, uint32_t h) {
    nexvitad_image im = g_views[i];
    im.stride = (size_t)im.width * 3;
    im.width = w;
    im.height = h;
    return im;
}
static nexvitad_status t_mixed_sizes(void) {
    nexvitad_image im[2] = {g_views[0], cut(1, 80, 64)};
    nexvitad_bank_options o = tile_options(48, 0.0f, NEXVITAD_TILE_PER_POSITION);
    nexvitad_bank *b = NULL;
    nexvitad_status s = keep(nexvitad_bank_build(g_m, im, 2, &o, NULL, NULL, &b));
    if (s == NEXVITAD_OK) nexvitad_bank_free(b);
    return s;
}
/* Builds a tiled bank of 48 px tiles (overlap 0) from g_views; NULL (and g_msg) on failure. */
static nexvitad_bank *tiled_bank(uint32_t layout) {
    nexvitad_bank_options o = tile_options(48, 0.0f, layout);
    nexvitad_bank *b = NULL;
    if (nexvitad_bank_build(g_m, g_views, 2, &o, NULL, NULL, &b) != NEXVITAD_OK) {
        snprintf(g_msg, sizeof g_msg, "(building the tiled bank failed: %s)", nexvitad_last_error());
        return NULL;
    }
    return b;
}
static nexvitad_status score_with(nexvitad_bank *b, nexvitad_image im) {
    nexvitad_result r;
    r.struct_size = sizeof r;
    nexvitad_status s = keep(nexvitad_score(NULL, b, &im, NULL, 0, &r));
    nexvitad_bank_free(b);
    return s;
}
static nexvitad_status t_per_position_other_size(void) {
    nexvitad_bank *b = tiled_bank(NEXVITAD_TILE_PER_POSITION);
    return b ? score_with(b, cut(0, 80, 64)) : NEXVITAD_INTERNAL;
}
static nexvitad_status t_per_position_batch(void) {
    nexvitad_bank *b = tiled_bank(NEXVITAD_TILE_PER_POSITION);
    if (!b) return NEXVITAD_INTERNAL;
    nexvitad_image im[2] = {g_views[0], cut(1, 96, 64)};
    nexvitad_result r[2];
    r[0].struct_size = sizeof r[0];
    nexvitad_status s = keep(nexvitad_score_batch(NULL, b, im, 2, NULL, NULL, r));
    nexvitad_bank_free(b);
    return s;
}
static nexvitad_status t_shared_other_size(void) {
    nexvitad_bank *b = tiled_bank(NEXVITAD_TILE_SHARED);
    return b ? score_with(b, cut(0, 80, 64)) : NEXVITAD_INTERNAL;
}
static nexvitad_status t_score_below_tile(void) {
    nexvitad_bank *b = tiled_bank(NEXVITAD_TILE_SHARED);
    return b ? score_with(b, cut(0, 40, 40)) : NEXVITAD_INTERNAL;
}

/* Per-call thresholds and defect regions (revision 3): nexvitad_score_with_options */

/* A failed check inside a valid row: INTERNAL with what went wrong in g_msg. */
static nexvitad_status row_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return NEXVITAD_INTERNAL;
}

static nexvitad_score_options score_options(void) {
    nexvitad_score_options o;
    o.struct_size = sizeof o;
    nexvitad_score_options_default(&o);
    return o;
}

/* nexvitad_score_with_options on g_views[0] with g_m and g_b, no map; the status is kept. */
static nexvitad_status swo(const nexvitad_score_options *o, nexvitad_region *regions, size_t cap, size_t *count,
                           nexvitad_result *r) {
    r->struct_size = sizeof *r;
    return keep(nexvitad_score_with_options(g_m, g_b, &g_views[0], o, NULL, 0, regions, cap, count, r));
}

static size_t g_views0_pixels(void) {
    return (size_t)g_views[0].width * g_views[0].height;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* A pixel threshold at which g_views[0], scored with g_b, has at least 3 defect regions: a
   quantile of its own map (a good image may have none at the bank's threshold). Negative if
   no quantile tried gives 3; *count receives the number of regions. Computed once. */
static float multi_region_threshold(size_t *count) {
    static float t = -2.0f;
    static size_t n_regions;
    if (t == -2.0f) {
        t = -1.0f;
        size_t n = g_views0_pixels();
        float *map = (float *)malloc(n * sizeof *map);
        nexvitad_result r;
        r.struct_size = sizeof r;
        if (map && nexvitad_score(g_m, g_b, &g_views[0], map, n, &r) == NEXVITAD_OK) {
            qsort(map, n, sizeof *map, cmp_float);
            static const double q[] = {0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99};
            for (size_t i = 0; i < sizeof q / sizeof q[0] && t < 0; i++) {
                nexvitad_score_options o = score_options();
                o.pixel_threshold = map[(size_t)(q[i] * (double)n)];
                size_t c = 0;
                if (nexvitad_score_with_options(g_m, g_b, &g_views[0], &o, NULL, 0, NULL, 0, &c, &r) == NEXVITAD_OK &&
                    c >= 3) {
                    t = o.pixel_threshold;
                    n_regions = c;
                }
            }
        }
        free(map);
    }
    *count = n_regions;
    return t;
}

static int untouched(const void *p, size_t n, unsigned char fill) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != fill) return 0;
    return 1;
}

static nexvitad_status s_bank_null(void) {
    nexvitad_result r;
    r.struct_size = sizeof r;
    return keep(nexvitad_score_with_options(g_m, NULL, &g_views[0], NULL, NULL, 0, NULL, 0, NULL, &r));
}
static nexvitad_status s_image_null(void) {
    nexvitad_result r;
    r.struct_size = sizeof r;
    return keep(nexvitad_score_with_options(g_m, g_b, NULL, NULL, NULL, 0, NULL, 0, NULL, &r));
}
static nexvitad_status s_out_null(void) {
    return keep(nexvitad_score_with_options(g_m, g_b, &g_views[0], NULL, NULL, 0, NULL, 0, NULL, NULL));
}
static nexvitad_status s_other_model(void) {
    nexvitad_result r;
    r.struct_size = sizeof r;
    return keep(nexvitad_score_with_options(g_other, g_b, &g_views[0], NULL, NULL, 0, NULL, 0, NULL, &r));
}
static nexvitad_status s_map_short(void) {
    float map[10];
    nexvitad_result r;
    r.struct_size = sizeof r;
    return keep(nexvitad_score_with_options(g_m, g_b, &g_views[0], NULL, map, 10, NULL, 0, NULL, &r));
}
#define SOPT_ROW(fn, field, value)                  \
    static nexvitad_status fn(void) {               \
        nexvitad_score_options o = score_options(); \
        nexvitad_result r;                          \
        o.field = value;                            \
        return swo(&o, NULL, 0, NULL, &r);          \
    }
SOPT_ROW(s_struct_zero, struct_size, 0)
SOPT_ROW(s_struct_big, struct_size, sizeof(nexvitad_score_options) + 64)
SOPT_ROW(s_image_nan, image_threshold, NAN)
SOPT_ROW(s_image_inf, image_threshold, INFINITY)
/* pixel_threshold NaN: refused, and nothing written (map, regions, count, out untouched). */
static nexvitad_status s_pixel_nan(void) {
    nexvitad_score_options o = score_options();
    o.pixel_threshold = NAN;
    size_t n = g_views0_pixels(), count;
    float *map = (float *)malloc(n * sizeof *map);
    nexvitad_region reg[2];
    nexvitad_result r;
    memset(map, 0xAB, n * sizeof *map);
    memset(reg, 0xAB, sizeof reg);
    memset(&count, 0xAB, sizeof count);
    memset(&r, 0xAB, sizeof r);
    r.struct_size = sizeof r;
    nexvitad_status s = keep(nexvitad_score_with_options(g_m, g_b, &g_views[0], &o, map, n, reg, 2, &count, &r));
    int clean = untouched(map, n * sizeof *map, 0xAB) && untouched(reg, sizeof reg, 0xAB) &&
                untouched(&count, sizeof count, 0xAB) &&
                untouched((const char *)&r + sizeof r.struct_size, sizeof r - sizeof r.struct_size, 0xAB);
    free(map);
    if (s != NEXVITAD_OK && !clean) return row_fail("a failed call wrote into the caller's map, regions, count or out");
    return s;
}
static nexvitad_status s_regions_null_cap(void) {
    size_t count = 0;
    nexvitad_result r;
    return swo(NULL, NULL, 4, &count, &r);
}
static nexvitad_status s_defaults_null(void) { return keep(nexvitad_score_options_default(NULL)); }
static nexvitad_status s_defaults_size(void) {
    nexvitad_score_options o;
    o.struct_size = 4;
    return keep(nexvitad_score_options_default(&o));
}
/* NULL options: the result and map of nexvitad_score, bit for bit; no flags, no regions. */
static nexvitad_status s_null_options(void) {
    size_t n = g_views0_pixels();
    float *a = (float *)malloc(n * sizeof *a), *b = (float *)malloc(n * sizeof *b);
    nexvitad_result ra, rb;
    memset(&ra, 0, sizeof ra);
    memset(&rb, 0, sizeof rb);
    ra.struct_size = rb.struct_size = sizeof ra;
    nexvitad_status s = keep(nexvitad_score_with_options(g_m, g_b, &g_views[0], NULL, a, n, NULL, 0, NULL, &ra));
    if (s == NEXVITAD_OK) {
        if (nexvitad_score(g_m, g_b, &g_views[0], b, n, &rb) != NEXVITAD_OK)
            s = row_fail("nexvitad_score failed: %s", nexvitad_last_error());
        else if (memcmp(a, b, n * sizeof *a) != 0 || memcmp(&ra.image_score, &rb.image_score, 4) != 0 ||
                 memcmp(&ra.image_threshold, &rb.image_threshold, 4) != 0 ||
                 memcmp(&ra.pixel_threshold, &rb.pixel_threshold, 4) != 0 || ra.is_anomalous != rb.is_anomalous ||
                 ra.width != rb.width || ra.height != rb.height)
            s = row_fail("NULL options differ from nexvitad_score");
        else if (ra.threshold_flags != 0 || ra.reserved0 != 0 || ra.region_count != 0)
            s = row_fail("flags %u, reserved0 %u, region_count %llu; want 0", ra.threshold_flags, ra.reserved0,
                         (unsigned long long)ra.region_count);
    }
    free(a);
    free(b);
    return s;
}
/* Negative thresholds (-5, -inf) are the bank's, as with NULL options: flags 0. */
static nexvitad_status s_negative_thresholds(void) {
    nexvitad_score_options o = score_options();
    o.image_threshold = -5.0f;
    o.pixel_threshold = -INFINITY;
    nexvitad_result r, want;
    size_t c1 = 0, c2 = 0;
    nexvitad_status s = swo(&o, NULL, 0, &c1, &r);
    if (s != NEXVITAD_OK) return s;
    if (swo(NULL, NULL, 0, &c2, &want) != NEXVITAD_OK) return row_fail("NULL options: %s", g_msg);
    if (r.image_threshold != want.image_threshold || r.pixel_threshold != want.pixel_threshold ||
        r.threshold_flags != 0 || c1 != c2 || r.is_anomalous != want.is_anomalous)
        return row_fail("thresholds %g/%g flags %u count %zu; the bank's are %g/%g count %zu", r.image_threshold,
                        r.pixel_threshold, r.threshold_flags, c1, want.image_threshold, want.pixel_threshold, c2);
    return s;
}
/* Caller thresholds: image 0 (a real setting) flags any image with a positive score. */
static nexvitad_status s_caller_thresholds(void) {
    size_t n_regions;
    nexvitad_score_options o = score_options();
    o.image_threshold = 0.0f;
    o.pixel_threshold = multi_region_threshold(&n_regions);
    if (o.pixel_threshold < 0) return row_fail("no pixel threshold gives 3 regions");
    nexvitad_result r;
    size_t count = 0;
    nexvitad_status s = swo(&o, NULL, 0, &count, &r);
    if (s != NEXVITAD_OK) return s;
    if (r.threshold_flags != (NEXVITAD_IMAGE_THRESHOLD_FROM_CALLER | NEXVITAD_PIXEL_THRESHOLD_FROM_CALLER) ||
        r.image_threshold != 0.0f || r.pixel_threshold != o.pixel_threshold || !r.is_anomalous ||
        r.region_count != count || count != n_regions)
        return row_fail("flags %u thresholds %g/%g anomalous %d count %zu/%llu", r.threshold_flags, r.image_threshold,
                        r.pixel_threshold, r.is_anomalous, count, (unsigned long long)r.region_count);
    return s;
}
/* Count only: regions NULL, regions_cap 0. */
static nexvitad_status s_count_only(void) {
    size_t want;
    nexvitad_score_options o = score_options();
    o.pixel_threshold = multi_region_threshold(&want);
    if (o.pixel_threshold < 0) return row_fail("no pixel threshold gives 3 regions");
    nexvitad_result r;
    size_t count = 0;
    nexvitad_status s = swo(&o, NULL, 0, &count, &r);
    if (s == NEXVITAD_OK && (count != want || r.region_count != want))
        return row_fail("count %zu, out->region_count %llu, want %zu", count, (unsigned long long)r.region_count, want);
    return s;
}
/* An array of 2 for more regions: success, the count says how many there are, the first 2
   (highest peak first) are written and the element after them is untouched. */
static nexvitad_status s_regions_short(void) {
    size_t want;
    nexvitad_score_options o = score_options();
    o.pixel_threshold = multi_region_threshold(&want);
    if (o.pixel_threshold < 0) return row_fail("no pixel threshold gives 3 regions");
    nexvitad_region reg[3], *all = (nexvitad_region *)calloc(want, sizeof *all);
    memset(reg, 0xAB, sizeof reg);
    nexvitad_result r, rall;
    size_t count = 0, n_all = 0;
    nexvitad_status s = swo(&o, reg, 2, &count, &r);
    if (s == NEXVITAD_OK) {
        if (swo(&o, all, want, &n_all, &rall) != NEXVITAD_OK)
            s = row_fail("the full query failed: %s", g_msg);
        else if (count != want || n_all != want || r.region_count != want)
            s = row_fail("count %zu (full query %zu, out %llu), want %zu", count, n_all,
                         (unsigned long long)r.region_count, want);
        else if (memcmp(reg, all, 2 * sizeof *reg) != 0)
            s = row_fail("the 2 regions written are not the first 2 of the full list");
        else if (!untouched(&reg[2], sizeof reg[2], 0xAB))
            s = row_fail("regions[2], beyond regions_cap, was written");
        else if (all[0].peak < all[1].peak || all[1].peak < all[2].peak)
            s = row_fail("regions are not highest peak first: %g %g %g", all[0].peak, all[1].peak, all[2].peak);
    }
    free(all);
    return s;
}
/* regions given but region_count NULL: refused (a likely caller mistake); the array is untouched. */
static nexvitad_status s_count_null(void) {
    size_t want;
    nexvitad_score_options o = score_options();
    o.pixel_threshold = multi_region_threshold(&want);
    nexvitad_region reg[2];
    memset(reg, 0xAB, sizeof reg);
    nexvitad_result r;
    nexvitad_status s = swo(&o, reg, 2, NULL, &r);
    if (!untouched(reg, sizeof reg, 0xAB))
        return row_fail("regions written though region_count is NULL");
    return s;
}
/* min_region_area above every region's area: none left. */
static nexvitad_status s_min_area(void) {
    size_t want;
    nexvitad_score_options o = score_options();
    o.pixel_threshold = multi_region_threshold(&want);
    o.min_region_area = g_views0_pixels() + 1;
    nexvitad_result r;
    size_t count = 99;
    nexvitad_status s = swo(&o, NULL, 0, &count, &r);
    if (s == NEXVITAD_OK && (count != 0 || r.region_count != 0))
        return row_fail("%zu regions of more than the image's pixels", count);
    return s;
}
/* A caller of revision 2's nexvitad_result (struct_size 80): the count comes through
   *region_count; the result's bytes from threshold_flags on are untouched. */
static nexvitad_status s_old_result(void) {
    size_t want;
    nexvitad_score_options o = score_options();
    o.pixel_threshold = multi_region_threshold(&want);
    nexvitad_result r;
    memset(&r, 0xAB, sizeof r);
    r.struct_size = offsetof(nexvitad_result, threshold_flags);
    size_t count = 0;
    nexvitad_status s = keep(nexvitad_score_with_options(g_m, g_b, &g_views[0], &o, NULL, 0, NULL, 0, &count, &r));
    if (s != NEXVITAD_OK) return s;
    const char *tail = (const char *)&r + offsetof(nexvitad_result, threshold_flags);
    if (count != want || !untouched(tail, sizeof r - offsetof(nexvitad_result, threshold_flags), 0xAB) ||
        r.width != g_views[0].width)
        return row_fail("count %zu (want %zu), bytes beyond struct_size written or width %u", count, want, r.width);
    return s;
}
static nexvitad_status s_per_position_other_size(void) {
    nexvitad_bank *b = tiled_bank(NEXVITAD_TILE_PER_POSITION);
    if (!b) return NEXVITAD_INTERNAL;
    nexvitad_image im = cut(0, 80, 64);
    nexvitad_result r;
    size_t count;
    r.struct_size = sizeof r;
    nexvitad_status s = keep(nexvitad_score_with_options(NULL, b, &im, NULL, NULL, 0, NULL, 0, &count, &r));
    nexvitad_bank_free(b);
    return s;
}

/* Model options */
#define MOPT_ROW(fn, field, value)        \
    static nexvitad_status fn(void) {     \
        nexvitad_options o = options();   \
        o.field = value;                  \
        return open_dir_with(g_model_dir, &o); \
    }
MOPT_ROW(mo_struct_zero, struct_size, 0)
MOPT_ROW(mo_struct_big, struct_size, sizeof(nexvitad_options) + 64)
MOPT_ROW(mo_opt_level, optimization_level, 7)
MOPT_ROW(mo_opt_level_default, optimization_level, (uint32_t)-1)
MOPT_ROW(mo_opt_level_off, optimization_level, 0)
MOPT_ROW(mo_reserved, reserved0, 1)
MOPT_ROW(mo_parallel_bad, parallel_encoders, 2)
MOPT_ROW(mo_parallel_on, parallel_encoders, 1)
MOPT_ROW(mo_tile_batch_big, tile_batch, 257)
MOPT_ROW(mo_tile_batch_huge, tile_batch, (uint32_t)-1)
MOPT_ROW(mo_tile_batch_one, tile_batch, 1)
MOPT_ROW(mo_struct_r5, struct_size, offsetof(nexvitad_options, tile_batch))
MOPT_ROW(mo_ep_unknown, execution_provider, "tpu:0")
MOPT_ROW(mo_ep_bad_index, execution_provider, "cuda:-1")
MOPT_ROW(mo_ep_cuda, execution_provider, "cuda:0")
MOPT_ROW(mo_ort_other, ort_library, "/nonexistent/libonnxruntime.so")
static nexvitad_status mo_defaults_null(void) { return keep(nexvitad_options_default(NULL)); }
static nexvitad_status mo_out_null(void) { return keep(nexvitad_model_open(g_model_dir, NULL, NULL)); }

/* Model folders and model.json */
static nexvitad_status m_dir_null(void) { return open_dir(NULL); }
static nexvitad_status m_dir_empty(void) { return open_dir(""); }
static nexvitad_status m_dir_missing(void) { return open_dir(in_work("no-such-model")); }
static nexvitad_status m_dir_is_file(void) { return open_dir(in_dir(g_model_dir, "model.json")); }
static nexvitad_status m_no_json(void) {
    const char *dir = model_variant("m-no-json", NULL, NULL);
    unlink(in_dir(dir, "model.json"));
    return open_dir(dir);
}
static nexvitad_status m_unreadable(void) {
    const char *dir = model_variant("m-unreadable", NULL, NULL);
    chmod(in_dir(dir, "model.json"), 0);
    return unprivileged(open_dir, dir);
}
static nexvitad_status m_empty(void) {
    const char *dir = model_variant("m-empty", NULL, NULL);
    write_file(in_dir(dir, "model.json"), "", 0);
    return open_dir(dir);
}
static nexvitad_status m_garbage(void) {
    const char *dir = model_variant("m-garbage", NULL, NULL);
    write_file(in_dir(dir, "model.json"), "not json", 8);
    return open_dir(dir);
}
static nexvitad_status m_json_dir(void) {
    const char *dir = model_variant("m-json-dir", NULL, NULL);
    unlink(in_dir(dir, "model.json"));
    mkdir(in_dir(dir, "model.json"), 0755);
    return open_dir(dir);
}
static nexvitad_status m_json_fifo(void) {
    const char *dir = model_variant("m-json-fifo", NULL, NULL);
    unlink(in_dir(dir, "model.json"));
    mkfifo(in_dir(dir, "model.json"), 0644);
    return open_dir(dir);
}
static nexvitad_status m_json_huge(void) {
    const char *dir = model_variant("m-json-huge", NULL, NULL);
    sparse_file(in_dir(dir, "model.json"), 17LL << 20);
    return open_dir(dir);
}
static nexvitad_status m_missing_field(void) { return open_edited("m-missing", "\"name\": \"tiny-random\",", ""); }
static nexvitad_status m_extra_field(void) { return open_edited("m-extra", "\"name\":", "\"colour\": \"blue\",\n  \"name\":"); }
static nexvitad_status m_wrong_type(void) { return open_edited("m-type", "\"k\": 30", "\"k\": \"30\""); }
static nexvitad_status m_future(void) { return open_edited("m-future", "\"format_version\": 1", "\"format_version\": 2"); }
static nexvitad_status m_version0(void) { return open_edited("m-v0", "\"format_version\": 1", "\"format_version\": 0"); }
static nexvitad_status m_theta_big(void) { return open_edited("m-theta1", "\"theta\": 0.7", "\"theta\": 1.5"); }
static nexvitad_status m_theta_zero(void) { return open_edited("m-theta0", "\"theta\": 0.7", "\"theta\": 0"); }
static nexvitad_status m_k_zero(void) { return open_edited("m-k0", "\"k\": 30", "\"k\": 0"); }
static nexvitad_status m_sigma_neg(void) { return open_edited("m-sigma", "\"sigma\": 4.0", "\"sigma\": -1"); }
static nexvitad_status m_huge_dims(void) {
    return open_edited("m-dims", "\"shared_dims\": [\n      16,\n      32,", "\"shared_dims\": [\n      16,\n      3222222222222,");
}
static nexvitad_status m_file_escape(void) { return open_edited("m-escape", "\"hiera.onnx\"", "\"../hiera.onnx\""); }

/* ONNX files */
static nexvitad_status x_missing(void) {
    const char *dir = model_variant("x-missing", NULL, NULL);
    unlink(in_dir(dir, "hiera.onnx"));
    return open_dir(dir);
}
static nexvitad_status x_empty(void) {
    const char *dir = model_variant("x-empty", NULL, NULL);
    write_file(in_dir(dir, "hiera.onnx"), "", 0);
    return open_dir(dir);
}
static nexvitad_status x_garbage(void) {
    const char *dir = model_variant("x-garbage", NULL, NULL);
    static const char junk[] = "this is not an ONNX protobuf \xff\xfe\x01\x02";
    write_file(in_dir(dir, "hiera.onnx"), junk, sizeof junk - 1);
    return open_dir(dir);
}
static nexvitad_status x_truncated(void) {
    const char *dir = model_variant("x-truncated", NULL, NULL);
    size_t n;
    char *b = read_file(in_dir(g_model_dir, "hiera.onnx"), &n);
    if (b) write_file(in_dir(dir, "hiera.onnx"), b, n / 2);
    free(b);
    return open_dir(dir);
}
static nexvitad_status x_swapped(void) {
    const char *dir = model_variant("x-swapped", NULL, NULL);
    copy_file(in_dir(g_model_dir, "dinov2.onnx"), in_dir(dir, "hiera.onnx"));
    return open_dir(dir);
}
static nexvitad_status x_output_name(void) { return open_edited("x-output", "\"stage4\"", "\"stage9\""); }
static nexvitad_status x_channels(void) { return open_edited("x-channels", "128\n", "96\n"); }
static nexvitad_status x_huge(void) {
    const char *dir = model_variant("x-huge", NULL, NULL);
    sparse_file(in_dir(dir, "hiera.onnx"), 3LL << 30);
    return open_dir(dir);
}
static nexvitad_status x_head_garbage(void) {
    const char *dir = model_variant("x-head", NULL, NULL);
    write_file(in_dir(dir, "head.safetensors"), "garbage!garbage!", 16);
    return open_dir(dir);
}

/* Bank files */
static nexvitad_status b_path_null(void) { return load_path(NULL); }
static nexvitad_status b_missing(void) { return load_path(in_work("missing.safetensors")); }
static nexvitad_status b_unreadable(void) {
    const char *p = in_work("unreadable.safetensors");
    copy_file(g_bank_path, p);
    chmod(p, 0);
    return unprivileged(load_path, p);
}
static nexvitad_status b_empty(void) {
    const char *p = in_work("empty.safetensors");
    write_file(p, "", 0);
    return load_path(p);
}
static nexvitad_status b_dir(void) {
    const char *p = in_work("dir.safetensors");
    mkdir(p, 0755);
    return load_path(p);
}
static nexvitad_status b_fifo(void) {
    const char *p = in_work("fifo.safetensors");
    unlink(p);
    mkfifo(p, 0644);
    return load_path(p); /* must not wait for a writer */
}
static nexvitad_status b_device(void) { return load_path("/dev/zero"); }
static nexvitad_status b_huge(void) {
    const char *p = in_work("huge.safetensors");
    sparse_file(p, 9LL << 30);
    return load_path(p);
}
static nexvitad_status b_garbage(void) {
    const char *p = in_work("garbage.safetensors");
    static const char text[] = "this is not a safetensors file at all, just text";
    write_file(p, text, sizeof text - 1);
    return load_path(p);
}
static nexvitad_status b_truncated(void) { return load_edited("truncated.safetensors", edit_truncate); }
static nexvitad_status b_header_only(void) { return load_edited("header-only.safetensors", edit_header_only); }
static nexvitad_status b_header_len(void) { return load_edited("header-len.safetensors", edit_huge_header_len); }
static nexvitad_status b_flip_header(void) { return load_edited("flip-header.safetensors", edit_flip_header_brace); }
static nexvitad_status b_flip_threshold(void) { return load_edited("flip-threshold.safetensors", edit_flip_threshold_digit); }
static nexvitad_status b_flip_vector(void) { return load_edited("flip-vector.safetensors", edit_flip_vector_bit); }
static nexvitad_status b_nan(void) { return load_edited("nan.safetensors", edit_nan_vector); }
static nexvitad_status b_future(void) { return load_edited("future.safetensors", edit_future_version); }
static nexvitad_status b_not_bank(void) { return load_edited("not-bank.safetensors", edit_not_a_bank); }
static nexvitad_status b_other_model(void) {
    nexvitad_bank *b = NULL;
    return keep(nexvitad_bank_load(g_other, g_bank_path, &b));
}
/* An INT8 model (tools/quantize.py's fixture of models/tiny) given its fp32 source's bank:
   refused, and the message says the encoders are INT8 and the bank must be built again. */
static nexvitad_status int8_with_fp32_bank(int score) {
    nexvitad_options o = options();
    nexvitad_model *m = NULL;
    if (nexvitad_model_open(in_dir(g_model_dir, "../../tests/fixtures/int8/tiny-dynamic"), &o, &m) != NEXVITAD_OK)
        return row_fail("cannot open the INT8 fixture: %s", nexvitad_last_error());
    nexvitad_bank *b = NULL;
    nexvitad_result r;
    r.struct_size = sizeof r;
    nexvitad_status s = score ? nexvitad_score(m, g_b, &g_views[0], NULL, 0, &r) : nexvitad_bank_load(m, g_bank_path, &b);
    s = keep(s);
    nexvitad_bank_free(b);
    nexvitad_model_free(m);
    if (s == NEXVITAD_MISMATCH && !strstr(g_msg, "encoders are int8 dynamic: a bank built with the fp32 model"))
        return row_fail("the message does not say the encoders are INT8: %s", g_msg);
    return s;
}
static nexvitad_status b_int8_load(void) { return int8_with_fp32_bank(0); }
static nexvitad_status b_int8_score(void) { return int8_with_fp32_bank(1); }
static nexvitad_status b_other_score(void) {
    nexvitad_result r;
    r.struct_size = sizeof r;
    return keep(nexvitad_score(g_other, g_b, &g_views[0], NULL, 0, &r));
}
static nexvitad_status b_save_missing_dir(void) { return keep(nexvitad_bank_save(g_b, in_work("no-such-dir/bank.safetensors"))); }
static nexvitad_status b_save_over_dir(void) {
    const char *p = in_work("a-folder");
    mkdir(p, 0755);
    return keep(nexvitad_bank_save(g_b, p));
}
static nexvitad_status b_save_null(void) { return keep(nexvitad_bank_save(NULL, g_bank_path)); }

/* ONNX Runtime library */
static nexvitad_status r_missing(void) { return open_in_child("/nonexistent/libonnxruntime.so"); }
static nexvitad_status r_not_elf(void) { return open_in_child(in_dir(g_model_dir, "model.json")); }
static nexvitad_status r_not_ort(void) { return open_in_child(g_lib_path); }
static nexvitad_status r_old(void) { return open_in_child(g_fake_ort); }

/* Handles */
/* NULL model (revision 2): the bank's own model scores, with the same result as g_m. */
static nexvitad_status h_model_null(void) {
    nexvitad_result r, want;
    r.struct_size = want.struct_size = sizeof r;
    nexvitad_status s = keep(nexvitad_score(NULL, g_b, &g_views[0], NULL, 0, &r));
    if (s != NEXVITAD_OK) return s;
    if (nexvitad_score(g_m, g_b, &g_views[0], NULL, 0, &want) != NEXVITAD_OK || r.image_score != want.image_score)
        return keep(NEXVITAD_INTERNAL);
    return s;
}
/* The bank outlives its model: the model freed first, the bank alone still scores. */
static nexvitad_status h_model_freed_first(void) {
    nexvitad_options o = options();
    nexvitad_model *m = NULL;
    nexvitad_bank *b = NULL;
    if (nexvitad_model_open(g_model_dir, &o, &m) != NEXVITAD_OK) return keep(NEXVITAD_INTERNAL);
    if (nexvitad_bank_load(m, g_bank_path, &b) != NEXVITAD_OK) {
        nexvitad_model_free(m);
        return keep(NEXVITAD_INTERNAL);
    }
    nexvitad_model_free(m);
    nexvitad_result r;
    r.struct_size = sizeof r;
    nexvitad_status s = keep(nexvitad_score(NULL, b, &g_views[0], NULL, 0, &r));
    nexvitad_bank_free(b);
    return s;
}
/* ... while the freed model handle itself is refused. */
static nexvitad_status h_model_freed_stale(void) {
    nexvitad_options o = options();
    nexvitad_model *m = NULL;
    nexvitad_bank *b = NULL;
    if (nexvitad_model_open(g_model_dir, &o, &m) != NEXVITAD_OK) return keep(NEXVITAD_INTERNAL);
    if (nexvitad_bank_load(m, g_bank_path, &b) != NEXVITAD_OK) {
        nexvitad_model_free(m);
        return keep(NEXVITAD_INTERNAL);
    }
    nexvitad_model_free(m);
    nexvitad_result r;
    r.struct_size = sizeof r;
    nexvitad_status s = keep(nexvitad_score(m, b, &g_views[0], NULL, 0, &r));
    nexvitad_bank_free(b);
    return s;
}
static nexvitad_status h_model_null_bank_null(void) {
    nexvitad_result r;
    r.struct_size = sizeof r;
    return keep(nexvitad_score(NULL, NULL, &g_views[0], NULL, 0, &r));
}
static nexvitad_status h_batch_model_null(void) {
    nexvitad_result r[2];
    r[0].struct_size = sizeof r[0];
    return keep(nexvitad_score_batch(NULL, g_b, g_views, 2, NULL, NULL, r));
}
static nexvitad_status h_bank_null(void) {
    nexvitad_result r;
    r.struct_size = sizeof r;
    return keep(nexvitad_score(g_m, NULL, &g_views[0], NULL, 0, &r));
}
static nexvitad_status h_double_free_bank(void) {
    nexvitad_bank *b = NULL;
    if (nexvitad_bank_load(g_m, g_bank_path, &b) != NEXVITAD_OK) return keep(NEXVITAD_INTERNAL);
    nexvitad_bank_free(b);
    return keep(nexvitad_bank_free(b));
}
static nexvitad_status h_double_free_model(void) {
    nexvitad_options o = options();
    nexvitad_model *m = NULL;
    if (nexvitad_model_open(g_model_dir, &o, &m) != NEXVITAD_OK) return keep(NEXVITAD_INTERNAL);
    nexvitad_model_free(m);
    return keep(nexvitad_model_free(m));
}
static nexvitad_status h_stale_bank(void) {
    nexvitad_bank *b = NULL;
    if (nexvitad_bank_load(g_m, g_bank_path, &b) != NEXVITAD_OK) return keep(NEXVITAD_INTERNAL);
    nexvitad_bank_free(b);
    nexvitad_result r;
    r.struct_size = sizeof r;
    return keep(nexvitad_score(g_m, b, &g_views[0], NULL, 0, &r));
}
static nexvitad_status h_wrong_kind(void) {
    nexvitad_result r;
    r.struct_size = sizeof r;
    return keep(nexvitad_score((const nexvitad_model *)g_b, g_b, &g_views[0], NULL, 0, &r));
}
static nexvitad_status h_stray(void) {
    int on_stack = 0;
    nexvitad_result r;
    r.struct_size = sizeof r;
    return keep(nexvitad_score(g_m, (const nexvitad_bank *)&on_stack, &g_views[0], NULL, 0, &r));
}
static nexvitad_status h_info_null(void) { return keep(nexvitad_bank_get_info(g_b, NULL)); }

/* Callbacks and panics */
static nexvitad_status c_cancel_encode(void) {
    int stage = NEXVITAD_STAGE_ENCODE;
    return build_n(NULL, 2, cancel_at, &stage);
}
static nexvitad_status c_cancel_cluster(void) {
    int stage = NEXVITAD_STAGE_CLUSTER;
    nexvitad_bank_options o = bank_options();
    return build_n(&o, 2, cancel_at, &stage);
}
static nexvitad_status c_cancel_calibrate(void) {
    int stage = NEXVITAD_STAGE_CALIBRATE;
    nexvitad_bank_options o = bank_options();
    return build_n(&o, 2, cancel_at, &stage);
}
static nexvitad_status c_log_reentrant(void) {
    nexvitad_set_log_callback(nested_log, NULL);
    nexvitad_bank *b = NULL;
    nexvitad_status s = nexvitad_bank_load(g_m, g_bank_path, &b);
    nexvitad_set_log_callback(NULL, NULL);
    if (s == NEXVITAD_OK) nexvitad_bank_free(b);
    snprintf(g_msg, sizeof g_msg, "%s", g_nested_msg);
    return g_nested;
}
static nexvitad_status c_panic(void) { return keep(nexvitad_selftest_panic()); }

/* Regions of interest and recalibration (revision 4) */

/* An 8 x 6 mask, 1 = inspect, with its right third ignored; `zero` makes it all 0. */
static uint8_t g_roi_bytes[8 * 6];
static nexvitad_mask roi_mask(int zero) {
    for (int i = 0; i < 8 * 6; i++) g_roi_bytes[i] = (uint8_t)(!zero && (i % 8) < 6);
    nexvitad_mask m = {g_roi_bytes, 8, 6, 0};
    return m;
}
#define BROI_ROW(fn, field, value)                        \
    static nexvitad_status fn(void) {                     \
        nexvitad_mask m = roi_mask(0);                    \
        m.field = value;                                  \
        nexvitad_bank_options o = bank_options();         \
        o.roi = &m;                                       \
        return build_with(&o);                            \
    }
BROI_ROW(r_build_data_null, data, NULL)
BROI_ROW(r_build_width0, width, 0)
BROI_ROW(r_build_stride_short, stride, 4)
BROI_ROW(r_build_huge, width, 70000)
static nexvitad_status r_build_all_zero(void) {
    nexvitad_mask m = roi_mask(1);
    nexvitad_bank_options o = bank_options();
    o.roi = &m;
    return build_with(&o);
}
/* A bank built with the 8 x 6 mask: 0/1 bytes back from get_roi, its size in the info, and
   scores confined to it (roi_source FROM_BANK; map 0 on the ignored right third). */
static nexvitad_bank *roi_bank(void) {
    nexvitad_mask m = roi_mask(0);
    g_roi_bytes[0] = 255; /* any non-zero byte is "inspect" and comes back as 1 */
    nexvitad_bank_options o = bank_options();
    o.roi = &m;
    nexvitad_bank *b = NULL;
    if (nexvitad_bank_build(g_m, g_views, 2, &o, NULL, NULL, &b) != NEXVITAD_OK) {
        snprintf(g_msg, sizeof g_msg, "(building the ROI bank failed: %s)", nexvitad_last_error());
        return NULL;
    }
    return b;
}
static nexvitad_status r_bank_roi_valid(void) {
    nexvitad_bank *b = roi_bank();
    if (!b) return NEXVITAD_INTERNAL;
    nexvitad_status s = NEXVITAD_OK;
    nexvitad_bank_info info;
    info.struct_size = sizeof info;
    uint8_t back[8 * 6 + 1];
    memset(back, 0xAB, sizeof back);
    size_t n = g_views0_pixels();
    float *map = (float *)malloc(n * sizeof *map);
    nexvitad_result r;
    r.struct_size = sizeof r;
    if (nexvitad_bank_get_info(b, &info) != NEXVITAD_OK || info.roi_width != 8 || info.roi_height != 6)
        s = row_fail("bank info roi %ux%u, want 8x6", info.roi_width, info.roi_height);
    else if (nexvitad_bank_get_roi(b, back, sizeof back) != NEXVITAD_OK)
        s = row_fail("get_roi failed: %s", nexvitad_last_error());
    else if (back[0] != 1 || back[6] != 0 || back[5] != 1 || back[8 * 6] != 0xAB)
        s = row_fail("get_roi gave %u %u %u (want 1 1 0) or wrote past the mask", back[0], back[5], back[6]);
    else if (nexvitad_score(NULL, b, &g_views[0], map, n, &r) != NEXVITAD_OK)
        s = row_fail("scoring failed: %s", nexvitad_last_error());
    else if (r.roi_source != NEXVITAD_ROI_FROM_BANK)
        s = row_fail("roi_source %u, want NEXVITAD_ROI_FROM_BANK", r.roi_source);
    else {
        uint32_t w = g_views[0].width, x;
        for (x = w - 1; x > w * 3 / 4; x--)
            if (map[x] != 0.0f) s = row_fail("map[%u] = %g in the ignored right quarter", x, map[x]);
    }
    free(map);
    nexvitad_bank_free(b);
    return s;
}
static nexvitad_status r_get_roi_none(void) {
    uint8_t buf[4];
    return keep(nexvitad_bank_get_roi(g_b, buf, sizeof buf));
}
static nexvitad_status r_get_roi_out_null(void) {
    nexvitad_bank *b = roi_bank();
    if (!b) return NEXVITAD_INTERNAL;
    nexvitad_status s = keep(nexvitad_bank_get_roi(b, NULL, 48));
    nexvitad_bank_free(b);
    return s;
}
static nexvitad_status r_get_roi_short(void) {
    nexvitad_bank *b = roi_bank();
    if (!b) return NEXVITAD_INTERNAL;
    uint8_t buf[47];
    memset(buf, 0xAB, sizeof buf);
    nexvitad_status s = keep(nexvitad_bank_get_roi(b, buf, sizeof buf));
    if (!untouched(buf, sizeof buf, 0xAB)) s = row_fail("a short buffer was written");
    nexvitad_bank_free(b);
    return s;
}
/* Per call: a mask of another size than the image is scaled (valid, roi_source
   FROM_CALLER); all zero, ignore_bank_roi 2, reserved0 set are refused. */
static nexvitad_status r_score_roi_valid(void) {
    nexvitad_mask m = roi_mask(0);
    nexvitad_score_options o = score_options();
    o.roi = &m;
    nexvitad_result r;
    nexvitad_status s = swo(&o, NULL, 0, NULL, &r);
    if (s == NEXVITAD_OK && r.roi_source != NEXVITAD_ROI_FROM_CALLER)
        return row_fail("roi_source %u, want NEXVITAD_ROI_FROM_CALLER", r.roi_source);
    return s;
}
static nexvitad_status r_score_all_zero(void) {
    nexvitad_mask m = roi_mask(1);
    nexvitad_score_options o = score_options();
    o.roi = &m;
    nexvitad_result r;
    return swo(&o, NULL, 0, NULL, &r);
}
SOPT_ROW(r_score_ignore2, ignore_bank_roi, 2)
SOPT_ROW(r_score_reserved, reserved0, 1)
/* A revision-3 caller's bank options (struct_size without `roi`): valid, no ROI. */
static nexvitad_status r_build_old_size(void) {
    nexvitad_bank_options o = bank_options();
    nexvitad_mask m = roi_mask(1); /* all zero: would be refused if it were read */
    o.roi = &m;
    o.struct_size = offsetof(nexvitad_bank_options, roi);
    nexvitad_bank *b = NULL;
    nexvitad_status s = keep(nexvitad_bank_build(g_m, g_views, 2, &o, NULL, NULL, &b));
    if (s != NEXVITAD_OK) return s;
    nexvitad_bank_info info;
    info.struct_size = sizeof info;
    nexvitad_bank_get_info(b, &info);
    nexvitad_bank_free(b);
    if (info.roi_width != 0) return row_fail("the bank has a ROI though options->roi lay beyond struct_size");
    return s;
}
static nexvitad_status recal(float fpr) {
    nexvitad_bank *out = (nexvitad_bank *)0x1;
    nexvitad_status s = keep(nexvitad_bank_recalibrate(g_b, fpr, &out));
    if (s != NEXVITAD_OK && out != (nexvitad_bank *)0x1) return row_fail("out was written on failure");
    if (s == NEXVITAD_OK) nexvitad_bank_free(out);
    return s;
}
static nexvitad_status r_recal_nan(void) { return recal(NAN); }
static nexvitad_status r_recal_zero(void) { return recal(0.0f); }
static nexvitad_status r_recal_one(void) { return recal(1.0f); }
static nexvitad_status r_recal_out_null(void) { return keep(nexvitad_bank_recalibrate(g_b, 0.01f, NULL)); }
static nexvitad_status r_recal_bank_null(void) {
    nexvitad_bank *out = NULL;
    return keep(nexvitad_bank_recalibrate(NULL, 0.01f, &out));
}
/* Valid: a stricter target gives a new bank with thresholds at least as high; the original
   is unchanged. */
static nexvitad_status r_recal_valid(void) {
    nexvitad_bank_info a, b, c;
    a.struct_size = b.struct_size = c.struct_size = sizeof a;
    nexvitad_bank *out = NULL;
    nexvitad_bank_get_info(g_b, &a);
    nexvitad_status s = keep(nexvitad_bank_recalibrate(g_b, 0.001f, &out));
    if (s != NEXVITAD_OK) return s;
    nexvitad_bank_get_info(out, &b);
    nexvitad_bank_get_info(g_b, &c);
    nexvitad_bank_free(out);
    if (b.target_fpr != 0.001f || b.image_threshold < a.image_threshold || b.pixel_threshold < a.pixel_threshold)
        return row_fail("recalibrated: fpr %g, thresholds %g %g (were %g %g)", b.target_fpr, b.image_threshold,
                        b.pixel_threshold, a.image_threshold, a.pixel_threshold);
    if (memcmp(&a, &c, sizeof a) != 0) return row_fail("the original bank changed");
    return s;
}

/* Banks that grow (revision 5) */

static nexvitad_bank *growable_bank(size_t first, size_t n, uint32_t k) {
    nexvitad_bank_options o = bank_options();
    o.growable = 1;
    o.k = k;
    nexvitad_bank *b = NULL;
    if (nexvitad_bank_build(g_m, g_views + first, n, &o, NULL, NULL, &b) != NEXVITAD_OK) {
        snprintf(g_msg, sizeof g_msg, "(building a growable bank failed: %s)", nexvitad_last_error());
        return NULL;
    }
    return b;
}
static nexvitad_status g_add(nexvitad_bank *b, const nexvitad_image *im, size_t n) {
    nexvitad_bank *out = (nexvitad_bank *)0x1;
    nexvitad_status s = keep(nexvitad_bank_add(b, im, n, NULL, NULL, &out));
    if (s != NEXVITAD_OK && out != (nexvitad_bank *)0x1) return row_fail("out was written on failure");
    if (s == NEXVITAD_OK) nexvitad_bank_free(out);
    return s;
}
static nexvitad_status g_add_not_growable(void) { return g_add(g_b, &g_views[1], 1); }
static nexvitad_status g_add_n0(void) {
    nexvitad_bank *b = growable_bank(0, 1, 4);
    if (!b) return NEXVITAD_INTERNAL;
    nexvitad_status s = g_add(b, &g_views[1], 0);
    nexvitad_bank_free(b);
    return s;
}
static nexvitad_status g_add_images_null(void) {
    nexvitad_bank *b = growable_bank(0, 1, 4);
    if (!b) return NEXVITAD_INTERNAL;
    nexvitad_status s = g_add(b, NULL, 1);
    nexvitad_bank_free(b);
    return s;
}
static nexvitad_status g_add_bad_image(void) {
    nexvitad_bank *b = growable_bank(0, 1, 4);
    if (!b) return NEXVITAD_INTERNAL;
    nexvitad_image im = g_views[1];
    im.width = 0;
    nexvitad_status s = g_add(b, &im, 1);
    nexvitad_bank_free(b);
    return s;
}
static nexvitad_status g_add_out_null(void) {
    nexvitad_bank *b = growable_bank(0, 1, 4);
    if (!b) return NEXVITAD_INTERNAL;
    nexvitad_status s = keep(nexvitad_bank_add(b, &g_views[1], 1, NULL, NULL, NULL));
    nexvitad_bank_free(b);
    return s;
}
/* A growable per-position bank of 96 x 72 images grows only with images of that size. */
static nexvitad_status g_growable_tiled(void) {
    nexvitad_bank_options o = tile_options(48, 0.0f, NEXVITAD_TILE_PER_POSITION);
    o.growable = 1;
    nexvitad_bank *b = NULL;
    if (nexvitad_bank_build(g_m, g_views, 1, &o, NULL, NULL, &b) != NEXVITAD_OK)
        return row_fail("(building the growable per-position bank failed: %s)", nexvitad_last_error());
    nexvitad_image im = cut(1, 80, 64);
    nexvitad_status s = g_add(b, &im, 1);
    nexvitad_bank_free(b);
    return s;
}
static nexvitad_status g_growable_2(void) {
    nexvitad_bank_options o = bank_options();
    o.growable = 2;
    return build_with(&o);
}
static nexvitad_status merge_of(nexvitad_bank *a, nexvitad_bank *b) {
    nexvitad_bank *out = (nexvitad_bank *)0x1;
    nexvitad_status s = keep(nexvitad_bank_merge(a, b, NULL, NULL, &out));
    if (s != NEXVITAD_OK && out != (nexvitad_bank *)0x1) return row_fail("out was written on failure");
    if (s == NEXVITAD_OK) nexvitad_bank_free(out);
    return s;
}
static nexvitad_status g_merge_k(void) {
    nexvitad_bank *a = growable_bank(0, 1, 4), *b = growable_bank(1, 1, 5);
    nexvitad_status s = a && b ? merge_of(a, b) : NEXVITAD_INTERNAL;
    nexvitad_bank_free(a);
    nexvitad_bank_free(b);
    return s;
}
static nexvitad_status g_merge_not_growable(void) {
    nexvitad_bank *a = growable_bank(0, 1, 4);
    nexvitad_status s = a ? merge_of(a, g_b) : NEXVITAD_INTERNAL;
    nexvitad_bank_free(a);
    return s;
}
static nexvitad_status g_merge_null(void) {
    nexvitad_bank *a = growable_bank(0, 1, 4);
    nexvitad_status s = a ? merge_of(a, NULL) : NEXVITAD_INTERNAL;
    nexvitad_bank_free(a);
    return s;
}
static nexvitad_status g_merge_models(void) {
    nexvitad_bank_options o = bank_options();
    o.growable = 1;
    o.k = 4;
    nexvitad_bank *a = growable_bank(0, 1, 4), *b = NULL;
    if (a && nexvitad_bank_build(g_other, &g_views[1], 1, &o, NULL, NULL, &b) != NEXVITAD_OK)
        snprintf(g_msg, sizeof g_msg, "(building with the other model failed: %s)", nexvitad_last_error());
    nexvitad_status s = a && b ? merge_of(a, b) : NEXVITAD_INTERNAL;
    nexvitad_bank_free(a);
    nexvitad_bank_free(b);
    return s;
}
/* Valid: add(bank of image 0, image 1) and merge(bank of 0, bank of 1) are the bank built
   on both, to the bit (info thresholds and the score of image 0). */
static nexvitad_status g_add_merge_valid(void) {
    nexvitad_bank *a = growable_bank(0, 1, 4), *b = growable_bank(1, 1, 4), *both = growable_bank(0, 2, 4);
    nexvitad_bank *added = NULL, *merged = NULL;
    nexvitad_status s = NEXVITAD_OK;
    if (!a || !b || !both) s = NEXVITAD_INTERNAL;
    if (s == NEXVITAD_OK) s = keep(nexvitad_bank_add(a, &g_views[1], 1, NULL, NULL, &added));
    if (s == NEXVITAD_OK) s = keep(nexvitad_bank_merge(a, b, NULL, NULL, &merged));
    if (s == NEXVITAD_OK) {
        nexvitad_bank *banks[3] = {both, added, merged};
        nexvitad_bank_info info[3];
        nexvitad_result r[3];
        for (int i = 0; i < 3 && s == NEXVITAD_OK; i++) {
            info[i].struct_size = sizeof info[i];
            r[i].struct_size = sizeof r[i];
            if (nexvitad_bank_get_info(banks[i], &info[i]) != NEXVITAD_OK ||
                nexvitad_score(NULL, banks[i], &g_views[0], NULL, 0, &r[i]) != NEXVITAD_OK)
                s = row_fail("bank %d: %s", i, nexvitad_last_error());
        }
        for (int i = 1; i < 3 && s == NEXVITAD_OK; i++) {
            if (memcmp(&info[i].image_threshold, &info[0].image_threshold, 4) != 0 ||
                memcmp(&info[i].pixel_threshold, &info[0].pixel_threshold, 4) != 0 ||
                memcmp(&r[i].image_score, &r[0].image_score, 4) != 0 || info[i].shots != 2 || !info[i].growable)
                s = row_fail("%s differs from the build on both images", i == 1 ? "add" : "merge");
        }
    }
    nexvitad_bank_free(a);
    nexvitad_bank_free(b);
    nexvitad_bank_free(both);
    nexvitad_bank_free(added);
    nexvitad_bank_free(merged);
    return s;
}

/* nexvitad_score_batch_with_options (revision 5) */
static nexvitad_status sb_with(const nexvitad_score_options *o, nexvitad_result *r) {
    r[0].struct_size = sizeof r[0];
    return keep(nexvitad_score_batch_with_options(NULL, g_b, g_views, 2, o, NULL, NULL, r));
}
static nexvitad_status sb_nan(void) {
    nexvitad_score_options o = score_options();
    o.image_threshold = NAN;
    nexvitad_result r[2];
    memset(r, 0xAB, sizeof r);
    r[0].struct_size = sizeof r[0];
    nexvitad_status s = keep(nexvitad_score_batch_with_options(NULL, g_b, g_views, 2, &o, NULL, NULL, r));
    if (!untouched((char *)r + sizeof(size_t), sizeof r - sizeof(size_t), 0xAB)) return row_fail("results written on failure");
    return s;
}
/* Valid: each image decided at the caller's threshold, and each result's region_count equals
   nexvitad_score_with_options's count for that image. */
static nexvitad_status sb_valid(void) {
    size_t want;
    nexvitad_score_options o = score_options();
    o.pixel_threshold = multi_region_threshold(&want);
    o.image_threshold = 0.0f;
    nexvitad_result r[2], one;
    nexvitad_status s = sb_with(&o, r);
    if (s != NEXVITAD_OK) return s;
    size_t count = 0;
    one.struct_size = sizeof one;
    if (nexvitad_score_with_options(NULL, g_b, &g_views[1], &o, NULL, 0, NULL, 0, &count, &one) != NEXVITAD_OK)
        return row_fail("single call failed: %s", nexvitad_last_error());
    if (r[0].region_count != want || r[1].region_count != count)
        return row_fail("region counts %llu %llu, want %zu %zu", (unsigned long long)r[0].region_count,
                        (unsigned long long)r[1].region_count, want, count);
    if (!r[0].is_anomalous || !r[1].is_anomalous || r[0].threshold_flags != 3 || r[1].image_threshold != 0.0f)
        return row_fail("the caller's thresholds were not used");
    return s;
}

/* ---- the table ------------------------------------------------------------------------ */

typedef struct row {
    const char *area;
    const char *input; /* markdown */
    nexvitad_status want;
    const char *message;
    nexvitad_status (*run)(void);
} row;

#define FORMAT_ NEXVITAD_FORMAT
static const row ROWS[] = {
    /* Images (nexvitad_score unless said otherwise) */
    {"image", "0 × 0", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score: invalid argument: image: image size 0x0: width and height must be > 0", i_zero},
    {"image", "width 0, height 72", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score: invalid argument: image: image size 0x72: width and height must be > 0", i_zero_w},
    {"image", "1 × 1 RGB8 (valid: scored, a 1 × 1 map)", NEXVITAD_OK, "", i_one},
    {"image", "1 × 1 GRAY8 (valid)", NEXVITAD_OK, "", i_one_gray},
    {"image", "100000 × 100000 RGB8 over a 64-byte buffer: refused before any pixel is read or allocated", NEXVITAD_LIMIT_EXCEEDED, "nexvitad_score: limit exceeded: image: image size 100000x100000 exceeds the model's limits (16384 per side, 67108864 pixels; see nexvitad_options)", i_huge},
    {"image", "20000 × 1 (one side over 16384)", NEXVITAD_LIMIT_EXCEEDED, "nexvitad_score: limit exceeded: image: image size 20000x1 exceeds the model's limits (16384 per side, 67108864 pixels; see nexvitad_options)", i_wide},
    {"image", "8193 × 8193 (sides fit, area over 64 Mi px)", NEXVITAD_LIMIT_EXCEEDED, "nexvitad_score: limit exceeded: image: image size 8193x8193 exceeds the model's limits (16384 per side, 67108864 pixels; see nexvitad_options)", i_area},
    {"image", "height 2³² − 1", NEXVITAD_LIMIT_EXCEEDED, "nexvitad_score: limit exceeded: image: image size 1x4294967295 exceeds the model's limits (16384 per side, 67108864 pixels; see nexvitad_options)", i_tall},
    {"image", "96 × 72 against a model opened with `max_image_side = 64`", NEXVITAD_LIMIT_EXCEEDED, "nexvitad_score: limit exceeded: image: image size 96x72 exceeds the model's limits (64 per side, 67108864 pixels; see nexvitad_options)", i_own_limit},
    {"image", "stride `SIZE_MAX / 2` (stride × height overflows)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score: invalid argument: image.stride 9223372036854775807 × height 72 overflows the address space", i_stride_overflow},
    {"image", "stride one byte shorter than a row", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score: invalid argument: image.stride 287 is smaller than one row of 96 rgb8 pixels (288 bytes)", i_stride_short},
    {"image", "`data` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score: invalid argument: image.data is NULL", i_data_null},
    {"image", "`image` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score: invalid argument: image is NULL", i_image_null},
    {"image", "unknown pixel format 42", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score: invalid argument: image.format: unknown pixel format 42 (expected 0=GRAY8, 1=RGB8, 2=BGR8, 3=RGBA8, 4=BGRA8)", i_format},
    {"image", "map buffer of 10 floats for a 96 × 72 image", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score: invalid argument: map_len 10 is smaller than the 96x72 map the image needs (6912 floats) for image", i_map_short},
    {"image", "result `struct_size` 0", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score: invalid argument: out->struct_size is 0; set it to sizeof(nexvitad_result) (104 in this library's nexvitad.h)", i_result_size},
    {"image", "result pointer NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score: invalid argument: out is NULL", i_result_null},
    {"image", "`nexvitad_bank_build`: `images[1].data` NULL (the index is named)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: images[1].data is NULL", i_build_index},
    {"image", "`nexvitad_score_batch` with n = 0", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_batch: invalid argument: n is 0: images must hold at least one image", i_batch_zero},
    {"image", "`nexvitad_score_batch`: maps given, `map_lens` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_batch: invalid argument: map_lens is NULL but maps_out is not", i_batch_lens},
    {"image", "`nexvitad_score_batch`: `map_lens[1]` = 5", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_batch: invalid argument: map_lens[1] 5 is smaller than the 96x72 map the image needs (6912 floats) for images[1]", i_batch_short},
    {"image", "`nexvitad_score_batch`: `results` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_batch: invalid argument: results is NULL", i_batch_results},

    /* Bank options (nexvitad_bank_build with 2 images) */
    {"options", "k = 0 (valid: the model's K, 30)", NEXVITAD_OK, "", o_k0},
    {"options", "k = 100000 > the patch vectors of one image", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: k = 100000 is larger than the 784 bank vectors; lower k or add images", o_k_big},
    {"options", "sigma = −5 (negative: the model's sigma, as −1; revision 2)", NEXVITAD_OK, "", o_sigma_neg},
    {"options", "sigma = −∞ (negative: the model's sigma)", NEXVITAD_OK, "", o_sigma_neg_inf},
    {"options", "sigma = NaN", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: sigma NaN must be finite and at most 1000 px", o_sigma_nan},
    {"options", "sigma = +∞", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: sigma inf must be finite and at most 1000 px", o_sigma_inf},
    {"options", "every field at its \"use the default\" value (zeros; sigma, tol −1): the defaults' bank", NEXVITAD_OK, "", o_all_default_markers},
    {"options", "epsilon, batch_size, coreset_ratio, max_vectors = 0 (the defaults; revision 2)", NEXVITAD_OK, "", o_zero_defaults},
    {"options", "epsilon = −1", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: epsilon -1 must be finite and > 0", o_eps_neg},
    {"options", "epsilon = NaN", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: epsilon NaN must be finite and > 0", o_eps_nan},
    {"options", "max_iters = 0 (the default, 50; revision 2)", NEXVITAD_OK, "", o_iters_zero},
    {"options", "tol = −1 (negative: the default, 1e-4; revision 2)", NEXVITAD_OK, "", o_tol_neg},
    {"options", "tol = NaN", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: tol NaN must be finite and >= 0", o_tol_nan},
    {"options", "coreset_ratio = 0 (coreset scorer: the default, 0.1; revision 2)", NEXVITAD_OK, "", o_coreset_zero},
    {"options", "coreset_ratio = 1.5", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: coreset_ratio 1.5 must be in (0, 1]", o_coreset_big},
    {"options", "top-mean fraction 0 (the default, 0.1; revision 2)", NEXVITAD_OK, "", o_top_zero},
    {"options", "top-mean fraction −0.5", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: top-mean fraction -0.5 must be in (0, 1]", o_top_neg},
    {"options", "top-mean fraction NaN", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: top-mean fraction NaN must be in (0, 1]", o_top_nan},
    {"options", "target_fpr = 1.5", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: target_fpr 1.5 must be in (0, 1)", o_fpr_big},
    {"options", "target_fpr = 1", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: target_fpr 1 must be in (0, 1)", o_fpr_one},
    {"options", "target_fpr = NaN", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: target_fpr NaN must be in (0, 1)", o_fpr_nan},
    {"options", "max_vectors = 10", NEXVITAD_LIMIT_EXCEEDED, "nexvitad_bank_build: limit exceeded: 2 images × 1 copies × 784 patches = 1568 bank vectors, above max_vectors 10", o_max_vectors},
    {"options", "scorer 5", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: options->scorer 5 is not a nexvitad_scorer (0 SINKHORN, 1 FULL, 2 CORESET)", o_scorer},
    {"options", "image_score_mode 3", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: options->image_score_mode 3 is not a nexvitad_image_score_mode (0 MAX, 1 TOP_MEAN)", o_mode},
    {"options", "augment 0x10 (unknown flag)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: options->augment 0x10 has bits that are not nexvitad_augment flags", o_augment},
    {"options", "bank options `struct_size` 3", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: options->struct_size is 3; set it to sizeof(nexvitad_bank_options) (104 in this library's nexvitad.h)", o_struct_small},
    {"options", "bank options `struct_size` 64 bytes larger than this library knows", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: options->struct_size 168 is larger than this library's nexvitad_bank_options (104 bytes): the program was built against a newer nexvitad.h than the libnexvitad it loaded", o_struct_big},
    {"options", "n = 0 images", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: n is 0: images must hold at least one image", o_n_zero},
    {"options", "n = SIZE_MAX images", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: n 18446744073709551615 is above the 1048576 images one call accepts", o_n_huge},
    {"options", "`images` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: images is NULL", o_images_null},
    {"options", "`out` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: out is NULL", o_out_null},

    {"options", "model options `struct_size` 0", NEXVITAD_INVALID_ARGUMENT, "nexvitad_model_open: invalid argument: options->struct_size is 0; set it to sizeof(nexvitad_options) (56 in this library's nexvitad.h)", mo_struct_zero},
    {"options", "model options from a newer header (`struct_size` + 64)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_model_open: invalid argument: options->struct_size 120 is larger than this library's nexvitad_options (56 bytes): the program was built against a newer nexvitad.h than the libnexvitad it loaded", mo_struct_big},
    {"options", "optimization_level 7", NEXVITAD_INVALID_ARGUMENT, "nexvitad_model_open: invalid argument: options->optimization_level 7 is not in 0..=3 (or negative, e.g. -1, for the default)", mo_opt_level},
    {"options", "optimization_level (uint32_t)−1 (negative: the default, 3; revision 2)", NEXVITAD_OK, "", mo_opt_level_default},
    {"options", "optimization_level 0 (valid: graph optimisation off)", NEXVITAD_OK, "", mo_opt_level_off},
    {"options", "reserved0 = 1", NEXVITAD_INVALID_ARGUMENT, "nexvitad_model_open: invalid argument: options->reserved0 is 1; it must be 0", mo_reserved},
    {"options", "parallel_encoders 2 (revision 6)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_model_open: invalid argument: options->parallel_encoders is 2; it must be 0 (off) or 1 (on)", mo_parallel_bad},
    {"options", "parallel_encoders 1 (valid: the encoders side by side)", NEXVITAD_OK, "", mo_parallel_on},
    {"options", "tile_batch 257 (above the cap)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_model_open: invalid argument: options->tile_batch 257 is above the largest accepted, 256 (0 = the default)", mo_tile_batch_big},
    {"options", "tile_batch (uint32_t)−1", NEXVITAD_INVALID_ARGUMENT, "nexvitad_model_open: invalid argument: options->tile_batch 4294967295 is above the largest accepted, 256 (0 = the default)", mo_tile_batch_huge},
    {"options", "tile_batch 1 (valid: one tile per encoder call)", NEXVITAD_OK, "", mo_tile_batch_one},
    {"options", "`struct_size` of a revision-5 program (48: no tile_batch)", NEXVITAD_OK, "", mo_struct_r5},
    {"options", "execution provider \"tpu:0\"", NEXVITAD_INVALID_ARGUMENT, "nexvitad_model_open: invalid argument: options->execution_provider: unknown execution provider 'tpu:0' (expected 'cpu' or 'cuda:N')", mo_ep_unknown},
    {"options", "execution provider \"cuda:-1\"", NEXVITAD_INVALID_ARGUMENT, "nexvitad_model_open: invalid argument: options->execution_provider: execution provider 'cuda:-1': device index must be a non-negative integer", mo_ep_bad_index},
    {"options", "execution provider \"cuda:0\" in a build without the `cuda` feature", NEXVITAD_UNSUPPORTED, "nexvitad_model_open: unsupported: execution provider cuda:0 was requested, but this nexvitad was built without the `cuda` feature (rebuild with `--features cuda`); not falling back to CPU", mo_ep_cuda},
    {"options", "`nexvitad_options_default(NULL)`", NEXVITAD_INVALID_ARGUMENT, "nexvitad_options_default: invalid argument: options is NULL", mo_defaults_null},
    {"options", "`nexvitad_model_open` with `out` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_model_open: invalid argument: out is NULL", mo_out_null},

    /* Tiling (revision 3; nexvitad_bank_build with 2 images of 96 × 72 unless said otherwise) */
    {"tiling", "tile_overlap = 1", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: options->tile_overlap 1 must be in [0, 1)", t_overlap_one},
    {"tiling", "tile_overlap = −0.25", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: options->tile_overlap -0.25 must be in [0, 1)", t_overlap_neg},
    {"tiling", "tile_overlap = NaN", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: options->tile_overlap is NaN", t_overlap_nan},
    {"tiling", "tile_layout 7", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: options->tile_layout 7 is not a nexvitad_tile_layout (0 SHARED, 1 PER_POSITION)", t_layout},
    {"tiling", "reserved1 = 1", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: options->reserved1 is 1; it must be 0", t_reserved},
    {"tiling", "tile 0 with tile_overlap 5 and tile_layout 7 (valid: tiling off, the two are ignored)", NEXVITAD_OK, "", t_off_ignores},
    {"tiling", "bank options `struct_size` 72 (a revision-2 caller; a tiling after it is not read): a whole-image bank", NEXVITAD_OK, "", t_revision2_struct},
    {"tiling", "tile 224 on 96 × 72 images (tile larger than the image)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: images[0]: tile 224x224 is larger than the 96x72 image; use a smaller tile or tiling off", t_larger_than_image},
    {"tiling", "tile 20000 (no fixed bound: refused as larger than the image)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: images[0]: tile 20000x20000 is larger than the 96x72 image; use a smaller tile or tiling off", t_over_image},
    {"tiling", "tile 0 with tile_overlap NaN (refused even with tiling off)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: options->tile_overlap is NaN", t_off_overlap_nan},
    {"tiling", "max_vectors = 10 with 48 px tiles (4 tiles per image)", NEXVITAD_LIMIT_EXCEEDED, "nexvitad_bank_build: limit exceeded: 8 tiles × 1 copies × 784 patches = 6272 bank vectors, above max_vectors 10", t_max_vectors},
    {"tiling", "tile 8 at overlap 0.9 on a 512 × 512 image: 255025 tiles", NEXVITAD_LIMIT_EXCEEDED, "nexvitad_bank_build: limit exceeded: images[0]: a 512x512 image in 8x8 tiles at overlap 0.9 makes 255025 tiles, above the limit of 4096 (MAX_TILES); use a larger tile or less overlap", t_too_many},
    {"tiling", "per-position build from images of two sizes (96 × 72, 80 × 64)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: a per_position tile bank needs images of one size: images[0] is 96x72, images[1] is 80x64", t_mixed_sizes},
    {"tiling", "`nexvitad_score`: a per-position bank of 96 × 72 images scores an 80 × 64 image", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score: invalid argument: this bank keeps one bank per tile position of 96x72 images; an image of 80x64 cannot be scored with it (give 96x72 images, or build a shared tile bank)", t_per_position_other_size},
    {"tiling", "`nexvitad_score_batch`: a per-position bank, `images[1]` of another size", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_batch: invalid argument: images[1]: this bank keeps one bank per tile position of 96x72 images; an image of 96x64 cannot be scored with it (give 96x72 images, or build a shared tile bank)", t_per_position_batch},
    {"tiling", "`nexvitad_score`: a shared tile bank scores an 80 × 64 image (valid: any size)", NEXVITAD_OK, "", t_shared_other_size},
    {"tiling", "`nexvitad_score`: a 40 × 40 image with 48 px tiles (tile larger than the image)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score: invalid argument: tile 48x48 is larger than the 40x40 image; use a smaller tile or tiling off", t_score_below_tile},

    /* Per-call thresholds and defect regions (revision 3; nexvitad_score_with_options on a 96 × 72 image unless said otherwise) */
    {"regions", "`bank` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_with_options: invalid argument: bank is NULL", s_bank_null},
    {"regions", "`image` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_with_options: invalid argument: image is NULL", s_image_null},
    {"regions", "`out` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_with_options: invalid argument: out is NULL", s_out_null},
    {"regions", "a model of another fingerprint", NEXVITAD_MISMATCH, "nexvitad_score_with_options: mismatch: this bank was built by model ...", s_other_model},
    {"regions", "map buffer of 10 floats", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_with_options: invalid argument: map_len 10 is smaller than the 96x72 map the image needs (6912 floats) for image", s_map_short},
    {"regions", "score options `struct_size` 0", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_with_options: invalid argument: options->struct_size is 0; set it to sizeof(nexvitad_score_options) (40 in this library's nexvitad.h)", s_struct_zero},
    {"regions", "score options `struct_size` 64 bytes larger than this library knows", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_with_options: invalid argument: options->struct_size 104 is larger than this library's nexvitad_score_options (40 bytes): the program was built against a newer nexvitad.h than the libnexvitad it loaded", s_struct_big},
    {"regions", "image_threshold = NaN", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_with_options: invalid argument: image_threshold NaN must be finite and >= 0", s_image_nan},
    {"regions", "image_threshold = +∞", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_with_options: invalid argument: image_threshold inf must be finite and >= 0", s_image_inf},
    {"regions", "pixel_threshold = NaN (nothing written: map, regions, count and out untouched)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_with_options: invalid argument: pixel_threshold NaN must be finite and >= 0", s_pixel_nan},
    {"regions", "`regions` NULL with `regions_cap` 4", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_with_options: invalid argument: regions is NULL but regions_cap is 4", s_regions_null_cap},
    {"regions", "`nexvitad_score_options_default(NULL)`", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_options_default: invalid argument: options is NULL", s_defaults_null},
    {"regions", "`nexvitad_score_options_default` with `struct_size` 4", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_options_default: invalid argument: options->struct_size is 4; set it to sizeof(nexvitad_score_options) (40 in this library's nexvitad.h)", s_defaults_size},
    {"regions", "options NULL (valid: the map and result of `nexvitad_score`, bit for bit; threshold_flags and region_count 0)", NEXVITAD_OK, "", s_null_options},
    {"regions", "image_threshold −5, pixel_threshold −∞ (valid: negative = the bank's; threshold_flags 0)", NEXVITAD_OK, "", s_negative_thresholds},
    {"regions", "image_threshold 0 and a caller pixel_threshold (valid: both flags set, the image is anomalous)", NEXVITAD_OK, "", s_caller_thresholds},
    {"regions", "count only: `regions` NULL, `regions_cap` 0 (valid: the count of a full query)", NEXVITAD_OK, "", s_count_only},
    {"regions", "an array of 2 for more regions (valid, like snprintf: the count exceeds the cap, the first 2 are written, the element after them is untouched)", NEXVITAD_OK, "", s_regions_short},
    {"regions", "`regions` given but `region_count` NULL (the array is untouched)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_with_options: invalid argument: regions is given but region_count is NULL; pass a size_t* to receive how many regions there are", s_count_null},
    {"regions", "min_region_area above the image's pixel count (valid: no regions)", NEXVITAD_OK, "", s_min_area},
    {"regions", "result `struct_size` 80 (a revision-2 caller; valid: the count comes through `region_count`, the bytes after `struct_size` are untouched)", NEXVITAD_OK, "", s_old_result},
    {"regions", "`nexvitad_score_batch_with_options` with image_threshold NaN (results untouched)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_batch_with_options: invalid argument: image_threshold NaN must be finite and >= 0", sb_nan},
    {"regions", "`nexvitad_score_batch_with_options` with caller thresholds (valid: every image decided at them; region counts as one call at a time)", NEXVITAD_OK, "", sb_valid},
    {"regions", "a per-position bank of 96 × 72 images scores an 80 × 64 image", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_with_options: invalid argument: this bank keeps one bank per tile position of 96x72 images; an image of 80x64 cannot be scored with it (give 96x72 images, or build a shared tile bank)", s_per_position_other_size},

    /* Regions of interest and recalibration (revision 4) */
    {"roi", "bank options `roi->data` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: options->roi->data is NULL", r_build_data_null},
    {"roi", "bank options `roi` of width 0", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: options->roi: mask size 0x6: width and height must be > 0", r_build_width0},
    {"roi", "bank options `roi->stride` 4 below its width 8", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: options->roi->stride 4 is smaller than its width 8", r_build_stride_short},
    {"roi", "bank options `roi` 70000 pixels wide", NEXVITAD_LIMIT_EXCEEDED, "nexvitad_bank_build: limit exceeded: options->roi: mask size 70000x6 is above 65536 per side", r_build_huge},
    {"roi", "bank options `roi` all zero (selects nothing)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: options->roi: ROI mask 8x6 is all zero: it selects no pixel to inspect (non-zero = inspect)", r_build_all_zero},
    {"roi", "a bank built with an 8 × 6 mask for 96 × 72 images (valid: scaled; get_roi gives 0/1, info 8 × 6, roi_source FROM_BANK, map 0 where ignored)", NEXVITAD_OK, "", r_bank_roi_valid},
    {"roi", "bank options of a revision-3 caller (`struct_size` without `roi`; valid: the field is not read)", NEXVITAD_OK, "", r_build_old_size},
    {"roi", "`nexvitad_bank_get_roi` on a bank without a ROI", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_get_roi: invalid argument: this bank has no region of interest (nexvitad_bank_info.roi_width is 0)", r_get_roi_none},
    {"roi", "`nexvitad_bank_get_roi` with `out` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_get_roi: invalid argument: out is NULL", r_get_roi_out_null},
    {"roi", "`nexvitad_bank_get_roi` into 47 bytes for an 8 × 6 mask (untouched)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_get_roi: invalid argument: out_len 47 is smaller than the 8x6 mask (48 bytes)", r_get_roi_short},
    {"roi", "score options `roi` of another size than the image (valid: scaled; roi_source FROM_CALLER)", NEXVITAD_OK, "", r_score_roi_valid},
    {"roi", "score options `roi` all zero", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_with_options: invalid argument: options->roi: ROI mask 8x6 is all zero: it selects no pixel to inspect (non-zero = inspect)", r_score_all_zero},
    {"roi", "score options `ignore_bank_roi` 2", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_with_options: invalid argument: options->ignore_bank_roi is 2; it must be 0 or 1", r_score_ignore2},
    {"roi", "score options `reserved0` 1", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score_with_options: invalid argument: options->reserved0 is 1; it must be 0", r_score_reserved},
    {"roi", "`nexvitad_bank_recalibrate` to target FPR NaN (`out` untouched)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_recalibrate: invalid argument: target_fpr NaN must be in (0, 1)", r_recal_nan},
    {"roi", "`nexvitad_bank_recalibrate` to target FPR 0", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_recalibrate: invalid argument: target_fpr 0 must be in (0, 1)", r_recal_zero},
    {"roi", "`nexvitad_bank_recalibrate` to target FPR 1", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_recalibrate: invalid argument: target_fpr 1 must be in (0, 1)", r_recal_one},
    {"roi", "`nexvitad_bank_recalibrate` with `out` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_recalibrate: invalid argument: out is NULL", r_recal_out_null},
    {"roi", "`nexvitad_bank_recalibrate` with `bank` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_recalibrate: invalid argument: bank is NULL", r_recal_bank_null},
    {"roi", "`nexvitad_bank_recalibrate` to 0.001 (valid: a new bank, thresholds at least as high; the original unchanged)", NEXVITAD_OK, "", r_recal_valid},

    /* Banks that grow (revision 5) */
    {"grow", "`nexvitad_bank_add` to a bank built without `growable` (`out` untouched)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_add: invalid argument: adding images: this bank was built without `growable`, so it did not keep its shots' features; build it again with growable (fit --growable) to add images later", g_add_not_growable},
    {"grow", "`nexvitad_bank_add` with n = 0", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_add: invalid argument: n is 0: images must hold at least one image", g_add_n0},
    {"grow", "`nexvitad_bank_add` with `images` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_add: invalid argument: images is NULL", g_add_images_null},
    {"grow", "`nexvitad_bank_add` with an image of width 0", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_add: invalid argument: images[0]: image size 0x72: width and height must be > 0", g_add_bad_image},
    {"grow", "`nexvitad_bank_add` with `out` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_add: invalid argument: out is NULL", g_add_out_null},
    {"grow", "`nexvitad_bank_add` of an 80 × 64 image to a growable per-position bank of 96 × 72 images", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_add: invalid argument: adding images: this bank keeps one bank per tile position of 96x72 images; images[0] is 80x64", g_growable_tiled},
    {"grow", "bank options `growable` 2", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_build: invalid argument: options->growable is 2; it must be 0 or 1", g_growable_2},
    {"grow", "`nexvitad_bank_merge` of banks with k 4 and k 5", NEXVITAD_MISMATCH, "nexvitad_bank_merge: mismatch: merging banks built with different k; only banks built with the same settings merge", g_merge_k},
    {"grow", "`nexvitad_bank_merge` of banks built by different models", NEXVITAD_MISMATCH, "nexvitad_bank_merge: mismatch: merging banks of different models ...", g_merge_models},
    {"grow", "`nexvitad_bank_merge` with a bank built without `growable`", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_merge: invalid argument: merging (second bank): this bank was built without `growable`, so it did not keep its shots' features; build it again with growable (fit --growable) to add images later", g_merge_not_growable},
    {"grow", "`nexvitad_bank_merge` with `b` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_merge: invalid argument: b is NULL", g_merge_null},
    {"grow", "add and merge (valid: both equal the build on all images, to the bit)", NEXVITAD_OK, "", g_add_merge_valid},

    /* Model folder and model.json (nexvitad_model_open) */
    {"model.json", "`dir` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_model_open: invalid argument: dir is NULL", m_dir_null},
    {"model.json", "`dir` \"\"", NEXVITAD_INVALID_ARGUMENT, "nexvitad_model_open: invalid argument: dir is an empty string", m_dir_empty},
    {"model.json", "folder missing", NEXVITAD_IO, "nexvitad_model_open: cannot open model folder '{work}/no-such-model': No such file or directory (os error 2)", m_dir_missing},
    {"model.json", "`dir` is a file", NEXVITAD_IO, "nexvitad_model_open: cannot open model folder '{model}/model.json': Not a directory (os error 20)", m_dir_is_file},
    {"model.json", "folder without model.json", NEXVITAD_IO, "nexvitad_model_open: cannot read model manifest '{work}/m-no-json/model.json': No such file or directory (os error 2)", m_no_json},
    {"model.json", "model.json unreadable (mode 000; as root the check runs without CAP_DAC_OVERRIDE)", NEXVITAD_IO, "nexvitad_model_open: cannot read model manifest '{work}/m-unreadable/model.json': Permission denied (os error 13)", m_unreadable},
    {"model.json", "model.json empty", FORMAT_, "nexvitad_model_open: bad file '{work}/m-empty/model.json': not valid JSON: EOF while parsing a value at line 1 column 0", m_empty},
    {"model.json", "model.json not JSON", FORMAT_, "nexvitad_model_open: bad file '{work}/m-garbage/model.json': not valid JSON: expected ident at line 1 column 2", m_garbage},
    {"model.json", "model.json is a folder", FORMAT_, "nexvitad_model_open: bad file '{work}/m-json-dir/model.json': not a regular file", m_json_dir},
    {"model.json", "model.json is a FIFO (no writer: must not block)", FORMAT_, "nexvitad_model_open: bad file '{work}/m-json-fifo/model.json': not a regular file", m_json_fifo},
    {"model.json", "model.json of 17 MiB (sparse)", NEXVITAD_LIMIT_EXCEEDED, "nexvitad_model_open: limit exceeded: '{work}/m-json-huge/model.json' is 17825792 bytes, above the limit of 16777216 bytes", m_json_huge},
    {"model.json", "field missing (`name`)", FORMAT_, "nexvitad_model_open: bad file '{work}/m-missing/model.json': missing field `name`", m_missing_field},
    {"model.json", "extra field (`colour`)", FORMAT_, "nexvitad_model_open: bad file '{work}/m-extra/model.json': unknown field `colour`, expected one of `format_version`, `name`, `input`, `hiera`, `dinov2`, `fusion`, `defaults`, `provenance`, `training`, `precision`", m_extra_field},
    {"model.json", "wrongly typed field (`\"k\": \"30\"`)", FORMAT_, "nexvitad_model_open: bad file '{work}/m-type/model.json': invalid type: string \"30\", expected usize", m_wrong_type},
    {"model.json", "future `format_version` 2", FORMAT_, "nexvitad_model_open: bad file '{work}/m-future/model.json': format_version 2 is newer than this nexvitad reads (1); upgrade nexvitad", m_future},
    {"model.json", "`format_version` 0", FORMAT_, "nexvitad_model_open: bad file '{work}/m-v0/model.json': format_version 0 is not a valid version", m_version0},
    {"model.json", "theta = 1.5", FORMAT_, "nexvitad_model_open: bad file '{work}/m-theta1/model.json': defaults.theta must be in (0, 1)", m_theta_big},
    {"model.json", "theta = 0", FORMAT_, "nexvitad_model_open: bad file '{work}/m-theta0/model.json': defaults.theta must be in (0, 1)", m_theta_zero},
    {"model.json", "defaults.k = 0", FORMAT_, "nexvitad_model_open: bad file '{work}/m-k0/model.json': defaults.k must be > 0", m_k_zero},
    {"model.json", "defaults.sigma = −1", FORMAT_, "nexvitad_model_open: bad file '{work}/m-sigma/model.json': defaults.sigma must be finite and >= 0", m_sigma_neg},
    {"model.json", "fusion widths describing a head of 10¹⁴ weights (found by fuzzing)", FORMAT_, "nexvitad_model_open: bad file '{work}/m-dims/model.json': the fusion head these widths describe has 106333333341998 weights, above the limit of 268435456 (hiera.channels, dinov2.channels, fusion.shared_dims, fusion.adapter_bottleneck)", m_huge_dims},
    {"model.json", "backbone file \"../hiera.onnx\" (outside the folder)", FORMAT_, "nexvitad_model_open: bad file '{work}/m-escape/model.json': backbone file name '../hiera.onnx' must be a plain file name inside the model folder", m_file_escape},

    /* ONNX files */
    {"onnx", "hiera.onnx missing", NEXVITAD_IO, "nexvitad_model_open: cannot read ONNX model '{work}/x-missing/hiera.onnx': No such file or directory (os error 2)", x_missing},
    {"onnx", "hiera.onnx empty", FORMAT_, "nexvitad_model_open: bad file '{work}/x-empty/hiera.onnx': the ONNX file is empty", x_empty},
    {"onnx", "hiera.onnx not a protobuf", FORMAT_, "nexvitad_model_open: bad file '{work}/x-garbage/hiera.onnx': ONNX Runtime cannot load this model: ...", x_garbage},
    {"onnx", "hiera.onnx cut in half", FORMAT_, "nexvitad_model_open: bad file '{work}/x-truncated/hiera.onnx': ONNX Runtime cannot load this model: ...", x_truncated},
    {"onnx", "hiera.onnx of 3 GiB (sparse)", NEXVITAD_LIMIT_EXCEEDED, "nexvitad_model_open: limit exceeded: '{work}/x-huge/hiera.onnx' is 3221225472 bytes, above the limit of 2147483648 bytes", x_huge},
    {"onnx", "wrong graph: dinov2.onnx saved as hiera.onnx (wrong outputs)", NEXVITAD_MISMATCH, "nexvitad_model_open: mismatch: '{work}/x-swapped/hiera.onnx' has no output named 'stage1' (model.json); its outputs are [\"patch_grid\"]", x_swapped},
    {"onnx", "model.json names an output the graph lacks (`stage9`)", NEXVITAD_MISMATCH, "nexvitad_model_open: mismatch: '{work}/x-output/hiera.onnx' has no output named 'stage9' (model.json); its outputs are [\"stage1\", \"stage2\", \"stage3\", \"stage4\"]", x_output_name},
    {"onnx", "model.json channel count differs from the graph (128 → 96)", NEXVITAD_MISMATCH, "nexvitad_model_open: mismatch: '{work}/x-channels/hiera.onnx' output 'stage4' has shape [-1, 128, 7, 7], but model.json implies [N, 96, 7, 7]", x_channels},
    {"onnx", "head.safetensors not safetensors", FORMAT_, "nexvitad_model_open: bad file '{work}/x-head/head.safetensors': not a valid safetensors file: header too large", x_head_garbage},

    /* Bank files (nexvitad_bank_load unless said otherwise) */
    {"bank file", "`path` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_load: invalid argument: path is NULL", b_path_null},
    {"bank file", "missing", NEXVITAD_IO, "nexvitad_bank_load: cannot read bank '{work}/missing.safetensors': No such file or directory (os error 2)", b_missing},
    {"bank file", "unreadable (mode 000; as root without CAP_DAC_OVERRIDE)", NEXVITAD_IO, "nexvitad_bank_load: cannot read bank '{work}/unreadable.safetensors': Permission denied (os error 13)", b_unreadable},
    {"bank file", "empty", FORMAT_, "nexvitad_bank_load: bad file '{work}/empty.safetensors': the bank file is empty", b_empty},
    {"bank file", "a folder", FORMAT_, "nexvitad_bank_load: bad file '{work}/dir.safetensors': not a regular file", b_dir},
    {"bank file", "a FIFO (no writer: must not block)", FORMAT_, "nexvitad_bank_load: bad file '{work}/fifo.safetensors': not a regular file", b_fifo},
    {"bank file", "a device (/dev/zero)", FORMAT_, "nexvitad_bank_load: bad file '/dev/zero': not a regular file", b_device},
    {"bank file", "9 GiB (sparse): refused before reading", NEXVITAD_LIMIT_EXCEEDED, "nexvitad_bank_load: limit exceeded: '{work}/huge.safetensors' is 9663676416 bytes, above the limit of 8589934592 bytes", b_huge},
    {"bank file", "text, not safetensors", FORMAT_, "nexvitad_bank_load: bad file '{work}/garbage.safetensors': not a valid safetensors file: header too large", b_garbage},
    {"bank file", "truncated to half", FORMAT_, "nexvitad_bank_load: bad file '{work}/truncated.safetensors': not a valid safetensors file: incomplete metadata, file not fully covered", b_truncated},
    {"bank file", "header only, no tensor data", FORMAT_, "nexvitad_bank_load: bad file '{work}/header-only.safetensors': not a valid safetensors file: incomplete metadata, file not fully covered", b_header_only},
    {"bank file", "header length field 2⁶³ − 1", FORMAT_, "nexvitad_bank_load: bad file '{work}/header-len.safetensors': not a valid safetensors file: header too large", b_header_len},
    {"bank file", "one bit flipped in the header's JSON syntax", FORMAT_, "nexvitad_bank_load: bad file '{work}/flip-header.safetensors': not a valid safetensors file: invalid JSON in header: expected value at line 1 column 1", b_flip_header},
    {"bank file", "one digit changed in the stored image threshold (still valid JSON)", FORMAT_, "nexvitad_bank_load: bad file '{work}/flip-threshold.safetensors': the bank's contents do not match its checksum (metadata 'sha256'): the file is damaged; restore it or rebuild the bank", b_flip_threshold},
    {"bank file", "one bit flipped in the vectors (still a finite float)", FORMAT_, "nexvitad_bank_load: bad file '{work}/flip-vector.safetensors': the bank's contents do not match its checksum (metadata 'sha256'): the file is damaged; restore it or rebuild the bank", b_flip_vector},
    {"bank file", "a NaN written into the vectors", FORMAT_, "nexvitad_bank_load: bad file '{work}/nan.safetensors': tensor 'vectors' holds NaN or infinite values", b_nan},
    {"bank file", "future bank `format_version` 9", FORMAT_, "nexvitad_bank_load: bad file '{work}/future.safetensors': bank format_version 9 is not one this nexvitad reads (1..=3)", b_future},
    {"bank file", "a safetensors file that is not a bank", FORMAT_, "nexvitad_bank_load: bad file '{work}/not-bank.safetensors': not a nexvitad bank (metadata 'format' is not 'nexvitad-bank')", b_not_bank},
    {"bank file", "a bank built by another model (other fingerprint)", NEXVITAD_MISMATCH, "nexvitad_bank_load: mismatch: this bank was built by model ...", b_other_model},
    {"bank file", "`nexvitad_score` with a bank of another model", NEXVITAD_MISMATCH, "nexvitad_score: mismatch: this bank was built by model ...", b_other_score},
    {"bank file", "an INT8 model (tools/quantize.py) loading its fp32 source's bank", NEXVITAD_MISMATCH, "nexvitad_bank_load: mismatch: this bank was built by model ...", b_int8_load},
    {"bank file", "`nexvitad_score`: an INT8 model with its fp32 source's bank", NEXVITAD_MISMATCH, "nexvitad_score: mismatch: this bank was built by model ...", b_int8_score},
    {"bank file", "`nexvitad_bank_save` into a missing folder", NEXVITAD_IO, "nexvitad_bank_save: cannot write '{work}/no-such-dir/bank.safetensors': No such file or directory (os error 2)", b_save_missing_dir},
    {"bank file", "`nexvitad_bank_save` onto an existing folder", NEXVITAD_IO, "nexvitad_bank_save: cannot write '{work}/a-folder': Is a directory (os error 21)", b_save_over_dir},
    {"bank file", "`nexvitad_bank_save` with `bank` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_save: invalid argument: bank is NULL", b_save_null},

    /* ONNX Runtime library (options->ort_library, each in a fresh process) */
    {"ORT library", "missing file", NEXVITAD_RUNTIME, "nexvitad_model_open: onnx runtime: could not load ONNX Runtime 1.32.0; tried: /nonexistent/libonnxruntime.so (options): no such file. Run `make ort` (scripts/setup-ort.sh) or set NEXVITAD_ORT_LIBRARY", r_missing},
    {"ORT library", "not a shared library (a JSON file)", NEXVITAD_RUNTIME, "nexvitad_model_open: onnx runtime: could not load ONNX Runtime 1.32.0; tried: {model}/model.json (options): failed to load from `...", r_not_elf},
    {"ORT library", "a shared library that is not ONNX Runtime (libnexvitad.so)", NEXVITAD_RUNTIME, "nexvitad_model_open: onnx runtime: could not load ONNX Runtime 1.32.0; tried: {lib} (options): {lib} does not export `OrtGetApiBase`. Run `make ort` (scripts/setup-ort.sh) or set NEXVITAD_ORT_LIBRARY", r_not_ort},
    {"ORT library", "ONNX Runtime of a wrong (older) version, 1.10.0", NEXVITAD_RUNTIME, "nexvitad_model_open: onnx runtime: could not load ONNX Runtime 1.32.0; tried: {fake_ort} (options): ort 2.0.0-rc.15 is not compatible with the ONNX Runtime binary found at `{fake_ort}`; expected version >= '1.31.x', but got '1.10.0'. Run `make ort` (scripts/setup-ort.sh) or set NEXVITAD_ORT_LIBRARY", r_old},
    {"ORT library", "a second, different library after one was loaded", NEXVITAD_RUNTIME, "nexvitad_model_open: onnx runtime: ONNX Runtime is already loaded from '{libdir}/libonnxruntime.so.1.32.0' in this process; a process can load only one, so '/nonexistent/libonnxruntime.so' cannot be used", mo_ort_other},

    /* Handles */
    {"handle", "model NULL (valid, revision 2: the bank's own model scores, same result)", NEXVITAD_OK, "", h_model_null},
    {"handle", "`nexvitad_score_batch` with model NULL (valid, revision 2)", NEXVITAD_OK, "", h_batch_model_null},
    {"handle", "model freed before its bank; the bank scores with model NULL (valid)", NEXVITAD_OK, "", h_model_freed_first},
    {"handle", "model freed before its bank; the freed model handle passed", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score: invalid argument: model ({addr}) is not a live nexvitad_model: already freed, or never returned by nexvitad", h_model_freed_stale},
    {"handle", "bank NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score: invalid argument: bank is NULL", h_bank_null},
    {"handle", "model and bank NULL (the bank is named)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score: invalid argument: bank is NULL", h_model_null_bank_null},
    {"handle", "bank freed twice", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_free: invalid argument: bank ({addr}) is not a live nexvitad_bank: already freed, or never returned by nexvitad", h_double_free_bank},
    {"handle", "model freed twice", NEXVITAD_INVALID_ARGUMENT, "nexvitad_model_free: invalid argument: model ({addr}) is not a live nexvitad_model: already freed, or never returned by nexvitad", h_double_free_model},
    {"handle", "stale bank (freed) used to score", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score: invalid argument: bank ({addr}) is not a live nexvitad_bank: already freed, or never returned by nexvitad", h_stale_bank},
    {"handle", "a bank passed as the model", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score: invalid argument: model ({addr}) is a nexvitad_bank, not a nexvitad_model", h_wrong_kind},
    {"handle", "a stray pointer (a stack address) as the bank", NEXVITAD_INVALID_ARGUMENT, "nexvitad_score: invalid argument: bank ({addr}) is not a live nexvitad_bank: already freed, or never returned by nexvitad", h_stray},
    {"handle", "`nexvitad_bank_get_info` with `info` NULL", NEXVITAD_INVALID_ARGUMENT, "nexvitad_bank_get_info: invalid argument: info is NULL", h_info_null},

    /* Callbacks and panics */
    {"callback", "progress callback cancels in the encode stage", NEXVITAD_CANCELLED, "nexvitad_bank_build: cancelled", c_cancel_encode},
    {"callback", "progress callback cancels in the clustering stage", NEXVITAD_CANCELLED, "nexvitad_bank_build: cancelled", c_cancel_cluster},
    {"callback", "progress callback cancels in the calibration stage", NEXVITAD_CANCELLED, "nexvitad_bank_build: cancelled", c_cancel_calibrate},
    {"callback", "log callback calls `nexvitad_set_log_callback` (would deadlock)", NEXVITAD_INVALID_ARGUMENT, "nexvitad_set_log_callback: invalid argument: cb: nexvitad_set_log_callback cannot be called from inside the log callback", c_log_reentrant},
    {"callback", "a panic inside the library (`nexvitad_selftest_panic`)", NEXVITAD_INTERNAL, "nexvitad_selftest_panic: internal error: panic: deliberate panic (nexvitad_selftest_panic)", c_panic},
};
#define NROWS (sizeof ROWS / sizeof ROWS[0])

/* ---- matching and output -------------------------------------------------------------- */

static void replace_all(char *s, size_t cap, const char *key, const char *value) {
    char tmp[8192];
    char *at;
    size_t kl = strlen(key), vl = strlen(value);
    while ((at = strstr(s, key)) != NULL) {
        size_t head = (size_t)(at - s), tail = strlen(at + kl);
        if (head + vl + tail + 1 > cap || head + vl + tail + 1 > sizeof tmp) return;
        memcpy(tmp, s, head);
        memcpy(tmp + head, value, vl);
        memcpy(tmp + head + vl, at + kl, tail + 1);
        memcpy(s, tmp, head + vl + tail + 1);
    }
}

/* Does `msg` match the expanded template `t` ({addr} = 0x + hex digits; "..." at the end =
   any rest)? */
static int matches(const char *t, const char *msg) {
    for (;;) {
        if (strcmp(t, "...") == 0) return 1;
        if (strncmp(t, "{addr}", 6) == 0) {
            if (msg[0] != '0' || msg[1] != 'x' || !isxdigit((unsigned char)msg[2])) return 0;
            msg += 2;
            while (isxdigit((unsigned char)*msg)) msg++;
            t += 6;
            continue;
        }
        if (*t != *msg) return 0;
        if (*t == '\0') return 1;
        t++, msg++;
    }
}

static void markdown(void) {
    printf("| # | Area | Input | Status | Message |\n|---|---|---|---|---|\n");
    for (size_t i = 0; i < NROWS; i++) {
        printf("| %zu | %s | %s | `%s` | ", i + 1, ROWS[i].area, ROWS[i].input, nexvitad_status_name(ROWS[i].want));
        if (ROWS[i].message[0] == '\0') {
            printf("\"\" (success) |\n");
            continue;
        }
        printf("`");
        for (const char *c = ROWS[i].message; *c; c++) {
            if (*c == '|')
                printf("\\|");
            else if (*c == '`')
                printf("'");
            else
                putchar(*c);
        }
        printf("` |\n");
    }
    printf("\n%zu rows.\n", NROWS);
}

static int setup(void) {
    /* dladdr wants an object pointer; ISO C has no cast from a function pointer, memcpy it. */
    const char *(*fn)(void) = nexvitad_version;
    void *addr;
    memcpy(&addr, &fn, sizeof addr);
    Dl_info info;
    if (dladdr(addr, &info) == 0 || !info.dli_fname || !realpath(info.dli_fname, g_lib_path)) {
        fprintf(stderr, "cannot find the loaded libnexvitad.so\n");
        return -1;
    }
    snprintf(g_lib_dir, sizeof g_lib_dir, "%s", g_lib_path);
    char *slash = strrchr(g_lib_dir, '/');
    if (slash) *slash = '\0';
    static const char *good[] = {"good/good_0.ppm", "good/good_1.ppm"};
    char p[4096];
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", g_data_dir, good[i]);
        if (ppm_read(p, &g_good[i]) != 0) return -1;
        g_views[i] = g_good[i].view;
    }
    nexvitad_options o = options();
    if (nexvitad_model_open(g_model_dir, &o, &g_m) != NEXVITAD_OK) goto fail;
    const char *other = model_variant("other-model", "\"local_avg\": 3", "\"local_avg\": 1");
    if (nexvitad_model_open(other, &o, &g_other) != NEXVITAD_OK) goto fail;
    nexvitad_bank_options bo = bank_options();
    if (nexvitad_bank_build(g_m, g_views, 2, &bo, NULL, NULL, &g_b) != NEXVITAD_OK) goto fail;
    snprintf(g_bank_path, sizeof g_bank_path, "%s", in_work("bank.safetensors"));
    if (nexvitad_bank_save(g_b, g_bank_path) != NEXVITAD_OK) goto fail;
    return 0;
fail:
    fprintf(stderr, "setup failed: %s\n", nexvitad_last_error());
    return -1;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--markdown") == 0) {
        markdown();
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "--ort-child") == 0) return ort_child_main(argv[2], argv[3]);
    if (argc != 5) {
        fprintf(stderr, "usage: %s MODEL_DIR DATA_DIR WORK_DIR FAKE_ORT_SO | --markdown\n", argv[0]);
        return 2;
    }
    g_model_dir = argv[1], g_data_dir = argv[2], g_work_dir = argv[3], g_fake_ort = argv[4];
    /* A FIFO row must never block; if one did, SIGALRM ends the run with a failure. */
    alarm(600);
    if (setup() != 0) return 1;
    const char *verbose = getenv("NEXVITAD_MATRIX_VERBOSE");
    int pass = 0, fail = 0;
    for (size_t i = 0; i < NROWS; i++) {
        const row *r = &ROWS[i];
        g_msg[0] = '\0';
        nexvitad_status got = r->run();
        char want[8192];
        snprintf(want, sizeof want, "%s", r->message);
        replace_all(want, sizeof want, "{work}", g_work_dir);
        replace_all(want, sizeof want, "{model}", g_model_dir);
        replace_all(want, sizeof want, "{libdir}", g_lib_dir);
        replace_all(want, sizeof want, "{lib}", g_lib_path);
        replace_all(want, sizeof want, "{fake_ort}", g_fake_ort);
        int ok = got == r->want && matches(want, g_msg);
        if (ok)
            pass++;
        else
            fail++;
        if (!ok || (verbose && *verbose == '1'))
            fprintf(stderr, "%s row %zu (%s: %s)\n  want %s \"%s\"\n  got  %s \"%s\"\n", ok ? "ok" : "FAIL", i + 1,
                    r->area, r->input, nexvitad_status_name(r->want), want, nexvitad_status_name(got), g_msg);
    }
    nexvitad_bank_free(g_b);
    nexvitad_model_free(g_m);
    nexvitad_model_free(g_other);
    for (int i = 0; i < 2; i++) ppm_free(&g_good[i]);
    printf("bad-input matrix: %zu rows: %d passed, %d failed\n", NROWS, pass, fail);
    return fail == 0 ? 0 : 1;
}
