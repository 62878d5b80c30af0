#!/usr/bin/env bash
# The one short GPU check: CUDA execution provider (with IoBinding), fp32 and fp16 graphs, whole
# images and tiles, against the CPU. Writes ONE JSON, $OUT/gpu-check.json, plus $OUT/summary.txt
# and $OUT/logs.tar.gz (every bench JSON and log).
#
# Runs ON the GPU machine (CUDA 13 + cuDNN 9, Python with torch/timm/onnx; no Rust, no network),
# on files staged HERE by scripts/gpu-stage.sh: the stripped `nexvitad` and tests/gpu.rs binaries
# built with `--features cuda`, and ONNX Runtime 1.31.1's CUDA build (onnxruntime-gpu wheel), the
# CUDA provider xz-compressed and split over the staging folders out/gpu-stage/p1..pN. Each
# device call carries one folder; gpu-stage.sh prints the exact call sequence:
#
#   bash scripts/gpu-check.sh --receive --prepare   first call: take p1, start the model export
#                                                   (setsid, runs on between calls)
#   bash scripts/gpu-check.sh --receive             next calls: take p2..p(N-1)
#   bash scripts/gpu-check.sh                       last call (carries pN): reassemble, verify
#                                                   (sha256), tests, benches, JSON
#   bash scripts/gpu-check.sh --dry-run             here, on the CPU: same steps and JSON shape
#                                                   ("dry_run": true), tiny iteration counts
#
# Files carried to the machine stay there while it is warm (30 s idle), under $NEXVITAD_GPU_WORK
# (default /tmp/nexvitad-gpu); a rerun of the last call on a warm machine needs no carry.
#
# Environment (all optional):
#   OUT                   results folder (the device tool sets it; default out/gpu-check, or
#                         out/gpu-check-dry with --dry-run)
#   NEXVITAD_GPU_WORK     work folder (parts, ORT, binaries, models, logs)
#   NEXVITAD_BIN, NEXVITAD_GPU_TEST, NEXVITAD_ORT_LIBRARY   use these instead of the staged files
#                         (--dry-run: target/release/nexvitad and .ort/lib/libonnxruntime.so)
#   NEXVITAD_MODEL_224, NEXVITAD_MODEL_448, NEXVITAD_MODEL_FP16   model folders; else exported
#                         with tools/export_onnx.py --random-init (--dry-run: models/tiny, or
#                         --tiny exports where Python has torch + timm)
#   GPU_CHECK_BUDGET_S    no step starts after this many seconds (default 420; dry run 900)
#   GPU_CHECK_EP          execution provider (default cuda:0; dry run cpu)
set -uo pipefail
root="${NEXVITAD_REPO:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$root"
export NEXVITAD_REPO="$root"
T0=$(date +%s.%N)

dry=0 receive=0 prepare=0 worker=0
for a in "$@"; do
  case "$a" in
    --dry-run) dry=1 ;;
    --receive) receive=1 ;;
    --prepare) prepare=1 ;;
    --prepare-worker) worker=1 ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $a" >&2; exit 2 ;;
  esac
done

if [ "$dry" = 1 ]; then
  W="${NEXVITAD_GPU_WORK:-$root/out/gpu-check-dry/work}"
  out="${OUT:-$root/out/gpu-check-dry}"
  EP="${GPU_CHECK_EP:-cpu}"
  BUDGET="${GPU_CHECK_BUDGET_S:-900}"
else
  W="${NEXVITAD_GPU_WORK:-/tmp/nexvitad-gpu}"
  out="${OUT:-$root/out/gpu-check}"
  EP="${GPU_CHECK_EP:-cuda:0}"
  BUDGET="${GPU_CHECK_BUDGET_S:-420}"
fi
STAGE_SRC="$root/out/gpu-stage"
R="$W/results"   # bench JSON, steps.tsv, facts
L="$W/logs"
mkdir -p "$W/parts" "$R" "$L" "$out"
HELPER="$W/gpucheck.py"

elapsed() { python3 -c "import time; print(f'{time.time() - $T0:.1f}')"; }
log() { echo "[gpu-check $(elapsed)s] $*" | tee -a "$L/gpu-check.log" >&2; }

# ------------------------------------------------------------------ the Python helper (stdlib;
# numpy only for the synthetic PNGs)
cat >"$HELPER.$$" <<'PY'
import glob, hashlib, json, lzma, os, re, subprocess, sys, zlib, struct

def sha256(path, bufsize=1 << 22):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(bufsize)
            if not b:
                return h.hexdigest()
            h.update(b)

