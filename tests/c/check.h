/*
 * check.h - the assertion helpers of the C test programs (test_capi.c, test_train.c): counters,
 * CHECK / OK / BAD, and a path joiner. Each program prints "N passed, N failed" from the
 * counters at its end. Include once, after <nexvitad.h>, <stdio.h> and <string.h>.
 */
#ifndef NEXVITAD_TESTS_CHECK_H
#define NEXVITAD_TESTS_CHECK_H

static int g_pass, g_fail, g_bad_inputs;

#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        if (cond) {                                                              \
            g_pass++;                                                            \
        } else {                                                                 \
            g_fail++;                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
        }                                                                        \
    } while (0)

/* A call that must succeed; on failure prints the library's message. */
#define OK(call)                                                                 \
    do {                                                                         \
        nexvitad_status st_ = (call);                                            \
        CHECK(st_ == NEXVITAD_OK, "%s -> %s: %s", #call, nexvitad_status_name(st_), \
              nexvitad_last_error());                                            \
    } while (0)

/* A bad-input call: must return `want` with `substr` in nexvitad_last_error(). */
#define BAD(call, want, substr) expect_bad((call), (want), (substr), #call, __LINE__)

static void expect_bad(nexvitad_status got, nexvitad_status want, const char *substr, const char *expr,
                       int line) {
    const char *msg = nexvitad_last_error();
    g_bad_inputs++;
    if (got == want && msg != NULL && strstr(msg, substr) != NULL) {
        g_pass++;
    } else {
        g_fail++;
        fprintf(stderr, "FAIL %s:%d: %s\n  want %s with \"%s\"\n  got  %s: \"%s\"\n", __FILE__, line, expr,
                nexvitad_status_name(want), substr, nexvitad_status_name(got), msg ? msg : "(NULL)");
    }
}

/* `dir`/`name` into `out` (n bytes). */
static void path_in(char *out, size_t n, const char *dir, const char *name) {
    snprintf(out, n, "%s/%s", dir, name);
}

#endif
