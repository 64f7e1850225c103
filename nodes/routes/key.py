"""The pack's key route in ComfyUI's server: GET and POST /flux2_lora/key.

The settings panel of the frontend extension (web/js/key_setup.js) uses it to save
the key into ComfyUI's user folder without editing files or restarting. The logic
lives in api_client/panel/key.py (the key file in api_client/http/key_store.py); these
handlers only move bytes in and JSON out.
Registered only inside ComfyUI (when its PromptServer exists); elsewhere nothing happens.
"""

from __future__ import annotations

from typing import Any

from ...api_client.panel.key import key_get_answer, key_post_answer
from ..comfy_hooks import comfy_key_files
from .common import add_pack_route, answer_off_loop, json_answer, read_body, settings_worker

KEY_ROUTE = "/flux2_lora/key"


def register_key_routes() -> bool:
    """Add the key route to ComfyUI's server; False (and nothing done) outside ComfyUI."""

    def key_file() -> Any:
        files = comfy_key_files()
        return files[0] if files else None

    async def get_key_status(request: Any) -> Any:
        path = key_file()
        if path is None:
            return json_answer(503, {"error": "ComfyUI's user folder is unknown."})
        return await answer_off_loop(settings_worker(), key_get_answer, path)

    async def post_key(request: Any) -> Any:
        path = key_file()
        if path is None:
            return json_answer(503, {"error": "ComfyUI's user folder is unknown."})
        body = await read_body(request)
        return await answer_off_loop(settings_worker(), key_post_answer, body, request.content_type, path)

    return add_pack_route(KEY_ROUTE, get_key_status, post_key)
