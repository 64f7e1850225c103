"""The API's limits, enums and defaults: the one place the pack reads them from.

Values that the official schema states are read from the bundled copy of it
(``schema/flux-2-lora.openapi.json``), so a schema update changes the widgets,
the validation and the stand-in server together. Rules the schema only states in
prose (multiples of 32) or that belong to the pack (the node's batch size) are
written here once.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"

MODEL_GENERATE = "blackforestlabs/flux-2-lora"
MODEL_EDIT = "blackforestlabs/flux-2-lora-edit"
SCHEMA_FILES = {
    MODEL_GENERATE: SCHEMA_DIR / "flux-2-lora.openapi.json",
    MODEL_EDIT: SCHEMA_DIR / "flux-2-lora-edit.openapi.json",
}


@cache
def request_schema(model: str = MODEL_GENERATE) -> dict[str, Any]:
    """The JSON schema of the request body for ``model``, from the bundled OpenAPI file."""
    spec = json.loads(SCHEMA_FILES[model].read_text(encoding="utf-8"))
    post = spec["paths"]["/v1/images/generations"]["post"]
    return post["requestBody"]["content"]["application/json"]["schema"]


def _props(model: str = MODEL_GENERATE) -> dict[str, Any]:
    return request_schema(model)["properties"]


def _size_object_schema() -> dict[str, Any]:
    return next(s for s in _props()["image_size"]["anyOf"] if s.get("type") == "object")


def _size_preset_schema() -> dict[str, Any]:
    return next(s for s in _props()["image_size"]["anyOf"] if s.get("type") == "string")


class _Limits:
    """Lazily read limits, so importing the pack reads no file."""

    @property
    def prompt_max_chars(self) -> int:
        return int(_props()["prompt"]["maxLength"])

    @property
    def seed_min(self) -> int:
        return int(_props()["seed"]["minimum"])

    @property
    def images_per_request_max(self) -> int:
        return int(_props()["num_images"]["maximum"])

    @property
    def guidance_range(self) -> tuple[float, float]:
        g = _props()["guidance_scale"]
        return float(g["minimum"]), float(g["maximum"])

    @property
    def steps_range(self) -> tuple[int, int]:
        s = _props()["num_inference_steps"]
        return int(s["minimum"]), int(s["maximum"])

    @property
    def accelerations(self) -> list[str]:
        return list(_props()["acceleration"]["enum"])

    @property
    def acceleration_default(self) -> str:
        return str(_props()["acceleration"]["default"])

    @property
    def output_formats(self) -> list[str]:
        return list(_props()["output_format"]["enum"])

    @property
    def output_format_default(self) -> str:
        return str(_props()["output_format"]["default"])

    @property
    def size_presets(self) -> list[str]:
        return list(_size_preset_schema()["enum"])

    @property
    def size_default(self) -> str:
        return str(_props()["image_size"]["default"])

    @property
    def size_range(self) -> tuple[int, int]:
        w = _size_object_schema()["properties"]["width"]
        return int(w["minimum"]), int(w["maximum"])

    @property
    def loras_max(self) -> int:
        return int(_props()["loras"]["maxItems"])

    @property
    def lora_scale_range(self) -> tuple[float, float]:
        s = _props()["loras"]["items"]["properties"]["scale"]
        return float(s["minimum"]), float(s["maximum"])

    @property
    def edit_images_range(self) -> tuple[int, int]:
        s = _props(MODEL_EDIT)["image_urls"]
        return int(s["minItems"]), int(s["maxItems"])


LIMITS = _Limits()

# Stated only in the schema's prose: "the value must be a multiple of 32".
SIZE_MULTIPLE = 32

# The pack's own limits (the node contract), not the API's.
SEED_MAX = 2_147_483_647
NODE_IMAGES_MAX = 16
GUIDANCE_DEFAULT = 2.5
STEPS_DEFAULT = 28
LORA_SCALE_DEFAULT = 1.0
# Edit's input pictures: at most the largest picture the API generates (2048x2048),
# which bounds the request body (see api_client/images/upload.py and the README).
EDIT_INPUT_PIXELS_MAX = 2048 * 2048

# Pixel sizes of the presets (from the API documentation), width x height.
PRESET_PIXELS: dict[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
