"""Cancel where the code waits in threads: one way to wait, one way to cut an exchange.

A thread that waits (before a retry, between two asks of the usage logs) waits with
``sleep_or_cancel``: the wait ends the moment the Cancel event is set. An HTTP exchange in
progress ends on Cancel through its ``deadline.Deadline(cancel=...)``: the one watchdog thread
that enforces deadlines also shuts the connections of exchanges whose Cancel was set.

``cancel_scope`` hands a Cancel to every service GET of a thread (a node's body runs in one)
without passing it through every layer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import Cancelled


def sleep_or_cancel(seconds: float, cancel: threading.Event | None,
                    message: str = "Cancelled while waiting to retry.") -> None:
    """Wait ``seconds`` unless ``cancel`` is set first, in which case raise ``Cancelled(message)``."""
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise Cancelled(message)


_scope = threading.local()


@contextmanager
def cancel_scope(cancel: threading.Event | None) -> Iterator[None]:
    """Within this block, service GETs on this thread end on ``cancel`` unless given one of their own.

    A node's body runs inside its Cancel's scope (nodes/node_call.py), so the floor's balance
    check and the price it asks end on the node's Cancel without passing it through every layer.
    """
    outer = getattr(_scope, "cancel", None)
    _scope.cancel = cancel
    try:
        yield
    finally:
        _scope.cancel = outer


def scoped_cancel() -> threading.Event | None:
    """The cancel event of the innermost ``cancel_scope`` on this thread, if any."""
    return getattr(_scope, "cancel", None)
