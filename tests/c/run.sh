#!/usr/bin/env bash
# The C ABI checks, run by `make test-c` against an installed tree (argument: its prefix):
#   1. the header compiles as C99 and as C++17 (-Wall -Wextra -Werror -pedantic), with the
#      ABI layout and signature checks of abi_check.h;
#   2. the C tests and the example build with `pkg-config nexvitad`, the example also with
#      CMake `find_package(nexvitad)` and statically against libnexvitad.a;
#   3. the tests and the example run with no ONNX Runtime environment variable (the
#      installed libonnxruntime.so beside libnexvitad.so must be found on its own);
#   4. the bad-input matrix (test_matrix.c: each row's status and message), and that
#      docs/reliability.md shows the same table (matrix-doc.sh --check);
#   5. the tiling tests (tests/c/test_tiles.c, ABI revision 3): shared and per-position tile
#      banks built, saved and loaded, the cross-language fixture's whole-image and tiled banks
#      reproduced to the last bit, and a caller built against a revision-2 header;
#   6. the region tests (tests/c/test_regions.c, ABI revision 3): nexvitad_score_with_options
#      with NULL options equals nexvitad_score bit for bit, the options' defaults, and the
#      cross-language fixture's defect-region list reproduced to the last bit;
#   7. the training tests (tests/c/test_train.c) train the tiny model on the synthetic
#      fixture tests/fixtures/train/data, cancel, resume and check the bad inputs;
#   8. tests (quick mode) and example under valgrind, failing on any error or any definitely
#      lost byte; the training tests there run their option and bad-input cases only (no
#      training run: far too slow under valgrind), test_tiles and test_regions not at all
#      (their tile banks encode dozens of tiles: over ten minutes under valgrind; `make
#      test-sanitize` runs them under ASan+UBSan instead). Without valgrind this fails (scripts/setup.sh
#      installs it) unless NEXVITAD_SKIP_VALGRIND=1 asks to skip this step.
set -euo pipefail

PREFIX=$(realpath "$1")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B="$ROOT/build/c"
cd "$ROOT"
rm -rf "$B"
mkdir -p "$B/work" "$B/matrix-work" "$B/tiles-work" "$B/example-out" "$B/example-cmake-out" "$B/example-static-out" "$B/vg-work" "$B/vg-example-out"

export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
# Prove the installed tree needs no environment: ONNX Runtime is found beside libnexvitad.so.
unset NEXVITAD_ORT_LIBRARY ORT_DYLIB_PATH LD_LIBRARY_PATH
# nexvitad_selftest_panic() panics on purpose; keep its report to the one-line message.
export RUST_BACKTRACE=0

step() { printf '\n== %s\n' "$*"; }

step "pkg-config: $(pkg-config --modversion nexvitad)"
read -r -a PC_CFLAGS <<<"$(pkg-config --cflags nexvitad)"
read -r -a PC_LIBS <<<"$(pkg-config --libs nexvitad)"
read -r -a PC_STATIC <<<"$(pkg-config --static --libs nexvitad)"
# The consumer finds libnexvitad.so through its rpath; nothing else is configured.
RPATH=(-Wl,-rpath,"$PREFIX/lib")
CWARN=(-Wall -Wextra -Werror)

step "header: C99 and C++17"
# The panic self-test hook is exported for tests (tests/c/selftest.h) but not public API.
if grep -q nexvitad_selftest_panic "$PREFIX/include/nexvitad.h"; then
    echo "the installed nexvitad.h declares the test hook nexvitad_selftest_panic"; exit 1
fi
nm -D --defined-only "$PREFIX/lib/libnexvitad.so" | grep -q ' T nexvitad_selftest_panic$' \
    || { echo "libnexvitad.so does not export nexvitad_selftest_panic (the tests need it)"; exit 1; }
gcc -std=c99 -pedantic "${CWARN[@]}" "${PC_CFLAGS[@]}" tests/c/header_c99.c -o "$B/header_c99" "${PC_LIBS[@]}" "${RPATH[@]}"
g++ -std=c++17 -pedantic "${CWARN[@]}" "${PC_CFLAGS[@]}" tests/c/header_cpp.cpp -o "$B/header_cpp" "${PC_LIBS[@]}" "${RPATH[@]}"
"$B/header_c99"
"$B/header_cpp"

