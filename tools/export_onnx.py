#!/usr/bin/env python3
"""Export the two frozen NexViTAD backbones (timm Hiera + timm DINOv2) to ONNX.

What it writes into ``--out DIR``
---------------------------------
``hiera.onnx``
    Input ``image``: float32 NCHW ``(batch, 3, S, S)`` with ``S = --size`` (fixed; Hiera's
    mask-unit layout is baked in at build time, so S must be a multiple of 32).
    Outputs ``stage1``..``stage4``: float32 NCHW stage maps at strides 4, 8, 16, 32
    (``Hiera.forward_intermediates(x, intermediates_only=True)``, already NCHW), e.g. for
    hiera_tiny_224 at 224: (batch, 96, 56, 56), (batch, 192, 28, 28), (batch, 384, 14, 14),
    (batch, 768, 7, 7).
``dinov2.onnx``
    Input ``image``: float32 NCHW ``(batch, 3, height, width)``. The model is built with
    ``dynamic_img_size=True`` and the H/W axes are exported as dynamic, so any height/width that
    is a multiple of the patch size (14) works; ``model.json`` records the size the pipeline
    uses (``--dinov2-size``). Output ``patch_grid``: float32 ``(batch, C, height/14, width/14)``,
    the final-norm patch tokens of the last block reshaped to a grid
    (``forward_intermediates(x, indices=1, norm=True, output_fmt='NCHW', intermediates_only=True)``).
``model.json``
    The model description the Rust crate reads (serde ``deny_unknown_fields``: exactly the keys
    ``format_version, name, input, hiera, dinov2, fusion, defaults, provenance``). Channels and
    strides are read from the exported graphs, not assumed.

Both graphs have a dynamic batch axis named ``batch``. Export uses the torch dynamo exporter
(``torch.onnx.export(..., dynamo=True, external_data=False)``), opset ``--opset`` (18).
Hiera is built with timm's fused attention disabled (``timm.layers.set_fused_attn(False)``):
the dynamo export of its 5-D ``scaled_dot_product_attention`` fails otherwise. The maths is
the same, only the kernel differs.

Weights: nothing is ever downloaded
-----------------------------------
``HF_HUB_OFFLINE=1`` is forced before timm / huggingface_hub are imported, and this machine
cannot reach the Hugging Face hub anyway, so pretrained weights cannot be downloaded here.
You must choose one of:

``--pretrained``
    Use weights you already have. For each backbone, ``--hiera-checkpoint PATH`` /
    ``--dinov2-checkpoint PATH`` (a ``.safetensors`` or ``.pth`` state dict; timm's own
    checkpoint converters run, so original Meta Hiera / DINOv2 checkpoints also load) wins;
    otherwise the timm weights are taken from the local Hugging Face cache (``HF_HOME`` /
    ``HF_HUB_CACHE``), e.g. ``timm/hiera_tiny_224.mae_in1k_ft_in1k`` and
    ``timm/vit_small_patch14_dinov2.lvd142m``. To fill the cache, on a machine with internet run
    ``hf download timm/hiera_tiny_224.mae_in1k_ft_in1k`` (and the same for the DINOv2 repo) and
    copy the cache directory over, or download ``model.safetensors`` and pass it with the
    checkpoint flags. If the weights are absent the script stops and says exactly this.
    Position embeddings are resampled to the requested sizes. Note the licences: the timm
    Hiera weights are CC-BY-NC-4.0 (non-commercial), DINOv2 is Apache-2.0.
``--random-init``
    Explicitly allowed random weights (seeded by ``--seed``), for tests and benchmarks.

Without one of the two the script refuses to run, so a random model is never produced by
accident.

Options worth knowing
---------------------
``--hiera NAME`` any timm Hiera (class ``timm.models.hiera.Hiera``), default hiera_tiny_224.
``--dinov2 NAME`` any timm ViT (DINOv2 style), default vit_small_patch14_dinov2.
``--size S`` Hiera and pipeline input size (multiple of 32), default 224.
``--dinov2-size D`` default: S rounded to the nearest multiple of the patch size (224 -> 224,
448 -> 448, 256 -> 252).
``--tiny`` the small random fixture architectures committed as ``models/tiny`` (Hiera
embed_dim 16, stages (1,1,1,1); ViT patch 14, dim 32, depth 2, 2 heads, DINOv2-style layer
scale 1e-5); sensible only with ``--random-init``.
``--fusion-dims`` / ``--adapter-bottleneck`` fusion head widths written to model.json
(defaults 128,256,256,256 / 64; tiny: 16,32,32,32 / 8).
``--fp16`` convert both exported graphs to float16 internally (inputs/outputs stay float32)
with onnxconverter-common, or the copy of its converter shipped inside onnxruntime
(``onnxruntime.transformers.float16``); fails clearly if neither is importable.
``--verify`` (default on; ``--no-verify`` to skip) runs both ONNX graphs with onnxruntime on a
seeded N(0,1) batch of 2 (and batch 1, and for DINOv2 a second, non-square size) and compares
with torch, printing the max abs diff per output; fails if any exceeds ``--tol`` (1e-4).
With ``--fp16`` the float16 graphs are additionally compared with a relative tolerance.
Independently of ``--verify`` the written ``model.json`` is always checked against the
graphs (names, channels, strides, patch grid) with onnxruntime.

Examples
--------
    python tools/export_onnx.py --tiny --random-init --out models/tiny
    python tools/export_onnx.py --random-init --out /work/models/full224
    python tools/export_onnx.py --random-init --size 448 --out /work/models/full448
    python tools/export_onnx.py --pretrained --hiera-checkpoint hiera.safetensors \\
        --dinov2-checkpoint dinov2.safetensors --out models/hiera-t_dinov2-s_224

torch/timm are needed only to run this exporter; the Rust crate and its tests never need them.
"""

