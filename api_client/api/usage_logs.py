"""Asking the API's own records what happened to a request: GET /v2/logs.

After an ambiguous failure (read timeout, a connection dropped late, a late 5xx) the
pack cannot tell from the wire whether the request was processed and billed. The usage
logs list every request, failed ones too (with zero cost), under the
``client_request_id`` we sent (see ``tracing``). A row may appear late, so the logs are
polled for a bounded time (``FLUX2_LORA_LOG_WAIT`` seconds, 60 by default) that Cancel
ends at once.

GET /v2/logs has no filter by client request id: the window (``start``/``end``) is
kept to a few minutes around the request and at most a few pages are read, newest first.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..errors import APIStatusError, BilledWithoutAnswerError, Cancelled, Flux2Error
from ..http.cancel import sleep_or_cancel
from ..http.retry import Verdict
from ..http.transport import Transport
from ..runtime import settings_for
from ..settings import LOG_WAIT_ENV
from .limits import MODEL_EDIT, MODEL_GENERATE
from .service import ServiceUnavailable, finite_cost, service_get

log = logging.getLogger("flux2_lora")

# The endpoint allows 200 requests a minute per key; four requests polling every 2 s use 120.
POLL_INTERVAL = 2.0
PAGE_LIMIT = 100
MAX_PAGES = 5
# Room for clock differences between this machine and the API.
WINDOW_MARGIN = 300.0
LOGS_PATH = "/v2/logs"


def log_wait(environ: Mapping[str, str] | None = None) -> float:
    """Seconds to poll the usage logs after an ambiguous failure (env ``FLUX2_LORA_LOG_WAIT``; 0 turns it off)."""
    return settings_for(environ).check(LOG_WAIT_ENV).log_wait


@dataclass(frozen=True)
class LogRow:
    """One row of GET /v2/logs, as far as the pack needs it."""

    status: str  # "succeeded" or "failed"
    created: str
    credits: float
    usd: float
    inference_id: str | None
    client_request_id: str | None


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_log_page(payload: Any) -> tuple[list[LogRow], bool]:
    """The rows of one page and whether another follows; ``ServiceUnavailable`` if it is not shaped as documented.

    ``payload`` comes from ``service_get``: redacted, numbers bounded. A succeeded row whose
    cost cannot be read (missing, text, negative, 400 digits) was still billed: its amount is
    unknown (NaN), never 0. A failed row costs nothing, whatever it says.
    """
    data = payload.get("data") if isinstance(payload, dict) else None
    pagination = payload.get("pagination") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise ServiceUnavailable(f"{LOGS_PATH} answered JSON without a list of rows", permanent=True)
    rows = []
    for item in data:
        if not isinstance(item, dict):
            continue
        status = item.get("status")
        if status not in ("succeeded", "failed"):
            continue
        cost = item.get("cost") if isinstance(item.get("cost"), dict) else {}
        credits, usd = finite_cost(cost.get("credits")), finite_cost(cost.get("usd"))
        if credits is None or usd is None:
            credits, usd = (0.0, 0.0) if status == "failed" else (
                math.nan if credits is None else credits, math.nan if usd is None else usd)
        rows.append(LogRow(status=status, created=_text(item.get("created")) or "", credits=credits, usd=usd,
                           inference_id=_text(item.get("inference_id")),
                           client_request_id=_text(item.get("client_request_id"))))
    has_more = pagination.get("has_more") is True if isinstance(pagination, dict) else False
    return rows, has_more


def _text(value: Any) -> str | None:
    return value[:200] if isinstance(value, str) and value else None


def attempt_request_id(request_id: str, attempt: int) -> str:
    """The X-Client-Request-Id of attempt ``attempt`` (1, 2, ...) of ``request_id``: ``<request id>.<attempt>``.

    One id per attempt, so every usage-log row maps to exactly one attempt; all share the
    request's id as their prefix, so the request's rows are found together.
    """
    return f"{request_id}.{attempt}"


def belongs_to(row: LogRow, request_id: str) -> bool:
    """Whether ``row`` is of an attempt of ``request_id`` (or of the request itself)."""
    found = row.client_request_id
    return found is not None and (found == request_id or found.startswith(f"{request_id}."))


def rows_for(client: Transport, request_id: str, sent_at: float, *, cancel: threading.Event | None = None,
             deadline: float | None = None, until: float | None = None) -> list[LogRow]:
    """Every row of an attempt of ``request_id`` in a window around ``sent_at`` (a Unix time).

    The window ends now, or at ``until`` (a Unix time) if that is earlier, plus a margin.
    ``deadline`` (monotonic) bounds every page's GET, ``cancel`` ends them at once (``Cancelled``).
    """
    end = time.time() if until is None else min(until, time.time())
    # Only this pack's models: the key's other usage (chat, other image models) never pushes its rows
    # past the pages read.
    params = [("start", _iso(sent_at - WINDOW_MARGIN)), ("end", _iso(end + WINDOW_MARGIN)),
              ("model", MODEL_GENERATE), ("model", MODEL_EDIT), ("limit", str(PAGE_LIMIT))]
    found: list[LogRow] = []
    for page in range(MAX_PAGES):
        answer = service_get(client, LOGS_PATH, [*params, ("offset", str(page * PAGE_LIMIT))], cancel=cancel,
                             deadline=deadline)
        rows, has_more = parse_log_page(answer.payload)
        found += [row for row in rows if belongs_to(row, request_id)]
        if not has_more:
            break
    return found


@dataclass(frozen=True)
class LogVerdict:
    """What the logs say: a ``succeeded`` row of any attempt, or the ``failed`` row of the latest one, or none."""

    row: LogRow | None
    note: str = ""


def wait_for_verdict(client: Transport, request_id: str, attempt_id: str, sent_at: float, *, wait: float,
                     cancel: threading.Event | None, interval: float = POLL_INTERVAL) -> LogVerdict:
    """Poll the logs until they tell what attempt ``attempt_id`` of ``request_id`` did, for at most ``wait`` s.

    A ``succeeded`` row of any attempt means the request was billed. Only the ``failed`` row of
    this very attempt (its own X-Client-Request-Id) says it ended unbilled: a row of an earlier
    attempt never does, so nothing is sent again while this attempt may still be running.
    """
    if wait <= 0:
        return LogVerdict(None, note=f"the usage logs were not asked ({LOG_WAIT_ENV}=0)")
    deadline = time.monotonic() + wait
    interval = max(0.05, min(interval, wait / 4))
    reason = f"no row for it appeared in the usage logs within {wait:g} s"
    cancelled = "Cancelled while asking the usage logs what happened to the request."
    while True:
        if cancel is not None and cancel.is_set():
            raise Cancelled(cancelled)
        try:
            # Each ask ends by the wait's end, the last one (at the end) given one interval more.
            rows = rows_for(client, request_id, sent_at, cancel=cancel,
                            deadline=max(deadline, time.monotonic() + interval))
        except ServiceUnavailable as exc:
            log.warning("usage logs unavailable while checking request %s: %s", request_id, exc.reason)
            if exc.permanent:
                return LogVerdict(None, note=f"the usage logs could not tell ({exc.reason})")
            reason = f"the usage logs could not tell within {wait:g} s (last: {exc.reason})"
            rows = []
        succeeded = [row for row in rows if row.status == "succeeded"]
        if succeeded:
            return LogVerdict(succeeded[0])
        mine = [row for row in rows if row.status == "failed" and row.client_request_id == attempt_id]
        if mine:
            return LogVerdict(mine[0])
        left = deadline - time.monotonic()
        if left <= 0:
            return LogVerdict(None, note=reason)
        sleep_or_cancel(min(interval, left), cancel, cancelled)


# -- what the loop makes of the verdict ------------------------------------------------------------

def ask_verdict(client: Transport, request_id: str, attempt_id: str, sent_at: float, *, wait: float,
                cancel: threading.Event | None) -> LogVerdict | None:
    """``wait_for_verdict``, or None when Cancel ended the wait (the request may still have been billed)."""
    try:
        return wait_for_verdict(client, request_id, attempt_id, sent_at, wait=wait, cancel=cancel)
    except Cancelled:
        return None


def verdict_of(found: LogVerdict | None) -> Verdict:
    """The logs' answer as the retry rule (``http.retry.may_resend``) reads it."""
    if found is None or found.row is None:
        return Verdict.UNKNOWN
    return Verdict.SUCCEEDED if found.row.status == "succeeded" else Verdict.FAILED


