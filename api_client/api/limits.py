"""The API's limits, enums and defaults: the one place the pack reads them from.

Values that the official schema states are read from the bundled copy of it
(``schema/flux-2-lora.openapi.json``), so a schema update changes the widgets,
the validation and the stand-in server together. Rules the schema only states in
prose (multiples of 32) or that belong to the pack (the node's batch size) are
written here once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")
N = TypeVar("N", int, float)

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


class _Read(Generic[T]):
    """A limit read from the bundled schema when first asked (by ``read``); importing the pack reads no file."""

    def __init__(self, read: Callable[[], T]) -> None:
        self.read = read

    def __get__(self, limits: object, owner: type | None = None) -> T:
        return self.read()


def _enum(name: str) -> list[str]:
    return list(_props()[name]["enum"])


def _default(name: str) -> str:
    return str(_props()[name]["default"])


def _range(schema: dict[str, Any], cast: Callable[[Any], N], low: str = "minimum",
           high: str = "maximum") -> tuple[N, N]:
    return cast(schema[low]), cast(schema[high])


class _Limits:
    """The limits, enums and defaults the schema states, each read when first asked."""

    prompt_max_chars = _Read(lambda: int(_props()["prompt"]["maxLength"]))
    seed_min = _Read(lambda: int(_props()["seed"]["minimum"]))
    images_per_request_max = _Read(lambda: int(_props()["num_images"]["maximum"]))
    guidance_range = _Read(lambda: _range(_props()["guidance_scale"], float))
    steps_range = _Read(lambda: _range(_props()["num_inference_steps"], int))
    accelerations = _Read(lambda: _enum("acceleration"))
    acceleration_default = _Read(lambda: _default("acceleration"))
    output_formats = _Read(lambda: _enum("output_format"))
    output_format_default = _Read(lambda: _default("output_format"))
    size_presets = _Read(lambda: list(_size_preset_schema()["enum"]))
    size_default = _Read(lambda: _default("image_size"))
    size_range = _Read(lambda: _range(_size_object_schema()["properties"]["width"], int))
    loras_max = _Read(lambda: int(_props()["loras"]["maxItems"]))
    lora_scale_range = _Read(lambda: _range(_props()["loras"]["items"]["properties"]["scale"], float))
    edit_images_range = _Read(lambda: _range(_props(MODEL_EDIT)["image_urls"], int, "minItems", "maxItems"))


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
