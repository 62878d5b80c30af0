#!/usr/bin/env python3
"""Small PPM/PGM images for the C example and the C tests (C has no PNG decoder; binary
PPM/PGM is trivial to read). Crops of the bundled demo texture tests/fixtures/images/sample.png:

  data/good/good_{0..3}.ppm   four defect-free 96x72 RGB crops at different offsets (the bank)
  data/test/good_4.ppm        a fifth defect-free crop
  data/test/scratch.ppm       a defect-free crop with a dark diagonal scratch drawn on it
  data/test/spot_gray.pgm     a gray crop with a bright round spot (exercises GRAY8 input)

Deterministic (no randomness). Regenerate:
  /work/venv-dev/bin/python examples/c/make_images.py     (needs pillow)
"""

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
W, H = 96, 72
OFFSETS = [(0, 0), (110, 20), (200, 150), (40, 160), (220, 10)]


def crop(src: Image.Image, i: int) -> Image.Image:
    x, y = OFFSETS[i]
    return src.crop((x, y, x + W, y + H))


def main() -> None:
    src = Image.open(ROOT / "tests/fixtures/images/sample.png").convert("RGB")
    good, test = HERE / "data/good", HERE / "data/test"
    good.mkdir(parents=True, exist_ok=True)
    test.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        crop(src, i).save(good / f"good_{i}.ppm")
    crop(src, 4).save(test / "good_4.ppm")
    scratch = crop(src, 1)
    ImageDraw.Draw(scratch).line([(20, 12), (70, 55)], fill=(25, 20, 15), width=3)
    scratch.save(test / "scratch.ppm")
    spot = crop(src, 3).convert("L")
    ImageDraw.Draw(spot).ellipse([(40, 30), (52, 42)], fill=245)
    spot.save(test / "spot_gray.pgm")
    for p in sorted((HERE / "data").rglob("*.p?m")):
        print(p.relative_to(ROOT), p.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
