"""Encoding the edit model's input pictures as data URIs, each once.

The rule, from measurements with ``bench/edit_encoding.py`` (figures in the
README, "Flux2 LoRA Edit"):

- **Lossless WebP** at the fastest effort, when it takes at most
  ``LOSSLESS_MAX_BYTES``: the picture arrives pixel-exact. It was 2-4x faster
  than PNG level 1 and never larger; PNG level 6 saves under 10% on photos at
  5x the time. PNG stands in for pictures wider or taller than WebP's 16383 pixels.
- Otherwise **JPEG quality 95**: for photo-like pictures above about 2
  megapixels it is 5-7x smaller than lossless and takes a few milliseconds more.

Pictures go in as ``uint8`` RGB ``[H, W, 3]`` and are written row by row, top
first, without metadata, so no EXIF orientation tag can turn them on the way.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..api.limits import EDIT_INPUT_PIXELS_MAX
from ..errors import InputError

LOSSLESS_MAX_BYTES = 4 * 2**20
JPEG_QUALITY = 95
WEBP_MAX_SIDE = 16383
JPEG_MAX_SIDE = 65500


@dataclass(frozen=True)
class EncodedPicture:
    """One input picture as the request carries it."""

    data_uri: str = field(repr=False)
    format: str  # "webp lossless", "png" or "jpeg q95"
    width: int
    height: int
    encoded_bytes: int

    def describe(self) -> dict[str, Any]:
        """What the info output shows about this picture (not the data itself)."""
        return {"width": self.width, "height": self.height, "sent_as": self.format, "bytes": self.encoded_bytes}


def check_picture_size(name: str, width: int, height: int) -> None:
    """Refuse a picture above the pack's pixel limit for edit inputs, before any work on it."""
    if width * height > EDIT_INPUT_PIXELS_MAX:
        raise InputError(
            f"{name}: must have at most {EDIT_INPUT_PIXELS_MAX:,} pixels (2048x2048); got {width}x{height} "
            f"({width * height:,}). Scale it down first, e.g. with ComfyUI's 'ImageScaleToTotalPixels' "
            "node set to 4 megapixels."
        )


def _save(image: Image.Image, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **options)
    return buffer.getvalue()


def encode_input_picture(pixels: np.ndarray, name: str = "image") -> EncodedPicture:
    """Encode a ``uint8`` RGB array ``[H, W, 3]`` by the rule above."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise InputError(f"{name}: must be RGB pixels [height, width, 3] of uint8; got {pixels.shape} {pixels.dtype}.")
    height, width = pixels.shape[:2]
    check_picture_size(name, width, height)
    image = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    if max(width, height) <= WEBP_MAX_SIDE:
        data, mime, label = _save(image, format="WEBP", lossless=True, quality=0, method=0), "webp", "webp lossless"
    else:
        data, mime, label = _save(image, format="PNG", compress_level=1), "png", "png"
    if len(data) > LOSSLESS_MAX_BYTES and max(width, height) <= JPEG_MAX_SIDE:
        data, mime, label = _save(image, format="JPEG", quality=JPEG_QUALITY), "jpeg", f"jpeg q{JPEG_QUALITY}"
    uri = f"data:image/{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return EncodedPicture(uri, label, width, height, len(data))


def encode_data_uri(pixels: np.ndarray) -> str:
    """The ``data:image/...;base64,`` URI of a ``uint8`` RGB array, by the rule above."""
    return encode_input_picture(pixels).data_uri
