"""ComfyUI's hooks (interrupt, progress bar, messages to the frontend, user folder).

Each is looked up lazily and is optional: outside ComfyUI (tests, the demo) the
pack runs the same, just without a progress bar or a Cancel button.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

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
    from ..api_client.key_store import adopt_legacy_key

    path, legacy = user_dir / "flux2_lora" / "key" / "api_key", user_dir / "flux2_lora" / "api_key"
    return [path] if adopt_legacy_key(legacy, path) else [path, legacy]


class RunHooks:
    """Cancel check, progress and status messages for one node run."""

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

    def progress(self, done: int, total: int) -> None:
        """Move ComfyUI's progress bar for this node."""
        if self._progress_cls is None:
            return
        if self._bar is None:
            self._bar = self._progress_cls(total)
        self._bar.update_absolute(done, total)

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
