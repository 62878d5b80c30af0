/*
 * json.h - just enough JSON for the cross-language fixture (tests/fixtures/crosslang/
 * expected*.json) in the C tests: the scalar value of one member of an object (members of
 * nested objects and arrays are skipped, so a region's "width" is never taken for the
 * image's), and the elements of an array. Not a general parser: it trusts its input.
 * Include after <string.h>.
 */
#ifndef NEXVITAD_TESTS_JSON_H
#define NEXVITAD_TESTS_JSON_H

#include <ctype.h>
#include <stddef.h>
#include <string.h>

/* `s` at a string's opening quote: the character after its closing quote. */
static inline const char *json_skip_string(const char *s) {
    s++;
    while (*s && *s != '"') {
        if (*s == '\\' && s[1]) s++;
        s++;
    }
    return *s ? s + 1 : s;
}

static inline const char *json_skip_space(const char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    return s;
}

/* `obj` at (or before) an object's '{': the start of the value of its member `key` (this
   object's own members only), or NULL. */
static inline const char *json_member(const char *obj, const char *key) {
    const char *p = obj ? strchr(obj, '{') : NULL;
    size_t kl = strlen(key);
    int depth = 0;
    while (p && *p) {
        if (*p == '"') {
            const char *end = json_skip_string(p);
            const char *colon = json_skip_space(end);
            if (depth == 1 && *colon == ':' && (size_t)(end - p) == kl + 2 && memcmp(p + 1, key, kl) == 0)
                return json_skip_space(colon + 1);
            p = end;
            continue;
        }
        if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (--depth == 0) return NULL;
        }
        p++;
    }
    return NULL;
}

/* A scalar value (a string without its quotes, a number, true/false) into `out`; 0 if it
   fits, -1 otherwise (also for a NULL `v`). */
static inline int json_scalar(const char *v, char *out, size_t n) {
    if (!v) return -1;
    size_t len;
    if (*v == '"') {
        v++;
        len = strcspn(v, "\"");
    } else {
        len = strcspn(v, ",}] \t\r\n");
    }
    if (len + 1 > n) return -1;
    memcpy(out, v, len);
    out[len] = '\0';
    return 0;
}

/* The scalar member `key` of the object at `obj` into `out`; 0 if found and it fits. */
static inline int json_field(const char *obj, const char *key, char *out, size_t n) {
    return json_scalar(json_member(obj, key), out, n);
}

/* `arr` at an array's '[': the start of its element `i`, or NULL when it has fewer. */
static inline const char *json_element(const char *arr, size_t i) {
    if (!arr || *arr != '[') return NULL;
    const char *p = json_skip_space(arr + 1);
    if (*p == ']') return NULL;
    size_t at = 0;
    int depth = 0;
    const char *start = p;
    while (*p) {
        if (at == i) return start;
        if (*p == '"') {
            p = json_skip_string(p);
            continue;
        }
        if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (depth-- == 0) return NULL; /* the array's own ']' */
        } else if (*p == ',' && depth == 0) {
            at++;
            start = json_skip_space(p + 1);
            p = start;
            continue;
        }
        p++;
    }
    return NULL;
}

#endif
