"""The pack's money routes in ComfyUI's server: the balance (and its floor) and the price before running.

- GET /flux2_lora/balance asks GET /v2/billing now and answers the balance and floor;
  POST {"floor": USD or null} sets the floor (the "Balance floor" setting, web/js/money_settings.js).
- GET /flux2_lora/price?model=generate|edit&num_images=N&preset=P (or width/height) answers
  what a node with those settings would cost (the price line on Generate and Edit).

The answers live in api_client/panel/balance.py and price.py. The blocking GETs to the API run on
small thread pools of the pack's own, one per route (routes/common.py, RouteWorker), never on the
event loop's default executor: ComfyUI's server never waits on the API, and a slow balance
never holds up the price. Balance calls that arrive while one is asking share its answer; a
route whose pool is full answers 503 at once. Each GET ends by the service client's deadline.
"""

from __future__ import annotations

from typing import Any

from ...api_client.errors import ConfigError
from ...api_client.settings import resolve_api_key, resolve_base_url
from ..comfy_hooks import comfy_key_files, comfy_money, comfy_user_dir
from .common import (
    RouteBusy,
    add_pack_route,
    answer_off_loop,
    busy_answer,
    json_answer,
    read_body,
    route_worker,
    settings_worker,
)

BALANCE_ROUTE = "/flux2_lora/balance"
PRICE_ROUTE = "/flux2_lora/price"


def _balance_worker() -> Any:
    return route_worker("balance")


def _price_worker() -> Any:
    return route_worker("price")


def _client() -> Any:
    """The shared client for the configured key and base URL, or None without a usable key."""
    from ...api_client.api.client import shared_client

    try:
        return shared_client(resolve_api_key(extra_key_files=comfy_key_files()), resolve_base_url())
    except ConfigError:
        return None


def balance_answer() -> tuple[int, dict[str, Any]]:
    """Ask the balance now (if a key is set) and answer the floor's status."""
    from ...api_client.panel.balance import BalanceFloor

    floor = BalanceFloor(comfy_money())
    client = _client()
    if client is None:
        return 200, {**floor.status(), "message": "Balance unknown: no AI/ML API key is set."}
    floor.refresh(client)
    return 200, floor.status()


def price_answer(query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """The price of a node's current settings (from the price file; the catalogue asked at most daily)."""
    from ...api_client.money.pricing import default_pricing_path, price_book
    from ...api_client.panel.price import price_query_answer

    return price_query_answer(price_book(default_pricing_path(comfy_user_dir())), _client(), query)


def register_money_routes() -> bool:
    """Add the balance and price routes to ComfyUI's server; False (and nothing done) outside ComfyUI."""

    async def get_balance(request: Any) -> Any:
        try:
            return json_answer(*await _balance_worker().run_shared("balance", balance_answer))
        except RouteBusy:
            return busy_answer(_balance_worker())

    async def post_balance(request: Any) -> Any:
        # The HTTP client's modules load on first use, not while ComfyUI starts.
        from ...api_client.panel.balance import BalanceFloor, balance_post_answer

        body = await read_body(request)
        return await answer_off_loop(settings_worker(),
                                     lambda: balance_post_answer(body, request.content_type,
                                                                 BalanceFloor(comfy_money())))

    async def get_price(request: Any) -> Any:
        return await answer_off_loop(_price_worker(), price_answer, dict(request.query))

    async def post_price(request: Any) -> Any:
        return json_answer(405, {"error": "Use GET."})

    balance = add_pack_route(BALANCE_ROUTE, get_balance, post_balance)
    return add_pack_route(PRICE_ROUTE, get_price, post_price) and balance
