#!/usr/bin/env bash
# INT8 encoders against their fp32 source, one command: quantize an exported fp32 model
# folder (tools/quantize.py, dynamic and static-QDQ calibrated on good synthetic images),
# then for each precision the image/pixel AUROC on synthetic domains and the scoring speed
# (`bench`, whole 224 images and tiled 1024 x 1024 ones, batch 1 and 4), all in one run on
# the same machine so the ratios compare.
# Environment: MODEL (an fp32 export, required; e.g. `python tools/export_onnx.py
# --random-init --out DIR`), OUT (default /tmp/nexvitad-int8), PY (default .venv/bin/python),
# DOMAINS (default "object grain"), THREADS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MODEL:?set MODEL to an fp32 model folder from tools/export_onnx.py}"
OUT=${OUT:-/tmp/nexvitad-int8}
PY=${PY:-.venv/bin/python}
DOMAINS=${DOMAINS:-object grain}
THREADS=${THREADS:-2}
BIN=target/release/nexvitad
[ -x "$BIN" ] || cargo build --release -p nexvitad-cli
rm -rf "$OUT" && mkdir -p "$OUT"
# shellcheck disable=SC2086
"$BIN" synth --out "$OUT/data" --domains "$(echo $DOMAINS | tr ' ' ,)" --train-good 16 --test-good 8 --defects-per-type 3 --seed 31 >/dev/null
first=$(echo "$DOMAINS" | cut -d' ' -f1)

echo "== quantize"
"$PY" tools/quantize.py --model "$MODEL" --out "$OUT/int8-dynamic" --mode dynamic --check "$OUT/data/$first/train/good"
"$PY" tools/quantize.py --model "$MODEL" --out "$OUT/int8-static" --mode static --per-channel --calibrate "$OUT/data/$first/train/good"
declare -A M=([fp32]="$MODEL" [int8-dynamic]="$OUT/int8-dynamic" [int8-static]="$OUT/int8-static")

echo "== quality: 8 shots per domain"
for p in fp32 int8-dynamic int8-static; do
    for d in $DOMAINS; do
        "$BIN" eval --model "${M[$p]}" --threads "$THREADS" --data "$OUT/data" --category "$d" --shots 8 --json >"$OUT/eval-$p-$d.json"
    done
done
"$PY" - "$OUT" "$DOMAINS" <<'EOF'
import json, sys
out, domains = sys.argv[1], sys.argv[2].split()
print(f"{'precision':14}{'domain':8}{'image AUROC':>12}{'pixel AUROC':>12}{'PRO':>8}{'Δ image':>9}{'Δ pixel':>9}")
for p in ["fp32", "int8-dynamic", "int8-static"]:
    for d in domains:
        r = json.load(open(f"{out}/eval-{p}-{d}.json"))
        f = json.load(open(f"{out}/eval-fp32-{d}.json"))
        print(f"{p:14}{d:8}{r['image_auroc']:>12.3f}{r['pixel_auroc']:>12.3f}{r['pro']:>8.3f}{r['image_auroc'] - f['image_auroc']:>+9.3f}{r['pixel_auroc'] - f['pixel_auroc']:>+9.3f}")
EOF

echo "== speed ($THREADS threads)"
for p in fp32 int8-dynamic int8-static; do
    for case in "224 0 1" "224 0 4" "1024 224 1" "1024 224 4"; do
        read -r size tile batch <<<"$case"
        "$BIN" bench --model "${M[$p]}" --threads "$THREADS" --size "$size" --tile "$tile" --batch "$batch" --iters 6 --warmup 2 --json >"$OUT/bench-$p-$size-$batch.json"
    done
done
"$PY" - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
print(f"{'precision':14}{'image':>10}{'batch':>6}{'images/s':>10}{'ms/MP':>9}{'vs fp32':>9}")
for p in ["fp32", "int8-dynamic", "int8-static"]:
    for size, batch in [(224, 1), (224, 4), (1024, 1), (1024, 4)]:
        r = json.load(open(f"{out}/bench-{p}-{size}-{batch}.json"))["nexvitad"]
        f = json.load(open(f"{out}/bench-fp32-{size}-{batch}.json"))["nexvitad"]
        print(f"{p:14}{str(size) + '²':>10}{batch:>6}{r['images_per_s']:>10.2f}{r['ms_per_megapixel']:>9.1f}{r['images_per_s'] / f['images_per_s']:>8.2f}×")
EOF
