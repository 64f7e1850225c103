"""ComfyUI's hooks (interrupt, progress bar, messages to the frontend, user folder).

Each is looked up lazily and is optional: outside ComfyUI (tests, the demo) the
pack runs the same, just without a progress bar or a Cancel button.
"""

from __future__ import annotations

import inspect
import logging
import sys
from pathlib import Path
from typing import Any

from ..api_client.errors import Cancelled

log = logging.getLogger("flux2_lora")

STATUS_EVENT = "flux2lora.status"


def _comfy_module(name: str) -> Any | None:
    # ComfyUI has imported all of these before any node runs; looking them up in
    # sys.modules (instead of importing) never picks up an unrelated module.
    return sys.modules.get(name)


def comfy_prompt_server() -> Any | None:
    """ComfyUI's running PromptServer (its web server), or None outside ComfyUI."""
    server = _comfy_module("server")
    return getattr(getattr(server, "PromptServer", None), "instance", None)


def comfy_user_dir() -> Path | None:
    """ComfyUI's user directory, or None outside ComfyUI."""
    folder_paths = _comfy_module("folder_paths")
    getter = getattr(folder_paths, "get_user_directory", None)
    return Path(getter()) if getter else None


def comfy_cache_dir() -> Path | None:
    """The result cache's folder inside ComfyUI's user directory (kept across restarts, unlike temp)."""
    user_dir = comfy_user_dir()
    return user_dir / "flux2_lora" / "cache" if user_dir else None


def comfy_key_files() -> list[Path]:
    """Key files inside ComfyUI's user directory (written by the pack's settings dialog), first the one saved to.

    The key has a 0700 folder of its own (``flux2_lora/key``): ``flux2_lora`` itself
    is shared with the result cache, which may create it with another mode first.
    A key saved by an earlier version directly in ``flux2_lora`` is moved there.
    """
    user_dir = comfy_user_dir()
    if not user_dir:
        return []
    from ..api_client.http.key_store import adopt_legacy_key

    path, legacy = user_dir / "flux2_lora" / "key" / "api_key", user_dir / "flux2_lora" / "api_key"
    return [path] if adopt_legacy_key(legacy, path) else [path, legacy]


def comfy_money() -> Any:
    """The process's money component, keeping its settings and ledger in ComfyUI's user folder.

    Its settings made in ComfyUI are read from there on first use, so they hold from start-up.
    """
    from ..api_client.money.budget import credit_budget
    from ..api_client.money.ledger import default_ledger_path

    money = credit_budget()
    user_dir = comfy_user_dir()
    money.use_user_dir(user_dir)
    money.use_ledger(default_ledger_path(user_dir))
    return money


def comfy_interrupted() -> bool:
    """Whether ComfyUI's interrupt flag (Cancel) is set; reading it does not clear it."""
    check = getattr(_comfy_module("comfy.model_management"), "processing_interrupted", None)
    return bool(check()) if check is not None else False


def comfy_interrupt_error() -> BaseException:
    """ComfyUI's own interrupt exception, which its executor reports as "interrupted", not as a failure."""
    cls = getattr(_comfy_module("comfy.model_management"), "InterruptProcessingException", None)
    return cls() if cls is not None else Cancelled("Cancelled.")


def comfy_set_interrupted() -> None:
    """Set ComfyUI's interrupt flag again (see node_call: a progress update may have cleared it)."""
    setter = getattr(_comfy_module("comfy.model_management"), "interrupt_current_processing", None)
    if setter is not None:
        setter(True)


def comfy_awaits_coroutines() -> bool:
    """Whether the running ComfyUI awaits node functions that are coroutines (0.3.45 on).

    Feature detection, not a version string: ComfyUI's executor (its module
    ``execution``, imported before any custom node) maps a node over its inputs
    with the coroutine ``_async_map_node_over_list``, which runs a coroutine node
    function as an asyncio task. An executor without it calls node functions
    plainly and would hand a coroutine on as the node's output. Outside ComfyUI
    (tests, scripts, the demo) there is no such module: plain functions.
    """
    execution = _comfy_module("execution")
    return inspect.iscoroutinefunction(getattr(execution, "_async_map_node_over_list", None))


class RunHooks:
    """Cancel check, progress and status messages for one node run, called on the node's own thread."""

    def __init__(self, node_id: str | None = None) -> None:
        self.node_id = node_id
        management = _comfy_module("comfy.model_management")
        self._throw_if_interrupted = getattr(management, "throw_exception_if_processing_interrupted", None)
        utils = _comfy_module("comfy.utils")
        self._progress_cls = getattr(utils, "ProgressBar", None)
        self._bar: Any = None
        self._server = comfy_prompt_server()

    def check_cancel(self) -> None:
        """Raise ComfyUI's interrupt exception if the user pressed Cancel."""
        if self._throw_if_interrupted is not None:
            self._throw_if_interrupted()

    def is_cancelled(self) -> bool:
        """Whether Cancel was pressed, without clearing ComfyUI's flag (asked by the sending threads)."""
        return comfy_interrupted()

    def progress(self, done: int, total: int) -> None:
        """Move ComfyUI's progress bar for this node."""
        if self._progress_cls is None:
            return
        if self._bar is None:
            self._bar = self._new_bar(total)
        self._bar.update_absolute(done, total)

    def _new_bar(self, total: int) -> Any:
        # The node id is given explicitly: without it ComfyUI finds the node from a context
        # variable that a worker thread or a concurrent node's task does not share, and would
        # move the bar of whichever node it ran last.
        if self.node_id is not None:
            try:
                return self._progress_cls(total, node_id=self.node_id)
            except TypeError:  # ComfyUI before 0.3.4x: no node_id parameter
                pass
        return self._progress_cls(total)

    def status(self, text: str) -> None:
        """Show a short status text on the node ("" clears it), read by the pack's frontend extension.

        The node is named by its execution id as ComfyUI gives it ("5:7" inside a subgraph);
        the extension finds the node from the root graph and shows the text in its display
        widget, which is never saved. Not ``PromptServer.send_progress_text``: frontend 1.27.10
        keeps that text on the node after the run and saves it in the workflow's widgets_values,
        in the place a later optional input's value would take.
        """
        if self._server is None or self.node_id is None:
            return
        try:
            self._server.send_sync(STATUS_EVENT, {"node": self.node_id, "text": text})
        except Exception as exc:  # a UI message must never fail a generation
            log.debug("status message not sent: %s", type(exc).__name__)
