"""The pack's key route in ComfyUI's server: GET and POST /flux2_lora/key.

The settings panel of the frontend extension (web/js/key_setup.js) uses it to save
the key into ComfyUI's user folder without editing files or restarting. The logic
lives in api_client/key_store.py; these handlers only move bytes in and JSON out.
Registered only inside ComfyUI (when its PromptServer exists); elsewhere nothing happens.
"""

from __future__ import annotations

from typing import Any

from ..api_client.key_store import MAX_BODY_BYTES, key_get_answer, key_post_answer
from .comfy_hooks import comfy_key_files, comfy_prompt_server

KEY_ROUTE = "/flux2_lora/key"
_NO_STORE = {"Cache-Control": "no-store"}


async def _read_body(request: Any, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the body: enough to tell an oversized one without reading it all."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def register_key_routes() -> bool:
    """Add the key route to ComfyUI's server; False (and nothing done) outside ComfyUI."""
    routes = getattr(comfy_prompt_server(), "routes", None)
    if routes is None:
        return False
    if any(getattr(route, "path", None) == KEY_ROUTE for route in routes):
        return True  # the pack was imported twice
    from aiohttp import web  # ComfyUI's server is aiohttp, already imported by now

    def answer(status: int, body: dict[str, Any]) -> Any:
        return web.json_response(body, status=status, headers=_NO_STORE)

    def key_file() -> Any:
        files = comfy_key_files()
        return files[0] if files else None

    @routes.get(KEY_ROUTE)
    async def get_key_status(request: Any) -> Any:
        path = key_file()
        if path is None:
            return answer(503, {"error": "ComfyUI's user folder is unknown."})
        return answer(*key_get_answer(path))

    @routes.post(KEY_ROUTE)
    async def post_key(request: Any) -> Any:
        path = key_file()
        if path is None:
            return answer(503, {"error": "ComfyUI's user folder is unknown."})
        body = await _read_body(request, MAX_BODY_BYTES)
        return answer(*key_post_answer(body, request.content_type, path))

    return True
