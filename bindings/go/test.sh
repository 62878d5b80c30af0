#!/usr/bin/env bash
# Builds and tests the Go binding (bindings/go) and its example service (examples/go)
# against an installed nexvitad, with go vet and go test. Installs nothing.
#
#   bindings/go/test.sh PREFIX        (or NEXVITAD_PREFIX=PREFIX bindings/go/test.sh)
#
# Needs: go >= 1.22 (Debian golang-go), a C compiler (gcc) and pkg-config (pkgconf).
set -euo pipefail

prefix=${1:-${NEXVITAD_PREFIX:-}}
if [[ -z $prefix ]]; then
    echo "usage: $0 PREFIX   (the nexvitad install prefix; or set NEXVITAD_PREFIX)" >&2
    exit 2
fi
if [[ ! -f $prefix/lib/pkgconfig/nexvitad.pc ]]; then
    echo "$0: $prefix/lib/pkgconfig/nexvitad.pc not found: is $prefix a nexvitad install prefix?" >&2
    exit 2
fi
for tool in go pkg-config; do
    command -v "$tool" >/dev/null || { echo "$0: $tool not found" >&2; exit 2; }
done
prefix=$(cd "$prefix" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
# Read nexvitad.pc relative to where it lies (pkgconf's --define-prefix), so a prefix
# that was copied or moved after `make install` is still the one tested. cgo runs
# $PKG_CONFIG as a single program, hence the wrapper.
if pkg-config --define-prefix --exists nexvitad 2>/dev/null; then
    printf '#!/bin/sh\nexec pkg-config --define-prefix "$@"\n' >"$tmp/pkg-config"
    chmod +x "$tmp/pkg-config"
    export PKG_CONFIG="$tmp/pkg-config"
fi
libdir=$("${PKG_CONFIG:-pkg-config}" --variable=libdir nexvitad)
if [[ ! -e $libdir/libnexvitad.so ]]; then
    echo "$0: nexvitad.pc points at $libdir, which has no libnexvitad.so" >&2
    exit 1
fi
echo "go: $(go version), libnexvitad from $libdir"

# The rpath lets the test binaries find libnexvitad.so without LD_LIBRARY_PATH.
export CGO_ENABLED=1
export CGO_LDFLAGS="-Wl,-rpath,$libdir${CGO_LDFLAGS:+ $CGO_LDFLAGS}"

# Training tests: candle's kernels on 1 thread (its pool spin-waits; see `nexvitad train --help`).
export CANDLE_NUM_THREADS=${CANDLE_NUM_THREADS:-1}
log="$tmp/go-test.log"
status=0
for dir in "$here" "$root/examples/go"; do
    echo "== ${dir#"$root"/}: go vet"
    (cd "$dir" && go vet ./...) || status=1
    echo "== ${dir#"$root"/}: go test"
    (cd "$dir" && go test -count=1 -v ./...) 2>&1 | tee -a "$log" || status=1
done

passed=$(grep -c -- '^--- PASS' "$log" || true)
failed=$(grep -c -- '^--- FAIL' "$log" || true)
if [[ $status -ne 0 && $failed -eq 0 ]]; then
    failed=1 # a build, vet or package-level failure without a failing test line
fi
echo "go: $passed passed, $failed failed"
exit $status
