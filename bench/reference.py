#!/usr/bin/env python3
"""Python reference for nexvitad's scoring pipeline and its Sinkhorn K-means.

This is the straightforward onnxruntime + numpy/scipy implementation of the method as
nexvitad implements it (docs: docs/method.md, src/fusion/, src/map.rs, src/score/), used two ways:

* by the test suite (tests/integration/parity.rs) to check that nexvitad's anomaly maps equal this
  independent implementation's (max abs difference), and
* by `nexvitad bench --reference` to time the same work on the same images, bank and model
  in the same run.

Subcommands (every result is one JSON object on stdout):

  pipeline --model DIR --head HEAD.safetensors --bank BANK.safetensors [--threads T]
           [--batch B] [--warmup W] [--iters N] [--maps-out MAPS.safetensors]
           [--ort-spinning 0|1] IMAGE...
      Scores the images (cycled when fewer than (W + N) * B) and reports per-stage
      median / p95 milliseconds per image: decode, prepare, hiera, dinov2, head (fusion
      head + bank features), matching, upsample_smooth, total; images/s; peak RSS.
      --maps-out writes the anomaly map of each listed image (first pass over the list,
      `map_<i>` float32 [H, W]) and their image scores (`image_scores`).

  sinkhorn --data X.npy --k K [--epsilon E] [--max-iters M] [--tol T]
           [--sinkhorn-iters S] [--sinkhorn-tol ST] [--init C.npy] [--threads T]
      Sinkhorn K-means with the same iteration as src/bank/sinkhorn.rs: cost = squared
      distances, entropic plan by POT's log-domain Sinkhorn (ot.sinkhorn(...,
      method="sinkhorn_log"), uniform marginals, reg = epsilon * mean(cost)), centroids =
      plan-weighted means, stop when the largest centroid move <= tol * mean centroid norm.
      Reports iterations, seconds and the final mean nearest-prototype squared distance.

Dependencies: numpy, scipy, onnxruntime, safetensors, pillow (pipeline); numpy, POT (sinkhorn).
See bench/requirements.txt.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path


def rss_reset():
    """Resets the kernel's peak-RSS counter (VmHWM) so it measures what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def vm_kb(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def stats_ms(values):
    import numpy as np

    v = np.asarray(values, dtype=np.float64) * 1e3
    if v.size == 0:
        return {"median_ms": None, "p95_ms": None, "min_ms": None}
    # Same quantile rule as the Rust bench: nearest rank ("higher").
    s = np.sort(v)
    p95 = s[min(len(s) - 1, int(np.ceil(0.95 * (len(s) - 1))))]
    return {"median_ms": float(np.median(v)), "p95_ms": float(p95), "min_ms": float(s[0])}


# ---------------------------------------------------------------------------------------
# pipeline
# ---------------------------------------------------------------------------------------


def load_head(path, manifest):
    from safetensors.numpy import load_file

    t = load_file(str(path))
    stages = []
    for s in range(1, 5):
        p = f"stage{s}."
        w = {k[len(p):]: v.astype("float32") for k, v in t.items() if k.startswith(p)}
        w["identity"] = not (w["adapter.up.weight"].any() or w["adapter.up.bias"].any())
        stages.append(w)
    return stages


def bilinear_table(n_dst, n_src):
    """Half-pixel centres, clamped (OpenCV INTER_LINEAR, torch align_corners=False)."""
    import numpy as np

    x = (np.arange(n_dst, dtype=np.float64) + 0.5) * (n_src / n_dst) - 0.5
    x = np.maximum(x, 0.0)
    i0 = np.minimum(np.floor(x).astype(np.int64), n_src - 1)
    i1 = np.minimum(i0 + 1, n_src - 1)
    w = np.clip(x - i0, 0.0, 1.0).astype(np.float32)
    return i0, i1, w


def resize_hwc(x, sh, sw, dh, dw):
    """Bilinear resize of channel-last [sh*sw, c] to [dh*dw, c]."""
    import numpy as np

    if (sh, sw) == (dh, dw):
        return x
    c = x.shape[1]
    g = x.reshape(sh, sw, c)
    y0, y1, fy = bilinear_table(dh, sh)
    x0, x1, fx = bilinear_table(dw, sw)
    rows = g[y0] * (1 - fy)[:, None, None] + g[y1] * fy[:, None, None]
    out = rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]
    return np.ascontiguousarray(out.reshape(dh * dw, c), dtype=np.float32)


