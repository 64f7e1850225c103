"""Flux2 LoRA Adapter: adds one LoRA (URL or Hugging Face name, and scale) to a chain."""

from __future__ import annotations

from typing import Any

from ..api_client.api.limits import LIMITS
from ..api_client.api.request import check_lora_path, check_loras
from .widgets import CATEGORY, LORAS_TYPE, lora_scale_widget, search_aliases


class Flux2LoraAdapter:
    DESCRIPTION = (
        "Adds one LoRA to the list sent to the API. Chain up to "
        f"{LIMITS.loras_max} adapters by connecting one's output to the next one's loras input. "
        "The API downloads the LoRA itself: give a https URL to a .safetensors file or a "
        "Hugging Face name owner/repo (optionally /file.safetensors)."
    )
    CATEGORY = CATEGORY
    SEARCH_ALIASES = search_aliases("lora loader", "load lora", "adapter", "lora stack", "lora chain", "huggingface")
    FUNCTION = "add"
    RETURN_TYPES = (LORAS_TYPE,)
    RETURN_NAMES = ("loras",)
    OUTPUT_TOOLTIPS = ("The LoRA chain so far; connect to a Flux2 LoRA node or to another adapter.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "path": ("STRING", {
                    "default": "", "multiline": False,
                    "tooltip": "https URL of a LoRA .safetensors file, or a Hugging Face name "
                               "owner/repo[/file.safetensors].",
                }),
                "scale": lora_scale_widget(),
            },
            "optional": {
                "loras": (LORAS_TYPE, {"tooltip": "An earlier adapter's output, to use several LoRAs together."}),
            },
        }

    def add(self, path: str, scale: float, loras: Any = None) -> tuple[list[dict[str, Any]]]:
        chain = [lora.to_json() for lora in check_loras(loras)]
        chain.append({"path": check_lora_path(path), "scale": scale})
        # Checks the scale and the chain's length with the same rules the request uses.
        return ([lora.to_json() for lora in check_loras(chain)],)
