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

Weights
-------
Choose ``--pretrained`` or ``--random-init``; ``--offline`` restricts ``--pretrained``:

``--pretrained``
    Pretrained timm weights. For each backbone, ``--hiera-checkpoint PATH`` /
    ``--dinov2-checkpoint PATH`` (a ``.safetensors`` or ``.pth`` state dict; timm's own
    checkpoint converters run, so original Meta Hiera / DINOv2 checkpoints also load) wins.
    Otherwise the weights timm names for the model (e.g. ``timm/hiera_tiny_224.mae_in1k_ft_in1k``
    and ``timm/vit_small_patch14_dinov2.lvd142m``) come through the Hugging Face hub: downloaded
    into the Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``, default
    ``~/.cache/huggingface``) if they are not there yet, read from the cache otherwise.
    ``HF_ENDPOINT``, ``HF_TOKEN`` and the usual proxy variables apply. When the hub cannot be
    reached (no network) a cached copy is still used; without one the script stops with a
    one-line error that names the weights and the alternatives.
    Position embeddings are resampled to the requested sizes. Note the licences: the timm
    Hiera weights are CC-BY-NC-4.0 (non-commercial), DINOv2 is Apache-2.0.
``--offline`` (with ``--pretrained``)
    Never download: sets ``HF_HUB_OFFLINE=1`` before timm / huggingface_hub are imported, so only
    the checkpoint flags and the local Hugging Face cache are used (a cache filled on another
    machine with ``hf download timm/hiera_tiny_224.mae_in1k_ft_in1k`` can be copied over). If the
    weights are not there the script stops and says what to do. ``HF_HUB_OFFLINE=1`` in the
    environment has the same effect.
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
scale 1e-5). With ``--random-init``; or with ``--pretrained`` and both checkpoint flags (there
are no published weights for these architectures; tests/python/test_export.py uses this to
check the checkpoint path in seconds).
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
    python tools/export_onnx.py --pretrained --out models/hiera-t_dinov2-s_224      # downloads
    python tools/export_onnx.py --pretrained --offline --out models/hiera-t_dinov2-s_224
    python tools/export_onnx.py --pretrained --hiera-checkpoint hiera.safetensors \\
        --dinov2-checkpoint dinov2.safetensors --out models/hiera-t_dinov2-s_224

torch/timm are needed only to run this exporter; the Rust crate and its tests never need them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
HIERA_OUTPUTS = ["stage1", "stage2", "stage3", "stage4"]
DINOV2_OUTPUT = "patch_grid"
INPUT_NAME = "image"
# Pipeline defaults written to model.json (see docs/method.md).
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
        help="pretrained weights: the checkpoint flags, else timm's Hugging Face weights "
        "(downloaded into the HF cache unless already there)",
    )
    w.add_argument("--random-init", action="store_true", help="explicitly allow random weights")
    p.add_argument(
        "--offline",
        action="store_true",
        help="never download (HF_HUB_OFFLINE=1): only the checkpoint flags and the local HF cache are used",
    )
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
            "choose --pretrained (timm's pretrained weights, downloaded unless cached; or --hiera-checkpoint/"
            "--dinov2-checkpoint) or --random-init (random weights, for tests and benchmarks)"
        )
    if (args.hiera_checkpoint or args.dinov2_checkpoint) and not args.pretrained:
        p.error("--hiera-checkpoint/--dinov2-checkpoint need --pretrained")
    if args.tiny and args.pretrained and not (args.hiera_checkpoint and args.dinov2_checkpoint):
        p.error(
            "--tiny builds fixture architectures that have no published weights; use --random-init, "
            "or --pretrained with both --hiera-checkpoint and --dinov2-checkpoint"
        )
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


# ----------------------------------------------------------------------------- weights

PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def set_offline() -> None:
    """--offline: HF_HUB_OFFLINE=1, set before huggingface_hub reads it (patched too if already imported)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    if "huggingface_hub" in sys.modules:  # e.g. main() called in-process after an earlier import
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = True


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0].strip()}" if lines else type(e).__name__


def _root_cause(e: BaseException) -> BaseException:
    seen = set()
    while id(e) not in seen and (e.__cause__ or e.__context__) is not None:
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return e


def _unresolvable(endpoint: str) -> str | None:
    """Why the hub's host name does not resolve (the usual sign of no network), else None.

    Checked before downloading, so a machine without network fails at once rather than after
    huggingface_hub's retries (about 25 s per file). Skipped behind a proxy, which resolves names.
    """
    from urllib.parse import urlsplit

    if any(os.environ.get(v) for v in PROXY_VARS):
        return None
    url = urlsplit(endpoint)
    if not url.hostname:
        return None
    try:
        socket.getaddrinfo(url.hostname, url.port or (443 if url.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except OSError as e:  # socket.gaierror
        return f"cannot resolve {url.hostname}: {e}"
    return None


def _hub_filenames(cfg: dict) -> list[str]:
    """The weight files timm would look for, safetensors first (as timm's load_state_dict_from_hf)."""
    filename = cfg.get("hf_hub_filename") or "pytorch_model.bin"
    if filename.endswith(".safetensors"):
        return [filename]
    try:
        from timm.models._hub import _get_safe_alternatives

        safe = list(_get_safe_alternatives(filename))
    except ImportError:
        safe = ["model.safetensors"] if filename == "pytorch_model.bin" else []
    return [*safe, filename]


def hub_weights(hub_id: str, filenames: list[str], kind: str, name: str, offline_flag: bool) -> tuple[Path, str]:
    """(local file, provenance) of timm's weights for hub_id: from the HF cache, downloaded if needed.

    Every failure is an ExportError of one line that names the weights and what to do instead.
    """
    import huggingface_hub
    from huggingface_hub import constants

    try:
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:  # huggingface_hub < 0.24
        from huggingface_hub.utils import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    repo, _, revision = hub_id.partition("@")
    flag = f"--{kind}-checkpoint"
    what = f"{kind} weights {hub_id} (for {name})"
    alternatives = f"or pass {flag} PATH (a .safetensors/.pth state dict)"
    cache, endpoint = constants.HF_HUB_CACHE, constants.ENDPOINT
    offline = bool(constants.HF_HUB_OFFLINE)
    no_net = None if offline else _unresolvable(endpoint)
    local_only = offline or no_net is not None
    if not local_only:
        print(f"{kind}: {hub_id} from {endpoint} (into the Hugging Face cache {cache} unless already there)", flush=True)

    hf_logger = logging.getLogger("huggingface_hub")
    level = hf_logger.level
    hf_logger.setLevel(logging.ERROR)  # no per-retry warnings: a failure is reported below, in one line
    failure = None
    try:
        for filename in filenames:
            try:
                path = huggingface_hub.hf_hub_download(
                    repo, filename, revision=revision or None, local_files_only=local_only
                )
            except LocalEntryNotFoundError as e:
                if local_only:
                    continue  # not cached under this name; the next one may be
                failure = e  # online, yet neither reachable nor cached
                break
            except EntryNotFoundError:
                continue  # the hub has no file of this name: try the next
            except HfHubHTTPError as e:  # unknown repo, gated, unauthorised, server errors
                raise ExportError(
                    f"the Hugging Face hub refused {what}: {_one_line(e)}; check the model name, your access "
                    f"(HF_TOKEN, `hf auth login`), {alternatives}"
                ) from None
            except Exception as e:  # network errors not wrapped by huggingface_hub, disk errors, ...
                failure = e
                break
            if no_net:
                print(f"{kind}: no network ({no_net}); using the cached {hub_id}", flush=True)
            return Path(path), f"{hub_id}, {'local Hugging Face cache' if local_only else 'Hugging Face hub'}"
    finally:
        hf_logger.setLevel(level)

    if offline:
        why = "--offline" if offline_flag else "HF_HUB_OFFLINE=1 (set in the environment)"
        raise ExportError(
            f"{what} are not in the local Hugging Face cache ({cache}) and {why} forbids downloading them: "
            f"run without {'--offline' if offline_flag else 'HF_HUB_OFFLINE'} on a machine with internet to "
            f"download them, {alternatives}"
        )
    if no_net or isinstance(failure, LocalEntryNotFoundError):
        reason = no_net or _one_line(_root_cause(failure))
        raise ExportError(
            f"cannot download {what} from {endpoint}: no network or hub unreachable ({reason}), and no "
            f"copy in the Hugging Face cache {cache}; "
            f"connect to the internet and rerun, use --offline with a Hugging Face cache that holds them, "
            f"{alternatives}"
        )
    if failure is not None:
        raise ExportError(
            f"cannot download {what} from {endpoint}: {_one_line(_root_cause(failure))}; "
            f"use --offline with a Hugging Face cache that holds them, {alternatives}"
        )
    raise ExportError(f"the Hugging Face hub has none of {filenames} for {what}; {alternatives}")


def weights_file(kind: str, name: str, checkpoint: Path | None, offline_flag: bool) -> tuple[Path, str]:
    """(file, provenance) of the pretrained weights: --*-checkpoint, else timm's Hugging Face weights.

    Resolved before the models are built, so a missing file or download fails within seconds.
    """
    import timm

    flag = f"--{kind}-checkpoint"
    if checkpoint is not None:
        if not checkpoint.is_file():
            raise ExportError(f"{flag} {checkpoint}: no such file")
        return checkpoint, f"checkpoint {checkpoint.name}"
    if not timm.is_model(name):
        raise ExportError(f"--{kind} {name!r}: no such timm model")
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError as e:  # an unknown pretrained tag
        raise ExportError(f"--{kind} {name!r}: {e}") from None
    hub_id = getattr(cfg, "hf_hub_id", None)
    if not hub_id:
        raise ExportError(f"timm has no Hugging Face weights for {kind} {name!r}; pass {flag} PATH (a .safetensors/.pth state dict)")
    filenames = _hub_filenames({"hf_hub_filename": getattr(cfg, "hf_hub_filename", None)})
    return hub_weights(hub_id, filenames, kind, name, offline_flag)


def load_pretrained(model, kind: str, name: str, path: Path, source: str) -> str:
    """Load weights via timm's converters; resample position embeddings to the model's grid."""
    import importlib

    from timm.models import load_state_dict

    state_dict = load_state_dict(str(path))
    module = importlib.import_module(type(model).__module__)
    state_dict = module.checkpoint_filter_fn(state_dict, model)
    pos = state_dict.get("pos_embed")
    if kind == "hiera" and pos is not None and pos.ndim == 3 and pos.shape != model.pos_embed.shape:
        # timm's Hiera filter leaves this out; the pos embed is a plain token grid without prefix tokens.
        from timm.layers import resample_abs_pos_embed

        state_dict["pos_embed"] = resample_abs_pos_embed(pos, new_size=model.tokens_spatial_shape, num_prefix_tokens=0)
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as e:  # shape mismatches: torch lists every tensor, one per line
        lines = [ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln] or [_one_line(e)]
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise ExportError(f"{kind} weights from {source} do not fit {name}: {lines[0]}{more}") from None
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
    # the export byte-reproducible (the Rust side fingerprints the files). Node metadata still holds
    # the exporter's stack traces, i.e. this file's path and line numbers: bytes match only for the
    # same checkout path and script revision (tests/python/test_export.py compares graphs instead).
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
    if args.offline:
        set_offline()  # before timm imports huggingface_hub
    import onnx
    import torch

    torch.set_grad_enabled(False)
    out: Path = args.out

    if args.pretrained:  # first, so a missing file or failed download stops the run early
        hfile = weights_file("hiera", args.hiera, args.hiera_checkpoint, args.offline)
        dfile = weights_file("dinov2", args.dinov2, args.dinov2_checkpoint, args.offline)
    hiera = build_hiera(args)
    dinov2, dsize, patch = build_dinov2(args)
    if args.pretrained:
        tiny = "tiny fixture, " if args.tiny else ""
        hsrc = load_pretrained(hiera, "hiera", args.hiera, *hfile)
        dsrc = load_pretrained(dinov2, "dinov2", args.dinov2, *dfile)
        prov_h, prov_d = f"{args.hiera} ({tiny}{hsrc})", f"{args.dinov2} ({tiny}{dsrc})"
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
    out.mkdir(parents=True, exist_ok=True)  # only now: a failed weight lookup leaves no empty folder
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
        f"tiny-{'checkpoint' if args.pretrained else 'random'}" if args.tiny else f"{args.hiera}+{args.dinov2}-{args.size}-{'pretrained' if args.pretrained else 'random'}"
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


def cli(argv=None) -> int:
    """main() with an ExportError printed as one line, `error: ...`, and exit status 2."""
    try:
        return main(argv)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
