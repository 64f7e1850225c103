"""Every widget the nodes show, defined once from the API's limits.

Generate and Edit share the same settings, in the same order (the public
contract: saved workflows map widget values by position).
"""

from __future__ import annotations

from typing import Any

from ..api_client.api.limits import (
    GUIDANCE_DEFAULT,
    LIMITS,
    LORA_SCALE_DEFAULT,
    NODE_IMAGES_MAX,
    SEED_MAX,
    SIZE_MULTIPLE,
    STEPS_DEFAULT,
)

CATEGORY = "Flux2 LoRA"
# What users type into ComfyUI's node search to find this pack's nodes. ComfyUI releases after 0.3.64 send a
# node class's SEARCH_ALIASES (a list of strings) as "search_aliases" in /object_info, and the frontend's node
# search matches them; 0.3.64 ignores the attribute.
PACK_SEARCH_ALIASES = ("flux", "flux2", "flux.2", "lora", "aimlapi", "aiml api", "remote", "api")


def search_aliases(*own: str) -> list[str]:
    """A node's SEARCH_ALIASES: the pack's words, then the node's own (each once, in order)."""
    return list(dict.fromkeys((*PACK_SEARCH_ALIASES, *own)))
IMAGE_SIZE_TYPE = "FLUX2_IMAGE_SIZE"
LORAS_TYPE = "FLUX2_LORAS"
CUSTOM_PRESET = "custom"

Widget = tuple[Any, ...]


def seed_widget() -> Widget:
    return ("INT", {
        "default": 1, "min": LIMITS.seed_min, "max": SEED_MAX, "control_after_generate": True,
        "tooltip": ("Same seed, prompt and settings give the same picture. Request k of a batch uses seed + k; "
                    "past 2147483647 it goes on from 1."),
    })


def generation_settings() -> dict[str, Widget]:
    """The required inputs of Generate (and Edit, after its image), in contract order."""
    steps_low, steps_high = LIMITS.steps_range
    guidance_low, guidance_high = LIMITS.guidance_range
    return {
        "prompt": ("STRING", {
            "multiline": True, "default": "",
            "tooltip": f"What to generate, 1 to {LIMITS.prompt_max_chars} characters. "
                       "Include your LoRA's trigger word if it has one.",
        }),
        "seed": seed_widget(),
        "num_images": ("INT", {
            "default": 1, "min": 1, "max": NODE_IMAGES_MAX,
            "tooltip": f"Pictures to generate. Above {LIMITS.images_per_request_max}, the pack sends several "
                       "requests at once (each billed). All pictures come out as one IMAGE batch.",
        }),
        "guidance_scale": ("FLOAT", {
            "default": GUIDANCE_DEFAULT, "min": guidance_low, "max": guidance_high, "step": 0.1, "round": 0.01,
            "tooltip": "How closely to follow the prompt (CFG). Around 2.5 suits FLUX.2; higher is stricter.",
        }),
        "num_inference_steps": ("INT", {
            "default": STEPS_DEFAULT, "min": steps_low, "max": steps_high,
            "tooltip": "Denoising steps: more is slower and often finer.",
        }),
        "acceleration": (LIMITS.accelerations, {
            "default": LIMITS.acceleration_default,
            "tooltip": "Speed of generation: higher is faster, possibly at some cost in quality.",
        }),
        # The default first (png, jpeg, webp), as the contract lists them.
        "output_format": (sorted(LIMITS.output_formats, key=lambda f: f != LIMITS.output_format_default), {
            "default": LIMITS.output_format_default,
            "tooltip": "File format the API returns: png and webp arrive pixel-exact, jpeg is smaller.",
        }),
        "enable_prompt_expansion": ("BOOLEAN", {
            "default": True, "tooltip": "Let the API add detail to the prompt before generating.",
        }),
        "enable_safety_checker": ("BOOLEAN", {
            "default": True, "tooltip": "Let the API's safety checker filter the pictures.",
        }),
    }


def generation_optional() -> dict[str, Widget]:
    """The optional sockets shared by Generate and Edit."""
    return {
        "image_size": (IMAGE_SIZE_TYPE, {
            "tooltip": f"From the Image Size node. Unconnected: the API default {LIMITS.size_default}.",
        }),
        "loras": (LORAS_TYPE, {
            "tooltip": f"From a Flux2 LoRA Adapter chain, up to {LIMITS.loras_max} LoRAs.",
        }),
    }


def cache_optional() -> dict[str, Widget]:
    """The last optional input of Generate and Edit: whether to use the result cache."""
    return {
        "use_cache": ("BOOLEAN", {
            "default": True,
            "tooltip": "Reuse pictures saved from an earlier run with exactly the same settings and seed, "
                       "without sending a request (0 credits). Off: always ask the API (billed).",
        }),
    }


def size_widget(default: int, axis: str) -> Widget:
    low, high = LIMITS.size_range
    return ("INT", {
        "default": default, "min": low, "max": high, "step": SIZE_MULTIPLE,
        "tooltip": f"{axis} in pixels, {low} to {high} in steps of {SIZE_MULTIPLE}. Used when preset is custom.",
    })


def lora_scale_widget() -> Widget:
    low, high = LIMITS.lora_scale_range
    return ("FLOAT", {
        "default": LORA_SCALE_DEFAULT, "min": low, "max": high, "step": 0.05, "round": 0.01,
        "tooltip": f"Strength of this LoRA, {low:g} to {high:g}. 1.0 is the trained strength; 0 turns it off.",
    })


class GenerationNode:
    """What Generate and Edit share: the category, the outputs and the shape of the inputs.

    The outputs are the pictures and the info JSON (``run.node_output`` returns them in this order).
    The inputs: the node's own pictures, then the shared settings (required); the shared optional
    sockets, the node's own optional pictures, then use_cache (optional); the node id (hidden).
    """

    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("images", "info")
    OUTPUT_TOOLTIPS = (
        "The generated pictures as one batch [B, H, W, 3].",
        "JSON: model, seeds, size, settings, credits used and the picture URLs.",
    )

    @classmethod
    def picture_inputs(cls) -> tuple[dict[str, Widget], dict[str, Widget]]:
        """The node's own picture inputs: (required, optional). None for text to image."""
        return {}, {}

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        required, optional = cls.picture_inputs()
        return {
            "required": {**required, **generation_settings()},
            "optional": {**generation_optional(), **optional, **cache_optional()},
            "hidden": {"unique_id": "UNIQUE_ID"},
        }