def load_manifest(parts_dir):
    p = os.path.join(parts_dir, "manifest.json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)

def cmd_parts(parts_dir):
    """Verify the parts that are here; say which are missing. rc 0: all here and good."""
    m = load_manifest(parts_dir)
    if m is None:
        print("no manifest.json yet (it travels in every staging folder)")
        return 3
    have, missing, bad = [], [], []
    for name, f in m["files"].items():
        for part in f["parts"]:
            p = os.path.join(parts_dir, part["name"])
            if not os.path.exists(p):
                missing.append(f'{part["name"]} ({part["folder"]})')
            elif os.path.getsize(p) != part["size"] or sha256(p) != part["sha256"]:
                bad.append(part["name"])
            else:
                have.append(part["name"])
    print(f"parts: {len(have)} verified, {len(missing)} missing, {len(bad)} bad (sha256)")
    folders = sorted({m2.split("(")[1].rstrip(")") for m2 in missing})
    if missing:
        print("missing folders: " + " ".join(folders))
    if bad:
        print("BAD (sha256 or size differs): " + " ".join(bad))
        return 4
    return 0 if not missing else 3

def cmd_assemble(parts_dir, dest):
    """Join each file's parts, check the .xz's and the file's sha256, decompress."""
    m = load_manifest(parts_dir)
    if m is None:
        print("no manifest.json"); return 3
    rc = cmd_parts(parts_dir)
    if rc:
        return rc
    os.makedirs(dest, exist_ok=True)
    for name, f in m["files"].items():
        os.makedirs(os.path.join(dest, f.get("dir", ".")), exist_ok=True)
        target = os.path.join(dest, f.get("dir", "."), name)
        if os.path.exists(target) and os.path.getsize(target) == f["size"] and sha256(target) == f["sha256"]:
            print(f"{name}: already here, sha256 ok"); continue
        h_xz, h = hashlib.sha256(), hashlib.sha256()
        dec = lzma.LZMADecompressor()
        tmp = target + ".tmp"
        with open(tmp, "wb") as o:
            for part in f["parts"]:
                with open(os.path.join(parts_dir, part["name"]), "rb") as i:
                    while True:
                        b = i.read(1 << 22)
                        if not b:
                            break
                        h_xz.update(b)
                        d = dec.decompress(b)
                        h.update(d); o.write(d)
        if h_xz.hexdigest() != f["xz_sha256"]:
            print(f"{name}: joined .xz sha256 {h_xz.hexdigest()} != {f['xz_sha256']}"); return 4
        if h.hexdigest() != f["sha256"]:
            print(f"{name}: sha256 {h.hexdigest()} != {f['sha256']}"); return 4
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
        print(f"{name}: {f['size'] / 2**20:.1f} MiB from {len(f['parts'])} part(s), sha256 ok -> {target}")
    return 0

# Libraries the CUDA provider of ONNX Runtime 1.31 (CUDA 13 build) needs: NEEDED entries of
# libonnxruntime_providers_cuda.so, then what it dlopens (cuDNN 9, nvrtc, cuFFT).
CUDA_LIBS = {"libcudart.so.13": True, "libcublas.so.13": True, "libcublasLt.so.13": True,
             "libcurand.so.10": True, "libcudnn.so.9": True, "libcuda.so.1": True,
             "libcufft.so.12": False, "libnvrtc.so.13": False, "libnvJitLink.so.13": False}

def cmd_cudalibs(report):
    """Search nvidia-* wheels in every site-packages, then system paths and ldconfig."""
    import site, sysconfig
    roots = []
    for d in list(getattr(site, "getsitepackages", lambda: [])()) + [site.getusersitepackages(),
              sysconfig.get_paths().get("purelib", ""), sysconfig.get_paths().get("platlib", "")] + sys.path:
        if d and os.path.isdir(os.path.join(d, "nvidia")) and d not in roots:
            roots.append(d)
    for d in glob.glob("/opt/*/.venv/lib/python3*/site-packages") + glob.glob("/usr/local/lib/python3*/dist-packages") \
            + glob.glob("/usr/lib/python3/dist-packages"):
        if os.path.isdir(os.path.join(d, "nvidia")) and d not in roots:
            roots.append(d)
    dirs = []
    for r in roots:
        for dp, dn, fn in os.walk(os.path.join(r, "nvidia")):
            if any(".so" in x for x in fn):
                dirs.append(dp)
    system = []
    for pat in ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/local/cuda-13*/lib64",
                "/usr/local/cuda-13*/targets/x86_64-linux/lib", "/usr/local/nvidia/lib64", "/usr/local/nvidia/lib",
                "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/lib"]:
        system += sorted(glob.glob(pat))
    ldc = {}
    try:
        for line in subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10).stdout.splitlines():
            mm = re.match(r"\s*(\S+) \(.*x86-64.*\) => (\S+)", line)
            if mm:
                ldc.setdefault(mm.group(1), mm.group(2))
    except Exception:
        pass
    found, path_dirs = {}, []
    for lib, required in CUDA_LIBS.items():
        where = None
        for d in dirs + system:
            if os.path.exists(os.path.join(d, lib)):
                where = os.path.join(d, lib); break
        if where is None and lib in ldc:
            where = ldc[lib]
        found[lib] = {"path": where, "required": required}
        if where and os.path.dirname(where) not in path_dirs and lib not in ldc:
            path_dirs.append(os.path.dirname(where))
        elif where and lib in ldc and os.path.dirname(where) not in path_dirs and where != ldc[lib]:
            path_dirs.append(os.path.dirname(where))
    # The whole cuDNN folder (its engine libraries are loaded beside libcudnn.so.9).
    with open(report, "w") as f:
        json.dump({"site_packages_with_nvidia": roots, "libs": found, "ld_library_path_added": path_dirs}, f, indent=1)
    print(":".join(path_dirs))
    return 0