from __future__ import annotations

import os

# Must be set before huggingface_hub (imported by timm) reads it: never fetch anything.
os.environ["HF_HUB_OFFLINE"] = "1"

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
HIERA_OUTPUTS = ["stage1", "stage2", "stage3", "stage4"]
DINOV2_OUTPUT = "patch_grid"
INPUT_NAME = "image"
# Pipeline defaults written to model.json (see /work/shared/METHOD.md).
DEFAULTS = {"k": 30, "sigma": 4.0, "theta": 0.7, "lambda1": 1.0, "lambda2": 0.5, "target_fpr": 0.01}
BANK_SCALES = [2, 3]
LOCAL_AVG = 3
FULL_FUSION_DIMS = "128,256,256,256"
TINY_FUSION_DIMS = "16,32,32,32"
FULL_BOTTLENECK = 64
TINY_BOTTLENECK = 8


class ExportError(RuntimeError):
    """A problem the user can fix; printed without a traceback."""


# ----------------------------------------------------------------------------- arguments


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the docstring's layout; shows a default only where there is a meaningful one."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not any(action.default is v for v in (None, False, argparse.SUPPRESS)) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="export_onnx.py", description=__doc__, formatter_class=_HelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="output model folder (created)")
    p.add_argument("--hiera", default="hiera_tiny_224", help="timm Hiera model name")
    p.add_argument("--dinov2", default="vit_small_patch14_dinov2", help="timm DINOv2 ViT model name")
    p.add_argument("--size", type=int, default=224, help="Hiera / pipeline input size (multiple of 32)")
    p.add_argument(
        "--dinov2-size",
        type=int,
        default=None,
        help="DINOv2 input size recorded in model.json (multiple of the patch size); "
        "default: --size rounded to the nearest multiple of the patch size",
    )
    w = p.add_mutually_exclusive_group()
    w.add_argument(
        "--pretrained",
        action="store_true",
        help="use pretrained weights already on this machine (checkpoint flags or the local HF cache); "
        "nothing is downloaded",
    )
    w.add_argument("--random-init", action="store_true", help="explicitly allow random weights")
    p.add_argument("--hiera-checkpoint", type=Path, help="Hiera state dict (.safetensors/.pth); use with --pretrained")
    p.add_argument("--dinov2-checkpoint", type=Path, help="DINOv2 state dict (.safetensors/.pth); use with --pretrained")
    p.add_argument("--seed", type=int, default=0, help="seed for random init and the verification batch")
    p.add_argument("--tiny", action="store_true", help="tiny random fixture architectures (models/tiny)")
    p.add_argument("--fp16", action="store_true", help="store graphs in float16 (float32 inputs/outputs kept)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset")
    p.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True, help="compare ORT with torch")
    p.add_argument("--tol", type=float, default=1e-4, help="max abs diff allowed by --verify (float32 graphs)")
    p.add_argument("--fp16-tol", type=float, default=2e-2, help="max abs diff / max |torch| allowed for --fp16 graphs")
    p.add_argument("--fusion-dims", default=None, help=f"4 shared fusion widths (default {FULL_FUSION_DIMS}; tiny {TINY_FUSION_DIMS})")
    p.add_argument("--adapter-bottleneck", type=int, default=None, help=f"adapter bottleneck (default {FULL_BOTTLENECK}; tiny {TINY_BOTTLENECK})")
    p.add_argument("--name", default=None, help="model name in model.json (default derived from the options)")
    args = p.parse_args(argv)

    if not (args.pretrained or args.random_init):
        p.error(
            "choose --pretrained (weights already on this machine; nothing can be downloaded here) "
            "or --random-init (random weights, for tests and benchmarks)"
        )
    if (args.hiera_checkpoint or args.dinov2_checkpoint) and not args.pretrained:
        p.error("--hiera-checkpoint/--dinov2-checkpoint need --pretrained")
    if args.tiny and args.pretrained:
        p.error("--tiny builds fixture architectures that have no pretrained weights; use --random-init")
    if args.size <= 0 or args.size % 32:
        p.error(f"--size must be a positive multiple of 32 (Hiera's stride and mask units), got {args.size}")
    if args.dinov2_size is not None and args.dinov2_size <= 0:
        p.error(f"--dinov2-size must be positive, got {args.dinov2_size}")
    dims = args.fusion_dims or (TINY_FUSION_DIMS if args.tiny else FULL_FUSION_DIMS)
    try:
        args.fusion_dims = [int(d) for d in dims.split(",")]
    except ValueError:
        p.error(f"--fusion-dims must be 4 comma-separated integers, got {dims!r}")
    if len(args.fusion_dims) != 4 or min(args.fusion_dims) <= 0:
        p.error(f"--fusion-dims must be 4 positive integers, got {dims!r}")
    if args.adapter_bottleneck is None:
        args.adapter_bottleneck = TINY_BOTTLENECK if args.tiny else FULL_BOTTLENECK
    if args.adapter_bottleneck <= 0:
        p.error("--adapter-bottleneck must be positive")
    return args


