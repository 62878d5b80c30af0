"""Tests of tools/export_onnx.py's weight sources: checkpoints, the Hugging Face hub, --offline.

None of them needs the internet and none is skipped:

* the checkpoint path is checked end to end with the ``--tiny`` fixture architectures (the full
  encoders take minutes to export on 2 cores; the tiny ones go through the same timm classes,
  checkpoint converters, loader and exporter in about 25 s per export);
* the download path is checked with the network cut inside the exporter's process (socket
  functions replaced before the script runs), so huggingface_hub's real code fails as it would
  on a machine without network;
* ``--offline`` is checked against an empty and a hand-filled Hugging Face cache.

Run: .venv/bin/python -m pytest -q tests/python
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "export_onnx.py"
sys.path.insert(0, str(SCRIPT.parent))
import export_onnx as ex  # noqa: E402  (cheap: torch and timm are imported only when used)

HIERA_HUB_ID = "timm/hiera_tiny_224.mae_in1k_ft_in1k"  # timm's default weights for --hiera hiera_tiny_224

# Prepended to the code a subprocess runs: no name resolves and no socket connects, and sleeping
# is instant (huggingface_hub's retry back-off would otherwise take ~25 s per file).
NO_NETWORK = """
import errno, socket, sys, time
def _no_dns(*a, **k):
    raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution (network cut by the test)")
def _no_connect(*a, **k):
    raise OSError(errno.ENETUNREACH, "Network is unreachable (network cut by the test)")