def gelu(x):
    from scipy.special import erf

    return (0.5 * x * (1.0 + erf(x / 2**0.5))).astype("float32")


def fuse(stage, h_chw, d_chw, group):
    """Eq. 1-3 for one stage of one image: channel-last [h*w, d_s]."""
    import numpy as np

    c, h, w = h_chw.shape
    cd, dh, dw = d_chw.shape
    x = h_chw.reshape(c, h * w).T
    if stage["identity"]:
        a = x
    else:
        z = gelu(x @ stage["adapter.down.weight"].T + stage["adapter.down.bias"])
        a = z @ stage["adapter.up.weight"].T + stage["adapter.up.bias"] + x
    ph = a @ stage["proj_hiera.weight"].T + stage["proj_hiera.bias"]
    y = d_chw.reshape(cd, dh * dw).T
    pd = resize_hwc(y @ stage["proj_dinov2.weight"].T + stage["proj_dinov2.bias"], dh, dw, h, w)
    half = ph.shape[1]
    out = np.empty((h * w, 2 * half), dtype=np.float32)
    for j in range(half // group):
        out[:, 2 * j * group:2 * j * group + group] = ph[:, j * group:(j + 1) * group]
        out[:, 2 * j * group + group:2 * (j + 1) * group] = pd[:, j * group:(j + 1) * group]
    return out, h, w


def bank_features(stages, manifest, hiera, dino, i):
    import numpy as np
    from scipy.ndimage import uniform_filter

    f = manifest["fusion"]
    group = f.get("interleave_group", 1)
    parts = [fuse(stages[s - 1], hiera[s - 1][i], dino[i], group) for s in f["bank_scales"]]
    h, w = parts[0][1], parts[0][2]
    feats = np.concatenate([resize_hwc(p, ph, pw, h, w) for p, ph, pw in parts], axis=1)
    k = f["local_avg"]
    if k > 1:
        # Mean over the valid neighbours of a k x k window (borders: fewer neighbours).
        g = feats.reshape(h, w, -1)
        num = uniform_filter(g, size=(k, k, 1), mode="constant", cval=0.0)
        den = uniform_filter(np.ones((h, w, 1), np.float32), size=(k, k, 1), mode="constant", cval=0.0)
        feats = (num / den).reshape(h * w, -1).astype(np.float32)
    return feats, h, w


def upsample(patch, h, w, H, W):
    y0, y1, fy = bilinear_table(H, h)
    x0, x1, fx = bilinear_table(W, w)
    top = patch[y0][:, x0] * (1 - fx) + patch[y0][:, x1] * fx
    bot = patch[y1][:, x0] * (1 - fx) + patch[y1][:, x1] * fx
    return (top * (1 - fy)[:, None] + bot * fy[:, None]).astype("float32")


def image_score(values, mode):
    import numpy as np

    if mode.get("mode", "max") == "max":
        return float(values.max())
    frac = float(mode["fraction"])
    k = min(max(int(np.ceil(values.size * frac)), 1), values.size)
    top = np.sort(values.ravel())[-k:]
    return float(top.astype(np.float64).mean())


def cmd_pipeline(a):
    import numpy as np
    import onnxruntime as ort
    from PIL import Image
    from safetensors import safe_open
    from scipy.ndimage import gaussian_filter
    from scipy.spatial.distance import cdist

    model = Path(a.model)
    manifest = json.loads((model / "model.json").read_text())
    stages = load_head(a.head, manifest)
    with safe_open(a.bank, framework="numpy") as f:
        bank = f.get_tensor("vectors").astype(np.float32)
        meta = json.loads(f.metadata()["meta"])
    sigma = float(meta["sigma"])
    mode = meta["image_score"]

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if a.threads > 0:
        so.intra_op_num_threads = a.threads
    if a.ort_spinning is not None:
        so.add_session_config_entry("session.intra_op.allow_spinning", str(a.ort_spinning))
    hs = ort.InferenceSession(str(model / manifest["hiera"]["file"]), so, providers=["CPUExecutionProvider"])
    ds = ort.InferenceSession(str(model / manifest["dinov2"]["file"]), so, providers=["CPUExecutionProvider"])
    inp, dsp = manifest["input"], manifest["dinov2"]
    mean = np.asarray(inp["mean"], np.float32)
    std = np.asarray(inp["std"], np.float32)
    # Same arithmetic as src/image.rs: x * (1 / (255 std)) + (-mean / std), in float32.
    scale = (np.float32(1.0) / (np.float32(255.0) * std)).astype(np.float32)
    bias = (-mean / std).astype(np.float32)

    def prepare(img, w, h):
        r = img if img.size == (w, h) else img.resize((w, h), Image.BILINEAR)
        x = np.asarray(r, dtype=np.uint8).astype(np.float32)
        return (x * scale + bias).transpose(2, 0, 1)

    paths = list(a.images)
    if not paths:
        sys.exit("no images given")
    total_batches = a.warmup + a.iters
    keys = ["decode", "prepare", "hiera", "dinov2", "head", "matching", "upsample_smooth", "total"]
    samples = {k: [] for k in keys}
    maps = {}
    scores = {}
    wall = 0.0
    measured_images = 0
    pos = 0
    peak_reset = False
    for b in range(total_batches):
        if b == a.warmup:
            peak_reset = rss_reset()
        idx = [(pos + j) % len(paths) for j in range(a.batch)]
        pos += a.batch
        t0 = time.perf_counter()
        imgs = [Image.open(paths[j]).convert("RGB") for j in idx]
        for im in imgs:
            im.load()
        t1 = time.perf_counter()
        xh = np.stack([prepare(im, inp["width"], inp["height"]) for im in imgs])
        same = (dsp["width"], dsp["height"]) == (inp["width"], inp["height"])
        xd = xh if same else np.stack([prepare(im, dsp["width"], dsp["height"]) for im in imgs])
        t2 = time.perf_counter()
        hiera = hs.run(manifest["hiera"]["outputs"], {manifest["hiera"]["input"]: xh})
        t3 = time.perf_counter()
        dino = ds.run([dsp["output"]], {dsp["input"]: xd})[0]
        t4 = time.perf_counter()
        head_s = match_s = up_s = 0.0
        for n, (j, im) in enumerate(zip(idx, imgs)):
            s0 = time.perf_counter()
            feats, gh, gw = bank_features(stages, manifest, hiera, dino, n)
            s1 = time.perf_counter()
            patch = np.sqrt(cdist(feats, bank, "sqeuclidean").min(axis=1)).astype(np.float32).reshape(gh, gw)
            s2 = time.perf_counter()
            W, H = im.size
            m = upsample(patch, gh, gw, H, W)
            if sigma > 0:
                m = gaussian_filter(m, sigma, mode="reflect", truncate=4.0)
            sc = image_score(m, mode)
            s3 = time.perf_counter()
            head_s += s1 - s0
            match_s += s2 - s1
            up_s += s3 - s2
            if a.maps_out and j not in maps and len(maps) < len(paths):
                maps[j] = m
                scores[j] = sc
        t5 = time.perf_counter()
        if b < a.warmup:
            continue
        n = len(idx)
        for k, v in [("decode", t1 - t0), ("prepare", t2 - t1), ("hiera", t3 - t2), ("dinov2", t4 - t3),
                     ("head", head_s), ("matching", match_s), ("upsample_smooth", up_s), ("total", t5 - t0)]:
            samples[k].extend([v / n] * n)
        wall += t5 - t0
        measured_images += n
    out = {
        "implementation": "python reference (bench/reference.py)",
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__, "onnxruntime": ort.__version__},
        "images": measured_images,
        "batch": a.batch,
        "threads": a.threads,
        "ort_spinning": a.ort_spinning,
        "stages": {k: stats_ms(v) for k, v in samples.items()},
        "images_per_s": measured_images / wall if wall > 0 else None,
        "peak_rss_mb": (vm_kb("VmHWM") or 0) / 1024.0,
        "peak_rss_scoring_only": peak_reset,
    }
    if a.maps_out:
        from safetensors.numpy import save_file

        t = {f"map_{j}": np.ascontiguousarray(m, np.float32) for j, m in maps.items()}
        order = sorted(scores)
        t["image_scores"] = np.asarray([scores[j] for j in order], np.float32)
        save_file(t, a.maps_out)
    print(json.dumps(out))


