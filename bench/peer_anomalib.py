#!/usr/bin/env python3
"""Peer benchmark: anomalib's AnomalyDINO and PatchCore, timed on the same images and threads as nexvitad.

`nexvitad bench` times nexvitad (and, with --reference, bench/reference.py); this script times the
two closest anomalib models the same way, so their images/s can be put next to nexvitad's:

  python bench/peer_anomalib.py --threads T [--warmup W] [--iters N] [--fit-images K]
         [--models anomalydino224,anomalydino448,patchcore256] IMAGE...

Models (anomalib's own torch modules and its own default pre-processing for each):

  anomalydino224  AnomalyDINOModel (DINOv2 ViT-S/14, `vit_small_patch14_dinov2`, last block + final
                  norm, 1-NN cosine distance to the full memory bank, no masking, no coreset) at 224x224
  anomalydino448  the same at 448x448
  patchcore256    PatchcoreModel (wide_resnet50_2 layer2+layer3, 3x3 avg pool, 10% k-center coreset,
                  9-NN re-weighted image score) at 256x256

Every backbone is built with RANDOM weights (seeded): nothing is downloaded. timm.create_model is
wrapped to force pretrained=False (AnomalyDINOModel hard-codes pre_trained=True), the Hugging Face /
torch.hub loaders are replaced by stubs that raise, the HF offline variables are set, and any
outgoing TCP/UDP connection or DNS lookup from this process is refused and listed in the output
("network_attempts", which should be empty). Timings do not depend on the weights' values.

For each model: the memory bank is fitted on the first K images (default 4; anomalib's training
path: model.train(), forward each image, then fit() / subsample_embedding(0.1)); then W warm-up and
N measured single-image (batch 1) inferences run over the images, cycled. One measured inference is

  decode      anomalib.data.utils.image.read_image(path, as_tensor=True) (PIL decode, RGB, float [0,1])
  preprocess  the model's anomalib pre-processor transform (resize to the input size, ImageNet normalize)
  forward     the torch model's forward in eval mode under torch.inference_mode(): backbone features,
              nearest-neighbour search against the memory bank, image score, anomaly map (upsample +
              Gaussian blur sigma 4); split into
    backbone  the feature extractor alone (timed with forward hooks on it)
    head      forward - backbone (embedding, NN search, score, anomaly map)

and ms_per_image is decode + preprocess + forward (anomalib's PostProcessor score normalisation and
thresholding are not included: they need validation statistics and are elementwise on the map).
With random weights the scores are meaningless (AnomalyDINO's are ~0); only the times matter.

Output: ONE JSON object on stdout, progress on stderr:

  {"implementation", "versions", "threads", "interop_threads", "warmup", "iters", "fit_images",
   "images", "network_attempts", "forced_random_init",
   "models": {NAME: {"anomalib_model", "backbone", "input_size": [H, W], "pretrained": false,
                     "memory_bank": {"fit_images", "vectors", "dim"}, "timed",
                     "ms_per_image": {"median", "p95", "min"}, "images_per_s",
                     "forward_ms": {...}, "stages": {STAGE: {"median", "p95", "min"}},
                     "measured_images", "peak_rss_mb", "peak_rss_scope",
                     "process_peak_rss_mb", "anomalib_version", "torch_version",
                     "setup_s", "load_avg_1m", "pred_score_example"}}}

images_per_s = 1000 / median ms_per_image. peak_rss_mb is the kernel's VmHWM since this model's
construction began (reset through /proc/self/clear_refs; "peak_rss_scope": "model"; it includes the
interpreter + torch + anomalib baseline, about 0.9 GB), or the whole process's peak from
resource.getrusage when that reset is not possible ("process"). load_avg_1m is the 1-minute load
average before/after the timed loop: well above --threads means other processes shared the cores
(a warning is printed) and the times are inflated; torch's OpenMP threads suffer badly from that.

Exit status 3 (one line on stderr) when anomalib is not importable:
  pip install -r bench/requirements-peer.txt
anomalib is never needed by nexvitad's tests.
"""

import argparse
import json
import os
import sys
import time

MODELS = {
    "anomalydino224": {"kind": "anomalydino", "size": 224, "backbone": "vit_small_patch14_dinov2"},
    "anomalydino448": {"kind": "anomalydino", "size": 448, "backbone": "vit_small_patch14_dinov2"},
    "patchcore256": {"kind": "patchcore", "size": 256, "backbone": "wide_resnet50_2"},
}

INSTALL_HINT = "pip install -r bench/requirements-peer.txt"

NETWORK_ATTEMPTS = []
FORCED_RANDOM_INIT = []


