#!/usr/bin/env bash
# INT8 encoders against their fp32 source, one command, everything in one run on one machine
# so the ratios compare:
#   1. quantize an exported fp32 model folder (tools/quantize.py): dynamic, and static QDQ
#      per-channel calibrated on good synthetic images;
#   2. quality: image/pixel AUROC per synthetic domain and the map drift against fp32
#      (`nexvitad eval --reference-model`);
#   3. encoders at 224: ROUNDS rounds, each running `bench` on fp32, dynamic and static in
#      turn (ITERS images each), samples pooled per precision: median encoder ms, median
#      end-to-end ms, images/s, peak RSS, model size;
#   4. throughput with tiles: images/s and ms per megapixel for whole 224² images (batch 1, 2,
#      4, 8), 1024² images in 224 px tiles (tile batch 1, 2, 4, 8) and 2448 x 2048 camera
#      frames in 224 px tiles (tile batch 1 and the best of the 1024² sweep);
#   5. the peer (bench/peer_anomalib.py, when anomalib is installed: pip install -r
#      bench/requirements-peer.txt): anomalib AnomalyDINO at 224 and 448 and PatchCore at 256
#      on the same images and threads.
# Environment: MODEL (an fp32 export, required; e.g. `python tools/export_onnx.py
# --random-init --out DIR`), OUT (default /tmp/nexvitad-int8), PY (default .venv/bin/python),
# DOMAINS (default "object grain"), THREADS (default 2), ROUNDS (3), ITERS (10),
# SKIP (space-separated parts to skip: quantize quality encoders tiles large peer).
# Takes about 25 minutes on a 2-core machine; `large` (the 2448 x 2048 frames) is half of it.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MODEL:?set MODEL to an fp32 model folder from tools/export_onnx.py}"
OUT=${OUT:-/tmp/nexvitad-int8}
PY=${PY:-.venv/bin/python}
DOMAINS=${DOMAINS:-object grain}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-10}
SKIP=${SKIP:-}
BIN=target/release/nexvitad
skip() { [[ " $SKIP " == *" $1 "* ]]; }
[ -x "$BIN" ] || cargo build --release -p nexvitad-cli
mkdir -p "$OUT"
declare -A M=([fp32]="$MODEL" [int8-dynamic]="$OUT/int8-dynamic" [int8-static]="$OUT/int8-static")
PRECISIONS="fp32 int8-dynamic int8-static"
first=$(echo "$DOMAINS" | cut -d' ' -f1)
bench() { "$BIN" bench --threads "$THREADS" --json "$@"; }

if ! skip quantize; then
    echo "== quantize"
    rm -rf "$OUT/data" "$OUT/int8-dynamic" "$OUT/int8-static"
    # shellcheck disable=SC2086
    "$BIN" synth --out "$OUT/data" --domains "$(echo $DOMAINS | tr ' ' ,)" --train-good 16 --test-good 8 --defects-per-type 3 --seed 31 >/dev/null
    "$PY" tools/quantize.py --model "$MODEL" --out "$OUT/int8-dynamic" --mode dynamic --check "$OUT/data/$first/train/good" --cli "$BIN" --force
    "$PY" tools/quantize.py --model "$MODEL" --out "$OUT/int8-static" --mode static --per-channel --calibrate "$OUT/data/$first/train/good" --cli "$BIN" --force
fi

if ! skip quality; then
    echo "== quality: 8 shots per domain, each INT8 model against fp32"
    for p in int8-dynamic int8-static; do
        for d in $DOMAINS; do
            "$BIN" eval --model "${M[$p]}" --reference-model "$MODEL" --threads "$THREADS" --data "$OUT/data" --category "$d" --shots 8 --json >"$OUT/eval-$p-$d.json" || true
        done
    done
    "$PY" - "$OUT" "$DOMAINS" <<'EOF'
import json, sys
out, domains = sys.argv[1], sys.argv[2].split()
print(f"{'precision':14}{'domain':8}{'image AUROC':>12}{'pixel AUROC':>12}{'Δ image':>9}{'Δ pixel':>9}{'drift mean':>11}{'max':>7}{'flipped':>9}{'bound':>7}")
for d in domains:
    f = json.load(open(f"{out}/eval-int8-dynamic-{d}.json"))["reference"]
    print(f"{'fp32':14}{d:8}{f['image_auroc']:>12.3f}{f['pixel_auroc']:>12.3f}")
for p in ["int8-dynamic", "int8-static"]:
    for d in domains:
        c = json.load(open(f"{out}/eval-{p}-{d}.json"))
        r, x = c["candidate"], c["drift"]
        print(f"{p:14}{d:8}{r['image_auroc']:>12.3f}{r['pixel_auroc']:>12.3f}{c['image_auroc_delta']:>+9.3f}{c['pixel_auroc_delta']:>+9.3f}"
              f"{x['mean_abs']:>11.4f}{x['max_abs']:>7.3f}{100 * x['pixel_disagreement']:>8.2f}%{'ok' if x['within_bound'] else 'OVER':>7}")
EOF
fi

if ! skip encoders; then
    echo "== encoders at 224, batch 1: $ROUNDS rounds x $ITERS images per precision, alternating"
    for p in $PRECISIONS; do
        [ -f "$OUT/bank-224-$p.st" ] || bench --model "${M[$p]}" --size 224 --iters 1 --warmup 0 --save-bank "$OUT/bank-224-$p.st" >/dev/null
    done
    for r in $(seq 1 "$ROUNDS"); do
        for p in $PRECISIONS; do
            bench --model "${M[$p]}" --bank "$OUT/bank-224-$p.st" --size 224 --iters "$ITERS" --warmup 2 >"$OUT/enc-$p-$r.json"
        done
    done
    "$PY" - "$OUT" "$ROUNDS" "$PRECISIONS" "$MODEL" <<'EOF'
