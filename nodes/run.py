"""Running checked requests and turning the pictures into one ComfyUI IMAGE tensor.

Shared by every generating node: key and client lookup, the result cache and
the credit budget, the batch with cancel and progress, the preallocated output
tensor, and the info JSON.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..api_client.api.limits import LIMITS
from ..api_client.api.request import GenerationRequest, check_bool
from ..api_client.errors import APIResponseError, ImageDecodeError
from ..api_client.run.cache import open_result_cache
from ..api_client.settings import resolve_api_key, resolve_base_url
from .comfy_hooks import RunHooks, comfy_cache_dir, comfy_key_files, comfy_money, comfy_user_dir
from .lora_check import check_run_loras

if TYPE_CHECKING:
    from ..api_client.images.decode import DecodedImage
    from ..api_client.run.batch import BatchResult
    from .node_call import NodeHooks

_SCALE = np.float32(255.0)

class TensorSink:
    """Writes each decoded picture straight into its slice of one float32 [B, H, W, 3] tensor."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.tensor: torch.Tensor | None = None
        self._view: np.ndarray | None = None
        self._first: tuple[int, int, int] | None = None  # index, width, height
        self._lock = threading.Lock()

    def write(self, index: int, picture: DecodedImage) -> None:
        width, height = picture.width, picture.height
        with self._lock:
            if self.tensor is None:
                # Allocated on the first picture: the API may return another size than asked.
                self.tensor = torch.empty((self.count, height, width, 3), dtype=torch.float32)
                self._view = self.tensor.numpy()
                self._first = (index, width, height)
            first_index, first_width, first_height = self._first  # type: ignore[misc]
        if (width, height) != (first_width, first_height):
            raise ImageDecodeError(
                f"The API returned pictures of different sizes in one batch: picture {first_index + 1} is "
                f"{first_width}x{first_height} and picture {index + 1} is {width}x{height}. "
                "An IMAGE batch needs one size; set it with the Image Size node."
            )
        out = self._view[index]  # type: ignore[index]
        for top, rows in picture.strips():
            # float32 throughout, written in place; numpy releases the GIL here.
            np.divide(rows, _SCALE, out=out[top:top + len(rows)], dtype=np.float32)

    def finish(self, filled: list[int]) -> torch.Tensor:
        """The output batch; if the API returned fewer pictures than asked, the gaps are closed."""
        if self.tensor is None or not filled:
            raise APIResponseError("The AI/ML API returned no usable pictures.")
        if len(filled) == self.count:
            return self.tensor
        for slot, index in enumerate(filled):
            if slot != index:
                self.tensor[slot].copy_(self.tensor[index])
        return self.tensor[: len(filled)].clone()


def _size_label(image_size: Any) -> Any:
    return image_size if image_size is not None else f"{LIMITS.size_default} (API default)"


def _cache_state(result: BatchResult, use_cache: bool) -> tuple[str, str]:
    """("off"/"miss"/"partial"/"hit", a note for people) for the info JSON and the node."""
    cached, total = result.requests_cached, result.requests_cached + result.requests_sent
    if not use_cache:
        return "off", "cache off: sent to the API"
    if cached == 0:
        return "miss", "not in the cache: sent to the API, saved for next time"
    if cached == total:
        return "hit", "from cache, 0 credits"
    return "partial", f"{cached} of {total} requests from cache (0 credits), {total - cached} sent to the API"