step "build: tests and example via pkg-config"
gcc -std=c99 -pedantic -g "${CWARN[@]}" "${PC_CFLAGS[@]}" -Iexamples/c tests/c/test_capi.c \
    -o "$B/test_capi" "${PC_LIBS[@]}" "${RPATH[@]}" -lpthread -lm
gcc -std=c99 -pedantic -g "${CWARN[@]}" "${PC_CFLAGS[@]}" -Iexamples/c tests/c/test_matrix.c \
    -o "$B/test_matrix" "${PC_LIBS[@]}" "${RPATH[@]}" -lm -ldl
# A stand-in ONNX Runtime of an old version, for the matrix's wrong-version row.
gcc -shared -fPIC -O2 "${CWARN[@]}" -DFAKE_ORT_VERSION='"1.10.0"' tests/c/fake_ort.c -o "$B/libonnxruntime-1.10.0.so"
gcc -std=c99 -pedantic -g "${CWARN[@]}" "${PC_CFLAGS[@]}" -Iexamples/c tests/c/test_tiles.c \
    -o "$B/test_tiles" "${PC_LIBS[@]}" "${RPATH[@]}" -lm
gcc -std=c99 -pedantic -g "${CWARN[@]}" "${PC_CFLAGS[@]}" tests/c/test_regions.c \
    -o "$B/test_regions" "${PC_LIBS[@]}" "${RPATH[@]}" -lm
gcc -std=c99 -pedantic -g "${CWARN[@]}" "${PC_CFLAGS[@]}" -Iexamples/c tests/c/test_train.c \
    -o "$B/test_train" "${PC_LIBS[@]}" "${RPATH[@]}" -lm
gcc -std=c99 -pedantic -g "${CWARN[@]}" "${PC_CFLAGS[@]}" examples/c/nexvitad_example.c \
    -o "$B/nexvitad_example" "${PC_LIBS[@]}" "${RPATH[@]}"
readelf -d "$B/nexvitad_example" | grep -q 'NEEDED.*\[libnexvitad.so.0\]' || { echo "example does not link the soname"; exit 1; }

step "build: example via CMake find_package(nexvitad)"
cmake -S examples/c -B "$B/cmake" -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_BUILD_TYPE=Release >"$B/cmake.log" \
    || { cat "$B/cmake.log"; exit 1; }
cmake --build "$B/cmake" >>"$B/cmake.log" || { cat "$B/cmake.log"; exit 1; }

step "build: example statically linked (libnexvitad.a)"
STATIC_LIBS=("${PC_STATIC[@]/#-lnexvitad/-l:libnexvitad.a}")
gcc -std=c99 -pedantic "${CWARN[@]}" "${PC_CFLAGS[@]}" examples/c/nexvitad_example.c \
    -o "$B/nexvitad_example_static" "${STATIC_LIBS[@]}"
if readelf -d "$B/nexvitad_example_static" | grep -q 'libnexvitad'; then
    echo "static example still needs libnexvitad.so"; exit 1
fi

