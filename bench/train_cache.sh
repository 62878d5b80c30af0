#!/usr/bin/env bash
# Benchmark (not a test) of training's feature cache: synthetic sources of N images at 224 px,
# one epoch, with the model given (full-size random-init encoders for the figures in
# docs/performance.md, "Training at scale"). For each N it records peak RSS, encode time,
# time per epoch and the cache's size on disk, in up to three modes:
#
#   after   the default memory budget, the cache in OUT/N/cache (encodes every image)
#   inmem   the same cache (nothing encoded again) with a budget that holds all of it: the
#           in-memory reference the streamed epoch time is compared with
#   before  OLD_CLI, a nexvitad without the cache (held every feature set in memory)
#
# Usage: bench/train_cache.sh OUT N [N ...]
#   env MODEL    model folder (default /work/models/full224, from
#                tools/export_onnx.py --random-init --size 224)
#       CLI      the nexvitad to measure (default target/release/nexvitad)
#       OLD_CLI  the nexvitad to compare with; "before" is skipped without it
#       MODES    which modes, in order (default "after inmem before")
#       TARGET_IMAGES  normal images of the target domain (default 10, each with 2 copies)
#       KEEP_CACHE     set: keep OUT/N/cache (default: removed once N is done)
# Writes OUT/N/<mode>.json (the train --json summary) and OUT/N/<mode>.time (/usr/bin/time
# -v), and prints one table row per run; OUT/results.tsv collects them.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
out=$1
shift
model=${MODEL:-/work/models/full224}
cli=${CLI:-$root/target/release/nexvitad}
modes=${MODES:-after inmem before}
target_images=${TARGET_IMAGES:-10}
[ -f "$model/model.json" ] || { echo "no model in $model (set MODEL)" >&2; exit 1; }
[ -x "$cli" ] || { echo "no nexvitad at $cli (cargo build --release -p nexvitad-cli, or set CLI)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is needed (Debian: apt-get install time)" >&2; exit 1; }
# ONNX Runtime as the Makefile installs it, unless the caller chose one.
export NEXVITAD_ORT_LIBRARY=${NEXVITAD_ORT_LIBRARY:-$root/.ort/lib/libonnxruntime.so}
mkdir -p "$out"
results="$out/results.tsv"
[ -f "$results" ] || printf 'n\tmode\tsource_images\tfeature_sets\tencoded\tencode_s\tepoch_s\tcache_bytes\tresident\tpeak_rss_mb\n' >"$results"

for n in "$@"; do
  d="$out/$n"
  mkdir -p "$d"
  # Two source domains of about n/2 images each (18 test images per domain besides the
  # normal training ones), and the target.
  per=$(( n / 2 - 18 ))
  if [ ! -d "$d/data/grain" ]; then
    "$cli" synth --out "$d/data.tmp" --size 224 --seed 0 --domains stripes,weave --train-good "$per" >/dev/null
    "$cli" synth --out "$d/data.tmp" --size 224 --seed 1 --domains grain --train-good "$target_images" >/dev/null
    mv "$d/data.tmp" "$d/data"
  fi
  for mode in $modes; do
    bin=$cli
    extra=(--cache-dir "$d/cache")
    case $mode in
      after) ;;
      inmem) extra+=(--cache-mem 1T) ;;
      before)
        [ -n "${OLD_CLI:-}" ] || { echo "OLD_CLI not set: 'before' skipped"; continue; }
        bin=$OLD_CLI extra=() ;;
      *) echo "unknown mode $mode" >&2; exit 2 ;;
    esac
    rm -rf "$d/$mode"
    /usr/bin/time -v -o "$d/$mode.time" "$bin" train --model "$model" --data "$d/data" --sources stripes,weave \
      --target grain --epochs 1 --out "$d/$mode" --json "${extra[@]}" >"$d/$mode.json"
    rss_kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$d/$mode.time")
    python3 - "$n" "$mode" "$d/$mode.json" "$rss_kb" >>"$results" <<'EOF'
import json, sys
n, mode, path, rss_kb = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = json.load(open(path))
c = s.get("cache", {})
epoch = s["train_s"] / s["steps_run"] * s["steps_per_epoch"]
print("\t".join(str(x) for x in [n, mode, s["source_images"], c.get("feature_sets", ""), c.get("encoded", ""),
      f"{s['encode_s']:.1f}", f"{epoch:.1f}", c.get("bytes", ""), c.get("resident", ""), f"{rss_kb / 1024:.0f}"]))
EOF
    tail -1 "$results"
    rm -rf "$d/$mode"
  done
  # The cache takes ~4.3 MB per feature set at 224 px with full-size encoders.
  [ -n "${KEEP_CACHE:-}" ] || rm -rf "$d/cache"
done
column -t -s $'\t' "$results"
