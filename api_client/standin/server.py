"""The stand-in server object: lifecycle, shared state, faults and counters."""

from __future__ import annotations

import socket
import ssl
import sys
import threading
from collections import deque
from typing import Any

import numpy as np

from .accounts import Accounts
from .api import parse_body
from .faults import FaultQueue, check_file_fault, check_post_fault
from .files import FileStore
from .handler import Handler, HTTPServer4, HTTPServer6, is_loopback

RESPONSE_MODES = ("url", "b64")
MAX_WARNINGS = 1000  # strict mode keeps the latest ones; a long session must not grow without bound
# The request bodies kept for tests to look at: the most recent ones, bounded in number and in
# size (an Edit body carries megabytes of pictures), so a long-running stand-in does not grow.
BODY_HISTORY = 32
BODY_HISTORY_BYTES = 64 * 1024 * 1024


class StandInServer:
    """A local HTTP stand-in for the AI/ML API image generation endpoint.

    Binds only to loopback addresses. See the package docstring for usage.
    """

    def __init__(self, key: str = "sk-standin-local", host: str = "127.0.0.1", port: int = 0,
                 latency: float = 0.0, response_mode: str = "url", verbose: bool = False,
                 tls: tuple[str, str] | None = None, strict: bool = False) -> None:
        if not is_loopback(host):
            raise ValueError(f"the stand-in only binds to loopback addresses, not {host!r}")
        if response_mode not in RESPONSE_MODES:
            raise ValueError(f"response_mode must be one of {RESPONSE_MODES}")
        self.key = key
        self.host = host
        self.tls = tls  # (certificate file, private key file): serve https instead of http
        self.verbose = verbose
        self.latency = float(latency)
        self.response_mode = response_mode
        # Strict mode: what the schema allows but a careful client would not send (an unknown
        # field, usually a typo) is warned about on stderr and kept in ``warnings``; never refused.
        self.strict = bool(strict)
        self.warnings: list[str] = []
        self.store = FileStore()
        self.stopping = threading.Event()
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
        self._requested_port = port
        self._post_faults = FaultQueue(check_post_fault)
        self._file_faults = FaultQueue(check_file_fault)
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._httpd: HTTPServer4 | None = None
        self._port: int | None = None  # kept after stop(), so URLs stay printable
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> StandInServer:
        """Bind and serve in a background daemon thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("stand-in already started")
        self.stopping.clear()
        cls = HTTPServer6 if ":" in self.host else HTTPServer4
        httpd = cls((self.host.strip("[]"), self._requested_port), Handler)
        httpd.standin = self
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            # The handshake happens in the handler thread, so a failing client cannot block accepting.
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        self._httpd = httpd
        self._port = int(httpd.server_address[1])
        # Short poll interval so stop() returns promptly.
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="standin-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections, close the socket, join the thread."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.stopping.set()  # wakes handlers sleeping on latency/delay/slow faults
        httpd.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # idle keep-alive handlers block in recv until this
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> StandInServer:
        """Start if needed; stop on exit."""
        return self if self._httpd is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop the server."""
        self.stop()

    # -- addresses ---------------------------------------------------------
    @property
    def port(self) -> int:
        """The port actually bound (useful with port=0); still known after stop()."""
        if self._port is None:
            raise RuntimeError("stand-in not started")
        return self._port

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT`` (``https`` when serving TLS)."""
        host = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``, the API base a client should use."""
        return f"{self.root_url}/v1"

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

    def _count_post(self, raw: bytes, client_request_id: str | None = None) -> dict[str, Any] | None:
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

    def _post_in_progress(self, step: int) -> None:
        with self._lock:
            self.posts_in_progress += step
            self.max_posts_in_progress = max(self.max_posts_in_progress, self.posts_in_progress)

    def _count_file_get(self) -> dict[str, Any] | None:
        with self._lock:
            self.file_get_count += 1
            return self._file_faults.pop()

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)
