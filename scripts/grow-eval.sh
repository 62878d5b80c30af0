#!/usr/bin/env bash
# Banks that grow, checked end to end with the command line: for each scorer, a growable
# bank fitted on 4 good images, grown with `bank add` by 4 more, and a merge of two banks of
# 4, against `fit` on all 8 at once: the `vectors` tensors byte for byte, the metadata
# (thresholds, normal scores), and every test image's score and decision.
# Environment: MODEL (default models/tiny), OUT (default /tmp/nexvitad-grow).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-models/tiny}
OUT=${OUT:-/tmp/nexvitad-grow}
BIN=target/release/nexvitad
[ -x "$BIN" ] || cargo build --release -p nexvitad-cli
rm -rf "$OUT/data" && mkdir -p "$OUT"
"$BIN" synth --out "$OUT/data" --domains grain --train-good 8 --test-good 6 --defects-per-type 2 --seed 21 >/dev/null
G="$OUT/data/grain/train/good"
mapfile -t ALL < <(ls "$G"/*.png | sort)
for scorer in full coreset sinkhorn; do
    s=("--scorer" "$scorer" "--growable")
    "$BIN" fit --model "$MODEL" --images "${ALL[@]:0:8}" --out "$OUT/$scorer-8.bank" "${s[@]}" >/dev/null
    "$BIN" fit --model "$MODEL" --images "${ALL[@]:0:4}" --out "$OUT/$scorer-a.bank" "${s[@]}" >/dev/null
    "$BIN" fit --model "$MODEL" --images "${ALL[@]:4:4}" --out "$OUT/$scorer-b.bank" "${s[@]}" >/dev/null
    "$BIN" bank add --model "$MODEL" --bank "$OUT/$scorer-a.bank" --images "${ALL[@]:4:4}" --out "$OUT/$scorer-added.bank"
    "$BIN" bank merge --model "$MODEL" "$OUT/$scorer-a.bank" "$OUT/$scorer-b.bank" --out "$OUT/$scorer-merged.bank"
    for b in 8 added merged; do
        "$BIN" score --model "$MODEL" --bank "$OUT/$scorer-$b.bank" --json "$OUT"/data/grain/test/* >"$OUT/$scorer-$b.jsonl"
    done
done
python3 - "$OUT" <<'EOF'
import json, struct, sys
out = sys.argv[1]

def tensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__")
    data = {k: b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items()}
    return data, json.loads(meta["meta"])

print(f"{'scorer':9}{'bank':8}{'vectors':>10}{'same bytes':>12}{'same meta':>11}{'max |score diff|':>18}{'same decisions':>16}")
ok = True
for scorer in ["full", "coreset", "sinkhorn"]:
    ref, ref_meta = tensors(f"{out}/{scorer}-8.bank")
    ref_scores = [json.loads(l) for l in open(f"{out}/{scorer}-8.jsonl")]
    for b in ["added", "merged"]:
        t, m = tensors(f"{out}/{scorer}-{b}.bank")
        rows = len(t["vectors"]) // (4 * m["dim"])
        same = t["vectors"] == ref["vectors"] and t.get("shots") == ref.get("shots")
        scores = [json.loads(l) for l in open(f"{out}/{scorer}-{b}.jsonl")]
        diff = max(abs(x["score"] - y["score"]) for x, y in zip(scores, ref_scores))
        dec = all(x["anomalous"] == y["anomalous"] for x, y in zip(scores, ref_scores))
        ok &= same and m == ref_meta and diff == 0 and dec
        print(f"{scorer:9}{b:8}{rows:>10}{str(same):>12}{str(m == ref_meta):>11}{diff:>18.3g}{str(dec):>16}")
sys.exit(0 if ok else 1)
EOF