def verdict_error(error: Flux2Error, request_id: str, attempt_id: str, found: LogVerdict | None,
                  resent: int) -> Flux2Error:
    """The error for an ambiguous attempt not sent again, saying what the usage logs told of it.

    Billed (a succeeded row): ``BilledWithoutAnswerError``. Else ``error`` (same class) with the
    attempt's id and what the logs said; ``may_have_billed`` unless they showed it failed.
    """
    if found is None:
        return _with_request_id(error, attempt_id, "Cancel ended the wait for the usage logs "
                                "before they told whether it was billed", may_have_billed=True)
    if found.row is not None and found.row.status == "succeeded":
        return _billed_error(error, request_id, found.row)
    note = found.note if found.row is None else (
        f"the usage logs show it failed again; not sent a {resent + 2}th time")
    return _with_request_id(error, attempt_id, note, may_have_billed=found.row is None)


def _with_request_id(error: Flux2Error, request_id: str, note: str, may_have_billed: bool) -> Flux2Error:
    """``error`` (same class) with the request id and what the usage logs said appended.

    ``may_have_billed``: the logs could not tell (the budget keeps counting its estimate);
    False when they showed the last attempt failed, so nothing was billed.
    """
    message = (f"{error} Request id {request_id} (X-Client-Request-Id; find it as client_request_id in "
               f"your usage logs): {note}.")
    if isinstance(error, APIStatusError):
        made: Flux2Error = type(error)(message, error.status_code, error.server_message)
    else:
        made = type(error)(message)
    made.may_have_billed = may_have_billed
    made.request_id = request_id  # type: ignore[attr-defined]
    return made


def _billed_error(error: Flux2Error, request_id: str, row: LogRow) -> BilledWithoutAnswerError:
    credits = None if row.credits != row.credits else row.credits  # NaN: the row gave no cost
    usd = None if row.usd != row.usd else row.usd
    cost = (f"{credits:,.0f} credits" if credits is not None else "an amount the logs did not give") + (
        f" (${usd:.6f})".rstrip("0") if usd is not None else "")
    first = str(error).split(". ")[0]
    return BilledWithoutAnswerError(
        f"{first}. The API's usage logs show request {row.client_request_id or request_id} "
        f"(inference {row.inference_id or '?'}) "
        f"SUCCEEDED at {row.created or 'an unrecorded time'} and was billed {cost}, but its answer with the "
        "pictures never arrived. It was not sent again, since that would bill a second time; a re-run bills "
        "anew and does not refund this one. Raise FLUX2_LORA_READ_TIMEOUT if answers often take this long.",
        row.client_request_id or request_id, credits, usd)
