"""A process-wide cap on generation requests in flight at once.

Several Flux2 nodes of one prompt (and the items of a list input) run at the
same time, and each splits ``num_images`` into requests of at most 4. Without a
cap, one graph could put dozens of requests on the user's key at once and run
into the API's rate limit. Requests beyond the cap wait for a free slot, in the
order they asked, and stop waiting as soon as their run is cancelled (nothing
is sent then). A slot is held for the whole request, retries and their waits
included, so a 429 answer slows the queue instead of letting another request in.
A request whose run was cancelled stops counting half a second later, even while
its POST still waits for the answer (which is still counted and cached when it
comes): Cancel never holds up the next run for long. The half second lets the
other requests of the cancelled prompt see their own Cancel first, so none of
them takes a slot their cancelled siblings give up.

The cap is env ``FLUX2_LORA_MAX_IN_FLIGHT`` (default 8), read each time a
request asks for a slot, so a change applies from the next request on.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import Cancelled
from ..runtime import current_settings, runtime
from ..settings import DEFAULT_MAX_IN_FLIGHT, MAX_IN_FLIGHT_ENV, parse_max_in_flight

# How often a waiting request looks at its cancel event; Cancel must end a wait within a fraction of a second.
_CANCEL_POLL = 0.05
# How long a cancelled request keeps its slot: every node of a cancelled prompt checks for Cancel
# every 0.05 s, so by then the requests still queued behind it have all given up their turn.
CANCELLED_GRACE = 0.5


class RequestSlots:
    """At most ``limit`` holders at a time; the others wait first come, first served. Thread-safe."""

    def __init__(self, limit: int) -> None:
        self._lock = threading.Condition()
        self._limit = limit
        self._holders: dict[object, threading.Event | None] = {}  # slot -> its holder's cancel event
        self._cancel_seen: dict[object, float] = {}  # slot -> when its cancel event was first seen set
        self._queue: deque[object] = deque()

    @property
    def limit(self) -> int:
        with self._lock:
            return self._limit

    def set_limit(self, limit: int) -> None:
        """Change the cap; requests already in flight keep their slots."""
        with self._lock:
            self._limit = limit
            self._lock.notify_all()

    def _counted(self) -> int:
        # Called with the lock held; the waiters' polling calls it often enough to time the grace.
        now = time.monotonic()
        counted = 0
        for ticket, cancel in self._holders.items():
            if cancel is None or not cancel.is_set():
                counted += 1
                self._cancel_seen.pop(ticket, None)
            elif now - self._cancel_seen.setdefault(ticket, now) < CANCELLED_GRACE:
                counted += 1
        return counted

    @property
    def in_flight(self) -> int:
        """Slots held by requests whose run has not been cancelled."""
        with self._lock:
            return self._counted()

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._queue)

    def acquire(self, cancel: threading.Event | None = None) -> object:
        """Wait for a slot and return it; raise Cancelled (holding none) if ``cancel`` is set first.

        Once ``cancel`` has been set for ``CANCELLED_GRACE`` seconds, the slot no longer counts
        toward the limit (if it is cleared again, because another run wants the answer, it counts again).
        """
        ticket = object()
        with self._lock:
            self._queue.append(ticket)
            try:
                # Cancel events are set without notice, so the wait also wakes up to look at them.
                while self._queue[0] is not ticket or self._counted() >= self._limit:
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("Cancelled while waiting for a free request slot; nothing was sent.")
                    self._lock.wait(_CANCEL_POLL)
                self._holders[ticket] = cancel
            finally:
                self._queue.remove(ticket)
                # The next in line may be free to go now (or the head left the queue).
                self._lock.notify_all()
        return ticket

    def release(self, ticket: object) -> None:
        with self._lock:
            del self._holders[ticket]
            self._cancel_seen.pop(ticket, None)
            self._lock.notify_all()

    @contextmanager
    def slot(self, cancel: threading.Event | None = None) -> Iterator[None]:
        """Hold one slot for the body of the ``with`` block (see ``acquire`` for ``cancel``)."""
        ticket = self.acquire(cancel)
        try:
            yield
        finally:
            self.release(ticket)


def request_slots() -> RequestSlots:
    """The cap shared by every request of this process (env FLUX2_LORA_MAX_IN_FLIGHT, default 8)."""
    limit = current_settings().check(MAX_IN_FLIGHT_ENV).max_in_flight
    slots = runtime().part("request slots", lambda: RequestSlots(limit))
    if slots.limit != limit:
        slots.set_limit(limit)
    return slots


__all__ = ["CANCELLED_GRACE", "DEFAULT_MAX_IN_FLIGHT", "MAX_IN_FLIGHT_ENV", "RequestSlots", "parse_max_in_flight",
           "request_slots"]
