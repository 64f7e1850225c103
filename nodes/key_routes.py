"""The pack's key route in ComfyUI's server: GET and POST /flux2_lora/key.

The settings panel of the frontend extension (web/js/key_setup.js) uses it to save
the key into ComfyUI's user folder without editing files or restarting. The logic
lives in api_client/key_store.py; these handlers only move bytes in and JSON out.
Registered only inside ComfyUI (when its PromptServer exists); elsewhere nothing happens.
``add_pack_route``, ``read_body`` and ``json_answer`` serve the pack's other routes too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..api_client.key_store import key_get_answer, key_post_answer
from ..api_client.route_input import MAX_BODY_BYTES
from .comfy_hooks import comfy_key_files, comfy_prompt_server

KEY_ROUTE = "/flux2_lora/key"
_NO_STORE = {"Cache-Control": "no-store"}
Handler = Callable[[Any], Awaitable[Any]]


async def read_body(request: Any, limit: int = MAX_BODY_BYTES) -> bytes:
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


def json_answer(status: int, body: dict[str, Any]) -> Any:
    """A JSON response that browsers and proxies never cache."""
    from aiohttp import web  # ComfyUI's server is aiohttp, already imported by now

    return web.json_response(body, status=status, headers=_NO_STORE)


def add_pack_route(path: str, get: Handler, post: Handler) -> bool:
    """Add GET and POST handlers for ``path`` to ComfyUI's server; False (and nothing done) outside ComfyUI."""
    routes = getattr(comfy_prompt_server(), "routes", None)
    if routes is None:
        return False
    if not any(getattr(route, "path", None) == path for route in routes):  # else the pack was imported twice
        routes.get(path)(get)
        routes.post(path)(post)
    return True


def register_key_routes() -> bool:
    """Add the key route to ComfyUI's server; False (and nothing done) outside ComfyUI."""

    def key_file() -> Any:
        files = comfy_key_files()
        return files[0] if files else None

    async def get_key_status(request: Any) -> Any:
        path = key_file()
        if path is None:
            return json_answer(503, {"error": "ComfyUI's user folder is unknown."})
        return json_answer(*key_get_answer(path))

    async def post_key(request: Any) -> Any:
        path = key_file()
        if path is None:
            return json_answer(503, {"error": "ComfyUI's user folder is unknown."})
        body = await read_body(request)
        return json_answer(*key_post_answer(body, request.content_type, path))

    return add_pack_route(KEY_ROUTE, get_key_status, post_key)
