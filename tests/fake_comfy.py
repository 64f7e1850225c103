"""Stand-ins for the ComfyUI modules the pack looks up: interrupt flag, progress bar, web server.

Shaped like ComfyUI 0.3.64's own: ``throw_exception_if_processing_interrupted``
clears the flag when it raises, and the progress bar's hook checks the flag
(and raises) on every update, as ComfyUI's ``hijack_progress`` hook does.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import types
from typing import Any


class InterruptProcessingException(Exception):
    """Shaped like comfy.model_management's own."""


class FakeComfy:
    """comfy.model_management, comfy.utils and server with the real names, recording what the pack does."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.interrupted = False
        self.progress: list[tuple[str | None, int, int]] = []  # (node id given to ProgressBar, value, total)
        self.messages: list[tuple[str, dict[str, Any]]] = []

        management = types.ModuleType("comfy.model_management")
        management.InterruptProcessingException = InterruptProcessingException
        management.processing_interrupted = self.processing_interrupted
        management.interrupt_current_processing = self.interrupt
        management.throw_exception_if_processing_interrupted = self.throw_if_interrupted
        fake = self

        class ProgressBar:
            def __init__(self, total: int, node_id: str | None = None) -> None:
                self.total, self.node_id = total, node_id

            def update_absolute(self, value: int, total: int | None = None, preview: Any = None) -> None:
                fake.throw_if_interrupted()
                with fake.lock:
                    fake.progress.append((self.node_id, value, total or self.total))

        utils = types.ModuleType("comfy.utils")
        utils.ProgressBar = ProgressBar
        comfy = types.ModuleType("comfy")
        comfy.model_management, comfy.utils = management, utils

        class PromptServer:
            def send_sync(self, event: str, data: dict[str, Any], sid: str | None = None) -> None:
                with fake.lock:
                    fake.messages.append((event, dict(data)))

        server = types.ModuleType("server")
        server.PromptServer = types.SimpleNamespace(instance=PromptServer())
        self.modules = {"comfy": comfy, "comfy.model_management": management, "comfy.utils": utils,
                        "server": server}

    def processing_interrupted(self) -> bool:
        with self.lock:
            return self.interrupted

    def interrupt(self, value: bool = True) -> None:
        with self.lock:
            self.interrupted = value

    def throw_if_interrupted(self) -> None:
        with self.lock:
            if self.interrupted:
                self.interrupted = False
                raise InterruptProcessingException()

    def statuses(self, node_id: str) -> list[str]:
        """The status texts sent for ``node_id``, in order."""
        with self.lock:
            return [data["text"] for event, data in self.messages
                    if event == "flux2lora.status" and data.get("node") == node_id]

    def progress_of(self, node_id: str) -> list[tuple[int, int]]:
        with self.lock:
            return [(value, total) for node, value, total in self.progress if node == node_id]

    def install(self, monkeypatch: Any) -> FakeComfy:
        for name, module in self.modules.items():
            monkeypatch.setitem(sys.modules, name, module)
        return self


def run_in_own_loop(main: Any) -> Any:
    """``asyncio.run(main())`` on a thread of its own, as ComfyUI's prompt worker runs each prompt.

    (The main thread may already run a loop: Playwright's, in a session with the browser tests.)
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = asyncio.run(main())
        except BaseException as exc:
            outcome["error"] = exc
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