def cmd_pngs(dest, w, h, n):
    """n synthetic RGB PNGs of w x h (textured, a few blobs), zlib level 1."""
    import numpy as np
    w, h, n = int(w), int(h), int(n)
    os.makedirs(dest, exist_ok=True)
    for k in range(n):
        p = os.path.join(dest, f"img_{k:02d}.png")
        if os.path.exists(p):
            continue
        rng = np.random.default_rng(k)
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        base = 128 + 40 * np.sin(x / (17 + k)) * np.cos(y / 23) + rng.normal(0, 12, (h, w))
        if k >= 2:  # a defect-like blob on the later images
            cy, cx = rng.integers(100, h - 100), rng.integers(100, w - 100)
            base += 90 * np.exp(-(((x - cx) / 40) ** 2 + ((y - cy) / 25) ** 2))
        img = np.clip(np.stack([base, base * 0.9 + 10, base * 0.8 + 20], -1), 0, 255).astype(np.uint8)
        raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))
        def chunk(t, d):
            c = struct.pack(">I", len(d)) + t + d
            return c + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
        png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) \
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")
        with open(p + ".tmp", "wb") as f:
            f.write(png)
        os.replace(p + ".tmp", p)
    print(f"{n} PNGs of {w}x{h} in {dest}")
    return 0

def bench_summary(path):
    try:
        with open(path) as f:
            r = json.load(f)
    except Exception:
        return None
    n = r["nexvitad"]; s = n["stages"]
    med = lambda k: s[k]["median_ms"]
    mp = None
    if r["images"].get("first_size"):
        wv, hv = r["images"]["first_size"]; mp = wv * hv / 1e6
    total = med("total")
    graphs = "fp32"
    try:
        with open(os.path.join(r["model"], "model.json")) as f:
            exporter = json.load(f).get("provenance", {}).get("exporter", "")
        graphs = "fp16" if "fp16" in exporter else (r.get("precision") or "fp32")
    except Exception:
        pass
    out = {
        "graphs": graphs,
        "execution_provider": r["execution_provider"], "onnxruntime_version": r.get("onnxruntime_version"),
        "model": r["model"], "model_name": r["model_name"], "precision": r.get("precision"),
        "batch": r["batch"], "image_size": r["images"].get("first_size"), "images_measured": n["images"],
        "tiles": r["bank"].get("tiles"), "tiles_per_image": n.get("tiles_per_image"),
        "ms_per_image": total, "ms_per_image_min": s["total"]["min_ms"], "ms_per_image_p95": s["total"]["p95_ms"],
        "ms_per_image_excl_decode": total - med("decode"),
        "encoders_ms_per_image": med("hiera") + med("dinov2"),
        "stages_median_ms": {k: v["median_ms"] for k, v in s.items()},
        "images_per_s": n["images_per_s"],
        "ms_per_megapixel": n.get("ms_per_megapixel"),
        "ms_per_megapixel_excl_decode": (total - med("decode")) / mp if mp else None,
        "peak_rss_mb": n.get("peak_rss_mb"), "process_peak_rss_mb": n.get("process_peak_rss_mb"),
    }
    return out

def cmd_best(results, *names):
    """Prints the case (of names) with the most images/s."""
    best = None
    for nm in names:
        b = bench_summary(os.path.join(results, "bench_" + nm + ".json"))
        if b and (best is None or b["images_per_s"] > best[1]["images_per_s"]):
            best = (nm, b)
    print(f"{best[0]} {best[1]['batch']}" if best else "")
    return 0

def parse_tests(log):
    if not os.path.exists(log):
        return None
    text = open(log, errors="replace").read()
    diffs = {m.group(1).strip(): float(m.group(2)) for m in re.finditer(r"^(.*?): relative max diff ([0-9.eE+-]+)", text, re.M)}
    sc = re.search(r"image scores ([0-9.eE+-]+) / ([0-9.eE+-]+)", text)
    res = re.findall(r"test result: (\w+)\. (\d+) passed; (\d+) failed", text)
    refused = re.search(r"cuda:63 refused as expected: (.*)", text)
    panics = re.findall(r"panicked at [^\n]*\n([^\n]*)", text)
    names = re.findall(r"^test (\S+) \.\.\. ", text, re.M)
    fb = text.rsplit("\nfailures:\n", 1)
    failed = re.findall(r"^    (\S+)$", fb[1].split("\n\n")[0], re.M) if len(fb) == 2 else []
    return {"result": res[-1][0] if res else None, "passed": int(res[-1][1]) if res else 0,
            "failed": int(res[-1][2]) if res else None, "relative_max_diff": diffs,
            "image_scores_cpu_cuda": [float(sc.group(1)), float(sc.group(2))] if sc else None,
            "bad_device_refused": refused.group(1)[:500] if refused else None,
            "tests": {n: ("FAILED" if n in failed else ("ok" if res else "?")) for n in names},
            "panics": [p[:800] for p in panics]}

def env_json(name):
    v = os.environ.get(name, "")
    try:
        return json.loads(v) if v else None
    except ValueError:
        return v

