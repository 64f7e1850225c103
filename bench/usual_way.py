"""The baseline: how API nodes in other packs commonly fetch a batch.

One request after another, one download at a time, then
PIL -> ``np.array(...) / 255`` (float64) -> ``np.stack`` -> torch. Written here
only to be measured against; the pack itself never does this.
"""

from __future__ import annotations

import io

import numpy as np
import requests
import torch
from PIL import Image


def usual_way(base_url: str, key: str, body: dict, num_images: int, per_request: int = 4) -> torch.Tensor:
    """Generate ``num_images`` pictures the common way and return them as an IMAGE tensor."""
    pictures = []
    for k in range(-(-num_images // per_request)):
        count = min(per_request, num_images - k * per_request)
        answer = requests.post(
            f"{base_url}/images/generations", json={**body, "seed": body["seed"] + k, "num_images": count},
            headers={"Authorization": f"Bearer {key}"}, timeout=180,
        )
        answer.raise_for_status()
        for item in answer.json()["data"][:count]:
            data = requests.get(item["url"], timeout=60).content
            image = Image.open(io.BytesIO(data)).convert("RGB")
            pictures.append(np.array(image) / 255)
    return torch.from_numpy(np.stack(pictures)).float()
