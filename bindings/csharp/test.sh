#!/usr/bin/env bash
# Builds the C# binding with mono's mcs and runs its tests and the example's check against an
# installed nexvitad:  bindings/csharp/test.sh PREFIX   (or NEXVITAD_PREFIX=PREFIX).
# Needs (Debian): mono-mcs mono-runtime gcc. Writes only under build/csharp/; installs nothing.
# The last line is the test runner's "N passed, M failed"; the exit status is non-zero on failure.
set -euo pipefail

PREFIX=${1:-${NEXVITAD_PREFIX:-}}
if [[ -z "$PREFIX" ]]; then
    echo "usage: $0 PREFIX   (an install prefix holding lib/libnexvitad.so and include/nexvitad.h)" >&2
    exit 2
fi
PREFIX=$(cd "$PREFIX" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$ROOT/build/csharp
for tool in mcs mono cc; do
    command -v "$tool" >/dev/null || { echo "$0: $tool not found (apt-get install mono-mcs mono-runtime gcc)" >&2; exit 2; }
done
[[ -f "$PREFIX/include/nexvitad.h" && -e "$PREFIX/lib/libnexvitad.so.0" ]] \
    || { echo "$0: $PREFIX has no include/nexvitad.h or lib/libnexvitad.so.0" >&2; exit 2; }
rm -rf "$OUT"
mkdir -p "$OUT/example"

# C# 7.2 is mcs's newest; Span<T> and friends come with mono's own mscorlib.
MCS=(mcs -langversion:7.2 -nologo -warnaserror+ -debug)
"${MCS[@]}" -unsafe -target:library -out:"$OUT/NexVitad.dll" -doc:"$OUT/NexVitad.xml" -recurse:"$HERE/src/*.cs"
"${MCS[@]}" -target:exe -out:"$OUT/Tests.exe" -r:"$OUT/NexVitad.dll" -r:System.Core.dll "$HERE/tests/Tests.cs"
"${MCS[@]}" -target:exe -out:"$OUT/example/inspect.exe" -r:"$OUT/NexVitad.dll" -r:System.Core.dll "$ROOT/examples/csharp/Inspect.cs"

# The C compiler's view of every struct, for the layout test.
cc -std=c99 -Wall -Werror -I"$PREFIX/include" "$HERE/tests/layout.c" -o "$OUT/layout"
"$OUT/layout" > "$OUT/layout.txt"

# --- the example, found through a mono dllmap (no LD_LIBRARY_PATH) ---------------------------
cp "$OUT/NexVitad.dll" "$OUT/example/"
cat > "$OUT/example/NexVitad.dll.config" <<EOF
<configuration>
  <dllmap dll="nexvitad" target="$PREFIX/lib/libnexvitad.so.0" />
</configuration>
EOF
FIX=$ROOT/tests/fixtures/crosslang
W=$(grep -o '"width": *[0-9]*' "$FIX/expected.json" | grep -o '[0-9]*$')
H=$(grep -o '"height": *[0-9]*' "$FIX/expected.json" | grep -o '[0-9]*$')
ROW=$((W * 3))
GH=$((H - 8))
ppm() { # ppm OUT FIRST_ROW ROWS: rows of the fixture image as a binary PPM
    { printf 'P6\n# rows %d..\n%d %d\n255\n' "$2" "$W" "$3"; dd if="$FIX/image.rgb" bs="$ROW" skip="$2" count="$3" status=none; } > "$1"
}
mkdir -p "$OUT/example/good"
for y in 0 2 4 6 8; do ppm "$OUT/example/good/good-$y.ppm" "$y" "$GH"; done
ppm "$OUT/example/clean.ppm" 0 "$H"
# The same image with a white 16x16 square: a defect the bank has never seen.
cp "$OUT/example/clean.ppm" "$OUT/example/defect.ppm"
HEADER=$(($(stat -c %s "$OUT/example/clean.ppm") - H * ROW))
for ((y = 20; y < 36; y++)); do
    printf '\377%.0s' {1..48} \
        | dd of="$OUT/example/defect.ppm" bs=1 seek=$((HEADER + y * ROW + 40 * 3)) conv=notrunc status=none
done
cp "$FIX/image.rgb" "$OUT/example/clean.rgb"

example_ok=1
if ! (cd "$OUT/example" && env -u LD_LIBRARY_PATH mono inspect.exe "$ROOT/models/tiny" good \
        clean.ppm defect.ppm clean.rgb --size "${W}x${H}" --save-bank example.bank > report.tsv); then
    echo "example: inspect.exe failed" >&2
    example_ok=0
fi
cat "$OUT/example/report.tsv"
score() { awk -F'\t' -v f="$1" '$1 == f { sub("score=", "", $2); print $2 }' "$OUT/example/report.tsv"; }
if [[ $example_ok == 1 ]]; then
    clean=$(score clean.ppm); defect=$(score defect.ppm); raw=$(score clean.rgb)
    if [[ -z "$clean" || -z "$defect" || "$clean" != "$raw" ]]; then
        echo "example: FAILED (the PPM and the raw RGB file of one image must score the same: '$clean' vs '$raw')" >&2
        example_ok=0
    elif ! awk -v c="$clean" -v d="$defect" 'BEGIN { exit !(d > c) }'; then
        echo "example: FAILED (the image with a white square must score above the clean one: $defect <= $clean)" >&2
        example_ok=0
    elif ! grep -q $'\tDEFECT$' "$OUT/example/report.tsv" || [[ ! -s "$OUT/example/example.bank" ]]; then
        echo "example: FAILED (the white square is not flagged DEFECT, or no bank was saved)" >&2
        example_ok=0
    else
        echo "example: ok (clean $clean, defect $defect)"
    fi
fi

# Training tests: candle's kernels on 1 thread (its pool spin-waits; see `nexvitad train --help`).
export CANDLE_NUM_THREADS=${CANDLE_NUM_THREADS:-1}
# --- the tests, found through LD_LIBRARY_PATH -------------------------------------------------
tests_rc=0
LD_LIBRARY_PATH="$PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" mono --debug "$OUT/Tests.exe" \
    --model "$ROOT/models/tiny" --fixtures "$FIX" --layout "$OUT/layout.txt" \
    --train-data "$ROOT/tests/fixtures/train/data" || tests_rc=$?
[[ $example_ok == 1 && $tests_rc == 0 ]]