def cmd_report(W, out):
    R = os.path.join(W, "results")
    e = os.environ.get
    facts = {"dry_run": e("F_DRY") == "1", "execution_provider": e("F_EP"), "ort_library": e("F_ORT") or None,
             "ld_library_path": e("F_LDP") or None, "gpu": env_json("F_GPU"), "cuda_libs": env_json("F_CUDA_LIBS"),
             "binaries": {"nexvitad": e("F_BIN") or None, "gpu_tests": e("F_GPU_TEST") or None},
             "models": env_json("F_MODELS"), "budget_s": float(e("F_BUDGET", "0")), "wall_s": float(e("F_WALL", "0")),
             "host": os.uname().nodename, "git": e("F_GIT") or None, "stage_check": env_json("F_STAGE_CHECK"),
             "started_utc": e("F_STARTED")}
    with open(os.path.join(R, "facts.json"), "w") as f:
        json.dump(facts, f, indent=1)
    steps = []
    tsv = os.path.join(R, "steps.tsv")
    if os.path.exists(tsv):
        for line in open(tsv):
            name, to, rc, secs, status = line.rstrip("\n").split("\t")
            steps.append({"step": name, "timeout_s": int(to), "rc": int(rc), "seconds": float(secs), "status": status})
    bench = {}
    for s in steps:  # in the order they ran
        if s["step"].startswith("bench_"):
            b = bench_summary(os.path.join(R, s["step"] + ".json"))
            if b:
                bench[s["step"][len("bench_"):]] = b
    failed_bench = [s["step"][len("bench_"):] for s in steps if s["step"].startswith("bench_") and s["status"] != "ok"]
    tests = {}
    for tag in ("tiny", "full224"):
        t = parse_tests(os.path.join(W, "logs", f"tests_{tag}.log"))
        st = next((s for s in steps if s["step"] == f"tests_{tag}"), None)
        if t is not None or st is not None:
            tests[tag] = dict(t or {}, status=st["status"] if st else "not run")
    if facts.get("dry_run"):
        tests = {"status": "skipped (dry run: no GPU)", **tests}
    def best_of(prefix):
        c = [(k, v) for k, v in bench.items() if re.fullmatch(prefix + r"b\d+", k)]
        if not c:
            return None
        k, v = max(c, key=lambda kv: kv[1]["images_per_s"])
        return {"case": k, "batch": v["batch"], "images_per_s": v["images_per_s"], "ms_per_image": v["ms_per_image"],
                "all": {kk: round(vv["images_per_s"], 2) for kk, vv in sorted(c, key=lambda kv: kv[1]["batch"])}}
    g = lambda k, f="ms_per_image": bench.get(k, {}).get(f)
    mapdiff = None
    for tag in ("full224", "tiny"):
        t = tests.get(tag) if isinstance(tests.get(tag), dict) else None
        if t and "anomaly map" in (t.get("relative_max_diff") or {}):
            mapdiff = {"model": tag, "relative_max_diff": t["relative_max_diff"]["anomaly map"],
                       "image_scores_cpu_cuda": t.get("image_scores_cpu_cuda"),
                       "encoders": {k: v for k, v in t["relative_max_diff"].items() if k != "anomaly map"}}
            break
    ep = facts.get("execution_provider", "cuda:0")
    cpu224, ep224 = g("cpu_fp32_224_b1"), g("fp32_224_b1")
    headline = {
        "ms_per_image_224_b1": ep224,
        "ms_per_image_448_b1": g("fp32_448_b1"),
        "best_batch_224": best_of("fp32_224_"),
        "best_batch_448": best_of("fp32_448_"),
        "fp16_ms_per_image_224_b1": g("fp16_224_b1"),
        "fp16_best_batch_224": best_of("fp16_224_"),
        "ms_per_megapixel_tiled_1024": g("tiled_1024", "ms_per_megapixel"),
        "ms_per_megapixel_tiled_1024_excl_decode": g("tiled_1024", "ms_per_megapixel_excl_decode"),
        "ms_per_megapixel_tiled_2448x2048": g("tiled_2448x2048", "ms_per_megapixel"),
        "ms_per_megapixel_tiled_2448x2048_excl_decode": g("tiled_2448x2048", "ms_per_megapixel_excl_decode"),
        "cpu_ms_per_image_224_b1": cpu224,
        "speedup_224_b1_over_cpu": (cpu224 / ep224) if (cpu224 and ep224) else None,
        "map_diff_fp32_cuda_vs_cpu": mapdiff,
    }
    ok = all(s["status"] in ("ok", "skipped-dry-run") for s in steps) and bool(bench)
    total = sum(s["seconds"] for s in steps)
    report = {
        "dry_run": bool(facts.get("dry_run")), "status": "ok" if ok else "failed",
        "gpu": facts.get("gpu"), "execution_provider": ep,
        "onnxruntime": {"version": next((v["onnxruntime_version"] for v in bench.values() if v.get("onnxruntime_version")), None),
                        "library": facts.get("ort_library"), "cuda_libraries": facts.get("cuda_libs"),
                        "ld_library_path": facts.get("ld_library_path")},
        "io_binding": "on with CUDA (SessionConfig::io_binding, automatic for cuda:N); off on the CPU EP",
        "binaries": facts.get("binaries"), "models": facts.get("models"),
        "headline": headline, "tests": tests, "bench": bench, "bench_failed": failed_bench,
        "steps": steps, "budget": {"budget_s": facts.get("budget_s"), "steps_total_s": round(total, 1),
                                   "wall_s": facts.get("wall_s")},
        "stage_check": facts.get("stage_check"), "host": facts.get("host"), "git": facts.get("git"),
        "started_utc": facts.get("started_utc"),
    }
    with open(os.path.join(out, "gpu-check.json"), "w") as f:
        json.dump(report, f, indent=1)
    fmt = lambda v, d=2: "-" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))
    lines = [f"gpu-check {'DRY RUN (CPU)' if report['dry_run'] else ''} status {report['status']}",
             f"GPU: {facts.get('gpu')}", f"ONNX Runtime {report['onnxruntime']['version']} ({facts.get('ort_library')}), EP {ep}", ""]
    lines.append(f"{'case':22s} {'graphs':8s} {'batch':>5s} {'size':>11s} {'ms/img':>9s} {'excl.dec':>9s} {'enc ms':>8s} {'img/s':>8s} {'ms/MP':>8s} {'RSS MB':>7s}")
    for k, v in bench.items():
        sz = "x".join(str(x) for x in (v["image_size"] or []))
        lines.append(f"{k:22s} {str(v['graphs'])[:8]:8s} {v['batch']:5d} {sz:>11s} {fmt(v['ms_per_image']):>9s} {fmt(v['ms_per_image_excl_decode']):>9s} "
                     f"{fmt(v['encoders_ms_per_image']):>8s} {fmt(v['images_per_s'], 1):>8s} {fmt(v['ms_per_megapixel'], 1):>8s} {fmt(v['peak_rss_mb'], 0):>7s}")
    lines.append("")
    lines.append("headline: " + json.dumps(headline))
    lines.append("tests: " + json.dumps(tests))
    lines.append("")
    lines.append(f"{'step':28s} {'status':16s} {'seconds':>8s} {'timeout':>8s}")
    for s in steps:
        lines.append(f"{s['step']:28s} {s['status']:16s} {s['seconds']:8.1f} {s['timeout_s']:8d}")
    lines.append(f"{'steps total':28s} {'':16s} {total:8.1f}   (budget: no step starts after {facts.get('budget_s')} s; wall {facts.get('wall_s')} s)")
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    sys.exit({"parts": cmd_parts, "assemble": cmd_assemble, "cudalibs": cmd_cudalibs, "pngs": cmd_pngs,
              "best": cmd_best, "report": cmd_report}[cmd](*args))