socket.getaddrinfo = _no_dns
socket.create_connection = _no_connect
socket.socket.connect = _no_connect
time.sleep = lambda seconds: None
"""

RUN_SCRIPT = """
import runpy
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def clean_env(tmp_path: Path, **extra: str) -> dict:
    """This environment without Hugging Face / proxy settings, with empty caches under tmp_path."""
    drop = ("HF_", "HUGGINGFACE_")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(drop) and not k.lower().endswith("_proxy") and k not in ("TRANSFORMERS_OFFLINE", "TORCH_HOME", "XDG_CACHE_HOME")
    }
    env.update(
        HF_HOME=str(tmp_path / "hf"),
        TORCH_HOME=str(tmp_path / "torch"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run_export(args: list[str], env: dict, network: bool = True) -> subprocess.CompletedProcess:
    """tools/export_onnx.py ARGS in a fresh interpreter, optionally with the network cut."""
    if network:
        cmd = [sys.executable, str(SCRIPT), *args]
    else:
        cmd = [sys.executable, "-c", NO_NETWORK + RUN_SCRIPT, str(SCRIPT), *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"stderr is not one line:\n{proc.stderr}"
    (line,) = lines
    assert line.startswith("error: ") and "Traceback" not in proc.stderr, line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


# ----------------------------------------------------------------------------- ONNX comparison


def split_model(path: Path):
    """(structure bytes, {initializer name: array}) of an ONNX file.

    The structure is the model without its initializers, doc strings and metadata_props (torch
    records debugging text there); everything else counts: nodes and their order, op types,
    domains, wiring, attributes, graph inputs/outputs and value_info, opsets, IR version, functions.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits: dict[str, np.ndarray] = {}

    def strip_nodes(nodes, prefix: str) -> None:
        for node in nodes:
            node.ClearField("doc_string")
            del node.metadata_props[:]
            for a in node.attribute:
                if a.HasField("g"):
                    strip_graph(a.g, f"{prefix}{node.name}/{a.name}/")
                for i, g in enumerate(a.graphs):
                    strip_graph(g, f"{prefix}{node.name}/{a.name}[{i}]/")

    def strip_graph(graph, prefix: str) -> None:
        for t in graph.initializer:
            assert prefix + t.name not in inits
            inits[prefix + t.name] = numpy_helper.to_array(t)
        assert not graph.sparse_initializer, "sparse initializers are not compared"
        del graph.initializer[:]
        graph.ClearField("doc_string")
        del graph.metadata_props[:]
        for v in [*graph.input, *graph.output, *graph.value_info]:
            v.ClearField("doc_string")
            del v.metadata_props[:]
        strip_nodes(graph.node, prefix)

    strip_graph(model.graph, "")
    for f in model.functions:
        f.ClearField("doc_string")
        del f.metadata_props[:]
        strip_nodes(f.node, f"{f.domain}.{f.name}/")
    model.ClearField("doc_string")
    del model.metadata_props[:]
    return model, inits


def assert_same_graph(a: Path, b: Path) -> None:
    ma, ia = split_model(a)
    mb, ib = split_model(b)
    assert sorted(ia) == sorted(ib), f"{a.name}: initializer names differ: {sorted(set(ia) ^ set(ib))[:8]}"
    for name in ia:
        x, y = ia[name], ib[name]
        assert x.dtype == y.dtype and x.shape == y.shape, f"{a.name}: {name}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}"
        assert x.tobytes() == y.tobytes(), f"{a.name}: initializer {name} differs (max abs diff {np.abs(x - y).max()})"
    if ma.SerializeToString(deterministic=True) != mb.SerializeToString(deterministic=True):
        na, nb = [str(n) for n in ma.graph.node], [str(n) for n in mb.graph.node]
        first = next((i for i, (p, q) in enumerate(zip(na, nb)) if p != q), min(len(na), len(nb)))
        detail = f"first differing node #{first}:\n{na[first:first + 1]}\nvs\n{nb[first:first + 1]}" if na != nb else "outside the nodes"
        pytest.fail(f"{a.name}: graph structure differs ({len(na)} vs {len(nb)} nodes); {detail}")


# ----------------------------------------------------------------------------- tests


def tiny_state_dicts(seed: int):
    """The state dicts --tiny --random-init --seed SEED exports (the script's own builders)."""
    args = ex.parse_args(["--tiny", "--random-init", "--seed", str(seed), "--out", "unused"])
    hiera = ex.build_hiera(args)
    dinov2, _, _ = ex.build_dinov2(args)
    return hiera.state_dict(), dinov2.state_dict()


def test_checkpoint_export_equals_random_init(tmp_path):
    """Seeded random weights saved as checkpoints export to the same ONNX as --random-init.

    The checkpoint export runs with a different --seed, so its models start from other random
    weights: equal graphs mean the checkpoints were loaded (every tensor), not merely that the
    same seed was used twice. Hiera goes through a .safetensors file, DINOv2 through a .pth.
    File bytes are not compared (doc strings / metadata may legitimately differ); the
    initializers must be bit-identical and the graph structure equal (see split_model).
    """
    import torch
    from safetensors.torch import save_file

    seed, other = 7, 8
    hiera_sd, dinov2_sd = tiny_state_dicts(seed)
    hiera_other, _ = tiny_state_dicts(other)
    assert any(not torch.equal(hiera_sd[k], hiera_other[k]) for k in hiera_sd), "seeds give the same weights"
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    save_file({k: v.contiguous() for k, v in hiera_sd.items()}, str(ckpt / "hiera.safetensors"))
    torch.save(dinov2_sd, ckpt / "dinov2.pth")

    env = clean_env(tmp_path)
    common = ["--tiny", "--opset", "18"]
    from_ckpt = run_export(
        [*common, "--pretrained", "--seed", str(other), "--hiera-checkpoint", str(ckpt / "hiera.safetensors"),
         "--dinov2-checkpoint", str(ckpt / "dinov2.pth"), "--out", str(tmp_path / "ckpt-model")],
        env, network=False,  # checkpoints only: nothing may be fetched
    )
    assert from_ckpt.returncode == 0, from_ckpt.stdout + from_ckpt.stderr
    random = run_export([*common, "--random-init", "--seed", str(seed), "--out", str(tmp_path / "random-model")], env)
    assert random.returncode == 0, random.stdout + random.stderr

    for name in ("hiera.onnx", "dinov2.onnx"):
        assert_same_graph(tmp_path / "ckpt-model" / name, tmp_path / "random-model" / name)
    a = json.loads((tmp_path / "ckpt-model" / "model.json").read_text())
    b = json.loads((tmp_path / "random-model" / "model.json").read_text())
    assert a["provenance"]["hiera"].endswith("(tiny fixture, checkpoint hiera.safetensors)")
    assert a["provenance"]["dinov2"].endswith("(tiny fixture, checkpoint dinov2.pth)")
    assert a["provenance"]["pretrained"] is True and b["provenance"]["pretrained"] is False
    for cfg in (a, b):
        del cfg["name"], cfg["provenance"]
    assert a == b


def test_offline_without_cache_fails_clearly(tmp_path):
    """--pretrained --offline with an empty HF cache: one line naming the weights and the way out."""
    proc = run_export(["--pretrained", "--offline", "--out", str(tmp_path / "out")], clean_env(tmp_path), network=False)
    line = assert_one_line_error(
        proc, HIERA_HUB_ID, "hiera_tiny_224", "not in the local Hugging Face cache", str(tmp_path / "hf"),
        "--offline forbids downloading", "without --offline", "--hiera-checkpoint",
    )
    assert "network" not in line  # it never tried: the socket stubs would have said so
    assert not (tmp_path / "out").exists()


def test_offline_uses_a_filled_cache(tmp_path):
    """--offline finds timm's weights in a Hugging Face cache laid out as `hf download` leaves it."""
    import torch
    from safetensors.torch import save_file

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / ("models--" + HIERA_HUB_ID.replace("/", "--"))
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    save_file({"pos_embed": torch.zeros(1, 2, 3)}, str(repo / "snapshots" / commit / "model.safetensors"))
    code = NO_NETWORK + (
        f"sys.path.insert(0, {str(SCRIPT.parent)!r})\n"
        "import export_onnx as ex\n"
        "ex.set_offline()\n"
        "path, source = ex.weights_file('hiera', 'hiera_tiny_224', None, True)\n"
        "print(path); print(source)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=clean_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path, source = proc.stdout.strip().splitlines()[-2:]
    assert Path(path).resolve() == (repo / "snapshots" / commit / "model.safetensors").resolve()
    assert source == f"{HIERA_HUB_ID}, local Hugging Face cache"


def test_no_network_is_a_one_line_error(tmp_path):
    """--pretrained without network (name resolution fails): one line, fast, naming model and ways out."""
    proc = run_export(["--pretrained", "--out", str(tmp_path / "out")], clean_env(tmp_path), network=False)
    assert_one_line_error(
        proc, f"cannot download hiera weights {HIERA_HUB_ID} (for hiera_tiny_224)", "https://huggingface.co",
        "no network", "Temporary failure in name resolution", "--offline", "--hiera-checkpoint",
    )


def test_download_failure_behind_a_proxy_is_a_one_line_error(tmp_path):
    """Behind a proxy the name check is skipped and huggingface_hub itself fails (after its
    retries, whose warnings must not reach the user); still one line."""
    env = clean_env(tmp_path, HTTPS_PROXY="http://proxy.invalid:3128", HTTP_PROXY="http://proxy.invalid:3128")
    proc = run_export(["--pretrained", "--out", str(tmp_path / "out")], env, network=False)
    assert_one_line_error(
        proc, f"cannot download hiera weights {HIERA_HUB_ID}", "no network", "--offline", "--hiera-checkpoint",
    )
    assert "from https://huggingface.co (into the Hugging Face cache" in proc.stdout  # it did try to download


def test_online_downloads_safetensors_first(tmp_path, monkeypatch):
    """Online, --pretrained asks the hub (local_files_only=False) for model.safetensors, then the .bin."""
    import huggingface_hub
    from huggingface_hub import constants

    try:
        from huggingface_hub.errors import EntryNotFoundError
    except ImportError:
        from huggingface_hub.utils import EntryNotFoundError

    weights = tmp_path / "pytorch_model.bin"
    weights.write_bytes(b"")
    calls = []

    def fake_download(repo_id, filename, revision=None, local_files_only=False):
        calls.append((repo_id, filename, local_files_only))
        if filename == "model.safetensors":
            raise EntryNotFoundError("404: no such file (test)")
        return str(weights)

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(ex, "_unresolvable", lambda endpoint: None)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    path, source = ex.weights_file("hiera", "hiera_tiny_224", None, False)
    assert calls == [(HIERA_HUB_ID, "model.safetensors", False), (HIERA_HUB_ID, "pytorch_model.bin", False)]
    assert path == weights and source == f"{HIERA_HUB_ID}, Hugging Face hub"


def test_tiny_pretrained_needs_both_checkpoints():
    with pytest.raises(SystemExit):
        ex.parse_args(["--tiny", "--pretrained", "--hiera-checkpoint", "h.safetensors", "--out", "x"])
    args = ex.parse_args(["--tiny", "--pretrained", "--hiera-checkpoint", "h", "--dinov2-checkpoint", "d", "--out", "x"])
    assert args.pretrained and args.tiny and not args.offline
