"""The stand-in server object: shared state, faults and counters (serving itself: loopback.py)."""

from __future__ import annotations

import socket
import ssl
import sys
import threading
from collections import deque
from typing import Any

import numpy as np

from .accounts import Accounts
from .answers import parse_body
from .faults import FaultQueue, check_file_fault, check_post_fault
from .files import FileStore
from .handler import Handler
from .loopback import LoopbackService, QuietHTTPServer

RESPONSE_MODES = ("url", "b64")
MAX_WARNINGS = 1000  # strict mode keeps the latest ones; a long session must not grow without bound
# The request bodies kept for tests to look at: the most recent ones, bounded in number and in
# size (an Edit body carries megabytes of pictures), so a long-running stand-in does not grow.
BODY_HISTORY = 32
BODY_HISTORY_BYTES = 64 * 1024 * 1024


class StandInServer(LoopbackService):
    """A local HTTP stand-in for the AI/ML API image generation endpoint.

    Binds only to loopback addresses. See the package docstring for usage.
    """

    handler_class = Handler
    name = "stand-in"
    thread_name = "standin-server"

    def __init__(self, key: str = "sk-standin-local", host: str = "127.0.0.1", port: int = 0,
                 latency: float = 0.0, response_mode: str = "url", verbose: bool = False,
                 tls: tuple[str, str] | None = None, strict: bool = False) -> None:
        super().__init__(host, port)
        if response_mode not in RESPONSE_MODES:
            raise ValueError(f"response_mode must be one of {RESPONSE_MODES}")
        self.key = key
        self.tls = tls  # (certificate file, private key file): serve https instead of http
        self.verbose = verbose
        self.latency = float(latency)
        self.response_mode = response_mode
        # Strict mode: what the schema allows but a careful client would not send (an unknown
        # field, usually a typo) is warned about on stderr and kept in ``warnings``; never refused.
        self.strict = bool(strict)
        self.warnings: list[str] = []
        self.store = FileStore()
        self.received_images: list[np.ndarray] = []
        self.post_count = 0
        self.file_get_count = 0
        self._bodies: deque[tuple[Any, int]] = deque()  # (parsed body, size of the raw body)
        self._bodies_bytes = 0
        self._request_ids: deque[str | None] = deque(maxlen=BODY_HISTORY)  # X-Client-Request-Id of each POST
        self.accounts = Accounts()  # usage logs, balance, model catalogue (GET /v2/logs, /v2/billing, /v1/models)
        # Generation POSTs being answered right now, and the most at once since the last reset.
        self.posts_in_progress = 0
        self.max_posts_in_progress = 0
        self._post_faults = FaultQueue(check_post_fault)
        self._file_faults = FaultQueue(check_file_fault)
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()

    # -- serving (start, stop, port and root_url come from LoopbackService) --
    @property
    def scheme(self) -> str:
        """``https`` when serving TLS, else ``http``."""
        return "https" if self.tls else "http"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``, the API base a client should use."""
        return f"{self.root_url}/v1"

    def _bound(self, httpd: QuietHTTPServer) -> None:
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            # The handshake happens in the handler thread, so a failing client cannot block accepting.
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)

    def _hang_up(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # idle keep-alive handlers block in recv until this
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- faults, config, counters -------------------------------------------
    def queue_post_faults(self, faults: list[dict[str, Any]]) -> None:
        """Queue faults for the next POSTs to the generation endpoint (ValueError if invalid)."""
        self._post_faults.extend(faults)

    def queue_file_faults(self, faults: list[dict[str, Any]]) -> None:
        """Queue faults for the next GETs of image files (ValueError if invalid)."""
        self._file_faults.extend(faults)

    def queue_service_faults(self, faults: list[dict[str, Any]]) -> None:
        """Queue faults for the next service GETs (/v2/logs, /v2/billing, /v1/models), each naming its endpoint."""
        self.accounts.queue_faults(faults)

    def configure(self, latency: float | None = None, response_mode: str | None = None,
                  endpoints: dict[str, str] | None = None, balance: float | None = None,
                  strict: bool | None = None, deprecations: list[dict[str, Any]] | None = None) -> None:
        """Change latency, response mode, service endpoint faults, balance or strict mode (POST /_standin/config)."""
        if strict is not None and not isinstance(strict, bool):
            raise ValueError("strict must be true or false")
        self.accounts.configure(endpoints=endpoints, balance=balance, deprecations=deprecations)
        if strict is not None:
            self.strict = strict
        if latency is not None:
            if isinstance(latency, bool) or not isinstance(latency, (int, float)) or latency < 0:
                raise ValueError("latency must be a number >= 0")
            self.latency = float(latency)
        if response_mode is not None:
            if response_mode not in RESPONSE_MODES:
                raise ValueError(f"response_mode must be one of {RESPONSE_MODES}")
            self.response_mode = response_mode

    def note(self, notes: list[str]) -> None:
        """In strict mode, warn about ``notes`` (requests the schema allows but that look like mistakes)."""
        if not self.strict or not notes:
            return
        for text in notes:
            print(f"stand-in warning: {text}", file=sys.stderr, flush=True)
        with self._lock:
            self.warnings.extend(notes)
            del self.warnings[:-MAX_WARNINGS]

    def reset(self) -> None:
        """Clear counters, bodies, faults, inputs and warnings; latency 0, mode "url" (strict mode stays)."""
        with self._lock:
            self.warnings.clear()
            self.post_count = 0
            self.file_get_count = 0
            self._bodies.clear()
            self._bodies_bytes = 0
            self._request_ids.clear()
            self.received_images = []
            self.max_posts_in_progress = self.posts_in_progress
        self.accounts.reset()
        self._post_faults.clear()
        self._file_faults.clear()
        self.latency = 0.0
        self.response_mode = "url"

    def stats(self) -> dict[str, Any]:
        """Counters and settings, as served by GET /_standin/stats."""
        return {
            "post_count": self.post_count,
            "file_get_count": self.file_get_count,
            "posts_in_progress": self.posts_in_progress,
            "max_posts_in_progress": self.max_posts_in_progress,
            "pending_post_faults": len(self._post_faults),
            "pending_file_faults": len(self._file_faults),
            "stored_files": len(self.store),
            "latency": self.latency,
            "response_mode": self.response_mode,
            "strict": self.strict,
            "warnings": list(self.warnings),
            "service_get_counts": dict(self.accounts.get_counts),
            "service_gets_in_progress": self.accounts.gets_in_progress,
            "pending_service_faults": self.accounts.pending_faults(),
            "balance": self.accounts.balance,
            "endpoints": dict(self.accounts.endpoint_modes),
        }

    @property
    def post_bodies(self) -> list[Any]:
        """The most recent generation bodies, oldest first (None for one that was not JSON).

        At most ``BODY_HISTORY`` of them and about ``BODY_HISTORY_BYTES``; ``post_count``
        counts every POST. The last body is always kept, however large.
        """
        with self._lock:
            return [body for body, _ in self._bodies]

    def request_summaries(self, max_chars: int = 200) -> list[Any]:
        """The generation bodies kept (see post_bodies), oldest first, as served by GET /_standin/requests.

        Strings longer than ``max_chars`` (Edit's data URIs) become ``"<N chars>"``, so a test
        in another process can read seeds, sizes and LoRAs without megabytes of pictures.
        """
        def shorten(value: Any) -> Any:
            if isinstance(value, str) and len(value) > max_chars:
                return f"<{len(value)} chars>"
            if isinstance(value, dict):
                return {k: shorten(v) for k, v in value.items()}
            if isinstance(value, list):
                return [shorten(v) for v in value]
            return value

        return [shorten(body) for body in self.post_bodies]  # post_bodies takes the lock itself

    @property
    def post_request_ids(self) -> list[str | None]:
        """The X-Client-Request-Id of the most recent POSTs (at most ``BODY_HISTORY``), oldest first."""
        with self._lock:
            return list(self._request_ids)

    # -- the handler's bookkeeping (see state.ServerState) -------------------------
    def count_post(self, raw: bytes, client_request_id: str | None = None) -> dict[str, Any] | None:
        """Count one generation POST, keep its body and request id; its queued fault (None if none)."""
        try:
            body = parse_body(raw)
        except ValueError:
            body = None
        with self._lock:
            self.post_count += 1
            self._bodies.append((body, len(raw)))
            self._bodies_bytes += len(raw)
            self._request_ids.append(client_request_id)
            while len(self._bodies) > 1 and (len(self._bodies) > BODY_HISTORY
                                             or self._bodies_bytes > BODY_HISTORY_BYTES):
                self._bodies_bytes -= self._bodies.popleft()[1]
            return self._post_faults.pop()

    def track_post(self, step: int) -> None:
        """A generation POST starts (+1) or ends (-1) being answered."""
        with self._lock:
            self.posts_in_progress += step
            self.max_posts_in_progress = max(self.max_posts_in_progress, self.posts_in_progress)

    def count_file_get(self) -> dict[str, Any] | None:
        """Count one picture GET; its queued fault (None if none)."""
        with self._lock:
            self.file_get_count += 1
            return self._file_faults.pop()

    def track_connection(self, conn: socket.socket, add: bool) -> None:
        """A connection opens (``add``) or closes; stop() hangs up the open ones."""
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)