PY

mv -f "$HELPER.$$" "$HELPER"

# ------------------------------------------------------------------ steps
# step NAME TIMEOUT OUT CMD...: runs CMD under `timeout`; stdout to the file OUT (stderr to
# $L/NAME.log), or both to $L/NAME.log when OUT is "-". Records NAME, timeout, rc, seconds and
# status in steps.tsv; a step that would start past the budget is skipped.
step() {
  local name="$1" to="$2" so="$3"; shift 3
  local now; now=$(elapsed)
  if python3 -c "import sys; sys.exit(0 if $now > $BUDGET else 1)"; then
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$to" -1 0 "skipped-budget" >>"$R/steps.tsv"
    log "step $name: SKIPPED (${now}s is past the ${BUDGET}s budget)"; return 1
  fi
  local t0 t1 rc
  t0=$(date +%s.%N)
  if [ "$so" = - ]; then
    timeout -k 5 "$to" "$@" >>"$L/$name.log" 2>&1; rc=$?
  else
    timeout -k 5 "$to" "$@" >"$so" 2>>"$L/$name.log"; rc=$?
  fi
  t1=$(date +%s.%N)
  local secs status=ok
  secs=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then status=timeout; elif [ "$rc" != 0 ]; then status="failed($rc)"; fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$to" "$rc" "$secs" "$status" >>"$R/steps.tsv"
  log "step $name: $status in ${secs}s (timeout ${to}s)"
  [ "$rc" = 0 ] || tail -n 4 "$L/$name.log" | sed 's/^/    /' >&2
  return "$rc"
}
skip() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" 0 0 0 "$2" >>"$R/steps.tsv"; log "step $1: $2"; }

receive_parts() {
  local n=0 d f
  for d in "$STAGE_SRC"/p*/; do
    [ -d "$d" ] || continue
    for f in "$d"*; do
      [ -f "$f" ] || continue
      if [ "$dry" = 1 ]; then cp -f "$f" "$W/parts/"; else mv -f "$f" "$W/parts/"; fi
      n=$((n + 1))
    done
  done
  log "received $n file(s) from $STAGE_SRC into $W/parts"
  python3 "$HELPER" parts "$W/parts" 2>&1 | tee -a "$L/gpu-check.log" >&2
}

# A Python with torch + timm + onnx (+ numpy) for the export; else one with numpy (PNGs only).
pick_python() {
  local p
  for p in "${NEXVITAD_PYTHON:-}" "$root/.venv/bin/python" python3; do
    [ -n "$p" ] && command -v "$p" >/dev/null 2>&1 || continue
    "$p" -c "import torch, timm, onnx, numpy" >/dev/null 2>&1 && { echo "$p"; return 0; }
  done
  for p in "${NEXVITAD_PYTHON:-}" "$root/.venv/bin/python" python3; do
    [ -n "$p" ] && command -v "$p" >/dev/null 2>&1 || continue
    "$p" -c "import numpy" >/dev/null 2>&1 && { echo "$p"; return 1; }
  done
  echo python3; return 1
}

