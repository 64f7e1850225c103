"""Decoding downloaded pictures into uint8 RGB arrays, safely.

Only PNG, JPEG and WebP are opened. The pixel count is checked from the header
before any pixel is decoded, and Pillow's own decompression-bomb guard stays on.
EXIF orientation is applied; every mode ends up as 3-channel RGB.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageOps

from ..errors import ImageDecodeError

# Four times the largest size the API offers (2048x2048): generous, yet bounded.
MAX_DECODE_PIXELS = 4 * 2048 * 2048
_FORMATS = ("PNG", "JPEG", "WEBP")
# Rows per strip when reading pixels out: 2048 x 64 x 3 bytes stays well inside the CPU cache.
STRIP_ROWS = 64


def sniff_format(data: bytes) -> str | None:
    """PNG, JPEG or WEBP from the first bytes, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def open_image(data: bytes, max_pixels: int = MAX_DECODE_PIXELS) -> Image.Image:
    """Open ``data`` lazily (header only) after checking the format and pixel count."""
    if sniff_format(data) is None:
        start = data[:16].decode("latin-1").encode("unicode_escape").decode("ascii")
        raise ImageDecodeError(
            f"The downloaded file is not a PNG, JPEG or WebP picture ({len(data)} bytes, starting {start!r})."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageDecodeError(
            "The picture claims far more pixels than the API produces (a decompression bomb?); refused."
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"The downloaded picture cannot be read: {exc}.") from None
    width, height = image.size
    if width <= 0 or height <= 0 or width * height > max_pixels:
        raise ImageDecodeError(
            f"The picture claims {width}x{height} pixels, above the {max_pixels:,} pixel limit; refused."
        )
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits instead of clipping at 255.
        wide = np.asarray(image, dtype=np.uint32)
        shift = 8 if image.mode.startswith("I;16") or wide.max(initial=0) > 255 else 0
        image = Image.fromarray((wide >> shift).astype(np.uint8), "L")
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


class DecodedImage:
    """A checked, fully decoded picture in RGB, read out in strips of rows.

    Reading strips instead of one full-size array means no full-size copy of
    the pixels is ever made, and each strip is still in the CPU cache when the
    caller converts it.
    """

    def __init__(self, image: Image.Image) -> None:
        self._image = image
        self.width, self.height = image.size

    def strips(self, rows: int = STRIP_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, uint8 array [rows, W, 3]) from top to bottom."""
        for top in range(0, self.height, rows):
            bottom = min(self.height, top + rows)
            yield top, np.asarray(self._image.crop((0, top, self.width, bottom)))

    def to_array(self) -> np.ndarray:
        """All pixels as one C-contiguous uint8 array [H, W, 3]."""
        return np.asarray(self._image)


def load_image(data: bytes, max_pixels: int = MAX_DECODE_PIXELS) -> DecodedImage:
    """Decode PNG/JPEG/WebP bytes to RGB, EXIF orientation applied, ready to read out."""
    image = open_image(data, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            rgb = _to_rgb(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"The downloaded picture is damaged or truncated: {exc}.") from None
    if rgb.mode != "RGB":
        raise ImageDecodeError(f"The picture decoded to an unexpected mode {rgb.mode}.")
    return DecodedImage(rgb)


def decode_image(data: bytes, max_pixels: int = MAX_DECODE_PIXELS) -> np.ndarray:
    """Decode PNG/JPEG/WebP bytes to a C-contiguous uint8 array [H, W, 3], EXIF orientation applied."""
    return load_image(data, max_pixels).to_array()
