#!/usr/bin/env bash
# Leave-one-domain-out on the synthetic data (docs/results-training.md): for each target,
# train on the other four domains + the target's unlabeled train/good images, then evaluate
# the target's test set with the untrained ("base") and the trained head under both bank
# scorers, and with the trained decoder. Writes one `eval-split --json` row per target to
# OUT/rows.jsonl and the Markdown table to OUT/table.md. Usage:
#   scripts/train-synth.sh [OUT_DIR] [extra eval-split options, e.g. --epochs 8]
# Environment: TARGETS (default: all five), MODEL (default: models/tiny), SEED (default: 0).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/out/train-synth}"
shift || true
model="${MODEL:-$root/models/tiny}"
seed="${SEED:-0}"
domains="stripes,weave,grain,speckle,object"
targets="${TARGETS:-$domains}"
bin="${CARGO_TARGET_DIR:-$root/target}/release/nexvitad"
[ -x "$bin" ] || (cd "$root" && cargo build --release >/dev/null)
export NEXVITAD_ORT_LIBRARY="${NEXVITAD_ORT_LIBRARY:-$root/.ort/lib/libonnxruntime.so}"
mkdir -p "$out"
rm -rf "$out/data"
"$bin" synth --out "$out/data" --seed 0 >/dev/null
: >"$out/rows.jsonl"
for t in ${targets//,/ }; do
  # One call per target so each row is saved as soon as it is done.
  "$bin" eval-split --model "$model" --data "$out/data" --sources "$domains" --targets "$t" \
    --shots 4 --seed "$seed" --out "$out/models" --json "$@" | tee -a "$out/rows.jsonl"
done
# Markdown table: one line per target, head and scorer.
{
  echo "| target | head | scorer | img AUROC | pix AUROC | pix AP | PRO | F1-max |"
  echo "|---|---|---|---|---|---|---|---|"
  jq -r '. as $r | (["base","trained"][] as $h | $r[$h] | to_entries[] |
      "| \($r.target) | \($h) | \(.key) | \(.value.image_auroc*1000|round/1000) | \(.value.pixel_auroc*1000|round/1000) | \(.value.pixel_ap*1000|round/1000) | \(.value.pro*1000|round/1000) | \(.value.f1_max*1000|round/1000) |")' \
    "$out/rows.jsonl"
  echo
  echo "Means over the targets:"
  echo
  echo "| head | scorer | img AUROC | pix AUROC | pix AP | PRO | F1-max |"
  echo "|---|---|---|---|---|---|---|"
  jq -rs '[.[] as $r | ("base","trained") as $h | $r[$h] | to_entries[] | {h: $h, s: .key, m: .value}]
      | group_by([.h, .s])[] | "| \(.[0].h) | \(.[0].s) | " + ([["image_auroc","pixel_auroc","pixel_ap","pro","f1_max"][] as $k
      | [.[].m[$k]] | add / length * 1000 | round / 1000 | tostring] | join(" | ")) + " |"' "$out/rows.jsonl"
} >"$out/table.md"
cat "$out/table.md"