# Model export (tools/export_onnx.py --random-init, the three in parallel) and the 2448x2048
# PNGs. The first call starts it in the background (setsid); the last waits for it or runs it.
prepare_work() {
  local py has_torch=1 pids=() name args var
  py=$(pick_python) || has_torch=0
  echo "python: $py (torch+timm+onnx: $has_torch)"
  mkdir -p "$W/models" "$W/tools"
  cp -f "$root/tools/export_onnx.py" "$W/tools/export_onnx.py"
  for name in full224 full448 fp16_224; do
    case "$name" in
      full224) args="--size 224"; var=NEXVITAD_MODEL_224 ;;
      full448) args="--size 448"; var=NEXVITAD_MODEL_448 ;;
      fp16_224) args="--size 224 --fp16"; var=NEXVITAD_MODEL_FP16 ;;
    esac
    [ -n "${!var:-}" ] && [ -f "${!var}/model.json" ] && continue
    [ -f "$W/models/$name/model.json" ] && continue
    if [ "$dry" = 1 ]; then
      [ "$name" = full224 ] && continue  # the dry run scores models/tiny (or $NEXVITAD_MODEL_224)
      args="$args --tiny"
    fi
    [ "$has_torch" = 1 ] || { echo "no Python with torch + timm + onnx: $name not exported"; continue; }
    echo "export $name: $py tools/export_onnx.py --random-init $args --no-verify"
    ( OMP_NUM_THREADS=4 "$py" "$W/tools/export_onnx.py" --random-init $args --no-verify --out "$W/models/$name.tmp" \
        >"$L/export_$name.log" 2>&1 && rm -rf "$W/models/$name" && mv "$W/models/$name.tmp" "$W/models/$name" ) &
    pids+=($!)
  done
  local n=6
  [ "$dry" = 1 ] && n=3
  "$py" "$HELPER" pngs "$W/images/2448x2048" 2448 2048 "$n" || echo "PNG generation failed ($py)"
  local rc=0 p
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  ls -la "$W/models"
  return $rc
}

if [ "$worker" = 1 ]; then
  echo $$ >"$W/prepare.pid"
  rm -f "$W/prepare.done"
  prepare_work >>"$L/prepare.log" 2>&1; rc=$?
  echo "$rc" >"$W/prepare.done"
  exit "$rc"
fi

prepare_running() { [ -f "$W/prepare.pid" ] && [ ! -f "$W/prepare.done" ] && kill -0 "$(cat "$W/prepare.pid")" 2>/dev/null; }

if [ "$receive" = 1 ]; then
  receive_parts
  if [ "$prepare" = 1 ] && [ ! -f "$W/prepare.done" ] && ! prepare_running; then
    cp -f "$0" "$W/gpu-check.sh"
    wdry=(); [ "$dry" = 1 ] && wdry=(--dry-run)
    # A new session: the device tool ends what a call leaves running, except that.
    NEXVITAD_GPU_WORK="$W" setsid bash "$W/gpu-check.sh" "${wdry[@]}" --prepare-worker </dev/null >/dev/null 2>&1 &
    sleep 1
    log "model export started in the background (pid $(cat "$W/prepare.pid" 2>/dev/null)); log $L/prepare.log"
  elif [ "$prepare" = 1 ]; then
    log "model export: $( [ -f "$W/prepare.done" ] && echo "done (rc $(cat "$W/prepare.done"))" || echo running)"
  fi
  [ "$dry" = 1 ] || nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
  log "receive done: $(du -sh "$W/parts" | cut -f1) in $W/parts"
  exit 0
fi

# ------------------------------------------------------------------ the full check
: >"$R/steps.tsv"
rm -f "$R"/bench_*.json "$L"/tests_*.log "$L"/bench_*.log
declare -A MODELS=()
STATUS=0
ORT_LIB="" BIN="" GPU_TEST="" LDP="" GPU_JSON="" CUDA_LIBS_JSON="" STAGE_CHECK=""

finish() {
  local models="{" k sep=""
  for k in "${!MODELS[@]}"; do models+="$sep\"$k\": \"${MODELS[$k]}\""; sep=", "; done
  models+="}"
  F_DRY="$dry" F_EP="$EP" F_ORT="$ORT_LIB" F_LDP="$LDP" F_GPU="$GPU_JSON" F_CUDA_LIBS="$CUDA_LIBS_JSON" \
  F_BIN="$BIN" F_GPU_TEST="$GPU_TEST" F_MODELS="$models" F_BUDGET="$BUDGET" F_WALL="$(elapsed)" \
  F_GIT="$(git -C "$root" rev-parse --short HEAD 2>/dev/null)" F_STAGE_CHECK="$STAGE_CHECK" \
  F_STARTED="$(date -u -d "@${T0%.*}" +%FT%TZ)" \
    python3 "$HELPER" report "$W" "$out" >/dev/null 2>>"$L/gpu-check.log" || log "report failed (see $L/gpu-check.log)"
  tar -C "$W" -czf "$out/logs.tar.gz" results logs 2>/dev/null
  log "wrote $out/gpu-check.json, $out/summary.txt, $out/logs.tar.gz (exit $STATUS)"
  cat "$out/summary.txt" 2>/dev/null
}
trap 'finish; exit $STATUS' EXIT

# 1. Files: the staged parts, joined and checked (sha256 of every part, .xz and file).
if compgen -G "$STAGE_SRC/p*/manifest.json" >/dev/null || [ -f "$W/parts/manifest.json" ]; then
  receive_parts
  step assemble 120 - python3 "$HELPER" assemble "$W/parts" "$W" || STATUS=1
  ortlib=$(ls "$W"/ort/libonnxruntime.so.1.* 2>/dev/null | head -n 1)
  if [ -n "$ortlib" ]; then
    ln -sf "$(basename "$ortlib")" "$W/ort/libonnxruntime.so"
    ln -sf "$(basename "$ortlib")" "$W/ort/libonnxruntime.so.1"
  fi
