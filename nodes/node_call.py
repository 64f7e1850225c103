"""How ComfyUI calls a generating node: a plain function, or a coroutine where its executor awaits one.

Each node writes its work once, as a blocking ``body(node, hooks, **inputs)``.
``node_function`` turns that into the node's ``FUNCTION``, chosen once at import
by ``comfy_awaits_coroutines``:

- **plain** (ComfyUI before 0.3.45, scripts, the demo, the tests' default): the
  body runs on the caller's thread with ``RunHooks``, which check ComfyUI's
  interrupt flag and move its progress bar directly;
- **coroutine** (ComfyUI 0.3.45 on): the body runs on a worker thread, so the
  HTTP waits, downloads and decoding never block ComfyUI's event loop, and the
  executor moves on to other nodes (and other items of a list input) meanwhile.
  The coroutine races the body against a monitor of ComfyUI's interrupt flag
  (``asyncio.wait(..., FIRST_COMPLETED)``, as ComfyUI's API nodes do): on Cancel, or
  when the executor cancels the task, it returns at once and sets the body's
  cancel event: the body's batch then drops its requests still waiting for a
  slot or a retry, so nothing more is sent (an answer already on its way still
  fills the result cache). Progress is shown from the coroutine, on ComfyUI's loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from ..api_client.errors import Cancelled
from ..api_client.runtime import runtime
from .comfy_hooks import (
    RunHooks,
    comfy_awaits_coroutines,
    comfy_interrupt_error,
    comfy_interrupted,
    comfy_set_interrupted,
)

# Decided once, when ComfyUI imports the pack (its executor is imported before any custom node).
COROUTINE_NODES = comfy_awaits_coroutines()

# How often the interrupt monitor looks at ComfyUI's interrupt flag and the body's progress.
INTERRUPT_POLL = 0.05
# Node bodies running at once; each mostly waits for HTTP. Requests beyond the process cap
# (api_client.http.request_slots) wait inside their bodies.
_BODY_THREADS = 32


class NodeHooks(Protocol):
    """What a node body may call: Cancel check, progress and status, for its own node."""

    node_id: str | None

    def check_cancel(self) -> None: ...
    def progress(self, done: int, total: int) -> None: ...
    def status(self, text: str) -> None: ...


NodeBody = Callable[..., dict[str, Any]]


class WorkerHooks:
    """The hooks of a body running on a worker thread for a coroutine node.

    ``check_cancel`` raises once the coroutine has set ``cancel_event`` (Cancel, or
    the executor dropped the task). Progress is only recorded here: the coroutine
    shows it from ComfyUI's loop, where an interrupt raised by the progress bar
    ends the node instead of a worker thread. Status texts go out at once (ComfyUI's
    ``send_sync`` is safe from any thread) and name the node explicitly.
    """

    def __init__(self, node_id: str | None) -> None:
        self.node_id = node_id
        self.cancel_event = threading.Event()
        self._comfy = RunHooks(node_id)
        self._latest: tuple[int, int] | None = None
        self._shown: tuple[int, int] | None = None

    def check_cancel(self) -> None:
        if self.is_cancelled():
            raise Cancelled("Cancelled: the node stopped waiting.")

    def is_cancelled(self) -> bool:
        """Whether the node was cancelled: by its coroutine, or Cancel pressed and not seen by it yet.

        ComfyUI's flag is read (never cleared) too, so a worker that checks right after Cancel
        stops even before the coroutine's next look at the flag (asked right before each POST).
        """
        return self.cancel_event.is_set() or comfy_interrupted()

    def progress(self, done: int, total: int) -> None:
        self._latest = (done, total)

    def status(self, text: str) -> None:
        self._comfy.status(text)

    def show_progress(self) -> None:
        """Move the node's progress bar to the body's latest figure (called on ComfyUI's loop)."""
        latest = self._latest
        if latest is None or latest == self._shown:
            return
        self._shown = latest
        try:
            self._comfy.progress(*latest)
        except Exception as exc:
            # ComfyUI's progress hook raises its interrupt exception, and clears the flag, if
            # Cancel came just now; set it again so every other waiting Flux2 node stops too.
            if type(exc).__name__ == "InterruptProcessingException":
                comfy_set_interrupted()
            raise


def _body_pool() -> ThreadPoolExecutor:
    """Separate from the batch's pool (api_client.run.batch), which the bodies themselves wait on."""
    return runtime().pool("lora-node", _BODY_THREADS)


def _body_in_cancel_scope(body: NodeBody, node: Any, hooks: WorkerHooks, inputs: dict[str, Any]) -> dict[str, Any]:
    # Every service GET of this run (the balance floor's check, the price) ends at once on the node's Cancel.
    from ..api_client.http.cancel import cancel_scope  # the HTTP client loads on the first run, not at start-up

    with cancel_scope(hooks.cancel_event):
        return body(node, hooks, **inputs)


async def _interrupt_monitor(hooks: WorkerHooks) -> None:
    """Ends once ComfyUI's interrupt flag is set, moving the node's progress bar meanwhile (on ComfyUI's loop).

    ComfyUI's flag is a plain value with no notice, so this looks at it every ``INTERRUPT_POLL`` s;
    the body itself is never polled: it is raced against this monitor.
    """
    while not comfy_interrupted():
        hooks.show_progress()
        await asyncio.sleep(INTERRUPT_POLL)


async def run_body_off_loop(body: NodeBody, node: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """Run ``body`` on a worker thread and await it, racing it against ComfyUI's interrupt flag.

    The model is ComfyUI's own API-node client: the work and an interrupt monitor start together,
    ``asyncio.wait(..., FIRST_COMPLETED)`` returns with the first to end, and the loser is cancelled.
    """
    hooks = WorkerHooks(inputs.get("unique_id"))
    # Not loop.run_in_executor's default pool: asyncio.run (ComfyUI runs each prompt in one)
    # waits for that pool's threads at exit, so an abandoned request would hold up the prompt's end.
    work = asyncio.wrap_future(_body_pool().submit(_body_in_cancel_scope, body, node, hooks, inputs))
    monitor = asyncio.ensure_future(_interrupt_monitor(hooks))
    ended = False
    try:
        await asyncio.wait((work, monitor), return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            ended = True
            hooks.show_progress()
            if isinstance(work.exception(), Cancelled) and comfy_interrupted():
                # The body saw Cancel first (it reads ComfyUI's flag too): reported as ComfyUI's own.
                raise comfy_interrupt_error()
            return work.result()
        monitor.result()  # what showing the progress raised (ComfyUI's interrupt), if anything
        # Interrupted. Not cleared: every other waiting Flux2 node sees the same flag (ComfyUI
        # clears it when the next prompt starts).
        raise comfy_interrupt_error()
    finally:
        if monitor.done() and not monitor.cancelled():
            monitor.exception()  # retrieved, so asyncio does not log it when the work won the race
        monitor.cancel()
        if not ended:
            # Cancel, the executor cancelling this task (another node failed, the prompt ended), or
            # an error here: the body sends nothing more, and its late result is dropped.
            hooks.cancel_event.set()
            work.cancel()


def node_function(body: NodeBody, coroutine: bool | None = None) -> Callable[..., Any]:
    """The node's ``FUNCTION`` for ``body(node, hooks, **inputs)``: plain or coroutine (default: as detected)."""
    if COROUTINE_NODES if coroutine is None else coroutine:
        async def call_async(self: Any, **inputs: Any) -> dict[str, Any]:
            return await run_body_off_loop(body, self, inputs)
        call: Callable[..., Any] = call_async
    else:
        def call_plain(self: Any, **inputs: Any) -> dict[str, Any]:
            return body(self, RunHooks(inputs.get("unique_id")), **inputs)
        call = call_plain
    call.__name__ = call.__qualname__ = body.__name__.removesuffix("_blocking")
    call.__doc__ = body.__doc__
    return call
