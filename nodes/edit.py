"""Flux2 LoRA Edit: pictures plus a prompt to new pictures on blackforestlabs/flux-2-lora-edit."""

from __future__ import annotations

from typing import Any

from ..api_client import MODEL_EDIT, build_requests
from ..api_client.api.limits import LIMITS
from .image_input import encode_edit_inputs
from .node_call import NodeHooks, node_function
from .run import node_output, run_generation
from .widgets import GenerationNode, search_aliases


def _reference_widget(which: str) -> tuple[str, dict[str, str]]:
    return ("IMAGE", {"tooltip": f"{which} reference picture(s), of any size; counts toward the limit of "
                                 f"{LIMITS.edit_images_range[1]} pictures in total."})


class Flux2LoraEdit(GenerationNode):
    DESCRIPTION = (
        "Edits pictures with FLUX.2 [dev] and your LoRA adapters on the AI/ML API "
        "(model blackforestlabs/flux-2-lora-edit): the prompt says what to change, image (and the optional "
        "image_2, image_3) are the pictures to start from, 1 to 3 in total. Each run is billed by the API; "
        "the credits used are shown on the node and in the info output. Inputs are checked before anything is sent. "
        "A run with the same pictures, settings and seed as an earlier one comes from the result cache, free."
    )
    SEARCH_ALIASES = search_aliases("edit", "image edit", "img2img", "image to image", "reference image", "cloud")
    FUNCTION = "edit"

    @classmethod
    def picture_inputs(cls) -> tuple[dict[str, Any], dict[str, Any]]:
        image = ("IMAGE", {
            "tooltip": "The picture(s) to edit: every picture of this batch is sent, "
                       f"{LIMITS.edit_images_range[0]} to {LIMITS.edit_images_range[1]} with image_2 and "
                       "image_3. Sent lossless when small enough (see docs/nodes.md).",
        })
        return {"image": image}, {"image_2": _reference_widget("A second"), "image_3": _reference_widget("A third")}

    def edit_blocking(self, hooks: NodeHooks, image: Any, image_2: Any = None, image_3: Any = None,
                      use_cache: bool = True, unique_id: str | None = None, **settings: Any) -> dict[str, Any]:
        """Check the settings, encode the pictures, send the requests, return the results (the node's whole work)."""
        # The settings are Generate's, checked by the same build_requests: first on their own, so
        # a bad setting is reported before any picture is encoded, then with the pictures.
        build_requests(**settings)
        pictures = encode_edit_inputs({"image": image, "image_2": image_2, "image_3": image_3}, hooks.check_cancel)
        requests = build_requests(**settings, model=MODEL_EDIT, image_urls=[p.data_uri for p in pictures])
        images, info = run_generation(requests, hooks, use_cache=use_cache)
        info["input_images"] = [p.describe() for p in pictures]
        return node_output(images, info)

    # What ComfyUI calls: a coroutine where its executor awaits one, else a plain function; both run edit_blocking.
    edit = node_function(edit_blocking)
