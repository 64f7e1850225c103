"""Retry timing: capped exponential backoff with full jitter, honouring Retry-After."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from ..errors import Cancelled

# Statuses that mean "not processed, try again later" for the generation POST.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Of those, the ones that say so whenever they come; the others only soon after sending.
REFUSED_STATUSES = frozenset({429, 503})
# A CDN may briefly answer 404 for a picture that was just written; GET is safe to repeat.
DOWNLOAD_RETRY_STATUSES = RETRY_STATUSES | {404, 408}


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait between attempts.

    ``max_retries`` further attempts after the first; each wait is a random
    fraction of ``base_delay * 2**n`` capped at ``max_delay``, or the server's
    Retry-After when it gives one. A Retry-After above ``max_retry_after`` is not
    waited for: the error is raised at once, saying how long the server asked for.

    ``retry_window``: a dropped connection, 500, 502 or 504 is only retried when it
    came within this many seconds of sending. Later, the API may have been
    generating (and billing) when the connection or a gateway gave up, so the
    request is not sent again. 429 and 503 say the request was refused, and a
    connection that was never made sent nothing: those are retried at any time.
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    retry_window: float = 10.0

    def backoff(self, retry_number: int) -> float:
        """Jittered exponential wait before retry ``retry_number`` (0-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2**retry_number))
        return random.uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def sleep_or_cancel(seconds: float, cancel: threading.Event | None) -> None:
    """Wait ``seconds`` unless ``cancel`` is set first, in which case raise Cancelled."""
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise Cancelled("Cancelled while waiting to retry.")