def nearest_multiple(n: int, m: int) -> int:
    """n rounded to the nearest positive multiple of m (ties round up)."""
    return max(m, int(np.floor(n / m + 0.5)) * m)


# ----------------------------------------------------------------------------- models


def build_hiera(args):
    """A timm Hiera at --size with fused attention off (needed by the dynamo exporter)."""
    import timm
    import torch
    from timm.layers import set_fused_attn
    from timm.models.hiera import Hiera

    set_fused_attn(False)  # read by each Attention at construction time
    try:
        torch.manual_seed(args.seed)
        img_size = (args.size, args.size)
        if args.tiny:
            model = Hiera(embed_dim=16, num_heads=1, stages=(1, 1, 1, 1), img_size=img_size, num_classes=0)
        else:
            try:
                model = timm.create_model(args.hiera, pretrained=False, num_classes=0, img_size=img_size)
            except RuntimeError as e:
                raise ExportError(f"--hiera {args.hiera!r}: {e}") from e
    finally:
        set_fused_attn(True)
    if not isinstance(model, Hiera):
        raise ExportError(f"--hiera {args.hiera!r} is a {type(model).__name__}, not a timm Hiera")
    return model.eval()


def build_dinov2(args):
    """A timm ViT with dynamic_img_size at the DINOv2 size; returns (model, size, patch)."""
    import timm
    import torch
    from timm.models.vision_transformer import VisionTransformer

    def make(img_size):
        torch.manual_seed(args.seed)
        if args.tiny:
            # DINOv2-style: class token, layer scale 1e-5, patch 14, final norm.
            return VisionTransformer(
                img_size=img_size, patch_size=14, embed_dim=32, depth=2, num_heads=2, mlp_ratio=4.0,
                init_values=1e-5, dynamic_img_size=True, num_classes=0,
            )
        try:
            kw = {} if img_size is None else {"img_size": img_size}
            return timm.create_model(args.dinov2, pretrained=False, num_classes=0, dynamic_img_size=True, **kw)
        except (RuntimeError, TypeError) as e:
            raise ExportError(f"--dinov2 {args.dinov2!r}: {e}") from e

    size = args.dinov2_size
    model = make(size if size is not None else 224 if args.tiny else None)
    if not isinstance(model, VisionTransformer):
        raise ExportError(f"--dinov2 {args.dinov2!r} is a {type(model).__name__}, not a timm VisionTransformer")
    ph, pw = model.patch_embed.patch_size
    if ph != pw:
        raise ExportError(f"--dinov2 {args.dinov2!r} has a non-square patch {ph}x{pw}")
    if size is None:
        size = nearest_multiple(args.size, ph)
    if size % ph:
        raise ExportError(f"--dinov2-size {size} is not a multiple of the patch size {ph}")
    if tuple(model.patch_embed.img_size) != (size, size):
        model = make(size)  # rebuild at the chosen grid so no resampling happens at that size
    return model.eval(), size, ph


