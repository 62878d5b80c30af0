#!/usr/bin/env bash
# Stages the GPU check HERE (Rust toolchain, a package registry), for scripts/gpu-check.sh to run
# on a lent GPU machine (CUDA 13 + cuDNN 9, Python with torch/timm/onnx, no Rust, no network,
# at most 64 MiB sent per call with the working tree, 30 s idle before the machine goes back).
#
#   bash scripts/gpu-stage.sh            download, build, compress, split, lay out, print the plan
#   bash scripts/gpu-stage.sh --plan     print the device call sequence for what is staged
#   bash scripts/gpu-stage.sh --no-build stage the binaries already built (out/target-cuda)
#
# 1. ONNX Runtime: the `onnxruntime-gpu` wheel (CUDA 13 build; PyPI stops at 1.31.1, there is no
#    1.32.0) into out/gpu-cache, checked against its pinned sha256; from its onnxruntime/capi/:
#    libonnxruntime.so.1.31.1, libonnxruntime_providers_shared.so, libonnxruntime_providers_cuda.so
#    (each checked against the wheel's RECORD). nexvitad's `api-31` accepts ORT 1.31.x.
# 2. Builds, with CARGO_TARGET_DIR=out/target-cuda (never beside another cargo build):
#    `cargo build --release -p nexvitad-cli --features cuda` (the cli's `cuda` forwards to
#    `nexvitad/cuda`) and `cargo test --release -p nexvitad --features cuda --test gpu --no-run`;
#    both stripped.
# 3. xz-compresses the five files, splits the .xz of the CUDA provider, and lays the pieces out in
#    out/gpu-stage/p1..pN: as few folders as fit when each, plus the working tree, stays 1.5 MiB
#    under the 64 MiB a call sends (or at most $GPU_STAGE_FOLDER_MIB MiB each), sizes balanced;
#    manifest.json (sha256 and size of every part, joined .xz and file) in each folder.
# 4. Checks the layout by joining and decompressing it here, and prints the device calls.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

V="${ORT_GPU_VERSION:-1.31.1}"
# sha256 of onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl as PyPI serves it
# (pip's --report download_info, 2026-12-06); pip checks the download against it.
WHEEL_SHA256="${ORT_GPU_WHEEL_SHA256:-05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7}"
CACHE="$root/out/gpu-cache"
STAGE="$root/out/gpu-stage"
FOLDER_MIB="${GPU_STAGE_FOLDER_MIB:-}"   # default: 64 MiB - working tree - 1.5 MiB, balanced
XZ_OPTS="${GPU_STAGE_XZ:---x86 --lzma2=preset=9e,dict=192MiB}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/out/target-cuda}"
build=1 plan_only=0
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    --plan) plan_only=1 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "gpu-stage: unknown argument $a" >&2; exit 2 ;;
  esac
done
log() { echo "[gpu-stage] $*" >&2; }
mib() { python3 -c "import os,sys; print(f'{sum(os.path.getsize(p) for p in sys.argv[1:]) / 2**20:.1f}')" "$@"; }

tree_mib() {  # what every call sends anyway: tracked + untracked-not-ignored files
  git ls-files -z --cached --others --exclude-standard | python3 -c "
import os, sys
n = sum(os.path.getsize(p) for p in sys.stdin.read().split('\0') if p and os.path.isfile(p))
print(f'{n / 2**20:.1f}')"
}

