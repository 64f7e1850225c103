"""Image Size: a preset or a custom width x height for the API's image_size."""

from __future__ import annotations

from typing import Any

from ..api_client.api.limits import LIMITS, PRESET_PIXELS
from ..api_client.api.request import check_image_size, expected_pixels
from .widgets import CATEGORY, CUSTOM_PRESET, IMAGE_SIZE_TYPE, search_aliases, size_widget


class Flux2LoraImageSize:
    DESCRIPTION = (
        "Chooses the size of generated pictures: one of the API's presets, or custom width and height "
        "(512 to 2048, multiples of 32). Width and height are used only when preset is custom."
    )
    CATEGORY = CATEGORY
    SEARCH_ALIASES = search_aliases("image size", "size", "resolution", "width height", "aspect ratio")
    FUNCTION = "build"
    RETURN_TYPES = (IMAGE_SIZE_TYPE, "INT", "INT")
    RETURN_NAMES = ("image_size", "width", "height")
    OUTPUT_TOOLTIPS = (
        "Connect to a Flux2 LoRA node's image_size.",
        "Width in pixels of the pictures this size gives.",
        "Height in pixels of the pictures this size gives.",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        presets = [CUSTOM_PRESET, *LIMITS.size_presets]
        sizes = ", ".join(f"{name} {w}x{h}" for name, (w, h) in PRESET_PIXELS.items())
        default_w, default_h = PRESET_PIXELS[LIMITS.size_default]
        return {
            "required": {
                "preset": (presets, {
                    "default": LIMITS.size_default,
                    "tooltip": f"A preset ({sizes}), or custom to use width and height.",
                    # Read by the frontend extension to show the resulting size (web/js/flux2_lora.js).
                    "flux2_pixels": {name: [w, h] for name, (w, h) in PRESET_PIXELS.items()},
                }),
                "width": size_widget(default_w, "Width"),
                "height": size_widget(default_h, "Height"),
            }
        }

    def build(self, preset: str, width: int, height: int) -> tuple[Any, int, int]:
        if preset == CUSTOM_PRESET:
            size = check_image_size({"width": width, "height": height})
        else:
            size = check_image_size(preset)
        pixel_width, pixel_height = expected_pixels(size)
        return size, pixel_width, pixel_height
