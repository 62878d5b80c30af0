/*
 * fake_ort.c - a stand-in "ONNX Runtime" of another version, for the bad-input matrix
 * (test_matrix.c, row "ONNX Runtime of a wrong version"). It exports only OrtGetApiBase,
 * whose GetVersionString says FAKE_ORT_VERSION and whose GetApi serves no API version.
 * Built by tests/c/run.sh: gcc -shared -fPIC -DFAKE_ORT_VERSION='"1.10.0"'.
 */
#include <stddef.h>
#include <stdint.h>

#ifndef FAKE_ORT_VERSION
#define FAKE_ORT_VERSION "1.10.0"
#endif

typedef struct fake_api_base {
    const void *(*get_api)(uint32_t version);
    const char *(*get_version_string)(void);
} fake_api_base;

static const void *get_api(uint32_t version) {
    (void)version;
    return NULL;
}

static const char *get_version_string(void) { return FAKE_ORT_VERSION; }

static const fake_api_base base = {get_api, get_version_string};

const fake_api_base *OrtGetApiBase(void);
const fake_api_base *OrtGetApiBase(void) { return &base; }
