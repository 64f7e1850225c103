"""The public contract as data: node ids, inputs in order, ranges and defaults (DESIGN.md). Shared by the
contract tests and the end-to-end check of what the real ComfyUI serves."""

from __future__ import annotations

GENERATION_SETTINGS = [
    ("prompt", "STRING"), ("seed", "INT"), ("num_images", "INT"), ("guidance_scale", "FLOAT"),
    ("num_inference_steps", "INT"), ("acceleration", ["none", "regular", "high"]),
    ("output_format", ["png", "jpeg", "webp"]), ("enable_prompt_expansion", "BOOLEAN"),
    ("enable_safety_checker", "BOOLEAN"),
]

CONTRACT = {
    "Flux2LoraGenerate": {
        "display": "Flux2 LoRA Generate",
        "required": GENERATION_SETTINGS,
        # Appended after the core release: the result cache switch (issue 7).
        "optional": [("image_size", "FLUX2_IMAGE_SIZE"), ("loras", "FLUX2_LORAS"), ("use_cache", "BOOLEAN")],
        "outputs": ("IMAGE", "STRING"),
    },
    "Flux2LoraImageSize": {
        "display": "Image Size",
        "required": [
            ("preset", ["custom", "square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3",
                        "landscape_16_9"]),
            ("width", "INT"), ("height", "INT"),
        ],
        "optional": [],
        "outputs": ("FLUX2_IMAGE_SIZE", "INT", "INT"),
    },
    "Flux2LoraSeed": {
        "display": "Seed",
        "required": [("seed", "INT")],
        "optional": [],
        "outputs": ("INT",),
    },
    "Flux2LoraAdapter": {
        "display": "Flux2 LoRA Adapter",
        "required": [("path", "STRING"), ("scale", "FLOAT")],
        "optional": [("loras", "FLUX2_LORAS")],
        "outputs": ("FLUX2_LORAS",),
    },
    "Flux2LoraEdit": {
        "display": "Flux2 LoRA Edit",
        "required": [("image", "IMAGE"), *GENERATION_SETTINGS],
        "optional": [("image_size", "FLUX2_IMAGE_SIZE"), ("loras", "FLUX2_LORAS"), ("image_2", "IMAGE"),
                     ("image_3", "IMAGE"), ("use_cache", "BOOLEAN")],
        "outputs": ("IMAGE", "STRING"),
    },
}

RANGES = {
    ("Flux2LoraGenerate", "seed"): (1, 2147483647, None),
    ("Flux2LoraGenerate", "num_images"): (1, 16, None),
    ("Flux2LoraGenerate", "guidance_scale"): (0, 20, 2.5),
    ("Flux2LoraGenerate", "num_inference_steps"): (4, 50, 28),
    ("Flux2LoraImageSize", "width"): (512, 2048, None),
    ("Flux2LoraImageSize", "height"): (512, 2048, None),
    ("Flux2LoraSeed", "seed"): (1, 2147483647, None),
    ("Flux2LoraAdapter", "scale"): (0, 4, 1.0),
}

DEFAULTS = {
    ("Flux2LoraGenerate", "acceleration"): "regular",
    ("Flux2LoraGenerate", "output_format"): "png",
    ("Flux2LoraGenerate", "enable_prompt_expansion"): True,
    ("Flux2LoraGenerate", "enable_safety_checker"): True,
}


def check_range(options: dict, expected: tuple) -> None:
    """A number input's options (from INPUT_TYPES or /object_info) are those of RANGES: min, max, default."""
    low, high, default = expected
    assert (options["min"], options["max"]) == (low, high), f"{options} is not {expected}"
    if default is not None:
        assert options["default"] == default, f"{options} is not {expected}"
