"""What the pack's routes in ComfyUI's server share: reading a body, a JSON answer, adding a route,
and the route workers (a few threads of the pack's own per route, parts of the runtime).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ...api_client.route_input import MAX_BODY_BYTES
from ...api_client.runtime import runtime
from ..comfy_hooks import comfy_prompt_server

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


class RouteBusy(Exception):
    """A route's worker has as many calls running and waiting as it takes."""


class RouteWorker:
    """A few threads of the pack's own for a route's blocking work (the API, files, the ledger).

    Never the event loop's default executor, which ComfyUI's server and other packs share: a
    slow API fills only these threads, and every other route keeps answering. At most
    ``threads`` calls run and ``waiting`` more wait; beyond that ``run`` raises ``RouteBusy`` at
    once. Threads start on first use, not when ComfyUI imports the pack.
    """

    def __init__(self, name: str, threads: int = 2, waiting: int = 8) -> None:
        self.name = name
        self._room = threads + waiting
        self._lock = threading.Lock()
        self._pending = 0
        # Its threads start with its first call (a ThreadPoolExecutor starts none until then).
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"flux2-{name}")
        self._shared: dict[str, Future] = {}

    def _submit(self, work: Callable[..., Any], *args: Any) -> Future:
        with self._lock:
            if self._pending >= self._room:
                raise RouteBusy(self.name)
            self._pending += 1
        future = self._pool.submit(work, *args)
        future.add_done_callback(self._done)
        return future

    def _done(self, _: Future) -> None:
        with self._lock:
            self._pending -= 1

    async def run(self, work: Callable[..., Any], *args: Any) -> Any:
        """``work(*args)`` on one of this worker's threads, awaited; ``RouteBusy`` if it is full."""
        return await asyncio.wrap_future(self._submit(work, *args))

    async def run_shared(self, key: str, work: Callable[[], Any]) -> Any:
        """``work()`` as ``run`` does, but calls with the same ``key`` meanwhile share its one run."""
        with self._lock:
            future = self._shared.get(key)
        if future is None or future.done():
            future = self._submit(work)
            with self._lock:
                self._shared[key] = future
        # Shielded: a caller that goes away does not cancel the run the others wait for.
        return await asyncio.shield(asyncio.wrap_future(future))


def busy_answer(worker: RouteWorker) -> Any:
    """503: the route's worker is full (the AI/ML API is slow); the page may ask again shortly."""
    return json_answer(503, {"error": f"Busy: earlier {worker.name} requests are still waiting for an answer; "
                                      "try again in a moment."})


async def answer_off_loop(worker: RouteWorker, work: Callable[..., tuple[int, dict[str, Any]]], *args: Any) -> Any:
    """The JSON answer ``work(*args)`` gives, worked out on ``worker``'s threads (503 when it is full)."""
    try:
        return json_answer(*await worker.run(work, *args))
    except RouteBusy:
        return busy_answer(worker)


def add_pack_route(path: str, get: Handler, post: Handler) -> bool:
    """Add GET and POST handlers for ``path`` to ComfyUI's server; False (and nothing done) outside ComfyUI."""
    routes = getattr(comfy_prompt_server(), "routes", None)
    if routes is None:
        return False
    if not any(getattr(route, "path", None) == path for route in routes):  # else the pack was imported twice
        routes.get(path)(get)
        routes.post(path)(post)
    return True


def route_worker(name: str, threads: int = 2, waiting: int = 8) -> RouteWorker:
    """The route worker called ``name``, one per process (a part of the runtime, made on first use)."""
    return runtime().part(("route worker", name), lambda: RouteWorker(name, threads, waiting))


def settings_worker() -> RouteWorker:
    """Local work only (the key file, the settings): quick, but kept off the event loop all the same."""
    return route_worker("settings", waiting=16)