def run_generation(requests: list[GenerationRequest], hooks: NodeHooks | None = None,
                   use_cache: bool = True) -> tuple[torch.Tensor, dict]:
    """Send checked ``requests`` and return (IMAGE tensor, info dict). Nothing here shows the key.

    ``hooks`` are the node's Cancel check, progress bar and status (node_call); on
    either path, this same code runs on the thread that waits. With ``use_cache``,
    requests made before come from the result cache without being sent.
    """
    # The HTTP client (requests and its dependencies) loads on the first run, not at ComfyUI start-up.
    from ..api_client.api.client import LazyClient
    from ..api_client.money.preflight import run_money
    from ..api_client.run.batch import run_batch

    use_cache = check_bool("use_cache", use_cache)
    # Every money setting validated before anything goes out (a LoRA host included).
    comfy_money().settings()
    lora_checks = check_run_loras(requests[0].loras, hooks)  # refused here: nothing admitted, nothing sent
    key_files = comfy_key_files()
    hint = "Or paste it in ComfyUI under Settings → Flux2 LoRA → AI/ML API key. " if key_files else ""
    # The key is looked up only if a request must be sent: a run answered from the cache needs none.
    client = LazyClient(resolve_base_url(), lambda: resolve_api_key(extra_key_files=key_files, hint=hint))
    cache = open_result_cache(comfy_cache_dir()) if use_cache else None
    # Spending and holds go to the ledger in ComfyUI's user folder, so a per-day budget survives restarts;
    # the settings made in ComfyUI are kept there too and apply from the first run.
    budget = comfy_money()
    money = run_money(client, comfy_user_dir())
    hooks = hooks if hooks is not None else RunHooks()
    total = sum(r.num_images for r in requests)
    hooks.status(f"Waiting for the AI/ML API ({total} picture{'s' if total > 1 else ''})...")
    sink = TensorSink(total)
    try:
        result = run_batch(client, requests, sink, check_cancel=hooks.check_cancel, on_progress=hooks.progress,
                           cache=cache, budget=budget, before_send=money.before_send,
                           is_cancelled=getattr(hooks, "is_cancelled", None))
    finally:
        hooks.status("")
    if not result.credits_unknown:
        money.after(result.credits_used, result.usd_spent)  # a rate only from answers that all said both
    images = sink.finish(result.filled)
    first = requests[0]
    height, width = int(images.shape[1]), int(images.shape[2])
    cache_state, cache_note = _cache_state(result, cache is not None)
    info: dict[str, Any] = {
        "model": first.model,
        "prompt": first.prompt,
        "seeds": [r.seed for r in requests],
        "num_images": len(result.filled),
        "image_size": _size_label(first.image_size),
        "width": width,
        "height": height,
        "output_format": first.output_format,
        "guidance_scale": first.guidance_scale,
        "num_inference_steps": first.num_inference_steps,
        "acceleration": first.acceleration,
        "loras": [lora.to_json() for lora in first.loras],
        "lora_checks": lora_checks,
        "credits_used": result.credits_used,
        "usd_spent": result.usd_spent,
        "price_estimate": money.info(),
        "requests": result.requests_sent,
        "request_ids": result.request_ids,
        "inference_ids": result.inference_ids,
        "cache": cache_state,
        "cache_note": cache_note,
        "image_urls": [result.image_urls[i] for i in result.filled],
    }
    if money.model_notice():
        info["model_notice"] = money.model_notice()  # the API's deprecations feed: retiring or superseded
    if result.credits_unknown:
        # Unknown is not free: no total is shown as if it were complete.
        info["credits_used"] = None
        info["credits_reported"] = result.credits_used
        sent = result.requests_sent
        info["credits_note"] = (f"the API did not report a valid cost for {result.credits_unknown} of {sent} "
                                f"request{'s' if sent > 1 else ''}; check your usage at https://aimlapi.com/app")
    if (width, height) != first.expected_pixels:
        asked = first.expected_pixels
        info["size_note"] = f"asked for {asked[0]}x{asked[1]}, the API returned {width}x{height}"
    if result.resent_after_failed_log:
        info["resent_note"] = (f"{result.resent_after_failed_log} request(s) sent again: the API's usage logs "
                               "showed the first attempt failed, so it was not billed")
    if len(result.filled) < total:
        info["missing_note"] = f"asked for {total} pictures, the API returned {len(result.filled)}"
    return images, info


def node_output(images: torch.Tensor, info: dict) -> dict[str, Any]:
    """The node's return value: the IMAGE and info JSON, plus credits, cache state and budget for the frontend.

    ``flux2_run`` names this run, so the frontend counts its credits once even when
    ComfyUI shows the cached result again.
    """
    return {
        "ui": {
            "flux2_credits": [info["credits_used"]],
            "flux2_images": [info["num_images"]],
            "flux2_cache": [{"state": info["cache"], "text": info["cache_note"]}],
            "flux2_budget": [comfy_money().snapshot()],
            "flux2_run": [uuid.uuid4().hex],
            "flux2_model_notice": [(info.get("model_notice") or {}).get("text", "")],
        },
        "result": (images, json.dumps(info, indent=2)),
    }
