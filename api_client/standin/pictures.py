"""Picture making for the stand-in server: synthetic renders, encoding, decoding.

Everything here is pure (no server state) so tests and clients can call
``render_picture`` themselves and compare pixels with what the server sent.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import io
import json
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Output formats the API knows, mapped to (Pillow format, file extension, MIME type).
FORMATS: dict[str, tuple[str, str, str]] = {
    "png": ("PNG", "png", "image/png"),
    "jpeg": ("JPEG", "jpeg", "image/jpeg"),
    "webp": ("WEBP", "webp", "image/webp"),
}
CONTENT_TYPES: dict[str, str] = {ext: mime for _, ext, mime in FORMATS.values()}
CONTENT_TYPES["jpg"] = "image/jpeg"

# Decoding inputs larger than this would let a hostile client exhaust memory.
MAX_INPUT_PIXELS = 64 * 1024 * 1024

BOMB_SIDE = 60000
# Pictures smaller than this on either side carry no label.
LABEL_MIN_SIDE = 128


def _canonical_loras(loras: Any) -> Any:
    """Make ``None`` and ``[]`` hash the same: both mean "no LoRA"."""
    return [] if loras is None else loras


def render_picture(
    seed: int,
    index: int,
    width: int,
    height: int,
    prompt: str = "",
    loras: list[dict[str, Any]] | None = None,
) -> np.ndarray:
    """Render the deterministic stand-in picture for one generated image.

    The result is a C-contiguous ``uint8`` array of shape ``(height, width, 3)``.
    All inputs go through SHA-256, so any change in seed, index, size, prompt or
    LoRA list gives a different picture. In the top-left corner the picture says
    what was asked (``label_lines``: size, seed, its place in the request, the LoRAs
    with their scales) in Pillow's built-in font, so offline previews can be told
    apart. The pattern is a wrapped colour
    gradient XOR-ed with diagonal stripes, so it is visibly structured (handy
    when eyeballing previews) and cheap: a 2048x2048 picture takes a few tens of
    milliseconds because every step is a broadcast uint8/uint16 numpy operation.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"picture size must be positive, got {width}x{height}")
    key = json.dumps(
        [int(seed), int(index), int(width), int(height), str(prompt), _canonical_loras(loras)],
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    h = np.frombuffer(hashlib.sha256(key.encode("utf-8")).digest(), dtype=np.uint8).astype(np.int64)

    x = np.arange(width, dtype=np.int64)
    y = np.arange(height, dtype=np.int64)
    # Per-channel gradients: a few wraps across the picture, hash-chosen phase.
    # Built as 1-D rows/columns so the expensive 2-D work is a single add.
    wraps_x = 1 + h[0:3] % 3
    wraps_y = 1 + h[3:6] % 3
    gx = ((x[:, None] * wraps_x[None, :] * 256) // width + h[6:9][None, :]) % 256
    gy = ((y[:, None] * wraps_y[None, :] * 256) // height + h[9:12][None, :]) % 256
    out = gx.astype(np.uint8)[None, :, :] + gy.astype(np.uint8)[:, None, :]  # wraps mod 256

    # Diagonal stripes: bit k of (a*x + b*y). Computing in uint16 keeps the low
    # bits exact even after wrap-around, and halves the memory traffic.
    a = int(1 + h[12] % 5)
    b = int(1 + h[13] % 5)
    k = int(3 + h[14] % 4)
    xa = ((x * a) & 0xFFFF).astype(np.uint16)
    yb = ((y * b) & 0xFFFF).astype(np.uint16)
    stripes = (((xa[None, :] + yb[:, None]) >> k) & 1).astype(np.uint8)
    mask = (h[15:18] | 0x40).astype(np.uint8)  # never all-zero, so stripes always show
    out ^= stripes[:, :, None] * mask[None, None, :]
    _stamp_label(out, label_lines(seed, index, width, height, loras))
    return np.ascontiguousarray(out)


def _lora_name(path: Any) -> str:
    """A LoRA's short name: a URL's file name, or the Hugging Face name as given; long ones cut."""
    text = str(path)
    if "://" in text:
        text = text.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or text
    return text if len(text) <= 40 else text[:37] + "..."


def label_lines(seed: int, index: int, width: int, height: int,
                loras: list[dict[str, Any]] | None = None) -> list[str]:
    """The text stamped on a stand-in picture: what was asked, so offline previews can be told apart.

    ``index`` is the picture's place in its request (request k of a split batch has seed + k).
    """
    lines = ["stand-in picture (offline)", f"{width}x{height}  seed {seed}  picture {index + 1} of its request"]
    for lora in _canonical_loras(loras):
        scale = lora.get("scale", "default") if isinstance(lora, dict) else "?"
        name = _lora_name(lora.get("path", "?") if isinstance(lora, dict) else lora)
        lines.append(f"LoRA {name}  scale {scale}")
    if not _canonical_loras(loras):
        lines.append("no LoRA")
    return lines


@functools.lru_cache(maxsize=16)
def _label_font(size: int) -> tuple[Any, int]:
    """Pillow's built-in font at ``size`` pixels, and how much to enlarge what it draws.

    Pillow 10.1+ with FreeType scales its built-in font (no font file needed); older
    Pillow, or one built without FreeType, only has an 11-pixel bitmap font, which is
    drawn at its size and enlarged (blocky but legible).
    """
    try:
        return ImageFont.load_default(size=size), 1
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default(), max(1, round(size / 11))


@functools.lru_cache(maxsize=64)
def _label_mask(lines: tuple[str, ...], size: int) -> np.ndarray:
    """White-on-black text of ``lines`` as a ``uint8`` mask (cached: a batch repeats most labels)."""
    font, enlarge = _label_font(size)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    boxes = [probe.textbbox((0, 0), line, font=font) for line in lines]
    step = max(b[3] for b in boxes) + max(2, size // (4 * enlarge))
    pad = max(2, size // (3 * enlarge))
    mask = Image.new("L", (max(b[2] for b in boxes) + 2 * pad, step * len(lines) + 2 * pad - step // 4), 0)
    draw = ImageDraw.Draw(mask)
    for i, line in enumerate(lines):
        draw.text((pad, pad + i * step), line, fill=255, font=font)
    if enlarge > 1:
        mask = mask.resize((mask.width * enlarge, mask.height * enlarge), Image.NEAREST)
    return np.asarray(mask)


def _stamp_label(out: np.ndarray, lines: list[str]) -> None:
    """Write ``lines`` in the top-left corner of ``out``, white on a darkened box, cut at the edges.

    Integer arithmetic only, so the same request gives the same pixels every time.
    """
    height, width = out.shape[:2]
    if width < LABEL_MIN_SIDE or height < LABEL_MIN_SIDE:
        return  # no room for legible text (only fault-made sizes are this small; the API's start at 512)
    size = max(10, min(48, width // 26, height // 12))
    mask = _label_mask(tuple(lines), size)
    while size > 10 and mask.shape[1] > width - size:  # long LoRA names: smaller text rather than cut
        size -= 2
        mask = _label_mask(tuple(lines), size)
    margin = size // 2
    h = min(mask.shape[0], height - margin)
    w = min(mask.shape[1], width - margin)
    if h <= 0 or w <= 0:
        return
    region = out[margin:margin + h, margin:margin + w]
    region //= 4  # the box: a quarter of the pattern's brightness, so white text always stands out
    np.maximum(region, mask[:h, :w, None], out=region)


def encode_picture(array: np.ndarray, fmt: str) -> bytes:
    """Encode an RGB ``uint8`` array as ``png``, ``webp`` (lossless) or ``jpeg``.

    PNG uses ``compress_level=1`` and WebP ``method=0`` because the stand-in is
    for tests: speed matters more than size, and both stay pixel-exact.
    """
    fmt = "jpeg" if fmt == "jpg" else fmt
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {sorted(FORMATS)}")
    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), mode="RGB")
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, "PNG", compress_level=1)
    elif fmt == "webp":
        image.save(buf, "WEBP", lossless=True, quality=0, method=0)
    else:
        image.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def decode_picture(data: bytes) -> np.ndarray:
    """Decode image bytes to an RGB ``uint8`` array, refusing absurd sizes."""
    with Image.open(io.BytesIO(data)) as image:
        w, h = image.size
        if w * h > MAX_INPUT_PIXELS:
            raise ValueError(f"image is {w}x{h}, too large for the stand-in")
        return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def decode_data_uri(uri: str) -> bytes:
    """Return the bytes of a ``data:image/...;base64,...`` URI (ValueError if malformed)."""
    head, sep, payload = uri.partition(",")
    if not sep or not head.startswith("data:image/") or not head.endswith(";base64"):
        raise ValueError("not a data:image/...;base64, URI")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"invalid base64 payload ({exc})") from None


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@functools.lru_cache(maxsize=1)
def bomb_png() -> bytes:
    """A valid ~440 KB PNG claiming 60000x60000 pixels (1-bit, all black).

    Compressing the 450 MB of raw scanlines directly takes about a second, so
    the deflate stream is assembled from one pre-compressed 1 MiB segment of
    zeros: after ``Z_FULL_FLUSH`` the compressor state resets, which makes
    every such segment byte-identical and safe to repeat. The Adler-32 of n
    zero bytes is simply ``(n % 65521) << 16 | 1``.
    """
    row = 1 + (BOMB_SIDE + 7) // 8  # filter byte + packed 1-bit pixels, all zero
    total = row * BOMB_SIDE
    seg_len = 1 << 20
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = comp.compress(bytes(seg_len)) + comp.flush(zlib.Z_FULL_FLUSH)
    count, rest = divmod(total, seg_len)
    tail = comp.compress(bytes(rest)) + comp.flush(zlib.Z_FINISH)
    adler = ((total % 65521) << 16) | 1
    idat = b"\x78\xda" + segment * count + tail + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", BOMB_SIDE, BOMB_SIDE, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def exif_jpeg(array: np.ndarray, orientation: int) -> bytes:
    """Encode ``array`` as JPEG (quality 95) tagged with EXIF ``Orientation``."""
    exif = Image.Exif()
    exif[0x0112] = int(orientation)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), mode="RGB").save(
        buf, "JPEG", quality=95, exif=exif.tobytes()
    )
    return buf.getvalue()


def credits_for(sizes: list[tuple[int, int]]) -> int:
    """Credits charged for pictures of the given (width, height) sizes.

    Formula: 120000 per picture per started megapixel (2**20 pixels), i.e.
    ``sum(120000 * ceil(w*h / 1048576))``; 1024x1024 costs 120000, 1024x768
    costs 120000 too, 2048x2048 costs 480000.
    """
    return sum(120000 * (-(-(w * h) // 1048576)) for w, h in sizes)
