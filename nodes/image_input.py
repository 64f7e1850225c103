"""ComfyUI IMAGE inputs into the edit model's input pictures, each converted and encoded once.

Every input's shape is checked before any pixel is touched, so a wrong count or
size is refused at once. Then pictures are converted and encoded one at a time:
at most one float32 temporary of one picture exists, and Cancel is honoured
between pictures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from ..api_client import EncodedPicture, InputError, encode_input_picture
from ..api_client.api.request import check_image_count
from ..api_client.images.upload import check_picture_size


def to_uint8_rgb(picture: torch.Tensor) -> np.ndarray:
    """One IMAGE picture ``[H, W, C]`` (float, 0..1) as C-contiguous ``uint8`` RGB ``[H, W, 3]``.

    Values are scaled by 255, rounded to nearest and clamped (NaN becomes 0), so
    a picture that came from 8-bit pixels gets exactly those pixels back. Alpha
    (C=4, or C=2 for grey + alpha) is dropped; grey (C=1) is repeated into RGB.
    """
    colour = picture[..., :3] if picture.shape[-1] >= 3 else picture[..., :1]
    # One float32 temporary, changed in place; float64 is never involved.
    scaled = colour.mul(255.0) if colour.dtype == torch.float32 else colour.to(torch.float32).mul_(255.0)
    pixels = scaled.nan_to_num_(0.0).round_().clamp_(0.0, 255.0).to(torch.uint8).cpu().numpy()
    if pixels.shape[-1] == 1:
        return np.repeat(pixels, 3, axis=-1)
    return np.ascontiguousarray(pixels)


def _batch(name: str, value: Any) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        kind = "nothing" if value is None else f"a {type(value).__name__}"
        raise InputError(f"{name}: must be an IMAGE; got {kind}. Connect a Load Image node or another IMAGE output.")
    batch = value.unsqueeze(0) if value.ndim == 3 else value
    if batch.ndim != 4 or batch.shape[-1] not in (1, 2, 3, 4) or not batch.is_floating_point():
        raise InputError(f"{name}: must be an IMAGE [batch, height, width, channels] of floats with 1 to 4 "
                         f"channels; got shape {tuple(value.shape)} {value.dtype}.")
    return batch


def _label(name: str, index: int, count: int) -> str:
    return name if count == 1 else f"{name} (picture {index + 1} of {count})"


def encode_edit_inputs(inputs: Mapping[str, Any], check_cancel: Callable[[], None] | None = None,
                       required: str = "image") -> list[EncodedPicture]:
    """Check and encode every picture of ``inputs`` (input name -> IMAGE or None), in input order."""
    batches = {name: _batch(name, value) for name, value in inputs.items() if value is not None or name == required}
    counts = {name: int(batch.shape[0]) for name, batch in batches.items()}
    detail = f" ({', '.join(f'{name}: {n}' for name, n in counts.items())})" if len(counts) > 1 else ""
    check_image_count(sum(counts.values()), " + ".join(inputs), detail)
    for name, batch in batches.items():
        check_picture_size(name, int(batch.shape[2]), int(batch.shape[1]))
    encoded = []
    for name, batch in batches.items():
        for i in range(counts[name]):
            if check_cancel:
                check_cancel()
            encoded.append(encode_input_picture(to_uint8_rgb(batch[i]), _label(name, i, counts[name])))
    return encoded
