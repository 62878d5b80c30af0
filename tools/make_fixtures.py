#!/usr/bin/env python3
"""Regenerate every committed fixture made by Python, in dependency order.

1. models/tiny/                       tools/export_onnx.py --tiny --random-init --out models/tiny
2. tests/fixtures/encoder/            tiny_refs.safetensors (ORT outputs of models/tiny)
3. tests/fixtures/prep/               source PNGs + refs.safetensors (PIL resize + normalise)
4. tests/fixtures/images/sample.png   the demo image
5. tests/fixtures/int8/tiny-dynamic/  tools/quantize.py --mode dynamic of models/tiny

Each step is its own script and can be run alone; this only runs them in order with the same
interpreter. Everything is seeded, and the ONNX export is byte-reproducible with the versions
in tools/requirements.txt, so rerunning should leave `git status` clean.

Usage: /work/venv-dev/bin/python tools/make_fixtures.py [--skip-export]
"""

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--skip-export", action="store_true", help="keep models/tiny as it is (no torch needed)")
    args = p.parse_args()
    if not args.skip_export:
        run("tools/export_onnx.py", "--tiny", "--random-init", "--out", "models/tiny")
    run("tests/fixtures/encoder/make_refs.py")
    run("tests/fixtures/prep/make_refs.py")
    run("tests/fixtures/images/make_sample.py")
    int8 = ROOT / "tests/fixtures/int8/tiny-dynamic"
    if int8.exists():
        import shutil

        shutil.rmtree(int8)
    run("tools/quantize.py", "--model", "models/tiny", "--out", str(int8.relative_to(ROOT)), "--mode", "dynamic")


if __name__ == "__main__":
    main()