def log(*a):
    print("[peer_anomalib]", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# no network, no pretrained weights
# ---------------------------------------------------------------------------------------


def set_offline_env():
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY",
              "DISABLE_TELEMETRY", "DO_NOT_TRACK", "WANDB_MODE", "COMET_DISABLE_AUTO_LOGGING"):
        os.environ[k] = "offline" if k == "WANDB_MODE" else "1"
    os.environ["HF_HUB_ETAG_TIMEOUT"] = "1"
    os.environ.setdefault("TQDM_DISABLE", "1")  # KCenterGreedy's coreset progress bar
    os.environ["HF_HUB_DOWNLOAD_TIMEOUT"] = "1"


class NetworkBlocked(OSError):
    pass


def block_network():
    """Refuses every IP connection / DNS lookup made by this process, and remembers it."""
    import socket

    def refuse(what):
        NETWORK_ATTEMPTS.append(what)
        log("blocked network access:", what)
        raise NetworkBlocked(f"peer_anomalib.py: network access blocked ({what})")

    orig_connect = socket.socket.connect
    orig_connect_ex = socket.socket.connect_ex

    def is_ip(sock):
        return sock.family in (socket.AF_INET, socket.AF_INET6)

    def connect(self, address):
        if is_ip(self):
            refuse(f"connect {address!r}")
        return orig_connect(self, address)

    def connect_ex(self, address):
        if is_ip(self):
            refuse(f"connect {address!r}")
        return orig_connect_ex(self, address)

    def getaddrinfo(host, *a, **k):
        refuse(f"getaddrinfo {host!r}")

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo
    socket.create_connection = lambda address, *a, **k: refuse(f"create_connection {address!r}")


def force_random_init():
    """Wraps timm.create_model to build every backbone with random weights and stubs the
    weight downloaders (torch.hub, timm's hub helpers) so that any attempt raises at once."""
    import timm
    import torch

    orig_create = timm.create_model

    def create_model(name, pretrained=False, *a, **k):
        if pretrained:
            FORCED_RANDOM_INIT.append(str(name))
        return orig_create(name, False, *a, **k)

    timm.create_model = create_model
    if hasattr(timm.models, "create_model"):
        timm.models.create_model = create_model

    def no_download(*a, **k):
        NETWORK_ATTEMPTS.append(f"weights download {a[:1]!r}")
        raise NetworkBlocked("peer_anomalib.py: weight downloads are disabled (random init only)")

    torch.hub.load_state_dict_from_url = no_download
    torch.hub.download_url_to_file = no_download
    try:
        import torch.utils.model_zoo as mz

        mz.load_url = no_download
    except ImportError:
        pass
    try:
        import timm.models._builder as tb
        import timm.models._hub as th

        tb.load_pretrained = no_download
        for n in ("download_cached_file", "load_state_dict_from_hf", "load_model_config_from_hf",
                  "hf_hub_download"):
            if hasattr(th, n):
                setattr(th, n, no_download)
        for n in ("load_state_dict_from_hf", "download_cached_file"):
            if hasattr(tb, n):
                setattr(tb, n, no_download)
    except ImportError:
        pass


# ---------------------------------------------------------------------------------------
# measurement helpers
# ---------------------------------------------------------------------------------------


# The peak-RSS helpers are the reference pipeline's (same folder; it imports only the standard
# library at the top), so both scripts measure memory the same way.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import rss_reset, vm_kb  # noqa: E402


def process_peak_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def stats_ms(seconds):
    """median / p95 (nearest rank, "higher", as the Rust bench and reference.py) / min, in ms."""
    v = sorted(s * 1e3 for s in seconds)
    if not v:
        return {"median": None, "p95": None, "min": None}
    n = len(v)
    median = v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])
    import math

    p95 = v[min(n - 1, int(math.ceil(0.95 * (n - 1))))]
    return {"median": median, "p95": p95, "min": v[0]}


class HookTimer:
    """Wall time spent inside one nn.Module's forward (pre/post forward hooks)."""

    def __init__(self, module):
        self.t0 = None
        self.elapsed = 0.0
        module.register_forward_pre_hook(self._pre)
        module.register_forward_hook(self._post)

    def _pre(self, *_):
        self.t0 = time.perf_counter()

    def _post(self, *_):
        self.elapsed += time.perf_counter() - self.t0

    def take(self):
        e, self.elapsed = self.elapsed, 0.0
        return e


# ---------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------


