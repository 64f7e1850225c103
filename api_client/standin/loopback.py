"""Loopback-only HTTP serving, shared by the stand-in's two servers (the API stand-in and the LoRA host).

``LoopbackService`` binds a threading HTTP server to a loopback address, serves it from a daemon
thread and stops it promptly; ``write_answer`` writes one whole answer. Stdlib only.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, TypeVar

# Errors meaning "the client went away" (or refused our TLS certificate); expected with faults.
HANGUPS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError, ssl.SSLError)

_Service = TypeVar("_Service", bound="LoopbackService")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` or a literal loopback IP. Never resolves names (no DNS traffic)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def write_answer(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str,
                 headers: dict[str, str] | None = None) -> None:
    """Write one whole answer: status, ``Content-Type``, ``Content-Length``, ``headers``, then ``body``.

    The body is left out for a HEAD request, as HTTP wants.
    """
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


class QuietHTTPServer(ThreadingHTTPServer):
    """Threading HTTP server (IPv4) that knows the service it serves and stays quiet about hang-ups."""

    daemon_threads = True
    owner: LoopbackService

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-answer is routine here; stay quiet about it.
        # Anything else is a stand-in bug and deserves its traceback.
        kind = sys.exc_info()[0]
        if (kind is not None and issubclass(kind, HANGUPS)) or self.owner.stopping.is_set():
            return
        super().handle_error(request, client_address)


class QuietHTTPServer6(QuietHTTPServer):
    """The same on IPv6 (for ``--host ::1``)."""

    address_family = socket.AF_INET6


class LoopbackService:
    """One loopback HTTP server on a daemon thread: ``start()``, ``stop()``, ``port``, ``root_url``, ``with``.

    A subclass names its ``handler_class`` (which finds the service as ``self.server.owner``), its
    ``name`` for messages and ``thread_name``; it may wrap the listening socket (``_bound``) and
    hang up open connections on stop (``_hang_up``).
    """

    handler_class: ClassVar[type[BaseHTTPRequestHandler]]
    name: ClassVar[str] = "loopback server"
    thread_name: ClassVar[str] = "standin-loopback"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if not is_loopback(host):
            raise ValueError(f"the {self.name} only binds to loopback addresses, not {host!r}")
        self.host = host
        self.stopping = threading.Event()  # set by stop(): wakes handlers sleeping on latency and faults
        self._requested_port = port
        self._httpd: QuietHTTPServer | None = None
        self._port: int | None = None  # kept after stop(), so URLs stay printable
        self._thread: threading.Thread | None = None

    @property
    def scheme(self) -> str:
        """``http`` (a service serving TLS says ``https``)."""
        return "http"

    def start(self: _Service) -> _Service:
        """Bind and serve in a background daemon thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError(f"{self.name} already started")
        self.stopping.clear()
        cls = QuietHTTPServer6 if ":" in self.host else QuietHTTPServer
        httpd = cls((self.host.strip("[]"), self._requested_port), self.handler_class)
        httpd.owner = self
        self._bound(httpd)
        self._httpd = httpd
        self._port = int(httpd.server_address[1])
        # Short poll interval so stop() returns promptly.
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, hang up open connections, close the socket, join the thread."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.stopping.set()
        httpd.shutdown()
        self._hang_up()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _bound(self, httpd: QuietHTTPServer) -> None:
        """Called once the socket is bound, before serving (the stand-in wraps it in TLS here)."""

    def _hang_up(self) -> None:
        """Called by stop() after serving ended, before the socket closes (cut idle keep-alive connections)."""

    def __enter__(self: _Service) -> _Service:
        """Start if needed; stop on exit."""
        return self if self._httpd is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop the server."""
        self.stop()

    @property
    def port(self) -> int:
        """The port actually bound (useful with port=0); still known after stop()."""
        if self._port is None:
            raise RuntimeError(f"{self.name} not started")
        return self._port

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT`` (``https`` when serving TLS)."""
        host = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"