def _load_state_dict(model, name: str, checkpoint: Path | None, flag: str):
    """State dict from --*-checkpoint or the local HF cache; a clear error when absent."""
    from timm.models import load_state_dict
    from timm.models._hub import load_state_dict_from_hf

    if checkpoint is not None:
        if not checkpoint.is_file():
            raise ExportError(f"{flag} {checkpoint}: no such file")
        return load_state_dict(str(checkpoint)), f"checkpoint {checkpoint.name}"
    cfg = getattr(model, "pretrained_cfg", None) or {}
    hub_id = cfg.get("hf_hub_id")
    how = (
        f"Pretrained weights cannot be downloaded on this machine (HF_HUB_OFFLINE=1, no internet). "
        f"Provide them with {flag} PATH (a .safetensors/.pth state dict), or copy a Hugging Face cache "
        f"that holds {hub_id or 'the weights'} (on a machine with internet: `hf download {hub_id}`) "
        f"and point HF_HOME/HF_HUB_CACHE at it."
    )
    if not hub_id:
        raise ExportError(f"timm has no Hugging Face hub id for {name!r}. {how}")
    try:
        return load_state_dict_from_hf(hub_id), f"{hub_id} (local HF cache)"
    except Exception as e:  # huggingface_hub raises several offline/not-found types
        raise ExportError(f"{name}: weights {hub_id} not found in the local Hugging Face cache ({type(e).__name__}). {how}") from e


