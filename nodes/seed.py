"""Seed: one seed to share between several nodes."""

from __future__ import annotations

from typing import Any

from ..api_client.api.request import check_seed
from .widgets import CATEGORY, search_aliases, seed_widget


class Flux2LoraSeed:
    DESCRIPTION = (
        "One seed for several nodes, so that they generate comparable pictures. "
        "Set control after generate to fixed to repeat a picture, or increment/randomize for new ones."
    )
    CATEGORY = CATEGORY
    SEARCH_ALIASES = search_aliases("seed", "random seed", "shared seed")
    FUNCTION = "pass_seed"
    RETURN_TYPES = ("INT",)
    RETURN_NAMES = ("seed",)
    OUTPUT_TOOLTIPS = ("Connect to the seed of Flux2 LoRA nodes: drag it onto their seed widget.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"seed": seed_widget()}}

    def pass_seed(self, seed: int) -> tuple[int]:
        return (check_seed(seed),)
