"""The pack's ComfyUI nodes: thin classes over api_client."""

from .adapter import Flux2LoraAdapter
from .edit import Flux2LoraEdit
from .generate import Flux2LoraGenerate
from .image_size import Flux2LoraImageSize
from .seed import Flux2LoraSeed

NODE_CLASS_MAPPINGS = {
    "Flux2LoraGenerate": Flux2LoraGenerate,
    "Flux2LoraImageSize": Flux2LoraImageSize,
    "Flux2LoraSeed": Flux2LoraSeed,
    "Flux2LoraAdapter": Flux2LoraAdapter,
    "Flux2LoraEdit": Flux2LoraEdit,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "Flux2LoraGenerate": "Flux2 LoRA Generate",
    "Flux2LoraImageSize": "Image Size",
    "Flux2LoraSeed": "Seed",
    "Flux2LoraAdapter": "Flux2 LoRA Adapter",
    "Flux2LoraEdit": "Flux2 LoRA Edit",
}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
