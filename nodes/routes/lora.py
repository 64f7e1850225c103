"""The LoRA check's routes in ComfyUI's server.

- GET /flux2_lora/lora_check?path=... answers the Adapter node's line for that path (web/js/lora_check.js),
  from api_client/panel/lora.py; the check's HTTP reads run on a route worker of their own
  (routes/common.py, RouteWorker), never on ComfyUI's event loop (and never in the pool the nodes' runs use).
- GET /flux2_lora/lora_check/setting and POST {"check_loras": "on" | "off" | null}: the setting
  "Check LoRAs before sending", kept in ComfyUI's user folder (api_client/lora/switch.py).
"""

from __future__ import annotations

from typing import Any

from ..lora_check import pack_folder
from .common import add_pack_route, answer_off_loop, json_answer, read_body, route_worker, settings_worker

LORA_CHECK_ROUTE = "/flux2_lora/lora_check"
LORA_SETTING_ROUTE = "/flux2_lora/lora_check/setting"


def lora_line_answer(query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """The Adapter node's line for ``query["path"]`` (blocking: reads the header unless cached)."""
    from ...api_client.panel.lora import lora_check_answer

    return lora_check_answer(query, folder=pack_folder())


def register_lora_routes() -> bool:
    """Add the LoRA check's routes to ComfyUI's server; False (and nothing done) outside ComfyUI."""

    async def get_line(request: Any) -> Any:
        return await answer_off_loop(route_worker("lora-route"), lora_line_answer, dict(request.query))

    async def post_line(request: Any) -> Any:
        return json_answer(405, {"error": "Use GET with ?path=..."})

    async def get_setting(request: Any) -> Any:
        from ...api_client.lora.switch import setting_status

        return await answer_off_loop(settings_worker(), lambda: (200, setting_status(pack_folder())))

    async def post_setting(request: Any) -> Any:
        from ...api_client.lora.switch import setting_post_answer

        body = await read_body(request)
        return await answer_off_loop(settings_worker(),
                                     lambda: setting_post_answer(body, request.content_type, pack_folder()))

    line = add_pack_route(LORA_CHECK_ROUTE, get_line, post_line)
    return add_pack_route(LORA_SETTING_ROUTE, get_setting, post_setting) and line
