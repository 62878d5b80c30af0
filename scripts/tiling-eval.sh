#!/usr/bin/env bash
# Whole-image resize vs tiling on the large synthetic domains (mosaic 1024², shaft
# 1024x512): M = 4 shots, Sinkhorn, one `eval --json` row per run, then a table.
# Usage:
#   scripts/tiling-eval.sh [MODEL_DIR ...]          (default: models/tiny)
# Environment: OUT (default out/tiling-eval), SHOTS (4), SCORER (sinkhorn),
# TILE (224), OVERLAP (0), LAYOUTS ("shared per_position"), DOMAINS ("mosaic shaft").
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:-$root/out/tiling-eval}"
bin="$root/target/release/nexvitad"
[ -x "$bin" ] || (cd "$root" && make build >/dev/null)
export NEXVITAD_ORT_LIBRARY="${NEXVITAD_ORT_LIBRARY:-$root/.ort/lib/libonnxruntime.so}"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=("$root/models/tiny")
domains="${DOMAINS:-mosaic shaft}"
mkdir -p "$out"
if [ ! -d "$out/data" ]; then
  # shellcheck disable=SC2086
  "$bin" synth --out "$out/data" --seed 0 --train-good 16 --test-good 8 --defects-per-type 3 \
    --domains "$(echo $domains | tr ' ' ',')" >/dev/null
fi
rows="$out/rows.jsonl"
: > "$rows"
for model in "${models[@]}"; do
  for domain in $domains; do
    run() {
      local label="$1"; shift
      "$bin" eval --model "$model" --data "$out/data" --category "$domain" --shots "${SHOTS:-4}" \
        --scorer "${SCORER:-sinkhorn}" --heatmaps "$out/heatmaps/$(basename "$model")/$domain/$label" --json "$@" |
        python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r["model"]=sys.argv[1]; r["run"]=sys.argv[2]; print(json.dumps(r))' \
          "$(basename "$model")" "$label" >> "$rows"
    }
    run whole
    for layout in ${LAYOUTS:-shared per_position}; do
      run "tile${TILE:-224}-$layout" --tile "${TILE:-224}" --tile-overlap "${OVERLAP:-0}" --tile-bank "$layout"
    done
  done
done
python3 - "$rows" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'model':<10} {'domain':<8} {'run':<20} {'img AUROC':>9} {'pix AUROC':>9} {'pix AP':>7} {'PRO':>6} {'fit s':>7} {'ms/img':>8} {'good flagged':>12}")
f = lambda v: "-" if v is None else f"{v:.3f}"
for r in rows:
    print(f"{r['model']:<10} {r['category']:<8} {r['run']:<20} {f(r['image_auroc']):>9} {f(r.get('pixel_auroc')):>9} "
          f"{f(r.get('pixel_ap')):>7} {f(r.get('pro')):>6} {r['fit_s']:>7.1f} {r['encode_ms'] + r['score_ms']:>8.1f} {f(r.get('good_flagged_rate')):>12}")
EOF
