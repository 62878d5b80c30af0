#!/usr/bin/env python3
"""Quantize an exported nexvitad model folder's encoders to INT8 for CPU stations.

    python tools/quantize.py --model models/full --out models/full-int8 [--mode dynamic]
    python tools/quantize.py --model models/full --out models/full-int8s --mode static \
        --calibrate good-images/ [--per-channel]

What it writes into ``--out DIR``: ``hiera.onnx`` and ``dinov2.onnx`` quantized with ONNX
Runtime's own quantization tools (``onnxruntime.quantization``), the fusion head
(``head.safetensors``) copied when there is one, and ``model.json`` with a ``precision``
record: the method, per-channel or not, the calibration images (count and a SHA-256 over
their bytes) and the feature agreement measured below. The backbone files change, so the
model fingerprint changes: banks of the fp32 model are refused by the INT8 one (build them
again with it).

Methods
-------
``dynamic`` (default)
    Weights of MatMul and Gemm in INT8, activations quantized on the fly
    (``quantize_dynamic``). No calibration images needed.
``static``
    QDQ format, weights and activations in INT8 with scales calibrated on ``--calibrate``
    (a folder of good images of the user's own parts, read like the bank's images: RGB,
    resized to the encoder input, normalised with model.json's mean/std), MinMax calibration
    (``quantize_static``). Convolutions are quantized too.

Quality check
-------------
After quantizing, both encoders of the fp32 and the INT8 model run on the check images
(``--check`` folder, default the calibration folder, else 8 synthetic textures) and every
output is compared: Pearson correlation and the relative RMS difference, per output.
When the lowest correlation is below ``--min-correlation`` (default 0.98) the script deletes
what it wrote and exits with status 2 (``--force`` keeps it and warns loudly).

Then the anomaly maps: with the ``nexvitad`` command line at hand (``--cli``, else the one
``cargo build --release`` leaves in target/, else ``nexvitad`` on PATH; ``--map-check off``
skips this), a small synthetic category is generated and ``nexvitad eval --model INT8
--reference-model FP32`` fits a bank with each model on the same good images and scores the
same test images. It reports the AUROC deltas and the map drift: each map divided by its own
bank's pixel threshold, mean and largest difference, and the share of pixels that land on the
other side of the threshold. Beyond the documented bound (mean <= 0.05 and <= 2 % of pixels
flipped; ``nexvitad::eval::MAP_DRIFT_BOUND``, docs/performance.md) nothing is written and the
script exits with status 2, as above. The drift goes into the precision record
(``map_drift``). The fuller comparison (two domains, speed) is ``scripts/int8-eval.sh``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def load_images(folder: Path, limit: int) -> list[Path]:
    exts = {".png", ".jpg", ".jpeg", ".bmp"}
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in exts and not p.name.startswith("."))
    if not files:
        sys.exit(f"quantize: no images (png/jpg/jpeg/bmp) in '{folder}'")
    return files[:limit]


def prepare(path: Path, width: int, height: int, mean, std) -> np.ndarray:
    from PIL import Image

    img = Image.open(path).convert("RGB").resize((width, height), Image.BILINEAR)
    a = np.asarray(img, dtype=np.float32) / 255.0
    a = (a - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return a.transpose(2, 0, 1)[None].copy()


def synthetic_inputs(n: int, width: int, height: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        base = rng.normal(0, 1, (1, 3, height // 8, width // 8)).astype(np.float32)
        out.append(np.repeat(np.repeat(base, 8, axis=2), 8, axis=3)[:, :, :height, :width].copy())
    return out


def files_sha256(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()


def compare(fp32: Path, int8: Path, inputs: list[np.ndarray]) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    a = ort.InferenceSession(str(fp32), so, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(int8), so, providers=["CPUExecutionProvider"])
    name = a.get_inputs()[0].name
    per_output: dict[str, list[np.ndarray]] = {}
    for x in inputs:
        for o, ya, yb in zip(a.get_outputs(), a.run(None, {name: x}), b.run(None, {name: x})):
            per_output.setdefault(o.name, []).append(np.stack([ya.ravel(), yb.ravel()]))
    report = {}
    for k, pairs in per_output.items():
        v = np.concatenate(pairs, axis=1).astype(np.float64)
        corr = float(np.corrcoef(v[0], v[1])[0, 1])
        rel = float(np.sqrt(np.mean((v[0] - v[1]) ** 2)) / (np.sqrt(np.mean(v[0] ** 2)) + 1e-12))
        report[k] = {"correlation": round(corr, 6), "relative_rms": round(rel, 6)}
    return report


def find_cli(explicit: Path | None) -> str | None:
    """The nexvitad command line for the map check, or None when there is none."""
    if explicit:
        if not explicit.exists():
            sys.exit(f"quantize: --cli '{explicit}' does not exist")
        return str(explicit)
    root = Path(__file__).resolve().parents[1]
    target = Path(os.environ.get("CARGO_TARGET_DIR", root / "target"))
    for b in [target / "release" / "nexvitad", target / "debug" / "nexvitad"]:
        if b.exists():
            return str(b)
    return shutil.which("nexvitad")


def map_check(cli: str, reference: Path, candidate: Path, work: Path, threads: int) -> dict:
    """`nexvitad eval --reference-model` on a small synthetic category: AUROC deltas and map
    drift of `candidate` against `reference` (exit status 2 of eval = beyond the bound)."""
    data = work / "synthetic"
    gen = subprocess.run(
        [cli, "synth", "--out", str(data), "--domains", "grain", "--train-good", "8", "--test-good", "4", "--defects-per-type", "2", "--seed", "11"],
        capture_output=True, text=True,
    )
    if gen.returncode != 0:
        sys.exit(f"quantize: map check: `nexvitad synth` failed: {gen.stderr.strip()}")
    r = subprocess.run(
        [cli, "eval", "--model", str(candidate), "--reference-model", str(reference), "--data", str(data), "--category", "grain",
         "--shots", "8", "--threads", str(threads), "--json"],
        capture_output=True, text=True,
    )
    if r.returncode not in (0, 2):
        sys.exit(f"quantize: map check: `nexvitad eval` failed: {r.stderr.strip()}")
    c = json.loads(r.stdout)
    d = c["drift"]
    return {
        "mean_abs": round(d["mean_abs"], 6),
        "max_abs": round(d["max_abs"], 6),
        "pixel_disagreement": round(d["pixel_disagreement"], 6),
        "image_disagreement": d["image_disagreement"],
        "images": d["images"],
        "image_auroc_delta": round(c["image_auroc_delta"], 6),
        "pixel_auroc_delta": None if c["pixel_auroc_delta"] is None else round(c["pixel_auroc_delta"], 6),
        "within_bound": d["within_bound"],
    }


class Reader:
    """Feeds calibration tensors to quantize_static."""

    def __init__(self, name: str, tensors: list[np.ndarray]):
        self.name, self.it = name, iter(tensors)

    def get_next(self):
        x = next(self.it, None)
        return None if x is None else {self.name: x}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="exported fp32 model folder")
    ap.add_argument("--out", type=Path, required=True, help="folder to write the INT8 model into (must not exist)")
    ap.add_argument("--mode", choices=["dynamic", "static"], default="dynamic")
    ap.add_argument("--calibrate", type=Path, help="folder of good images (static mode)")
    ap.add_argument("--max-images", type=int, default=32, help="calibration images used at most")
    ap.add_argument("--per-channel", action="store_true", help="per-channel weight scales")
    ap.add_argument("--check", type=Path, help="folder of images for the quality check (default: --calibrate)")
    ap.add_argument("--min-correlation", type=float, default=0.98)
    ap.add_argument("--force", action="store_true", help="keep a model that fails the quality check")
    ap.add_argument("--map-check", choices=["auto", "off"], default="auto",
                    help="compare anomaly maps with the nexvitad CLI when one is found (auto) or not (off)")
    ap.add_argument("--cli", type=Path, help="the nexvitad command line for the map check")
    ap.add_argument("--threads", type=int, default=2, help="threads for the map check")
    a = ap.parse_args()

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    manifest = json.loads((a.model / "model.json").read_text())
    if manifest.get("precision"):
        sys.exit(f"quantize: '{a.model}' is already quantized ({manifest['precision']['method']}); start from the fp32 export")
    if a.out.exists():
        sys.exit(f"quantize: '{a.out}' already exists; choose a new folder")
    if a.mode == "static" and not a.calibrate:
        sys.exit("quantize: --mode static needs --calibrate FOLDER (good images of your parts)")
    inp = manifest["input"]
    dino = manifest["dinov2"]
    sizes = {"hiera": (inp["width"], inp["height"]), "dinov2": (dino["width"], dino["height"])}
    calib_files = load_images(a.calibrate, a.max_images) if a.calibrate else []
    check_dir = a.check or a.calibrate
    check_files = load_images(check_dir, 8) if check_dir else []

    tmp = Path(tempfile.mkdtemp(prefix=".quantize-", dir=a.out.parent if a.out.parent.exists() else None))
    try:
        report = {}
        for enc in ["hiera", "dinov2"]:
            src = a.model / manifest[enc]["file"]
            dst = tmp / manifest[enc]["file"]
            w, h = sizes[enc]
            # The graph goes in as a ModelProto: given a path, ONNX Runtime writes a
            # shape-inferred copy beside the source, and the source folder may be read-only.
            import onnx

            proto = onnx.load(str(src))
            if a.mode == "dynamic":
                quantize_dynamic(proto, dst, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"], per_channel=a.per_channel)
            else:
                tensors = [prepare(p, w, h, inp["mean"], inp["std"]) for p in calib_files]
                import onnxruntime as ort

                name = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()[0].name
                quantize_static(
                    proto,
                    dst,
                    Reader(name, tensors),
                    quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    per_channel=a.per_channel,
                    calibrate_method=CalibrationMethod.MinMax,
                )
            checks = [prepare(p, w, h, inp["mean"], inp["std"]) for p in check_files] or synthetic_inputs(8, w, h)
            report[enc] = compare(src, dst, checks)
            print(f"{enc}: " + ", ".join(f"{k} corr {v['correlation']:.4f} rel-rms {v['relative_rms']:.4f}" for k, v in report[enc].items()))
        if (a.model / "head.safetensors").exists():
            shutil.copy2(a.model / "head.safetensors", tmp / "head.safetensors")
        worst = min(v["correlation"] for r in report.values() for v in r.values())
        manifest["name"] = f"{manifest['name']}-int8-{a.mode}"
        manifest["precision"] = {
            "weights": "int8",
            "method": "dynamic" if a.mode == "dynamic" else "static-qdq",
            "per_channel": a.per_channel,
            "calibration_images": len(calib_files) if a.mode == "static" else 0,
            "calibration_sha256": files_sha256(calib_files) if a.mode == "static" else None,
            "min_correlation": round(worst, 6),
        }
        if manifest["precision"]["calibration_sha256"] is None:
            del manifest["precision"]["calibration_sha256"]
        (tmp / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
        cli = find_cli(a.cli) if a.map_check == "auto" else None
        drift = None
        if cli and worst >= a.min_correlation:
            work = Path(tempfile.mkdtemp(prefix="nexvitad-quantize-check-"))
            try:
                drift = map_check(cli, a.model, tmp, work, a.threads)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            print(
                f"maps: mean drift {drift['mean_abs']:.4f} of the pixel threshold (max {drift['max_abs']:.4f}), "
                f"{100 * drift['pixel_disagreement']:.3f} % of pixels flipped; AUROC change image {drift['image_auroc_delta']:+.3f}, "
                f"pixel {drift['pixel_auroc_delta'] if drift['pixel_auroc_delta'] is None else format(drift['pixel_auroc_delta'], '+.3f')}"
            )
            manifest["precision"]["map_drift"] = {k: v for k, v in drift.items() if k != "within_bound"}
            (tmp / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
        elif a.map_check == "auto" and not cli:
            print("maps: not compared (no nexvitad command line found; build it with `cargo build --release` or pass --cli)")
        if drift is not None and not drift["within_bound"]:
            if not a.force:
                print(
                    f"quantize: the INT8 maps drift beyond the bound (mean {drift['mean_abs']:.4f} of the threshold, "
                    f"{100 * drift['pixel_disagreement']:.3f} % of pixels flipped; bound: mean <= 0.05, <= 2 %); nothing written "
                    "(try --mode dynamic, --per-channel, or --force to keep it)",
                    file=sys.stderr,
                )
                return 2
            print("WARNING: keeping a model whose maps drift beyond the bound (--force)", file=sys.stderr)
        if worst < a.min_correlation and not a.force:
            print(
                f"quantize: the INT8 encoders agree with fp32 only to correlation {worst:.4f}, below --min-correlation "
                f"{a.min_correlation}; nothing written (try --per-channel, --mode dynamic, or --force to keep it)",
                file=sys.stderr,
            )
            return 2
        if worst < a.min_correlation:
            print(f"WARNING: keeping a model whose features agree with fp32 only to correlation {worst:.4f} (--force)", file=sys.stderr)
        tmp.rename(a.out)
        tmp = None
        print(f"wrote {a.out} ({manifest['precision']['method']}, lowest feature correlation {worst:.4f})")
        return 0
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