# ---------------------------------------------------------------------------------------
# sinkhorn
# ---------------------------------------------------------------------------------------


def kmeans_pp(x, norms, k, rng):
    import numpy as np

    n = x.shape[0]
    c = np.empty((k, x.shape[1]), np.float32)
    d2 = np.full(n, np.inf)
    pick = rng.integers(n)
    for j in range(k):
        c[j] = x[pick]
        if j + 1 == k:
            break
        d2 = np.minimum(d2, np.maximum(norms + norms[pick] - 2.0 * (x @ x[pick]), 0.0))
        tot = d2.sum()
        pick = rng.choice(n, p=d2 / tot) if tot > 0 else rng.integers(n)
    return c


def cmd_sinkhorn(a):
    import numpy as np
    import ot

    x = np.load(a.data).astype(np.float32)
    n, d = x.shape
    k = a.k
    norms = (x.astype(np.float64) ** 2).sum(1).astype(np.float32)
    t0 = time.perf_counter()
    if a.init:
        c = np.load(a.init).astype(np.float32)
    else:
        c = kmeans_pp(x, norms, k, np.random.default_rng(a.seed))
    ab = np.full(n, 1.0 / n)
    bb = np.full(k, 1.0 / k)
    warm = None
    converged = False
    sink_iters = []
    it = 0
    for it in range(1, a.max_iters + 1):
        cost = np.maximum(norms[:, None] + (c.astype(np.float64) ** 2).sum(1)[None, :].astype(np.float32)
                          - 2.0 * (x @ c.T), 0.0).astype(np.float64)
        mean = cost.mean()
        reg = a.epsilon * mean if mean > 0 else a.epsilon
        # POT checks the marginal error every 10 iterations; stopThr is an absolute L2 error
        # on the column marginal, so sinkhorn_tol / K (relative to 1/K) maps onto it.
        # Warm start from the previous potentials, rescaled to this iteration's reg (the
        # Rust kernel carries the column potential in cost units the same way).
        ws = None if warm is None else (warm[0] * (warm[2] / reg), warm[1] * (warm[2] / reg))
        plan, log = ot.sinkhorn(ab, bb, cost, reg, method="sinkhorn_log", numItermax=a.sinkhorn_iters,
                                stopThr=a.sinkhorn_tol / k, log=True, warmstart=ws, warn=False)
        warm = (log["log_u"], log["log_v"], reg)
        sink_iters.append(int(log.get("niter", 0)))
        mass = plan.sum(0)
        new = (plan.T @ x) / np.maximum(mass, 1e-300)[:, None]
        new = np.where(mass[:, None] > 1e-280, new, c).astype(np.float32)
        shift = np.sqrt(((new.astype(np.float64) - c) ** 2).sum(1)).max()
        mean_norm = np.sqrt((new.astype(np.float64) ** 2).sum(1)).mean()
        c = new
        if shift <= a.tol * mean_norm:
            converged = True
            break
    secs = time.perf_counter() - t0
    cn = (c.astype(np.float64) ** 2).sum(1)
    dmin = np.maximum(norms[:, None] + cn[None, :] - 2.0 * (x.astype(np.float64) @ c.T.astype(np.float64)), 0).min(1)
    print(json.dumps({
        "implementation": f"numpy {np.__version__} + POT {ot.__version__} (ot.sinkhorn sinkhorn_log)",
        "n": n, "d": d, "k": k, "iterations": it, "converged": converged, "seconds": secs,
        "sinkhorn_iterations": sink_iters, "mean_min_sq_dist": float(dmin.mean()),
    }))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("pipeline")
    q.add_argument("--model", required=True)
    q.add_argument("--head", required=True)
    q.add_argument("--bank", required=True)
    q.add_argument("--threads", type=int, default=0)
    q.add_argument("--batch", type=int, default=1)
    q.add_argument("--warmup", type=int, default=2)
    q.add_argument("--iters", type=int, default=10)
    q.add_argument("--maps-out")
    q.add_argument("--ort-spinning", type=int, choices=[0, 1], default=None,
                   help="session.intra_op.allow_spinning (default: onnxruntime's own, which is 1)")
    q.add_argument("images", nargs="+")
    s = sub.add_parser("sinkhorn")
    s.add_argument("--data", required=True)
    s.add_argument("--init")
    s.add_argument("--k", type=int, default=30)
    s.add_argument("--epsilon", type=float, default=0.05)
    s.add_argument("--max-iters", type=int, default=50)
    s.add_argument("--tol", type=float, default=1e-4)
    s.add_argument("--sinkhorn-iters", type=int, default=100)
    s.add_argument("--sinkhorn-tol", type=float, default=1e-3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.batch < 1 if a.cmd == "pipeline" else False:
        sys.exit("--batch must be >= 1")
    {"pipeline": cmd_pipeline, "sinkhorn": cmd_sinkhorn}[a.cmd](a)


if __name__ == "__main__":
    main()
