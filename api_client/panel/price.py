"""The price route's answer (GET /flux2_lora/price): what a node with these settings would cost, in words.

Pure of ComfyUI: nodes/routes/money.py moves the query in and this JSON out; the price itself
comes from the price book (money/pricing.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..api.request import expected_pixels
from ..money.pricing import PriceBook, run_quote
from ..money.texts import usd_text

if TYPE_CHECKING:
    from ..api.client import ApiClient


def _whole(query: Mapping[str, str], name: str, low: int, high: int, default: int | None = None) -> int:
    raw = query.get(name, "")
    if not raw and default is not None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number from {low} to {high}; got {raw[:20]!r}.") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high}; got {value}.")
    return value


def price_query_answer(book: PriceBook, client: ApiClient | None, query: Mapping[str, str]) -> tuple[int, dict]:
    """The answer to GET /flux2_lora/price?model=generate|edit&num_images=N&preset=P (or &width=W&height=H).

    The price of the requests a node with these settings would send, in USD and (once the
    rate is known) credits, and a line of text for the node. Never an error for a missing price.
    """
    from ..api.limits import LIMITS, MODEL_EDIT, MODEL_GENERATE, NODE_IMAGES_MAX, PRESET_PIXELS

    model = {"generate": MODEL_GENERATE, "edit": MODEL_EDIT}.get(query.get("model", "generate"))
    try:
        if model is None:
            raise ValueError("model must be generate or edit.")
        num_images = _whole(query, "num_images", 1, NODE_IMAGES_MAX, 1)
        preset = query.get("preset", "")
        if preset and preset != "custom":
            if preset not in PRESET_PIXELS:
                raise ValueError(f"preset must be one of {', '.join(PRESET_PIXELS)}; got {preset[:40]!r}.")
            image_size: Any = preset
        elif query.get("width") or query.get("height"):
            low, high = LIMITS.size_range
            image_size = {"width": _whole(query, "width", low, high), "height": _whole(query, "height", low, high)}
        else:
            image_size = None  # not connected: the API default
    except ValueError as exc:
        return 400, {"error": str(exc)}
    per_request = LIMITS.images_per_request_max
    bodies = [{"model": model, "num_images": min(per_request, num_images - start), "image_size": image_size}
              for start in range(0, num_images, per_request)]
    quote = run_quote(book, client, bodies)
    width, height = expected_pixels(image_size)
    what = f"{num_images} picture{'s' if num_images != 1 else ''} {width}x{height}"
    if quote.usd is None:
        text = quote.note
    else:
        credits = f" ({quote.credits:,.0f} credits)" if quote.credits is not None else ""
        text = f"Price: ~{usd_text(quote.usd)}{credits} for {what}"
    return 200, {**quote.to_json(), "text": text, "pictures": num_images, "width": width, "height": height}