def load_pretrained(model, kind: str, name: str, checkpoint: Path | None) -> str:
    """Load weights via timm's converters; resample position embeddings to the model's grid."""
    import importlib

    flag = f"--{kind}-checkpoint"
    state_dict, source = _load_state_dict(model, name, checkpoint, flag)
    module = importlib.import_module(type(model).__module__)
    state_dict = module.checkpoint_filter_fn(state_dict, model)
    pos = state_dict.get("pos_embed")
    if kind == "hiera" and pos is not None and pos.ndim == 3 and pos.shape != model.pos_embed.shape:
        # timm's Hiera filter leaves this out; the pos embed is a plain token grid without prefix tokens.
        from timm.layers import resample_abs_pos_embed

        state_dict["pos_embed"] = resample_abs_pos_embed(pos, new_size=model.tokens_spatial_shape, num_prefix_tokens=0)
    result = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("head.")]
    unexpected = [k for k in result.unexpected_keys if not k.startswith(("head.", "fc_norm.", "mask_token"))]
    if missing:
        raise ExportError(f"{kind} weights from {source} do not fit {name}: missing {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if unexpected:
        print(f"warning: {kind}: ignored unexpected keys {unexpected[:8]}", file=sys.stderr)
    return source


def make_wrappers():
    import torch

    class HieraStages(torch.nn.Module):
        """image -> (stage1..stage4), NCHW."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, image):
            maps = self.m.forward_intermediates(image, intermediates_only=True, output_fmt="NCHW")
            return tuple(maps)

    class DinoGrid(torch.nn.Module):
        """image -> normed last-block patch tokens as an NCHW grid."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, image):
            return self.m.forward_intermediates(
                image, indices=1, norm=True, output_fmt="NCHW", intermediates_only=True
            )[0]

    return HieraStages, DinoGrid


# ----------------------------------------------------------------------------- export


def export(wrapper, example, path: Path, outputs: list[str], dynamic_hw: bool, opset: int) -> None:
    import onnx
    import torch
    from torch.export import Dim

    dims = {0: Dim("batch")}
    if dynamic_hw:
        dims.update({2: Dim("height"), 3: Dim("width")})
    t0 = time.time()
    torch.onnx.export(
        wrapper,
        (example,),
        str(path),
        dynamo=True,
        opset_version=opset,
        external_data=False,
        input_names=[INPUT_NAME],
        output_names=outputs,
        dynamic_shapes={INPUT_NAME: dims},
        verbose=False,
    )
    # torch stores debugging metadata whose text order varies from run to run; dropping it makes
    # the export byte-reproducible (the Rust side fingerprints the files).
    model = onnx.load(str(path))
    del model.graph.metadata_props[:]
    onnx.save(model, str(path))
    print(f"exported {path} ({path.stat().st_size / 1e6:.2f} MB) in {time.time() - t0:.1f} s")


def fp16_converter():
    try:
        from onnxconverter_common.float16 import convert_float_to_float16

        return convert_float_to_float16, "onnxconverter-common"
    except ImportError:
        pass
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        return convert_float_to_float16, "onnxruntime.transformers.float16"
    except ImportError:
        raise ExportError(
            "--fp16 needs onnxconverter-common (`pip install onnxconverter-common`) or an onnxruntime "
            "that ships onnxruntime.transformers.float16; neither is importable"
        ) from None


def convert_fp16(src: Path, dst: Path) -> None:
    import onnx

    convert, tool = fp16_converter()
    model = convert(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    print(f"converted {dst.name} to float16 with {tool} ({dst.stat().st_size / 1e6:.2f} MB)")


# ----------------------------------------------------------------------------- checks


def ort_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def compare(label: str, got: np.ndarray, ref: np.ndarray, tol: float, relative: bool) -> bool:
    if got.shape != ref.shape:
        print(f"  {label}: shape {got.shape} != torch {ref.shape}  FAIL")
        return False
    diff = float(np.abs(got.astype(np.float64) - ref).max())
    scale = float(np.abs(ref).max()) if relative else 1.0
    ok = diff <= tol * max(scale, 1e-12)
    extra = f" (max |torch| {scale:.3g})" if relative else ""
    print(f"  {label} {tuple(got.shape)}: max abs diff {diff:.3e}{extra}  {'ok' if ok else 'FAIL'}")
    return ok


def verify(models: dict, paths: dict, sizes: dict, patch: int, seed: int, tol: float, relative: bool) -> None:
    """ORT vs torch on a seeded N(0,1) batch of 2, on batch 1, and DINOv2 at a non-square size."""
    import torch

    rng = np.random.default_rng(seed)
    ok = True
    for kind in ("hiera", "dinov2"):
        s = sizes[kind]
        cases = [(2, s, s)]
        if kind == "dinov2":
            cases.append((1, s + patch, s))  # exercises the dynamic H/W axes
        sess = ort_session(paths[kind])
        print(f"verify {paths[kind].name} (onnxruntime {'relative ' if relative else ''}tol {tol:g}):")
        for n, h, w in cases:
            x = rng.standard_normal((n, 3, h, w), dtype=np.float32)
            with torch.no_grad():
                ref = models[kind](torch.from_numpy(x))
            refs = [r.numpy().astype(np.float64) for r in (ref if isinstance(ref, tuple) else (ref,))]
            names = [o.name for o in sess.get_outputs()]
            got = sess.run(None, {INPUT_NAME: x})
            for name, g, r in zip(names, got, refs):
                ok &= compare(f"{name} batch {n} {h}x{w}", g, r, tol, relative)
            if n > 1:  # the batch-1 path, checked against the same torch outputs
                got1 = sess.run(None, {INPUT_NAME: x[:1]})
                for name, g, r in zip(names, got1, refs):
                    ok &= compare(f"{name} batch 1 {h}x{w}", g, r[:1], tol, relative)
    if not ok:
        raise ExportError("verification failed: ONNX Runtime outputs differ from torch beyond the tolerance")


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise ExportError(f"model.json does not match the graphs: {what}")


def check_model_dir(out: Path) -> None:
    """model.json must describe the graphs exactly: names, dtypes, channels, strides, grid."""
    cfg = json.loads((out / "model.json").read_text())
    size_w, size_h = cfg["input"]["width"], cfg["input"]["height"]
    h = cfg["hiera"]
    sess = ort_session(out / h["file"])
    ins = sess.get_inputs()
    expect([i.name for i in ins] == [h["input"]] and ins[0].type == "tensor(float)", f"hiera inputs {ins}")
    expect([o.name for o in sess.get_outputs()] == h["outputs"], f"hiera outputs {sess.get_outputs()}")
    outs = sess.run(None, {h["input"]: np.zeros((1, 3, size_h, size_w), np.float32)})
    for o, c, s in zip(outs, h["channels"], h["strides"]):
        expect(o.dtype == np.float32 and o.shape == (1, c, size_h // s, size_w // s), f"hiera map {o.shape} vs {c} @ {s}")
    d = cfg["dinov2"]
    sess = ort_session(out / d["file"])
    ins = sess.get_inputs()
    expect([i.name for i in ins] == [d["input"]] and ins[0].type == "tensor(float)", f"dinov2 inputs {ins}")
    expect([o.name for o in sess.get_outputs()] == [d["output"]], f"dinov2 outputs {sess.get_outputs()}")
    (g,) = sess.run(None, {d["input"]: np.zeros((1, 3, d["height"], d["width"]), np.float32)})
    p = d["patch_size"]
    expect(g.dtype == np.float32 and g.shape == (1, d["channels"], d["height"] // p, d["width"] // p), f"dinov2 grid {g.shape}")
    print(f"model.json matches the graphs: hiera {h['channels']} @ {h['strides']}, "
          f"dinov2 {d['channels']} x {d['height'] // p}x{d['width'] // p}")


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    args = parse_args(argv)
    import onnx
    import torch

    torch.set_grad_enabled(False)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    hiera = build_hiera(args)
    dinov2, dsize, patch = build_dinov2(args)
    if args.pretrained:
        hsrc = load_pretrained(hiera, "hiera", args.hiera, args.hiera_checkpoint)
        dsrc = load_pretrained(dinov2, "dinov2", args.dinov2, args.dinov2_checkpoint)
        prov_h, prov_d = f"{args.hiera} ({hsrc})", f"{args.dinov2} ({dsrc})"
    elif args.tiny:
        prov_h, prov_d = f"{args.hiera} (tiny fixture)", f"{args.dinov2} (tiny fixture)"
    else:
        prov_h, prov_d = f"{args.hiera} (random init)", f"{args.dinov2} (random init)"

    # One normalisation serves both backbones, so they must agree on it.
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    if not args.tiny:
        hc, dc = hiera.pretrained_cfg, dinov2.pretrained_cfg
        if tuple(hc.get("mean", mean)) != tuple(dc.get("mean", mean)) or tuple(hc.get("std", std)) != tuple(dc.get("std", std)):
            raise ExportError(f"{args.hiera} and {args.dinov2} expect different input normalisation")
        mean, std = tuple(hc.get("mean", mean)), tuple(hc.get("std", std))

    HieraStages, DinoGrid = make_wrappers()
    wrappers = {"hiera": HieraStages(hiera).eval(), "dinov2": DinoGrid(dinov2).eval()}
    sizes = {"hiera": args.size, "dinov2": dsize}
    example_h = torch.randn(2, 3, args.size, args.size)
    example_d = torch.randn(2, 3, dsize, dsize)
    final = {"hiera": out / "hiera.onnx", "dinov2": out / "dinov2.onnx"}

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = {k: (Path(tmp) / p.name if args.fp16 else p) for k, p in final.items()}
        export(wrappers["hiera"], example_h, fp32["hiera"], HIERA_OUTPUTS, False, args.opset)
        export(wrappers["dinov2"], example_d, fp32["dinov2"], [DINOV2_OUTPUT], True, args.opset)
        for p in fp32.values():
            onnx.checker.check_model(str(p))
        if args.verify:
            verify(wrappers, fp32, sizes, patch, args.seed, args.tol, relative=False)
        if args.fp16:
            for k in final:
                convert_fp16(fp32[k], final[k])
            if args.verify:
                verify(wrappers, final, sizes, patch, args.seed, args.fp16_tol, relative=True)

    # Channels and strides come from the exported graph, not from the timm config.
    sess = ort_session(final["hiera"])
    maps = sess.run(None, {INPUT_NAME: np.zeros((1, 3, args.size, args.size), np.float32)})
    channels = [int(m.shape[1]) for m in maps]
    strides = []
    for m in maps:
        sh, sw = args.size // m.shape[2], args.size // m.shape[3]
        if sh != sw or sh * m.shape[2] != args.size:
            raise ExportError(f"unexpected Hiera stage shape {m.shape} for input {args.size}")
        strides.append(int(sh))
    (grid,) = ort_session(final["dinov2"]).run(None, {INPUT_NAME: np.zeros((1, 3, dsize, dsize), np.float32)})

    exporter = f"tools/export_onnx.py (torch {torch.__version__.split('+')[0]} dynamo, opset {args.opset}{', fp16' if args.fp16 else ''})"
    name = args.name or (
        "tiny-random" if args.tiny else f"{args.hiera}+{args.dinov2}-{args.size}-{'pretrained' if args.pretrained else 'random'}"
    )
    model_json = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "input": {"width": args.size, "height": args.size, "mean": list(mean), "std": list(std)},
        "hiera": {"file": final["hiera"].name, "input": INPUT_NAME, "outputs": HIERA_OUTPUTS, "channels": channels, "strides": strides},
        "dinov2": {"file": final["dinov2"].name, "input": INPUT_NAME, "output": DINOV2_OUTPUT, "channels": int(grid.shape[1]),
                   "patch_size": patch, "width": dsize, "height": dsize},
        "fusion": {"shared_dims": args.fusion_dims, "adapter_bottleneck": args.adapter_bottleneck, "bank_scales": BANK_SCALES, "local_avg": LOCAL_AVG},
        "defaults": DEFAULTS,
        "provenance": {"hiera": prov_h, "dinov2": prov_d, "pretrained": bool(args.pretrained), "exporter": exporter, "seed": args.seed},
    }
    (out / "model.json").write_text(json.dumps(model_json, indent=2) + "\n")
    print(f"wrote {out / 'model.json'}")
    check_model_dir(out)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
