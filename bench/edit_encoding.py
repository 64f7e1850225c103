"""Measure how to encode Edit's input pictures: size and time of PNG, WebP and JPEG.

    python bench/edit_encoding.py [--repeat 3] [--sizes 1024 2048]

Synthetic pictures stand in for real ones (nothing is downloaded):
- photo: smooth colour gradients plus sensor-like noise (sigma 4), like a camera picture;
- graphics: flat colour areas with hard edges and a few colours, like a logo or a render;
- standin: the stand-in server's generated pattern (gradients with stripes);
- noise: uniform random pixels, the incompressible worst case.

Prints one row per picture kind, size and encoder: encoded size (MiB and bits per
pixel), the base64 size the request body carries, and the best of ``--repeat`` encode
times. Finally it runs the pack's own ``encode_data_uri`` on the same pictures and
measures the largest request body it can produce.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api_client.api.limits import MODEL_EDIT
from api_client.api.request import build_requests
from api_client.images.upload import encode_data_uri
from api_client.standin import render_picture


def photo(side: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    channels = []
    for c in range(3):
        f = rng.uniform(0.5, 3.0, 4)
        base = (0.5 + 0.2 * np.sin(2 * np.pi * (f[0] * x + f[1] * y + c))
                + 0.15 * np.cos(2 * np.pi * (f[2] * x * y + f[3] * y * y)))
        channels.append(base * 255)
    picture = np.stack(channels, axis=-1) + rng.normal(0, 4, (side, side, 3)).astype(np.float32)
    return np.clip(np.rint(picture), 0, 255).astype(np.uint8)


def graphics(side: int, rng: np.random.Generator) -> np.ndarray:
    picture = np.empty((side, side, 3), np.uint8)
    picture[:] = (240, 236, 228)
    y, x = np.ogrid[0:side, 0:side]
    palette = rng.integers(0, 256, (6, 3), dtype=np.uint8)
    for i in range(24):
        colour = palette[i % len(palette)]
        cx, cy = rng.integers(0, side, 2).tolist()
        r = int(rng.integers(side // 20, side // 5))
        if i % 2:
            picture[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = colour
        else:
            picture[max(0, cy - r):cy + r, max(0, cx - r // 2):cx + r] = colour
    return picture


def standin(side: int, rng: np.random.Generator) -> np.ndarray:
    return render_picture(int(rng.integers(1, 1000)), 0, side, side, "bench")


def noise(side: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (side, side, 3), dtype=np.uint8)


KINDS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "photo": photo, "graphics": graphics, "standin": standin, "noise": noise,
}

ENCODERS: dict[str, dict] = {
    "png level 1": {"format": "PNG", "compress_level": 1},
    "png level 3": {"format": "PNG", "compress_level": 3},
    "png level 6": {"format": "PNG", "compress_level": 6},
    "png level 9": {"format": "PNG", "compress_level": 9},
    "webp lossless m0": {"format": "WEBP", "lossless": True, "quality": 0, "method": 0},
    "webp lossless m4": {"format": "WEBP", "lossless": True, "quality": 80, "method": 4},
    "webp q95 (lossy)": {"format": "WEBP", "quality": 95, "method": 4},
    "jpeg q95 4:2:0": {"format": "JPEG", "quality": 95},
    "jpeg q95 4:4:4": {"format": "JPEG", "quality": 95, "subsampling": 0},
}


def best_time(action: Callable[[], bytes], repeat: int) -> tuple[float, bytes]:
    best, out = float("inf"), b""
    for _ in range(repeat):
        start = time.perf_counter()
        out = action()
        best = min(best, time.perf_counter() - start)
    return best, out


def encode(pixels: np.ndarray, options: dict) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, **options)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    print(f"{'picture':<16}{'encoder':<20}{'MiB':>8}{'bits/px':>9}{'base64 MiB':>12}{'ms':>8}")
    pictures = {(kind, side): KINDS[kind](side, rng) for side in args.sizes for kind in args.kinds}
    for (kind, side), pixels in pictures.items():
        label = f"{kind} {side}²"
        for name, options in ENCODERS.items():
            seconds, data = best_time(lambda p=pixels, o=options: encode(p, o), args.repeat)
            mib = len(data) / 2**20
            print(f"{label:<16}{name:<20}{mib:8.2f}{8 * len(data) / pixels[..., 0].size:9.2f}"
                  f"{mib * 4 / 3:12.2f}{seconds * 1000:8.0f}")
        print()
    print("The pack's encode_data_uri (the rule in api_client/images/upload.py):")
    for (kind, side), pixels in pictures.items():
        seconds, uri = best_time(lambda p=pixels: encode_data_uri(p).encode(), args.repeat)
        kind_of = uri[5:uri.index(b";")].decode()
        if kind_of != "image/jpeg":  # lossless: must decode to the very same pixels
            decoded = Image.open(io.BytesIO(base64.b64decode(uri.split(b",")[1]))).convert("RGB")
            assert np.array_equal(pixels, np.asarray(decoded))
        print(f"{kind + f' {side}²':<16}{kind_of:<20}{len(uri) / 2**20:8.2f} MiB data URI{seconds * 1000:8.0f} ms")
    worst = [encode_data_uri(KINDS["noise"](2048, rng)) for _ in range(3)]
    body = build_requests(prompt="x", seed=1, num_images=1, guidance_scale=2.5, num_inference_steps=28,
                          acceleration="regular", output_format="png", enable_prompt_expansion=True,
                          enable_safety_checker=True, model=MODEL_EDIT, image_urls=worst)[0].to_body()
    print(f"Largest request body (3 random-noise pictures of 2048x2048): {len(json.dumps(body)) / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
