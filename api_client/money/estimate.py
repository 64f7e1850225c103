"""What one generation request is expected to cost, before its answer says what it did cost.

The credit budget holds this estimate for every request in flight, so runs that
start while others are still waiting for their answers see the money already
committed. ``estimate_credits`` is the one function the batch asks (looked up
on this module at each run, so it can be replaced); a version that knows the
model's official price list can take its place.

Until then, the price is learned from this process's own billed answers: the
highest rate seen per model, in credits per picture per started megapixel
(2**20 pixels, the unit image models are priced in). Taking the highest rate
seen makes the estimate err on the side of refusing. Before a model's first
billed answer its price is unknown (None), and the budget waits for that answer
rather than guess (see budget.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..amounts import valid_amount
from ..api.request import expected_pixels
from ..runtime import runtime
from .pricing import started_megapixels


class _Prices:
    """What this process knows of the models' prices: the rates learned from billed answers (credits per
    started megapixel and picture, by model) and the documented price list. A part of the runtime."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rates: dict[str, float] = {}
        self.price_list: Callable[[Mapping[str, Any]], float | None] | None = None


def _prices() -> _Prices:
    return runtime().part("prices", _Prices)


def _megapixel_pictures(body: Mapping[str, Any]) -> float | None:
    """Pictures times started megapixels a request asks for, or None if the body does not say."""
    try:
        width, height = expected_pixels(body.get("image_size"))
        count = int(body["num_images"])
    except (KeyError, TypeError, ValueError):
        return None
    if count <= 0 or width <= 0 or height <= 0:
        return None
    return count * started_megapixels(width, height)


def use_price_list(estimator: Callable[[Mapping[str, Any]], float | None] | None) -> None:
    """Ask ``estimator`` (the model's documented price, ``pricing.py``) while no rate has been learned."""
    prices = _prices()
    with prices.lock:
        prices.price_list = estimator


def estimate_credits(body: Mapping[str, Any]) -> float | None:
    """The credits ``body`` is expected to cost, or None while this process knows no price for its model.

    A rate learned from this process's billed answers wins; before the first one, the
    documented price list (``use_price_list``) answers if it can.
    """
    units = _megapixel_pictures(body)
    prices = _prices()
    with prices.lock:
        rate = prices.rates.get(str(body.get("model")))
        price_list = prices.price_list
    if units is None:
        return None
    if rate is None:
        return price_list(body) if price_list is not None else None
    return rate * units


def learn_price(body: Mapping[str, Any], credits_used: float | None) -> None:
    """Remember the rate a billed answer showed for ``body``'s model (the highest one seen wins)."""
    units = _megapixel_pictures(body)
    if units is None or not valid_amount(credits_used) or credits_used <= 0:  # type: ignore[operator]
        return
    model = str(body.get("model"))
    prices = _prices()
    with prices.lock:
        prices.rates[model] = max(prices.rates.get(model, 0.0), credits_used / units)


def forget_prices() -> None:
    """Forget every learned rate (tests; a restart does the same)."""
    prices = _prices()
    with prices.lock:
        prices.rates.clear()
