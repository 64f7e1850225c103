"""Flux2 LoRA Generate: text to image on blackforestlabs/flux-2-lora."""

from __future__ import annotations

from typing import Any

from ..api_client import build_requests
from .node_call import NodeHooks, node_function
from .run import node_output, run_generation
from .widgets import GenerationNode, search_aliases


class Flux2LoraGenerate(GenerationNode):
    DESCRIPTION = (
        "Generates pictures with FLUX.2 [dev] and your LoRA adapters on the AI/ML API "
        "(model blackforestlabs/flux-2-lora). Each run is billed by the API; the credits used are "
        "shown on the node and in the info output. Inputs are checked before anything is sent. "
        "A run with the same settings and seed as an earlier one comes from the result cache, free."
    )
    SEARCH_ALIASES = search_aliases("text to image", "txt2img", "generate", "image generation", "flux 2 dev", "cloud")
    FUNCTION = "generate"

    def generate_blocking(self, hooks: NodeHooks, prompt: str, seed: int, num_images: int, guidance_scale: float,
                          num_inference_steps: int, acceleration: str, output_format: str,
                          enable_prompt_expansion: bool, enable_safety_checker: bool, image_size: Any = None,
                          loras: Any = None, use_cache: bool = True, unique_id: str | None = None) -> dict[str, Any]:
        """Check the inputs, send the requests, return the pictures and info (the node's whole work)."""
        requests = build_requests(
            prompt=prompt, seed=seed, num_images=num_images, guidance_scale=guidance_scale,
            num_inference_steps=num_inference_steps, acceleration=acceleration, output_format=output_format,
            enable_prompt_expansion=enable_prompt_expansion, enable_safety_checker=enable_safety_checker,
            image_size=image_size, loras=loras,
        )
        return node_output(*run_generation(requests, hooks, use_cache=use_cache))

    # What ComfyUI calls: a coroutine where its executor awaits one, else a plain function; both run generate_blocking.
    generate = node_function(generate_blocking)
