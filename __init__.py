"""Flux2 LoRA for ComfyUI: FLUX.2 [dev] with your LoRAs on the AI/ML API, as ComfyUI nodes."""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .nodes.routes.budget import register_budget_routes
from .nodes.routes.key import register_key_routes
from .nodes.routes.lora import register_lora_routes
from .nodes.routes.money import register_money_routes

WEB_DIRECTORY = "./web"

# The only work at import time: inside ComfyUI, add the pack's routes (key, budget, balance, price) to its
# server (cheap; outside, a no-op).
register_key_routes()
register_budget_routes()
register_money_routes()
register_lora_routes()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
