#!/usr/bin/env bash
# Evaluates every synthetic domain for M = 1, 4, 8 shots with the Sinkhorn and full scorers,
# printing one `eval --json` row per run (the issue's table). Usage:
#   scripts/eval-synth.sh [MODEL_DIR] [OUT_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
model="${1:-$root/models/tiny}"
out="${2:-$root/out/eval-synth}"
bin="$root/target/release/nexvitad"
[ -x "$bin" ] || (cd "$root" && make build >/dev/null)
export NEXVITAD_ORT_LIBRARY="${NEXVITAD_ORT_LIBRARY:-$root/.ort/lib/libonnxruntime.so}"
rm -rf "$out/data"
"$bin" synth --out "$out/data" --seed 0 >/dev/null
for domain in stripes weave grain speckle object; do
  for shots in 1 4 8; do
    for scorer in sinkhorn full; do
      "$bin" eval --model "$model" --data "$out/data" --category "$domain" --shots "$shots" --scorer "$scorer" --json
    done
  done
done
