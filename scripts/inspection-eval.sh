#!/usr/bin/env bash
# The measurements behind docs/inspection.md, one command:
#   1. the synthetic `serial` domain (a nut with a label whose digits change from part to
#      part) evaluated without and with its region of interest (roi.png excludes the label);
#   2. defect regions on the five standard synthetic domains at each bank's own pixel
#      threshold: region recall (ground-truth defects touched by a region), regions per
#      defective image, regions per good image (false alarms);
#   3. re-calibration: one bank moved to target FPR 1 % and 0.1 % with `bank calibrate`
#      (nothing re-encoded), then the false-positive rates measured on held-out good images
#      (image: share flagged; pixel: share of pixels inside a region, i.e. above the pixel
#      threshold).
# Environment: MODEL (default models/tiny; the figures in docs/inspection.md use full-size
# random-init encoders: `python tools/export_onnx.py --random-init --out DIR`), OUT (default
# /tmp/nexvitad-inspection), SHOTS (8), HELD_OUT (good images for step 3, default 200).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-models/tiny}
OUT=${OUT:-/tmp/nexvitad-inspection}
SHOTS=${SHOTS:-8}
HELD_OUT=${HELD_OUT:-200}
BIN=target/release/nexvitad
[ -x "$BIN" ] || cargo build --release -p nexvitad-cli
mkdir -p "$OUT"

echo "== 1. serial: false positives without and with the region of interest"
rm -rf "$OUT/serial" "$OUT/heatmaps-plain" "$OUT/heatmaps-roi"
"$BIN" synth --out "$OUT/serial" --domains serial --train-good "$SHOTS" --test-good 30 --defects-per-type 6 --seed 11 >/dev/null
for v in plain roi; do
    extra=()
    [ "$v" = roi ] && extra=(--roi "$OUT/serial/serial/roi.png" --heatmaps "$OUT/heatmaps-roi")
    [ "$v" = plain ] && extra=(--heatmaps "$OUT/heatmaps-plain")
    "$BIN" eval --model "$MODEL" --data "$OUT/serial" --category serial --shots "$SHOTS" --json "${extra[@]}" >"$OUT/serial-$v.json"
done
python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
keys = ["image_auroc", "image_ap", "pixel_auroc", "pixel_ap", "pro", "good_flagged_rate", "region_recall", "regions_per_defective", "regions_per_good"]
print(f"{'':6}" + "".join(f"{k:>22}" for k in keys))
for v in ["plain", "roi"]:
    r = json.load(open(f"{out}/serial-{v}.json"))
    print(f"{v:6}" + "".join(f"{r[k]:>22.3f}" if r[k] is not None else f"{'-':>22}" for k in keys))
EOF

echo "== 2. defect regions on the synthetic domains (each bank's pixel threshold, every region)"
rm -rf "$OUT/synth"
"$BIN" synth --out "$OUT/synth" --train-good "$SHOTS" --test-good 10 --defects-per-type 4 --seed 12 >/dev/null
for fpr in 0.01 0.001; do
    for d in stripes weave grain speckle object; do
        "$BIN" eval --model "$MODEL" --data "$OUT/synth" --category "$d" --shots "$SHOTS" --target-fpr "$fpr" --json >"$OUT/regions-$fpr-$d.json"
    done
done
python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
print(f"{'target FPR':>10} {'domain':10}{'defects':>9}{'recall':>9}{'per defective':>15}{'per good':>10}{'pixel AUROC':>13}")
for fpr in ["0.01", "0.001"]:
    for d in ["stripes", "weave", "grain", "speckle", "object"]:
        r = json.load(open(f"{out}/regions-{fpr}-{d}.json"))
        print(f"{fpr:>10} {d:10}{r['region_defects']:>9}{r['region_recall']:>9.3f}{r['regions_per_defective']:>15.2f}{r['regions_per_good']:>10.2f}{r['pixel_auroc']:>13.3f}")
EOF

echo "== 3. re-calibration: measured false-positive rates on $HELD_OUT held-out good images"
rm -rf "$OUT/recal"
"$BIN" synth --out "$OUT/recal" --domains object --train-good "$SHOTS" --test-good "$HELD_OUT" --defects-per-type 1 --seed 13 >/dev/null
"$BIN" fit --model "$MODEL" --images "$OUT/recal/object/train/good" --out "$OUT/recal.bank" >/dev/null
for f in 0.01 0.001; do
    "$BIN" bank calibrate --bank "$OUT/recal.bank" --fpr "$f" --out "$OUT/recal-$f.bank"
    "$BIN" score --model "$MODEL" --bank "$OUT/recal-$f.bank" --json --regions "$OUT/recal/object/test/good" >"$OUT/recal-$f.jsonl"
done
python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
print(f"{'target':>8}{'image FPR':>11}{'pixel FPR':>11}{'images':>8}")
for f in ["0.01", "0.001"]:
    rows = [json.loads(l) for l in open(f"{out}/recal-{f}.jsonl")]
    flagged = sum(r["anomalous"] for r in rows) / len(rows)
    px = sum(sum(g["area"] for g in r["regions"]) for r in rows) / sum(r["width"] * r["height"] for r in rows)
    print(f"{float(f):>8.3%}{flagged:>11.2%}{px:>11.3%}{len(rows):>8}")
EOF
echo "overlays: $OUT/heatmaps-plain/serial, $OUT/heatmaps-roi/serial"