def build(name):
    """Returns (torch model, feature-extractor module, pre-processing transform, description)."""
    spec = MODELS[name]
    s = spec["size"]
    if spec["kind"] == "anomalydino":
        from anomalib.models.image.anomaly_dino.lightning_model import AnomalyDINO
        from anomalib.models.image.anomaly_dino.torch_model import AnomalyDINOModel

        model = AnomalyDINOModel(num_neighbours=1, encoder_name=spec["backbone"], masking=False,
                                 coreset_subsampling=False).float()
        transform = AnomalyDINO.configure_pre_processor(image_size=(s, s)).transform
        extractor = model.feature_encoder
        timed = (f"batch 1 per image: anomalib read_image (PIL decode -> float tensor) + AnomalyDINO "
                 f"pre-processor (bicubic antialiased resize to {s}x{s}, ImageNet normalize) + "
                 f"AnomalyDINOModel.forward in eval mode under torch.inference_mode (DINOv2 ViT-S/14 "
                 f"last-block patch tokens + final norm, L2 normalize, cosine distance to the whole "
                 f"memory bank by matmul, 1-NN, image score = mean of top 1%, anomaly map = upsample "
                 f"to {s}x{s} + Gaussian blur sigma 4); no PostProcessor")
    else:
        from anomalib.models.image.patchcore.lightning_model import Patchcore
        from anomalib.models.image.patchcore.torch_model import PatchcoreModel

        model = PatchcoreModel(layers=["layer2", "layer3"], backbone=spec["backbone"], pre_trained=False,
                               num_neighbors=9).float()
        transform = Patchcore.configure_pre_processor(image_size=(s, s)).transform
        extractor = model.feature_extractor
        timed = (f"batch 1 per image: anomalib read_image (PIL decode -> float tensor) + Patchcore "
                 f"pre-processor (bilinear antialiased resize to {s}x{s}, ImageNet normalize) + "
                 f"PatchcoreModel.forward in eval mode under torch.inference_mode (wide_resnet50_2 "
                 f"layer2+layer3, 3x3 avg pool, concat at layer2 resolution, Euclidean 1-NN to the "
                 f"10% k-center coreset memory bank, 9-NN re-weighted image score, anomaly map = "
                 f"upsample to {s}x{s} + Gaussian blur sigma 4); no PostProcessor")
    return model, extractor, transform, timed


def fit_bank(name, model, transform, read_image, paths):
    import torch

    model.train()
    for p in paths:
        model(transform(read_image(p, as_tensor=True)).unsqueeze(0))
    if MODELS[name]["kind"] == "anomalydino":
        model.fit()
    else:
        torch.manual_seed(0)
        model.subsample_embedding(0.1)
    model.eval()
    bank = model.memory_bank
    return {"fit_images": len(paths), "vectors": int(bank.shape[0]), "dim": int(bank.shape[1])}