import json, os, statistics, sys
out, rounds, precisions, fp32_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4]
dirs = {"fp32": fp32_dir, "int8-dynamic": f"{out}/int8-dynamic", "int8-static": f"{out}/int8-static"}
rows = {}
for p in precisions:
    runs = [json.load(open(f"{out}/enc-{p}-{r}.json"))["nexvitad"] for r in range(1, rounds + 1)]
    enc = [x for n in runs for x in n["samples_ms"]["encoders"]]
    tot = [x for n in runs for x in n["samples_ms"]["total"]]
    mb = sum(os.path.getsize(f"{dirs[p]}/{f}") for f in ["hiera.onnx", "dinov2.onnx"]) / 1e6
    rows[p] = (statistics.median(enc), statistics.median(tot), 1000 / statistics.median(tot), max(n["peak_rss_mb"] or 0 for n in runs), mb, len(enc))
print(f"{'precision':14}{'samples':>8}{'encoders ms':>12}{'total ms':>10}{'images/s':>10}{'vs fp32':>9}{'peak RSS MB':>12}{'graphs MB':>10}")
for p, (e, t, ips, rss, mb, n) in rows.items():
    print(f"{p:14}{n:>8}{e:>12.1f}{t:>10.1f}{ips:>10.2f}{rows['fp32'][1] / t:>8.2f}×{rss:>12.0f}{mb:>10.1f}")
EOF
fi

# One bench case: precision, tag, then bench arguments. The bank of each (precision, size)
# is fitted once and reused.
case_run() {
    local p="$1" tag="$2" size="$3" tile="$4" shots="$5"; shift 5
    local bank="$OUT/bank-$size-$p.st"
    if [ ! -f "$bank" ]; then
        bench --model "${M[$p]}" --size "$size" --tile "$tile" --shots "$shots" --iters 1 --warmup 0 --save-bank "$bank" >/dev/null
    fi
    bench --model "${M[$p]}" --bank "$bank" --size "$size" "$@" >"$OUT/tp-$p-$tag.json"
}

if ! skip tiles; then
    echo "== throughput: whole 224² images (batch 1, 2, 4, 8) and 1024² in 224 px tiles (tile batch 1, 2, 4, 8)"
    for p in $PRECISIONS; do
        for b in 1 2 4 8; do case_run "$p" "224-b$b" 224 0 4 --batch "$b" --iters $((24 / b)) --warmup 1; done
        for b in 1 2 4 8; do case_run "$p" "1024-t$b" 1024 224 2 --tile-batch "$b" --iters 3 --warmup 1; done
    done
fi

if ! skip large; then
    echo "== throughput: 2448 x 2048 frames in 224 px tiles (tile batch 1 and the best of the 1024² sweep)"
    for p in $PRECISIONS; do
        best=$("$PY" -c "import json,sys; r={b: json.load(open(f'$OUT/tp-$p-1024-t{b}.json'))['nexvitad']['images_per_s'] for b in (1,2,4,8)}; print(max(r, key=r.get))" 2>/dev/null || echo 4)
        for b in $(echo 1 "$best" | tr ' ' '\n' | sort -un); do
            case_run "$p" "2448-t$b" 2448x2048 224 1 --tile-batch "$b" --iters 2 --warmup 1
        done
    done
fi

if ! skip tiles || ! skip large; then
    "$PY" - "$OUT" "$PRECISIONS" <<'EOF'
import glob, json, os, re, sys
out, precisions = sys.argv[1], sys.argv[2].split()
print(f"{'precision':14}{'images':>11}{'batch':>7}{'tiles/img':>10}{'images/s':>10}{'ms/MP':>9}{'vs fp32':>9}")
def key(f):
    m = re.search(r"tp-[^-]+(?:-[a-z]+)?-(\d+)-([bt])(\d+)\.json$", f)
    return (int(m.group(1)), m.group(2), int(m.group(3))) if m else (0, "", 0)
for p in precisions:
    for f in sorted(glob.glob(f"{out}/tp-{p}-*.json"), key=key):
        r = json.load(open(f)); n = r["nexvitad"]
        size, kind, b = key(f)
        ref = f.replace(f"tp-{p}-", "tp-fp32-")
        vs = n["images_per_s"] / json.load(open(ref))["nexvitad"]["images_per_s"] if os.path.exists(ref) else float("nan")
        w, h = r["images"]["first_size"]
        print(f"{p:14}{f'{w}x{h}':>11}{('b' if kind == 'b' else 'tile ') + str(b):>7}{n.get('tiles_per_image') or 1:>10}"
              f"{n['images_per_s']:>10.3f}{n['ms_per_megapixel']:>9.0f}{vs:>8.2f}×")
EOF
fi

if ! skip peer; then
    echo "== the peer: anomalib on the same machine and threads"
    if "$PY" -c "import anomalib" 2>/dev/null; then
        "$BIN" bench --model "$MODEL" --threads "$THREADS" --size 256 --iters 20 --warmup 3 --peer anomalib --python "$PY" | tee "$OUT/peer.txt"
        "$BIN" bench --model "$OUT/int8-dynamic" --threads "$THREADS" --size 256 --iters 20 --warmup 3 --json >"$OUT/peer-int8-dynamic.json"
        "$PY" -c "import json; n=json.load(open('$OUT/peer-int8-dynamic.json'))['nexvitad']; print(f\"nexvitad int8-dynamic: {n['stages']['total']['median_ms']:.1f} ms/img, {n['images_per_s']:.2f} images/s\")"
    else
        echo "anomalib is not installed in $PY (pip install -r bench/requirements-peer.txt); skipped"
    fi
fi