plan() {
  local folders=() d n i tree
  for d in "$STAGE"/p*/; do [ -d "$d" ] && folders+=("$(basename "$d")"); done
  n=${#folders[@]}
  [ "$n" -gt 0 ] || { log "nothing staged in $STAGE"; exit 1; }
  tree=$(tree_mib)
  echo
  echo "Staged in out/gpu-stage (working tree sent with every call: $tree MiB; limit 64 MiB a call):"
  for d in "${folders[@]}"; do
    echo "  $d: $(mib "$STAGE/$d"/*) MiB  ($(ls "$STAGE/$d" | tr '\n' ' '))"
  done
  echo
  echo "Device calls, back to back (the machine goes back after 30 s idle; files outside the"
  echo "repo stay while it is warm). Each names ONE staging folder in carry:"
  i=0
  for d in "${folders[@]}"; do
    i=$((i + 1))
    if [ "$i" = 1 ] && [ "$n" -gt 1 ]; then
      echo "  $i. run(carry=[\"out/gpu-stage/$d\"], timeout_s=120, command=\"bash scripts/gpu-check.sh --receive --prepare\")"
    elif [ "$i" -lt "$n" ]; then
      echo "  $i. run(carry=[\"out/gpu-stage/$d\"], timeout_s=60, command=\"bash scripts/gpu-check.sh --receive\")"
    else
      echo "  $i. run(carry=[\"out/gpu-stage/$d\"], timeout_s=600, command=\"bash scripts/gpu-check.sh\")"
    fi
  done
  echo "  rerun of the last call on the still-warm machine: run(timeout_s=600, command=\"bash scripts/gpu-check.sh\")"
  echo "  (no carry: the parts, binaries, ORT and models are under /tmp/nexvitad-gpu there), else give_back."
  echo "Results come back in \$OUT: gpu-check.json, summary.txt, logs.tar.gz."
}

if [ "$plan_only" = 1 ]; then plan; exit 0; fi

mkdir -p "$CACHE"

# 1. The onnxruntime-gpu wheel and the three libraries.
whl="$CACHE/onnxruntime_gpu-$V-cp312-cp312-manylinux_2_28_x86_64.whl"
if [ ! -f "$whl" ] || [ "$(sha256sum "$whl" | cut -d' ' -f1)" != "$WHEEL_SHA256" ]; then
  rm -f "$whl"
  req="$CACHE/requirements-ort-gpu.txt"
  echo "onnxruntime-gpu==$V --hash=sha256:$WHEEL_SHA256" >"$req"
  log "pip download onnxruntime-gpu==$V (CUDA 13 build, ~255 MB)"
  python3 -m pip download --no-deps --only-binary=:all: --require-hashes --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 -d "$CACHE" -r "$req" >&2 || {
      log "onnxruntime-gpu==$V not downloadable; versions on this index:"
      python3 -m pip index versions onnxruntime-gpu >&2 || true
      exit 1; }
fi
[ "$(sha256sum "$whl" | cut -d' ' -f1)" = "$WHEEL_SHA256" ] || { log "wheel sha256 differs from $WHEEL_SHA256"; exit 1; }
log "wheel $(basename "$whl"): sha256 $WHEEL_SHA256 ok"

ortdir="$CACHE/ort-gpu-$V"
LIBS=("libonnxruntime.so.$V" libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so)
python3 - "$whl" "$ortdir" "${LIBS[@]}" <<'PY'
import base64, hashlib, os, sys, zipfile
whl, dest, names = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(dest, exist_ok=True)
z = zipfile.ZipFile(whl)
rec = {}
for line in z.read(next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))).decode().splitlines():
    parts = line.rsplit(",", 2)
    if len(parts) == 3 and parts[1].startswith("sha256="):
        rec[parts[0]] = parts[1][len("sha256="):]
for n in names:
    member = f"onnxruntime/capi/{n}"
    out = os.path.join(dest, n)
    want = rec[member]
    def digest(p):
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for b in iter(lambda: f.read(1 << 22), b""):
                h.update(b)
        return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()
    if not (os.path.exists(out) and digest(out) == want):
        with z.open(member) as i, open(out + ".tmp", "wb") as o:
            for b in iter(lambda: i.read(1 << 22), b""):
                o.write(b)
        os.chmod(out + ".tmp", 0o755)
        os.replace(out + ".tmp", out)
    assert digest(out) == want, f"{n}: sha256 differs from the wheel's RECORD"
    print(f"[gpu-stage] {n}: {os.path.getsize(out) / 2**20:.1f} MiB, sha256 matches the wheel's RECORD", file=sys.stderr)
PY