def run_model(name, a, paths, versions):
    import torch
    from anomalib.data.utils.image import read_image

    import gc

    gc.collect()
    scope = "model" if rss_reset() else "process"
    t_setup = time.perf_counter()
    torch.manual_seed(0)
    log(f"{name}: building (random init)")
    model, extractor, transform, timed = build(name)
    hook = HookTimer(extractor)
    fit_paths = paths[: max(1, min(a.fit_images, len(paths)))]
    log(f"{name}: fitting the memory bank on {len(fit_paths)} image(s)")
    with torch.inference_mode():
        bank = fit_bank(name, model, transform, read_image, fit_paths)
    setup_s = time.perf_counter() - t_setup
    log(f"{name}: bank {bank['vectors']} x {bank['dim']} ({setup_s:.1f} s); "
        f"{a.warmup} warm-up + {a.iters} measured inferences")

    keys = ["decode", "preprocess", "forward", "backbone", "head", "total"]
    load_before = os.getloadavg()[0]
    samples = {k: [] for k in keys}
    score = None
    with torch.inference_mode():
        for i in range(a.warmup + a.iters):
            path = paths[i % len(paths)]
            hook.take()
            t0 = time.perf_counter()
            img = read_image(path, as_tensor=True)
            t1 = time.perf_counter()
            x = transform(img).unsqueeze(0)
            t2 = time.perf_counter()
            out = model(x)
            amap = out.anomaly_map
            t3 = time.perf_counter()
            bb = hook.take()
            if i < a.warmup:
                continue
            if score is None:
                score = float(out.pred_score.reshape(-1)[0])
                assert tuple(amap.shape[-2:]) == (MODELS[name]["size"],) * 2, amap.shape
            for k, v in (("decode", t1 - t0), ("preprocess", t2 - t1), ("forward", t3 - t2),
                         ("backbone", bb), ("head", (t3 - t2) - bb), ("total", t3 - t0)):
                samples[k].append(v)
    ms = stats_ms(samples["total"])
    load_after = os.getloadavg()[0]
    hwm = vm_kb("VmHWM")
    res = {
        "anomalib_model": type(model).__module__ + "." + type(model).__name__,
        "backbone": MODELS[name]["backbone"],
        "input_size": [MODELS[name]["size"], MODELS[name]["size"]],
        "pretrained": False,
        "memory_bank": bank,
        "timed": timed,
        "ms_per_image": ms,
        "images_per_s": (1000.0 / ms["median"]) if ms["median"] else None,
        "forward_ms": stats_ms(samples["forward"]),
        "stages": {k: stats_ms(samples[k]) for k in keys},
        "measured_images": len(samples["total"]),
        "peak_rss_mb": (hwm / 1024.0) if (scope == "model" and hwm) else process_peak_mb(),
        "peak_rss_scope": scope,
        "process_peak_rss_mb": process_peak_mb(),
        "anomalib_version": versions["anomalib"],
        "torch_version": versions["torch"],
        "setup_s": setup_s,
        # 1-minute load average before/after the timed loop: well above `threads` means other
        # processes shared the cores and the timings are inflated (torch's OpenMP threads suffer badly).
        "load_avg_1m": [load_before, load_after],
        "pred_score_example": score,
    }
    log(f"{name}: median {ms['median']:.1f} ms/img (forward {res['forward_ms']['median']:.1f}, "
        f"backbone {res['stages']['backbone']['median']:.1f}), p95 {ms['p95']:.1f}, "
        f"{res['images_per_s']:.2f} img/s, peak RSS {res['peak_rss_mb']:.0f} MB, "
        f"load {load_before:.1f}/{load_after:.1f}")
    if max(load_before, load_after) > os.cpu_count() + 0.5:
        log(f"{name}: warning: load average above the core count: other processes competed for the CPUs")
    del model, extractor, hook
    gc.collect()
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, required=True, help="torch intra-op threads (interop: 1)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--fit-images", type=int, default=4,
                   help="memory bank from the first K images (default 4)")
    p.add_argument("--models", default=",".join(MODELS),
                   help=f"comma-separated, from {','.join(MODELS)} (default: all)")
    p.add_argument("images", nargs="+")
    a = p.parse_args()
    names = [m.strip() for m in a.models.split(",") if m.strip()]
    bad = [m for m in names if m not in MODELS]
    if bad or not names:
        p.error(f"unknown model(s) {bad}; choose from {','.join(MODELS)}")
    if a.threads < 1 or a.iters < 1 or a.warmup < 0 or a.fit_images < 1:
        p.error("--threads, --iters and --fit-images must be >= 1, --warmup >= 0")
    missing = [x for x in a.images if not os.path.isfile(x)]
    if missing:
        p.error(f"not a file: {missing[0]}")

    set_offline_env()
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[k] = str(a.threads)
    block_network()

    try:
        import torch

        torch.set_num_threads(a.threads)
        torch.set_num_interop_threads(1)  # before any parallel work
        import warnings

        warnings.filterwarnings("ignore", category=FutureWarning)
        # anomalib 2.7's @deprecate on subsample_embedding warns even when `embeddings` is not passed.
        warnings.filterwarnings("ignore", message="Argument embeddings is deprecated", category=DeprecationWarning)
        import anomalib
        from anomalib.data.utils.image import read_image  # noqa: F401
        from anomalib.models.image.anomaly_dino.torch_model import AnomalyDINOModel  # noqa: F401
        from anomalib.models.image.patchcore.torch_model import PatchcoreModel  # noqa: F401
    except Exception as e:  # ImportError, or a broken install
        print(f"peer_anomalib.py: anomalib is not importable ({type(e).__name__}: {e}); install it with: "
              f"{INSTALL_HINT}", file=sys.stderr)
        sys.exit(3)
    force_random_init()

    import numpy
    import timm
    import torchvision

    versions = {"python": sys.version.split()[0], "anomalib": anomalib.__version__, "torch": torch.__version__,
                "torchvision": torchvision.__version__, "timm": timm.__version__, "numpy": numpy.__version__}
    log(f"anomalib {versions['anomalib']}, torch {versions['torch']}, threads {torch.get_num_threads()} "
        f"(interop {torch.get_num_interop_threads()}), {len(a.images)} image(s)")
    results = {}
    for name in names:
        results[name] = run_model(name, a, list(a.images), versions)
    print(json.dumps({
        "implementation": "anomalib peer (bench/peer_anomalib.py)",
        "versions": versions,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "warmup": a.warmup,
        "iters": a.iters,
        "fit_images": min(a.fit_images, len(a.images)),
        "images": len(a.images),
        "network_attempts": NETWORK_ATTEMPTS,
        "forced_random_init": sorted(set(FORCED_RANDOM_INIT)),
        "models": results,
    }))


if __name__ == "__main__":
    main()
