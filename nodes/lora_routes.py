"""The LoRA check's routes in ComfyUI's server.

- GET /flux2_lora/lora_check?path=... answers the Adapter node's line for that path (web/js/lora_check.js),
  from api_client/lora/panel.py; the check's HTTP reads run on a small executor of their own, never on
  ComfyUI's event loop (and never in the pool the nodes' runs use).
- GET /flux2_lora/lora_check/setting and POST {"check_loras": "on" | "off" | null}: the setting
  "Check LoRAs before sending", kept in ComfyUI's user folder (api_client/lora/switch.py).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .key_routes import add_pack_route, json_answer, read_body
from .lora_check import pack_folder

LORA_CHECK_ROUTE = "/flux2_lora/lora_check"
LORA_SETTING_ROUTE = "/flux2_lora/lora_check/setting"
_WORKERS = 2

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _route_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="flux2-lora-route")
        return _executor


def lora_line_answer(query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """The Adapter node's line for ``query["path"]`` (blocking: reads the header unless cached)."""
    from ..api_client.lora.panel import lora_check_answer

    return lora_check_answer(query, folder=pack_folder())


def register_lora_routes() -> bool:
    """Add the LoRA check's routes to ComfyUI's server; False (and nothing done) outside ComfyUI."""

    async def get_line(request: Any) -> Any:
        loop = asyncio.get_running_loop()
        return json_answer(*await loop.run_in_executor(_route_executor(), lora_line_answer, dict(request.query)))

    async def post_line(request: Any) -> Any:
        return json_answer(405, {"error": "Use GET with ?path=..."})

    async def get_setting(request: Any) -> Any:
        from ..api_client.lora.switch import setting_status

        return json_answer(200, setting_status(pack_folder()))

    async def post_setting(request: Any) -> Any:
        from ..api_client.lora.switch import setting_post_answer

        body = await read_body(request)
        return json_answer(*setting_post_answer(body, request.content_type, pack_folder()))

    line = add_pack_route(LORA_CHECK_ROUTE, get_line, post_line)
    return add_pack_route(LORA_SETTING_ROUTE, get_setting, post_setting) and line