# 2. The stripped CUDA-feature binaries.
bindir="$CACHE/bin"
mkdir -p "$bindir"
if [ "$build" = 1 ]; then
  while pgrep -x cargo >/dev/null; do log "another cargo is running; waiting"; sleep 20; done
  log "cargo build --release -p nexvitad-cli --features cuda (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  nice -n 10 cargo build --release -p nexvitad-cli --features cuda >&2
  while pgrep -x cargo >/dev/null; do log "another cargo is running; waiting"; sleep 20; done
  log "cargo test --release -p nexvitad --features cuda --test gpu --no-run"
  gpu_test=$(nice -n 10 cargo test --release -p nexvitad --features cuda --test gpu --no-run --message-format=json \
    | python3 -c 'import sys, json
for l in sys.stdin:
    try: m = json.loads(l)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "gpu": print(m["executable"])' | tail -n 1)
  [ -n "$gpu_test" ] && [ -x "$gpu_test" ] || { log "no tests/gpu.rs executable from cargo"; exit 1; }
  echo "$gpu_test" >"$bindir/gpu-tests.path"
fi
gpu_test=$(cat "$bindir/gpu-tests.path" 2>/dev/null || true)
[ -x "$CARGO_TARGET_DIR/release/nexvitad" ] && [ -n "$gpu_test" ] && [ -x "$gpu_test" ] \
  || { log "no CUDA binaries in $CARGO_TARGET_DIR: run without --no-build"; exit 1; }
strip --strip-all -o "$bindir/nexvitad" "$CARGO_TARGET_DIR/release/nexvitad"
strip --strip-all -o "$bindir/gpu-tests" "$gpu_test"
log "stripped: nexvitad $(mib "$bindir/nexvitad") MiB, gpu-tests $(mib "$bindir/gpu-tests") MiB"
# The CUDA build must still run on the CPU EP and load the staged ORT 1.31.1 (GPU build).
"$bindir/nexvitad" info --model models/tiny --ep cpu --ort "$ortdir/libonnxruntime.so.$V" | grep -E "onnx runtime|fingerprint" >&2
"$bindir/gpu-tests" --list --ignored 2>/dev/null | grep -q "cuda_matches_cpu: test" || { log "gpu-tests lists no cuda_matches_cpu"; exit 1; }

# 3. Compress (cached by the input's sha256), split, lay out, manifest.
xzdir="$CACHE/xz"
mkdir -p "$xzdir"
files=("bin:$bindir/nexvitad" "bin:$bindir/gpu-tests")
for l in "${LIBS[@]}"; do files+=("ort:$ortdir/$l"); done
for e in "${files[@]}"; do
  src="${e#*:}"; name=$(basename "$src")
  sum=$(sha256sum "$src" | cut -d' ' -f1)
  if [ -f "$xzdir/$name.xz" ] && [ "$(cat "$xzdir/$name.src-sha256" 2>/dev/null)" = "$sum $XZ_OPTS" ]; then continue; fi
  log "xz $XZ_OPTS $name ($(mib "$src") MiB)$( [ "$(stat -c %s "$src")" -gt 100000000 ] && echo ': minutes here')"
  nice -n 10 xz -T1 $XZ_OPTS -c "$src" >"$xzdir/$name.xz.tmp"
  mv "$xzdir/$name.xz.tmp" "$xzdir/$name.xz"
  echo "$sum $XZ_OPTS" >"$xzdir/$name.src-sha256"
done
rm -rf "$STAGE"
tree=$(tree_mib)
max_mib="${FOLDER_MIB:-$(python3 -c "print(64 - $tree - 1.5)")}"
log "working tree $tree MiB; at most $max_mib MiB per staging folder"
python3 - "$STAGE" "$max_mib" "$V" "$xzdir" "${files[@]}" <<'PY'
import hashlib, json, math, os, sys
stage, max_mib, version, xzdir, entries = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
total = sum(os.path.getsize(os.path.join(xzdir, os.path.basename(e.split(":", 1)[1]) + ".xz")) for e in entries)
n_folders = math.ceil(total / (max_mib * 2**20 - 64 * 1024))
cap = math.ceil(total / n_folders) + 1             # balanced: the fewest folders, equal sizes
def sha(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 22), b""):
            h.update(b)
    return h.hexdigest()
items = []
for e in entries:
    d, src = e.split(":", 1)
    name = os.path.basename(src)
    x = os.path.join(xzdir, name + ".xz")
    items.append({"name": name, "dir": d, "src": src, "xz": x, "xz_size": os.path.getsize(x)})
# Small files first (they fill p1 with the start of the provider); the provider last, split.
items.sort(key=lambda i: i["xz_size"])
folders, used = [[]], [0]
manifest = {"onnxruntime_version": version, "files": {}}
for it in items:
    data_left, offset, k = it["xz_size"], 0, 0
    parts = []
    while data_left > 0:
        room = cap - used[-1]
        if room <= 0:
            folders.append([]); used.append(0); room = cap
        n = min(room, data_left)
        k += 1
        pname = f"{it['name']}.xz" if (k == 1 and n == data_left) else f"{it['name']}.xz.part{k:02d}"
        folders[-1].append((pname, it["xz"], offset, n))
        parts.append({"name": pname, "folder": f"p{len(folders)}", "size": n})
        used[-1] += n; offset += n; data_left -= n
    manifest["files"][it["name"]] = {"dir": it["dir"], "size": os.path.getsize(it["src"]), "sha256": sha(it["src"]),
                                     "xz_size": it["xz_size"], "xz_sha256": sha(it["xz"]), "parts": parts}
hashes = {}
for i, fl in enumerate(folders, 1):
    fd = os.path.join(stage, f"p{i}")
    os.makedirs(fd, exist_ok=True)
    for pname, src, off, n in fl:
        with open(src, "rb") as s, open(os.path.join(fd, pname), "wb") as o:
            s.seek(off)
            left = n
            while left:
                b = s.read(min(left, 1 << 22)); o.write(b); left -= len(b)
        hashes[pname] = sha(os.path.join(fd, pname))
for f in manifest["files"].values():
    for p in f["parts"]:
        p["sha256"] = hashes[p["name"]]
# Join order of a file's parts is the list order; the last call's folder carries the least.
for i in range(1, len(folders) + 1):
    with open(os.path.join(stage, f"p{i}", "manifest.json"), "w") as o:
        json.dump(manifest, o, indent=1)
print(f"[gpu-stage] {total / 2**20:.1f} MiB of .xz in {len(folders)} staging folders", file=sys.stderr)
PY

# 4. Check: join + decompress + sha256 here, with gpu-check.sh's own helper.
chk=$(mktemp -d "$root/out/gpu-stage-check.XXXX")
NEXVITAD_GPU_WORK="$chk" OUT="$chk/out" bash scripts/gpu-check.sh --dry-run --receive >/dev/null 2>&1 || true
python3 "$chk/gpucheck.py" assemble "$chk/parts" "$chk" >&2 || { log "staged layout does not reassemble"; rm -rf "$chk"; exit 1; }
rm -rf "$chk"
log "layout checked: every part, joined .xz and file matches manifest.json"
plan