# A second model whose fusion differs: another fingerprint, for the wrong-model cases.
mkdir -p "$B/tiny_other"
cp models/tiny/* "$B/tiny_other/"
sed -i 's/"local_avg": 3/"local_avg": 1/' "$B/tiny_other/model.json"
grep -q '"local_avg": 1' "$B/tiny_other/model.json"

IMAGES=(examples/c/data/test/good_4.ppm examples/c/data/test/scratch.ppm examples/c/data/test/spot_gray.pgm)

step "run: C tests"
"$B/test_capi" models/tiny "$B/tiny_other" examples/c/data "$B/work"

step "run: bad-input matrix"
"$B/test_matrix" models/tiny examples/c/data "$B/matrix-work" "$B/libonnxruntime-1.10.0.so"
bash tests/c/matrix-doc.sh --check "$PREFIX"

step "run: C tiling tests"
"$B/test_tiles" models/tiny examples/c/data tests/fixtures/crosslang "$B/tiles-work"

step "run: C region tests"
"$B/test_regions" models/tiny tests/fixtures/crosslang

# Training: 1 thread for candle's kernels (its pool spin-waits; see `nexvitad train --help`).
step "run: C training tests"
mkdir -p "$B/train-work"
CANDLE_NUM_THREADS=1 "$B/test_train" models/tiny tests/fixtures/train/data examples/c/data "$B/train-work"

step "run: example (pkg-config build)"
"$B/nexvitad_example" models/tiny examples/c/data/good "$B/example-out" "${IMAGES[@]}"
for i in "${IMAGES[@]}"; do test -s "$B/example-out/$(basename "$i").heat.pgm"; done

step "run: example (CMake build)"
"$B/cmake/nexvitad_example" models/tiny examples/c/data/good "$B/example-cmake-out" "${IMAGES[@]}" >/dev/null
cmp "$B/example-out/scratch.ppm.heat.pgm" "$B/example-cmake-out/scratch.ppm.heat.pgm"

step "run: example (static build; ONNX Runtime named by NEXVITAD_ORT_LIBRARY)"
NEXVITAD_ORT_LIBRARY="$PREFIX/lib/libonnxruntime.so" \
    "$B/nexvitad_example_static" models/tiny examples/c/data/good "$B/example-static-out" "${IMAGES[@]}" >/dev/null
cmp "$B/example-out/scratch.ppm.heat.pgm" "$B/example-static-out/scratch.ppm.heat.pgm"

if [ "${NEXVITAD_SKIP_VALGRIND:-}" = 1 ]; then
    step "valgrind: SKIPPED by request (NEXVITAD_SKIP_VALGRIND=1)"
elif ! command -v valgrind >/dev/null; then
    echo "valgrind not found: install it (scripts/setup.sh does; Debian: apt-get install valgrind)," \
        "or set NEXVITAD_SKIP_VALGRIND=1 to skip the valgrind step on purpose" >&2
    exit 1
else
    # Valgrind runs ONNX Runtime ~50x slower, so it gets a reduced load: the tests in quick
    # mode (2 good images, 2 threads, no cases that only repeat encoder work) and the example
    # with 2 good images and 1 test image. Both run at once (one per core).
    mkdir -p "$B/vg-good"
    ln -s "$ROOT/examples/c/data/good/good_0.ppm" "$ROOT/examples/c/data/good/good_1.ppm" "$B/vg-good/"
    VG=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
        --show-leak-kinds=definite --suppressions=tests/c/valgrind.supp)
    step "valgrind: C tests (NEXVITAD_TEST_QUICK=1) and example, in parallel"
    NEXVITAD_TEST_QUICK=1 "${VG[@]}" --log-file="$B/valgrind-tests.log" \
        "$B/test_capi" models/tiny "$B/tiny_other" examples/c/data "$B/vg-work" >"$B/valgrind-tests.out" 2>&1 &
    TESTS_PID=$!
    "${VG[@]}" --log-file="$B/valgrind-example.log" \
        "$B/nexvitad_example" models/tiny "$B/vg-good" "$B/vg-example-out" examples/c/data/test/scratch.ppm \
        >"$B/valgrind-example.out" 2>&1 &
    EXAMPLE_PID=$!
    rc=0
    wait "$TESTS_PID" || rc=1
    tail -n 3 "$B/valgrind-tests.out"
    if [ $rc -ne 0 ]; then cat "$B/valgrind-tests.out" "$B/valgrind-tests.log"; fi
    wait "$EXAMPLE_PID" || { rc=1; cat "$B/valgrind-example.out" "$B/valgrind-example.log"; }
    # Training tests in quick mode: options and bad inputs only (each fails before encoding);
    # a training run under valgrind would take many minutes.
    step "valgrind: C training tests (NEXVITAD_TEST_QUICK=1: no training runs)"
    mkdir -p "$B/vg-train-work"
    NEXVITAD_TEST_QUICK=1 "${VG[@]}" --log-file="$B/valgrind-train.log" \
        "$B/test_train" models/tiny tests/fixtures/train/data examples/c/data "$B/vg-train-work" \
        >"$B/valgrind-train.out" 2>&1 || { rc=1; cat "$B/valgrind-train.out" "$B/valgrind-train.log"; }
    tail -n 2 "$B/valgrind-train.out"
    [ $rc -eq 0 ] || { echo "valgrind found errors or definite leaks"; exit 1; }
    for log in "$B/valgrind-tests.log" "$B/valgrind-example.log" "$B/valgrind-train.log"; do
        echo "$(basename "$log"):"
        grep -E "ERROR SUMMARY|definitely lost|possibly lost|still reachable" "$log" | sed 's/^==[0-9]*==/ /'
    done
fi

step "C ABI checks passed"
