#!/usr/bin/env bash
# The bad-input matrix of docs/reliability.md is generated from the table in
# tests/c/test_matrix.c (`test_matrix --markdown`), its single source:
#   tests/c/matrix-doc.sh --check PREFIX   fails if the doc's table differs (run by tests/c/run.sh)
#   tests/c/matrix-doc.sh --write PREFIX   rewrites the doc's table (`make matrix-doc`)
# PREFIX is an installed nexvitad (make install), which test_matrix links against.
set -euo pipefail

mode="$1"
PREFIX=$(realpath "$2")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DOC="$ROOT/docs/reliability.md"
BEGIN='<!-- bad-input-matrix:begin: generated from tests/c/test_matrix.c by `make matrix-doc`; do not edit by hand -->'
END='<!-- bad-input-matrix:end -->'
B="$ROOT/build/matrix-doc"
mkdir -p "$B"

gcc -std=c99 -pedantic -Wall -Wextra -Werror -I"$PREFIX/include" -I"$ROOT/examples/c" "$ROOT/tests/c/test_matrix.c" \
    -o "$B/test_matrix" -L"$PREFIX/lib" -lnexvitad -Wl,-rpath,"$PREFIX/lib" -lm -ldl
"$B/test_matrix" --markdown >"$B/table.md"

grep -qxF "$BEGIN" "$DOC" && grep -qxF "$END" "$DOC" || { echo "$DOC lacks the matrix markers:"; echo "$BEGIN"; echo "$END"; exit 1; }
# The lines strictly between the markers.
awk -v b="$BEGIN" -v e="$END" '$0 == e {inside = 0} inside {print} $0 == b {inside = 1}' "$DOC" >"$B/current.md"

case "$mode" in
--check)
    if ! diff -u "$B/current.md" "$B/table.md"; then
        echo "docs/reliability.md: the bad-input matrix differs from tests/c/test_matrix.c; run 'make matrix-doc'"
        exit 1
    fi
    echo "docs/reliability.md matrix matches tests/c/test_matrix.c ($(grep -c '^| [0-9]' "$B/table.md") rows)"
    ;;
--write)
    awk -v b="$BEGIN" -v e="$END" -v table="$B/table.md" '
        $0 == b {print; while ((getline line < table) > 0) print line; skip = 1; next}
        $0 == e {skip = 0}
        !skip {print}' "$DOC" >"$B/doc.md"
    cp "$B/doc.md" "$DOC"
    echo "wrote the bad-input matrix into $DOC"
    ;;
*)
    echo "usage: $0 --check|--write PREFIX" >&2
    exit 2
    ;;
esac
