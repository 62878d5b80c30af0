#!/usr/bin/env bash
# `make test-sanitize`: the C tests (test_capi, test_matrix, test_tiles, test_regions) and the C++ binding's tests,
# compiled with AddressSanitizer + UndefinedBehaviorSanitizer (Debian gcc's libasan/libubsan),
# run against the installed libnexvitad.so (argument: its prefix). Any ASan report, any UBSan
# report (halt_on_error: the first one fails the run) or any leak LeakSanitizer does not
# suppress (tests/c/lsan.supp, each entry explained there) fails the target.
#
# What is instrumented: the test programs and the C++ binding (header-only, so all of it).
# libnexvitad.so (Rust, memory-safe by construction outside its audited `unsafe`) and the
# prebuilt libonnxruntime.so are not recompiled, but ASan's allocator and interceptors
# still see every malloc/free/memcpy they make: a heap overflow by the library into a
# caller's buffer, a double free or a use-after-free of a caller's memory is still caught.
set -euo pipefail

PREFIX=$(realpath "$1")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B="$ROOT/build/sanitize"
cd "$ROOT"
rm -rf "$B"
mkdir -p "$B/work" "$B/matrix-work" "$B/tiles-work"

SAN=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$ROOT/tests/c/lsan.supp:print_suppressions=0"
# As in run.sh: the installed tree must find ONNX Runtime beside libnexvitad.so on its own.
unset NEXVITAD_ORT_LIBRARY ORT_DYLIB_PATH LD_LIBRARY_PATH
export RUST_BACKTRACE=0
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
read -r -a PC_CFLAGS <<<"$(pkg-config --cflags nexvitad)"
read -r -a PC_LIBS <<<"$(pkg-config --libs nexvitad)"
RPATH=(-Wl,-rpath,"$PREFIX/lib")
CWARN=(-Wall -Wextra -Werror)

step() { printf '\n== %s\n' "$*"; }

step "build: C tests with -fsanitize=address,undefined"
gcc -std=c99 -pedantic -g -O1 "${SAN[@]}" "${CWARN[@]}" "${PC_CFLAGS[@]}" -Iexamples/c tests/c/test_capi.c \
    -o "$B/test_capi" "${PC_LIBS[@]}" "${RPATH[@]}" -lpthread -lm
gcc -std=c99 -pedantic -g -O1 "${SAN[@]}" "${CWARN[@]}" "${PC_CFLAGS[@]}" -Iexamples/c tests/c/test_matrix.c \
    -o "$B/test_matrix" "${PC_LIBS[@]}" "${RPATH[@]}" -lm -ldl
gcc -std=c99 -pedantic -g -O1 "${SAN[@]}" "${CWARN[@]}" "${PC_CFLAGS[@]}" -Iexamples/c tests/c/test_tiles.c \
    -o "$B/test_tiles" "${PC_LIBS[@]}" "${RPATH[@]}" -lm
gcc -std=c99 -pedantic -g -O1 "${SAN[@]}" "${CWARN[@]}" "${PC_CFLAGS[@]}" tests/c/test_regions.c \
    -o "$B/test_regions" "${PC_LIBS[@]}" "${RPATH[@]}" -lm
gcc -shared -fPIC -O2 "${CWARN[@]}" -DFAKE_ORT_VERSION='"1.10.0"' tests/c/fake_ort.c -o "$B/libonnxruntime-1.10.0.so"
grep -q __asan_init <(nm "$B/test_capi") || { echo "test_capi is not instrumented"; exit 1; }

# A second model whose fusion differs (another fingerprint), as in run.sh.
mkdir -p "$B/tiny_other"
cp models/tiny/* "$B/tiny_other/"
sed -i 's/"local_avg": 3/"local_avg": 1/' "$B/tiny_other/model.json"

step "run: C tests under ASan+UBSan (all at once)"
"$B/test_capi" models/tiny "$B/tiny_other" examples/c/data "$B/work" >"$B/test_capi.log" 2>&1 &
capi=$!
"$B/test_matrix" models/tiny examples/c/data "$B/matrix-work" "$B/libonnxruntime-1.10.0.so" >"$B/test_matrix.log" 2>&1 &
matrix=$!
"$B/test_tiles" models/tiny examples/c/data tests/fixtures/crosslang "$B/tiles-work" >"$B/test_tiles.log" 2>&1 &
tiles=$!
"$B/test_regions" models/tiny tests/fixtures/crosslang >"$B/test_regions.log" 2>&1 &
regions=$!
rc=0
wait "$capi" || rc=1
wait "$matrix" || rc=1
wait "$tiles" || rc=1
wait "$regions" || rc=1
for log in "$B/test_capi.log" "$B/test_matrix.log" "$B/test_tiles.log" "$B/test_regions.log"; do
    # A sanitizer report anywhere (also in the matrix's child processes) is a failure.
    if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then rc=1; fi
    if [ $rc -ne 0 ]; then cat "$log"; else tail -n 1 "$log"; fi
done
[ $rc -eq 0 ] || { echo "C tests failed under the sanitizers"; exit 1; }

step "C++ binding tests with -fsanitize=address,undefined (build/cpp-sanitize)"
# A fresh tree: CMake reads $CXXFLAGS and $LDFLAGS only when it first configures one.
rm -rf "$ROOT/build/cpp-sanitize"
# -Wno-maybe-uninitialized: with -fsanitize, gcc 12 reports false "may be used uninitialized"
# warnings inside libstdc++'s <regex> (GoogleTest uses it), which the tests' -Werror would
# turn into errors; the normal build (make test-cpp) keeps the warning.
CXXFLAGS="${SAN[*]} -g -O1 -Wno-maybe-uninitialized" LDFLAGS="${SAN[*]}" NEXVITAD_CPP_BUILD_DIR="$ROOT/build/cpp-sanitize" \
    CMAKE_BUILD_TYPE=Debug bash bindings/cpp/test.sh "$PREFIX"

step "sanitizer runs passed"
