"""The pack's budget route in ComfyUI's server: GET and POST /flux2_lora/budget.

The frontend settings "Credit budget" (web/js/credits.js), "Budget period", "Budget in USD"
and "Budget scope" (web/js/money_settings.js) post their values here when they change and
once at start-up; the pack keeps every value set here on disk (in
ComfyUI's user folder), so it holds from the next start-up before any page connects. The logic
lives in api_client/panel/budget.py; these handlers only move bytes in and JSON out, the work itself
done on the pack's settings worker (routes/common.py, RouteWorker), never on ComfyUI's event loop.
"""

from __future__ import annotations

from typing import Any

from ...api_client.panel.budget import budget_get_answer, budget_post_answer
from ..comfy_hooks import comfy_money
from .common import add_pack_route, answer_off_loop, read_body, settings_worker

BUDGET_ROUTE = "/flux2_lora/budget"


def register_budget_routes() -> bool:
    """Add the budget route to ComfyUI's server; False (and nothing done) outside ComfyUI."""

    # On the settings worker: reading the ledger may wait for its lock, and settings may be written to disk.
    async def get_budget(request: Any) -> Any:
        return await answer_off_loop(settings_worker(), lambda: budget_get_answer(comfy_money()))

    async def post_budget(request: Any) -> Any:
        body = await read_body(request)
        return await answer_off_loop(settings_worker(),
                                     lambda: budget_post_answer(body, request.content_type, comfy_money()))

    return add_pack_route(BUDGET_ROUTE, get_budget, post_budget)
