"""The retry policy: may this POST be sent again without paying twice? And how long to wait first.

``may_resend(outcome)`` is the one rule, a pure function of one attempt's ``Outcome`` (what
came back, how far the request got, how long it took, what the usage logs said if they were
asked). It answers ``RESEND`` (after ``wait`` seconds), ``ASK_LOGS`` (only the API's usage logs
can tell whether it was billed: ask them, then decide again with their verdict) or ``GIVE_UP``
(with a ``note`` for the error). The POST loop (``api/client.py``) only carries it out.

Timing: capped exponential backoff with full jitter, honouring Retry-After.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum

# Statuses that mean "not processed, try again later" for the generation POST.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Of those, the ones that say so whenever they come; the others only soon after sending.
REFUSED_STATUSES = frozenset({429, 503})
# A CDN may briefly answer 404 for a picture that was just written; GET is safe to repeat.
DOWNLOAD_RETRY_STATUSES = RETRY_STATUSES | {404, 408}
# Sent again at most this often after the usage logs showed a failed row, each time for a new row.
MAX_LOG_RESENDS = 2


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

    def backoff(self, retry_number: int, jitter: float | None = None) -> float:
        """Jittered exponential wait before retry ``retry_number`` (0-based); ``jitter`` in [0, 1], else random."""
        ceiling = min(self.max_delay, self.base_delay * (2**retry_number))
        if jitter is None:
            return random.uniform(ceiling / 2, ceiling)
        return ceiling / 2 + (ceiling / 2) * jitter


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


class Reach(Enum):
    """How far a POST without a usable answer may have got."""

    NEVER = "never sent"            # no connection was made (connect error or timeout, proxy, TLS)
    DROPPED = "dropped unanswered"  # connected, then the connection dropped before any answer
    RECEIVED = "received"           # the server got it: the answer timed out or broke off midway


class Verdict(Enum):
    """What the usage logs said of the attempt, once asked."""

    SUCCEEDED = "succeeded"  # a succeeded row of any attempt: billed
    FAILED = "failed"        # this very attempt's failed row: not billed
    UNKNOWN = "unknown"      # no row in time, logs unavailable, not asked (wait 0), or Cancel ended the wait


@dataclass(frozen=True)
class Outcome:
    """One attempt of a POST, as far as the decision to send it again needs it.

    ``status``: the answer's HTTP status (None: no usable answer, then ``reach`` says how far it
    got and ``fixable`` whether another try can help at all: not after a failed TLS check, a key
    that cannot be sent, an answer too large to read). ``elapsed``: seconds from sending to the
    outcome. ``retry_after``: seconds the answer's Retry-After asked for. ``retries``: resends so
    far on this rule's word that cost nothing (they share ``max_retries``); ``log_resends``:
    resends on the usage logs' word. ``verdict``: the usage logs' word, once asked.
    """

    status: int | None = None
    reach: Reach = Reach.NEVER
    fixable: bool = True
    elapsed: float = 0.0
    retry_after: float | None = None
    retries: int = 0
    log_resends: int = 0
    verdict: Verdict | None = None


class Action(Enum):
    RESEND = "resend"
    ASK_LOGS = "ask the usage logs"
    GIVE_UP = "give up"


@dataclass(frozen=True)
class Decision:
    """What to do after an attempt: ``action``, the ``wait`` before a resend, and a ``note`` for the error.

    ``by_logs``: a resend on the usage logs' word (at once, counted against ``MAX_LOG_RESENDS``, not
    ``max_retries``). ``ambiguous``: the request may have been processed, and billed.
    """

    action: Action
    wait: float = 0.0
    note: str = ""
    by_logs: bool = False
    ambiguous: bool = False


def may_resend(outcome: Outcome, policy: RetryPolicy | None = None, *, jitter: float | None = None) -> Decision:
    """Whether the POST of ``outcome`` may be sent again without paying twice (pure, but for the jitter).

    - 2xx and the other answers no resend can change (4xx but 429, redirects): give up (or done).
    - 429 and 503 say the request was refused: resend after Retry-After, or the backoff.
    - 500, 502, 504 soon after sending: resend; later: the API may have processed it, ask the logs.
    - no connection made: resend; dropped unanswered: resend if soon, else ask the logs; the
      server got it (timeout, answer cut off): ask the logs.
    - the logs' verdict: succeeded (billed) or unknown: give up; failed (not billed): resend at
      once, at most ``MAX_LOG_RESENDS`` times.
    ``retries`` at ``max_retries`` ends the resends that cost nothing; a Retry-After above
    ``max_retry_after`` is not waited for. ``jitter`` (0-1) fixes the backoff's random part.
    """
    policy = policy or RetryPolicy()
    if outcome.verdict is not None:
        if outcome.verdict is Verdict.FAILED and outcome.log_resends < MAX_LOG_RESENDS:
            return Decision(Action.RESEND, by_logs=True, ambiguous=True)
        return Decision(Action.GIVE_UP, ambiguous=True)
    late = outcome.elapsed > policy.retry_window
    if outcome.status is None:
        if not outcome.fixable:
            return Decision(Action.GIVE_UP)
        if outcome.reach is Reach.RECEIVED:
            return Decision(Action.ASK_LOGS, ambiguous=True)
        if outcome.reach is Reach.DROPPED and late:
            return Decision(Action.ASK_LOGS, ambiguous=True, note=(
                f" The connection dropped {outcome.elapsed:.0f} s after the request was sent; the API may "
                "have processed and billed it, so it was not sent again. Check your usage before re-running."))
        return _backoff(outcome, policy, jitter, None)
    if outcome.status not in RETRY_STATUSES:
        return Decision(Action.GIVE_UP)
    if outcome.status not in REFUSED_STATUSES and late:
        return Decision(Action.ASK_LOGS, ambiguous=True, note=(
            f" It came {outcome.elapsed:.0f} s after sending, so the API may have processed and billed the "
            "request; it was not sent again."))
    return _backoff(outcome, policy, jitter, outcome.retry_after)


def _backoff(outcome: Outcome, policy: RetryPolicy, jitter: float | None, asked: float | None) -> Decision:
    """A resend that cannot bill: after ``asked`` seconds (Retry-After) or the backoff, while retries are left."""
    if outcome.retries >= policy.max_retries:
        return Decision(Action.GIVE_UP)
    if asked is not None and asked > policy.max_retry_after:
        return Decision(Action.GIVE_UP, note=(
            f" It asked to retry after {asked:.0f} s, longer than the {policy.max_retry_after:.0f} s this pack "
            "waits, so it was not retried."))
    wait = asked if asked is not None else policy.backoff(outcome.retries, jitter)
    return Decision(Action.RESEND, wait=wait)