elif [ "$dry" = 1 ]; then
  skip assemble "skipped-dry-run"
  log "(nothing staged: scripts/gpu-stage.sh stages the CUDA files; the dry run checks them when present)"
fi
if [ "$dry" = 1 ]; then
  # The staged (CUDA-feature, stripped) binaries with the staged ONNX Runtime 1.31.1 (GPU build) on
  # the CPU EP: they run and load that library. The benches below use the CPU build.
  if [ -x "$W/bin/nexvitad" ] && [ -e "$W/ort/libonnxruntime.so" ]; then
    step staged_info 60 "$R/staged_info.txt" "$W/bin/nexvitad" info --model "$root/models/tiny" --ep cpu --ort "$W/ort/libonnxruntime.so" || STATUS=1
    step staged_bench 120 "$R/staged_bench.json" "$W/bin/nexvitad" bench --model "$root/models/tiny" --ep cpu \
      --ort "$W/ort/libonnxruntime.so" --iters 2 --warmup 1 --size 224 --json || STATUS=1
    step staged_tests_list 30 "$R/staged_tests_list.txt" "$W/bin/gpu-tests" --list --ignored || STATUS=1
    STAGE_CHECK=$(python3 - "$R" <<'PYS'
import json, os, sys
R = sys.argv[1]
rd = lambda n: open(os.path.join(R, n)).read() if os.path.exists(os.path.join(R, n)) else ""
info, tl = rd("staged_info.txt"), rd("staged_tests_list.txt")
try:
    b = json.loads(rd("staged_bench.json"))
    bench = {"onnxruntime_version": b.get("onnxruntime_version"), "ms_per_image": b["nexvitad"]["stages"]["total"]["median_ms"]}
except Exception:
    bench = None
print(json.dumps({"staged_nexvitad_info_onnxruntime": next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("onnx runtime")), None),
                  "staged_nexvitad_bench_cpu_ep": bench,
                  "staged_gpu_tests": [l.split(":")[0] for l in tl.splitlines() if l.endswith(": test")]}))
PYS
)
  fi
  BIN="${NEXVITAD_BIN:-$root/target/release/nexvitad}"
  ORT_LIB="${NEXVITAD_ORT_LIBRARY:-$root/.ort/lib/libonnxruntime.so}"
else
  BIN="${NEXVITAD_BIN:-$W/bin/nexvitad}"
  GPU_TEST="${NEXVITAD_GPU_TEST:-$W/bin/gpu-tests}"
  ORT_LIB="${NEXVITAD_ORT_LIBRARY:-$W/ort/libonnxruntime.so}"
fi
for f in "$BIN" "$ORT_LIB"; do
  [ -e "$f" ] || { log "missing $f: stage with scripts/gpu-stage.sh and carry every folder (its plan)"; STATUS=2; exit; }
done
export NEXVITAD_ORT_LIBRARY="$ORT_LIB"
log "nexvitad $BIN; ONNX Runtime $ORT_LIB; EP $EP"

