"""Reading a safetensors header from the first bytes of a file, as untrusted input (pure, no I/O).

A safetensors file is an 8-byte little-endian length N, N bytes of JSON, then the
tensors. Everything here is bounded: the length is checked against caps before
anything is read, the JSON is parsed only once it is complete and within the cap,
and every tensor entry is checked the way the safetensors loader checks it
(offsets inside the file, no overlaps, sizes matching the shape and dtype).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# What the check reads at most per adapter: the length, the header and nothing more (about 1 MiB).
HEADER_CAP = 1024 * 1024 - 8
# The safetensors format's own limit: a loader refuses longer headers (so the service would fail too).
FORMAT_HEADER_MAX = 100_000_000
# Bytes asked for by the first Range GET, as huggingface_hub does: most LoRA headers fit.
FIRST_READ = 100_000
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
                "F8_E4M3FNUZ": 1, "F8_E5M2FNUZ": 1, "C64": 8}
_MAX_TENSORS = 200_000


class NotSafetensors(ValueError):
    """The bytes are not (or not a valid) safetensors file: the service could not load it either."""


class HeaderTooLong(ValueError):
    """A plausible header longer than this check reads: not checked (unknown), not refused."""


@dataclass(frozen=True)
class Header:
    """A checked header: tensors by name and the ``__metadata__`` strings."""

    tensors: dict[str, dict[str, Any]]
    metadata: dict[str, str]
    length: int  # N, the JSON's length in bytes


def sniff(first: bytes, content_type: str = "") -> str | None:
    """What a file that is not safetensors looks like, from its first bytes (None if nothing known)."""
    head = first[:64].lstrip()
    lower = head.lower()
    if lower.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml", b"<")) or "html" in content_type.lower():
        return "an HTML page"
    if first[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"):
        return "a Python pickle (.pt/.bin/.ckpt)"
    if first[:4] == b"PK\x03\x04":
        return "a ZIP archive (a PyTorch .pt/.ckpt, or a zipped download)"
    if first[:4] == b"GGUF":
        return "a GGUF file"
    if lower.startswith((b"{", b"[")):
        return "a JSON document"
    return None


def header_length(first: bytes, total: int | None) -> int:
    """N from the first 8 bytes, checked against the format's limit and the file's size."""
    if len(first) < 8:
        raise NotSafetensors(f"the file has only {len(first)} byte(s), fewer than a safetensors header needs")
    (length,) = struct.unpack("<Q", first[:8])
    if length < 2 or length > FORMAT_HEADER_MAX:
        raise NotSafetensors(f"its first 8 bytes give a header length of {length:,} bytes, which no safetensors "
                             f"file has (at most {FORMAT_HEADER_MAX:,})")
    if total is not None and 8 + length > total:
        raise NotSafetensors(f"its header length ({length:,} bytes) runs past the end of the {total:,}-byte file")
    if length > HEADER_CAP:
        raise HeaderTooLong(f"its header is {length:,} bytes, more than the {HEADER_CAP + 8:,} bytes this check "
                            "reads per adapter")
    return length


def parse_header(data: bytes, length: int, total: int | None) -> Header:
    """The checked header from ``data`` (the first 8 + ``length`` bytes of a file of ``total`` bytes)."""
    raw = data[8:8 + length]
    if len(raw) != length:
        raise NotSafetensors(f"only {len(raw):,} of its {length:,} header bytes arrived")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotSafetensors("its header is not UTF-8 text") from None
    if not text.lstrip().startswith("{"):
        raise NotSafetensors("its header is not a JSON object")
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        raise NotSafetensors("its header is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise NotSafetensors("its header is not a JSON object")
    metadata = parsed.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise NotSafetensors("its __metadata__ is not a JSON object")
    if len(parsed) > _MAX_TENSORS:
        raise NotSafetensors(f"its header lists {len(parsed):,} tensors")
    data_size = None if total is None else total - 8 - length
    spans = []
    for name, info in parsed.items():
        spans.append((*_tensor_span(name, info, data_size), name))
    spans.sort()
    previous_end, previous_name = 0, None
    for begin, end, name in spans:
        if begin < previous_end:
            raise NotSafetensors(f"the data of tensors {_short(previous_name)} and {_short(name)} overlap")
        previous_end, previous_name = end, name
    return Header({k: v for k, v in parsed.items()}, {str(k): str(v) for k, v in metadata.items()}, length)


def _short(name: Any) -> str:
    text = repr(name)
    return text if len(text) <= 80 else text[:77] + "..."


def _tensor_span(name: str, info: Any, data_size: int | None) -> tuple[int, int]:
    """(begin, end) of one tensor's data, checked as the safetensors loader checks it."""
    where = f"tensor {_short(name)}"
    if not isinstance(info, Mapping):
        raise NotSafetensors(f"{where} is not described by a JSON object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or not isinstance(shape, list) or not isinstance(offsets, list):
        raise NotSafetensors(f"{where} lacks a dtype, shape or data_offsets")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape) or len(shape) > 8:
        raise NotSafetensors(f"{where} has an invalid shape")
    if len(offsets) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) for n in offsets):
        raise NotSafetensors(f"{where} has invalid data_offsets")
    begin, end = offsets
    if begin < 0 or end < begin:
        raise NotSafetensors(f"{where} has data_offsets that end before they begin")
    if data_size is not None and end > data_size:
        raise NotSafetensors(f"the data of {where} runs past the end of the file")
    width = _DTYPE_BYTES.get(dtype.upper())
    if width is not None:
        count = 1
        for n in shape:
            count *= n
        if count * width != end - begin:
            raise NotSafetensors(f"{where} is {dtype} {shape}, which needs {count * width:,} bytes, "
                                 f"but its data_offsets give {end - begin:,}")
    return begin, end
