#!/usr/bin/env bash
# Regenerates the file-format seeds in fuzz/corpus/ (bank_loader, manifest, head_loader).
# The structured targets (image_view, mvtec_reader) take `arbitrary`-encoded inputs: their
# hand-made seeds come from fuzz/make_image_view_seeds.py, the cmin-* ones from a run's corpus
# reduced to a set cover of its edges (see docs/reliability.md).
#
# Needs: a built `nexvitad` (NEXVITAD=path, default target/debug/nexvitad), the ORT library
# (NEXVITAD_ORT_LIBRARY or .ort/lib), and Python with numpy + safetensors (PYTHON=...).
set -euo pipefail
cd "$(dirname "$0")/.."
NEXVITAD=${NEXVITAD:-target/debug/nexvitad}
PYTHON=${PYTHON:-python3}
export NEXVITAD_ORT_LIBRARY=${NEXVITAD_ORT_LIBRARY:-$PWD/.ort/lib/libonnxruntime.so}
C=fuzz/corpus
mkdir -p $C/bank_loader $C/manifest $C/head_loader
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Banks from the tiny model, 2 shots of a 64 px synthetic domain: the default Sinkhorn bank
# (K = 30), a small-K top-mean bank and a coreset bank.
"$NEXVITAD" synth --out "$tmp/data" --size 64 --domains stripes >/dev/null
good=("$tmp/data/stripes/train/good/000.png" "$tmp/data/stripes/train/good/001.png")
"$NEXVITAD" fit --model models/tiny --images "${good[@]}" --out $C/bank_loader/sinkhorn-k30.bank >/dev/null
"$NEXVITAD" fit --model models/tiny --images "${good[@]}" --k 4 --top-fraction 0.05 --out $C/bank_loader/sinkhorn-k4-topmean.bank >/dev/null
"$NEXVITAD" fit --model models/tiny --images "${good[@]}" --scorer coreset --coreset-ratio 0.01 --out $C/bank_loader/coreset.bank >/dev/null

"$PYTHON" - <<'PY'
import copy, json
import numpy as np
from safetensors.numpy import load, save

C = 'fuzz/corpus/'
# Bank variants: future format version, truncated, a different tensor name.
raw = open(C + 'bank_loader/sinkhorn-k4-topmean.bank', 'rb').read()
n = int.from_bytes(raw[:8], 'little')
header = json.loads(raw[8:8 + n])
meta = header['__metadata__']
t = load(raw)
def bank(name, tensors, md):
    open(C + 'bank_loader/' + name, 'wb').write(save(tensors, metadata=md))
bank('future-version.bank', t, {**meta, 'format_version': '2'})
bank('renamed-tensor.bank', {'vecs': t['vectors']}, meta)
open(C + 'bank_loader/truncated.bank', 'wb').write(raw[: len(raw) - 100])

m = json.load(open('models/tiny/model.json'))
d = C + 'manifest/'
def put(name, v, **kw):
    open(d + name, 'w').write(json.dumps(v, **kw))
put('tiny.json', m, indent=2)
put('tiny-min.json', m, separators=(',', ':'))
v = copy.deepcopy(m); v['fusion']['interleave_group'] = 4; v['training'] = {'domains': ['stripes', 'weave'], 'epochs': 3, 'lr': 1e-4}
put('trained-group4.json', v)
v = copy.deepcopy(m); v['format_version'] = 2
put('future-version.json', v)
v = copy.deepcopy(m); v['extra'] = 1
put('extra-field.json', v)
v = copy.deepcopy(m); del v['defaults']['k']
put('missing-field.json', v)
v = copy.deepcopy(m); v['input']['width'] = '224'
put('wrong-type.json', v)
v = copy.deepcopy(m)
v['dinov2'].update(width=518, height=518); v['input'].update(width=448, height=448)
v['fusion'].update(bank_scales=[1, 2, 3, 4], local_avg=1)
put('full-like.json', v)

# head.safetensors for the tiny manifest (seeded random weights; odd stages get a non-zero
# adapter so both the identity and the full adapter path load).
rng = np.random.default_rng(0)
t = {}
r = m['fusion']['adapter_bottleneck']; cd = m['dinov2']['channels']
for s in range(4):
    c = m['hiera']['channels'][s]; half = m['fusion']['shared_dims'][s] // 2
    p = f'stage{s + 1}.'
    t[p + 'adapter.down.weight'] = rng.standard_normal((r, c)).astype(np.float32) * 0.1
    t[p + 'adapter.down.bias'] = np.zeros(r, np.float32)
    t[p + 'adapter.up.weight'] = (rng.standard_normal((c, r)).astype(np.float32) * 0.01) if s % 2 else np.zeros((c, r), np.float32)
    t[p + 'adapter.up.bias'] = np.zeros(c, np.float32)
    t[p + 'proj_hiera.weight'] = rng.standard_normal((half, c)).astype(np.float32) * 0.1
    t[p + 'proj_hiera.bias'] = np.zeros(half, np.float32)
    t[p + 'proj_dinov2.weight'] = rng.standard_normal((half, cd)).astype(np.float32) * 0.1
    t[p + 'proj_dinov2.bias'] = np.zeros(half, np.float32)
h = C + 'head_loader/'
ok = {'format': 'nexvitad-head', 'format_version': '1'}
b = save(t, metadata=ok)
open(h + 'tiny-head.safetensors', 'wb').write(b)
open(h + 'future-version.safetensors', 'wb').write(save(t, metadata={**ok, 'format_version': '2'}))
t2 = dict(t); t2['stage1.adapter.down.weight'] = t['stage1.adapter.down.weight'][:, :8].copy()
open(h + 'wrong-shape.safetensors', 'wb').write(save(t2, metadata=ok))
open(h + 'truncated.safetensors', 'wb').write(b[: len(b) // 2])
PY
du -sh $C
