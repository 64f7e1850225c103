"""Hard deadlines for HTTP exchanges, however slowly a server trickles bytes.

The read timeout of ``requests`` bounds each wait for data, not the whole
answer: a server sending one byte a second never trips it. Inside ``with
Deadline(...)`` every connection the thread uses reports its socket, and when
the time is up one watchdog thread shuts those sockets down, which wakes a
blocked read at once. The caller then sees ``expired`` and says what happened.
The same thread ends an exchange whose ``cancel`` event is set (Cancel as a race:
the exchange is cut, not polled from inside the transfer).

``DeadlineAdapter`` is the transport adapter whose connections report their
sockets (plain, TLS and through an HTTP(S) proxy). A connection back in the pool
and taken by another thread belongs to that thread's deadline, not this one.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from typing import Any

import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..runtime import runtime

_local = threading.local()
_owners_lock = threading.Lock()
# How often the watchdog looks at the cancel events of the exchanges in progress (an Event gives no notice).
CANCEL_POLL = 0.05


class Deadline:
    """The end of one exchange: an absolute time (``at``, monotonic), or ``after_send`` seconds after sending.

    Use as ``with Deadline(...) as deadline:`` around the request and the reading of its body.
    ``cancel``: an event that ends the exchange as soon as it is set, as reaching the deadline would.
    """

    def __init__(self, *, at: float | None = None, after_send: float | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.at = at
        self.after_send = after_send
        self.cancel = cancel
        self.expired = False
        self._closed = False
        self._sockets: list[tuple[Any, socket.socket]] = []

    def __enter__(self) -> Deadline:
        self._outer = getattr(_local, "deadline", None)
        _local.deadline = self
        if self.at is not None:
            _watchdog().add(self)
        if self.cancel is not None:
            _watchdog().watch_cancel(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _local.deadline = self._outer
        with _owners_lock:
            self._closed = True
            for conn, _ in self._sockets:
                if getattr(conn, "_flux2_deadline", None) is self:
                    conn._flux2_deadline = None
            self._sockets.clear()

    def _sending(self, conn: Any) -> None:
        # The clock of an ``after_send`` deadline starts with the first request sent.
        if self.at is None and self.after_send is not None:
            self.at = time.monotonic() + self.after_send
            _watchdog().add(self)
        self._own(conn, conn.sock)

    def _own(self, conn: Any, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with _owners_lock:
            if self._closed:
                return
            conn._flux2_deadline = self
            self._sockets.append((conn, sock))
            late = self.expired
        if late:
            _shut(sock)

    def _fire(self) -> None:
        with _owners_lock:
            if self._closed:
                return
            self.expired = True
            mine = [sock for conn, sock in self._sockets if getattr(conn, "_flux2_deadline", None) is self]
        for sock in mine:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        # The plain socket call, also for a TLS socket: it acts on the file descriptor and wakes any reader.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _Watchdog:
    """One thread that fires deadlines as they come and cuts exchanges whose Cancel was set, started on first use."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._cancellable: list[Deadline] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._changed:
            heapq.heappush(self._heap, (deadline.at or 0.0, next(self._order), deadline))
            self._wake()

    def watch_cancel(self, deadline: Deadline) -> None:
        with self._changed:
            self._cancellable.append(deadline)
            self._wake()

    def _wake(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="flux2-lora-deadlines", daemon=True)
            self._thread.start()
        self._changed.notify()

    def _due(self) -> list[Deadline]:
        """The deadlines to fire now, waiting until there are some (called with ``_changed`` held)."""
        while True:
            while self._heap and self._heap[0][2]._closed:
                heapq.heappop(self._heap)
            self._cancellable = [d for d in self._cancellable if not d._closed]
            due = [d for d in self._cancellable if d.cancel is not None and d.cancel.is_set()]
            self._cancellable = [d for d in self._cancellable if d not in due]
            now = time.monotonic()
            while self._heap and self._heap[0][0] <= now:
                due.append(heapq.heappop(self._heap)[2])
            if due:
                return due
            waits = [self._heap[0][0] - now] if self._heap else []
            if self._cancellable:
                waits.append(CANCEL_POLL)
            self._changed.wait(min(waits) if waits else None)

    def _loop(self) -> None:
        while True:
            with self._changed:
                due = self._due()
            for deadline in due:
                deadline._fire()



def _watchdog() -> _Watchdog:
    """The process's deadline watchdog (a part of the runtime; its thread starts with the first deadline)."""
    return runtime().part("deadline watchdog", _Watchdog)


def _current() -> Deadline | None:
    return getattr(_local, "deadline", None)


class _Reporting:
    """Mixed into urllib3's connections: tell the thread's deadline which socket it is using."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        deadline = _current()
        if deadline is not None:
            deadline._own(self, sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        deadline = _current()
        with _owners_lock:
            self._flux2_deadline = deadline
        if deadline is not None:
            deadline._sending(self)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Reporting, HTTPConnection):
    pass


class _HTTPSConnection(_Reporting, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter whose connections report their sockets to the thread's ``Deadline``."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools keep their own classes: per-read timeouts only
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager
