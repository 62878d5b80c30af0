#!/usr/bin/env bash
# Builds and runs the C++ binding's tests and the inspect example's test against an installed
# nexvitad (the C library): bindings/cpp/test.sh PREFIX   (or NEXVITAD_PREFIX=PREFIX).
# Build tree: build/cpp at the repository root, or $NEXVITAD_CPP_BUILD_DIR (a fresh tree picks
# up $CXXFLAGS and $LDFLAGS: tests/c/sanitize.sh builds a sanitized copy that way). Installs nothing.
# Needs: g++ cmake libgtest-dev libopencv-dev libssl-dev (Debian).
set -euo pipefail

prefix="${1:-${NEXVITAD_PREFIX:-}}"
if [[ -z "$prefix" ]]; then
    echo "usage: $0 PREFIX   (the install prefix holding lib/cmake/nexvitad)" >&2
    exit 2
fi
prefix="$(cd "$prefix" && pwd)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${NEXVITAD_CPP_BUILD_DIR:-$root/build/cpp}"

# -U: forget a nexvitad found under an earlier PREFIX.
cmake -S "$here" -B "$build" -U 'nexvitad_DIR' \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}"
cmake --build "$build" -j "$(nproc)"
# Training tests: candle's kernels on 1 thread (its pool spin-waits; see `nexvitad train --help`).
export CANDLE_NUM_THREADS=${CANDLE_NUM_THREADS:-1}
cd "$build"
ctest --output-on-failure -j "$(nproc)"
