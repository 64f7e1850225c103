"""The stand-in's state as its answers and its request handler see it (typing only).

``StandInServer`` (server.py) is the one implementation. api.py and handler.py are typed
against these protocols instead of the server class, so the server can import them without
an import circle.
"""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from .accounts import Accounts
    from .files import FileStore


class GenerationState(Protocol):
    """What ``api.answer_generation`` reads and writes."""

    key: str
    response_mode: str
    store: FileStore
    accounts: Accounts
    received_images: list[np.ndarray]

    @property
    def port(self) -> int: ...

    @property
    def root_url(self) -> str: ...

    def note(self, notes: list[str]) -> None:
        """Warn about requests the schema allows but that look like mistakes (strict mode)."""


class ServerState(GenerationState, Protocol):
    """What the request handler (handler.py) uses: the above, counters, faults and the admin endpoints."""

    verbose: bool
    latency: float
    stopping: threading.Event

    def track_connection(self, conn: socket.socket, add: bool) -> None: ...

    def count_post(self, raw: bytes, client_request_id: str | None) -> dict[str, Any] | None: ...

    def track_post(self, step: int) -> None: ...

    def count_file_get(self) -> dict[str, Any] | None: ...

    def stats(self) -> dict[str, Any]: ...

    def request_summaries(self, max_chars: int = 200) -> list[Any]: ...

    def reset(self) -> None: ...

    def configure(self, latency: float | None = None, response_mode: str | None = None,
                  endpoints: dict[str, str] | None = None, balance: float | None = None,
                  strict: bool | None = None, deprecations: list[dict[str, Any]] | None = None) -> None: ...

    def queue_post_faults(self, faults: list[dict[str, Any]]) -> None: ...

    def queue_file_faults(self, faults: list[dict[str, Any]]) -> None: ...

    def queue_service_faults(self, faults: list[dict[str, Any]]) -> None: ...