# 2. GPU and the CUDA 13 / cuDNN 9 libraries (nvidia-* wheels in site-packages, system paths).
if [ "$dry" = 0 ]; then
  if nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader >"$R/gpu.txt" 2>"$L/nvidia-smi.log"; then
    GPU_JSON=$(python3 -c "
import json; f = [x.strip() for x in open('$R/gpu.txt').readline().split(',')]
print(json.dumps(dict(zip(['name', 'memory_total', 'driver_version', 'compute_cap'], f))))")
    log "GPU: $(head -n 1 "$R/gpu.txt")"
  else
    log "nvidia-smi failed (see logs/nvidia-smi.log)"
  fi
  LDP=$(python3 "$HELPER" cudalibs "$R/cuda_libs.json" 2>>"$L/cudalibs.log")
  CUDA_LIBS_JSON=$(cat "$R/cuda_libs.json" 2>/dev/null)
  export LD_LIBRARY_PATH="${LDP:+$LDP:}${LD_LIBRARY_PATH:-}"
  log "LD_LIBRARY_PATH += $LDP"
  python3 -c "
import json; d = json.load(open('$R/cuda_libs.json'))
for k, v in d['libs'].items(): print(f\"    {k:22s} {v['path'] or ('MISSING' if v['required'] else 'not found (optional)')}\")" >&2
  if [ -e "$W/ort/libonnxruntime_providers_cuda.so" ]; then
    ldd "$W/ort/libonnxruntime_providers_cuda.so" >"$L/ldd_cuda_provider.log" 2>&1
    if grep -q "not found" "$L/ldd_cuda_provider.log"; then
      grep "not found" "$L/ldd_cuda_provider.log" | sed 's/^/    ldd: /' >&2
    fi
  fi
else
  GPU_JSON='{"name": "none (dry run on the CPU)"}'
fi

# 3. Models: the background export started by the first call (waited for), else exported now.
if prepare_running; then
  step wait_prepare 300 - bash -c "while [ ! -f '$W/prepare.done' ] && kill -0 $(cat "$W/prepare.pid") 2>/dev/null; do sleep 1; done" || STATUS=1
fi
if [ ! -f "$W/prepare.done" ] || [ "$(cat "$W/prepare.done")" != 0 ] || ! ls "$W/images/2448x2048"/*.png >/dev/null 2>&1; then
  cp -f "$0" "$W/gpu-check.sh"
  wdry=(); [ "$dry" = 1 ] && wdry=(--dry-run)
  step prepare 360 - env NEXVITAD_GPU_WORK="$W" bash "$W/gpu-check.sh" "${wdry[@]}" --prepare-worker || STATUS=1
fi
cat "$L/prepare.log" >>"$L/gpu-check.log" 2>/dev/null
pick_model() {  # env var, exported folder, dry-run fallback
  local v="${!1:-}"
  if [ -n "$v" ] && [ -f "$v/model.json" ]; then echo "$v"
  elif [ -f "$W/models/$2/model.json" ]; then echo "$W/models/$2"
  elif [ "$dry" = 1 ] && [ -n "$3" ]; then echo "$3"
  fi
}
M224=$(pick_model NEXVITAD_MODEL_224 full224 "$root/models/tiny")
M448=$(pick_model NEXVITAD_MODEL_448 full448 "$root/models/tiny")
MF16=$(pick_model NEXVITAD_MODEL_FP16 fp16_224 "")
MODELS[fp32_224]="$M224"; MODELS[fp32_448]="$M448"; MODELS[fp16_224]="$MF16"
log "models: 224 ${M224:-none}; 448 ${M448:-none}; fp16 224 ${MF16:-none}"

# 4. CUDA tests (tests/gpu.rs): the tiny model, then the full-size 224 one (the fp32 CUDA vs CPU
#    encoder and anomaly-map difference).
if [ "$dry" = 1 ]; then
  skip tests_tiny skipped-dry-run; skip tests_full224 skipped-dry-run
else
  step tests_tiny 120 - env NEXVITAD_GPU_MODEL="$root/models/tiny" "$GPU_TEST" --ignored --nocapture --test-threads 1 || STATUS=1
  if [ -n "$M224" ]; then
    step tests_full224 150 - env NEXVITAD_GPU_MODEL="$M224" "$GPU_TEST" --ignored --nocapture --test-threads 1 || STATUS=1
  else skip tests_full224 "skipped (no 224 model)"; STATUS=1; fi
fi

# 5. Benches (bench --json; ms/image is the median of the whole scoring path, decode included).
if [ "$dry" = 1 ]; then W1="--warmup 1 --iters 2" W448="$W1" WCPU="$W1" W448B="--warmup 1 --iters 1" WT="--warmup 0 --iters 1" WL="$WT"
else W1="--warmup 5 --iters 40" W448="--warmup 3 --iters 20" WCPU="--warmup 2 --iters 10" W448B="--warmup 2 --iters 6" WT="--warmup 2 --iters 10" WL="--warmup 1 --iters 6"; fi
iters_for() {  # about 160 images per batch size on the GPU
  if [ "$dry" = 1 ]; then echo "--warmup 1 --iters 1"; else local b=$1; echo "--warmup 2 --iters $(( 160 / b > 4 ? 160 / b : 4 ))"; fi
}
bench() {  # NAME TIMEOUT MODEL EP ARGS...
  local name="$1" to="$2" model="$3" ep="$4"; shift 4
  if [ -z "$model" ]; then skip "bench_$name" "skipped (no model)"; STATUS=1; return 1; fi
  step "bench_$name" "$to" "$R/bench_$name.json" "$BIN" bench --model "$model" --ep "$ep" --json "$@" || { STATUS=1; rm -f "$R/bench_$name.json"; return 1; }
}
bench fp32_224_b1 90 "$M224" "$EP" --batch 1 --size 224 $W1
bench cpu_fp32_224_b1 120 "$M224" cpu --batch 1 --size 224 $WCPU
bench fp32_448_b1 90 "$M448" "$EP" --batch 1 --size 448 $W448
for b in 8 16 32; do bench "fp32_224_b$b" 90 "$M224" "$EP" --batch "$b" --size 224 $(iters_for "$b"); done
read -r best_case best_b < <(python3 "$HELPER" best "$R" fp32_224_b1 fp32_224_b8 fp32_224_b16 fp32_224_b32)
best_b="${best_b:-8}"
log "best fp32 224 batch: ${best_b} (${best_case:-none measured})"
bench fp16_224_b1 90 "$MF16" "$EP" --batch 1 --size 224 $W1
[ "$best_b" != 1 ] && bench "fp16_224_b$best_b" 90 "$MF16" "$EP" --batch "$best_b" --size 224 $(iters_for "$best_b")
rm -f "$W/bank_tiled_1024.st"
bench tiled_1024 120 "$M224" "$EP" --batch 1 --size 1024 --tile 224 --save-bank "$W/bank_tiled_1024.st" $WT
# The tile batch (tiles per encoder call; default 16 on CUDA, 4 on the CPU): is 16 the right
# default? Same bank and images as tiled_1024 (no second fit).
if [ -f "$W/bank_tiled_1024.st" ]; then
  for tb in 4 32; do bench "tiled_1024_t$tb" 90 "$M224" "$EP" --batch 1 --size 1024 --bank "$W/bank_tiled_1024.st" --tile-batch "$tb" $WT; done
fi
bench tiled_2448x2048 150 "$M224" "$EP" --batch 1 --images "$W/images/2448x2048" --shots 1 --tile 224 $WL
bench fp32_448_b8 90 "$M448" "$EP" --batch 8 --size 448 $W448B
exit
