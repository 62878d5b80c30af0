"""Seeds for the image_view fuzz target, in the byte layout `arbitrary` decodes `Input` from:
little-endian width u32, height u32, stride usize (u64), format u32, max_side u32,
max_pixels u64, target_w u8, target_h u8, then the pixel bytes (the rest of the input)."""
import struct
from pathlib import Path

out = Path(__file__).parent / "corpus" / "image_view"
out.mkdir(parents=True, exist_ok=True)
CH = {0: 1, 1: 3, 2: 3, 3: 4, 4: 4}


def seed(name, w, h, stride, fmt, max_side=16384, max_pixels=64 << 20, tw=31, th=23, pixels=None):
    if pixels is None:
        n = stride * (h - 1) + w * CH.get(fmt, 1) if h > 0 else 0
        pixels = bytes((i * 37) & 0xFF for i in range(max(n, 0)))
    data = struct.pack("<IIQIIQBB", w, h, stride, fmt, max_side, max_pixels, tw, th) + pixels
    (out / name).write_bytes(data)


seed("gray-8x6-packed", 8, 6, 8, 0)
seed("rgb-16x9-padded", 16, 9, 52, 1)
seed("bgr-5x5", 5, 5, 15, 2)
seed("rgba-12x4-padded", 12, 4, 64, 3, tw=63, th=0)
seed("bgra-1x1", 1, 1, 4, 4)
seed("gray-1x40-tall", 1, 40, 3, 0, tw=0, th=63)
seed("rgb-over-side", 300, 2, 900, 1, max_side=256)
seed("rgb-over-pixels", 20, 20, 60, 1, max_pixels=399)
seed("rgb-short-buffer", 10, 10, 30, 1, pixels=b"\x00" * 100)
seed("zero-size", 0, 5, 0, 1, pixels=b"")
seed("stride-overflow", 4, 0xFFFFFFFF, 1 << 62, 0, max_side=0xFFFFFFFF, max_pixels=(1 << 64) - 1, pixels=b"\x01" * 16)
seed("bad-format", 4, 4, 16, 9)
