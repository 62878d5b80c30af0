#!/usr/bin/env bash
# One short GPU check: build with CUDA, run the CUDA tests, bench the full-size encoders at
# 224 and 448 on cuda:0. Results (JSON per bench, logs) go to $OUT (default out/gpu-check).
#
# Needs, on the GPU machine:
#   - an NVIDIA GPU and driver (nvidia-smi);
#   - a CUDA build of ONNX Runtime 1.32: NEXVITAD_ORT_LIBRARY=/path/to/libonnxruntime.so, e.g.
#     the onnxruntime/capi/ folder of the `onnxruntime-gpu==1.32.0` wheel, with its CUDA 12 /
#     cuDNN 9 libraries findable (LD_LIBRARY_PATH, or the nvidia-* wheels); see docs/performance.md;
#   - either a prebuilt binary + test binary (NEXVITAD_BIN, NEXVITAD_GPU_TEST: built elsewhere
#     with `cargo build --release --features cuda` and `cargo test --release --features cuda
#     --test gpu --no-run`), or a Rust toolchain with the crates available (`cargo fetch` first:
#     nothing here downloads);
#   - full-size models: NEXVITAD_MODEL_224 / NEXVITAD_MODEL_448 folders, else they are exported
#     with tools/export_onnx.py --random-init when Python has torch + timm, else skipped.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${OUT:-$root/out/gpu-check}"
mkdir -p "$out"
log() { echo "[gpu-check] $*" | tee -a "$out/summary.txt"; }
: > "$out/summary.txt"

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$out/summary.txt" \
  || log "nvidia-smi not found (continuing; the CUDA provider will say what is missing)"
if [ -z "${NEXVITAD_ORT_LIBRARY:-}" ] || [ ! -e "$NEXVITAD_ORT_LIBRARY" ]; then
  log "NEXVITAD_ORT_LIBRARY must point at a CUDA build of libonnxruntime.so (docs/performance.md)"; exit 2
fi
log "ONNX Runtime: $NEXVITAD_ORT_LIBRARY"

# 1. Build (or take prebuilt binaries).
bin="${NEXVITAD_BIN:-}"
gpu_test="${NEXVITAD_GPU_TEST:-}"
if [ -z "$bin" ]; then
  cargo build --release --features cuda 2>&1 | tail -n 3
  bin="$root/target/release/nexvitad"
  [ -n "${CARGO_TARGET_DIR:-}" ] && bin="$CARGO_TARGET_DIR/release/nexvitad"
fi
if [ -z "$gpu_test" ]; then
  gpu_test=$(cargo test --release -p nexvitad --features cuda --test gpu --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import sys,json
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"]=="gpu": print(m["executable"])' | tail -n 1)
fi
log "binary $bin; gpu tests $gpu_test"

# 2. CUDA tests (tiny model, then the full-size one when present).
status=0
run_tests() {
  local model="$1" tag="$2"
  if NEXVITAD_GPU_MODEL="$model" "$gpu_test" --ignored --nocapture --test-threads 1 >"$out/tests_$tag.log" 2>&1; then
    log "CUDA tests ($tag): passed"; else log "CUDA tests ($tag): FAILED (see tests_$tag.log)"; status=1; fi
  grep -E "relative max diff|refused|test result" "$out/tests_$tag.log" | sed 's/^/    /' | tee -a "$out/summary.txt" || true
}
run_tests "$root/models/tiny" tiny

# 3. Full-size models at 224 and 448.
model_for() {
  local size="$1" var="NEXVITAD_MODEL_$1" dir
  dir="${!var:-}"
  if [ -n "$dir" ] && [ -f "$dir/model.json" ]; then echo "$dir"; return; fi
  dir="$out/models/full$size"
  if [ -f "$dir/model.json" ]; then echo "$dir"; return; fi
  if python3 -c "import torch, timm, onnx" 2>/dev/null; then
    python3 tools/export_onnx.py --random-init --size "$size" --out "$dir" --no-verify >"$out/export_$size.log" 2>&1 && echo "$dir"
  fi
}
for size in 224 448; do
  model=$(model_for "$size" || true)
  if [ -z "$model" ]; then log "full-size $size: no model (set NEXVITAD_MODEL_$size or install torch+timm); skipped"; continue; fi
  log "full-size $size: $model"
  [ "$size" = 224 ] && run_tests "$model" "full$size"
  for b in 1 8; do
    for ep in cuda:0 cpu; do
      [ "$ep" = cpu ] && [ "$b" = 8 ] && continue
      f="$out/bench_${size}_${ep/:/}_b$b.json"
      if "$bin" bench --model "$model" --ep "$ep" --batch "$b" --iters 20 --warmup 5 --shots 4 --size 512 --json >"$f" 2>"$f.err"; then
        python3 - "$f" <<'PY' | tee -a "$out/summary.txt"
import json, sys
r = json.load(open(sys.argv[1])); n = r["nexvitad"]; s = n["stages"]
print(f"    {r['execution_provider']:7s} batch {r['batch']}: " + ", ".join(f"{k} {v['median_ms']:.2f}" for k, v in s.items())
      + f" ms/img; {n['images_per_s']:.1f} img/s; post-encoder {n['post_encoder_over_encoders_pct']:.1f}% of encoders; peak RSS {n['peak_rss_mb']:.0f} MB")
PY
      else log "    bench $size $ep batch $b FAILED: $(tail -n 2 "$f.err")"; status=1; fi
    done
  done
done
log "done (status $status); results in $out"
exit $status
