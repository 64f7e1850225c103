"""Asking the usage logs what a request cost when its answer never told: holds of a process that died,
and this process's requests of unknown price that may have been billed.

Holds left by a process that died still count at their estimate; before admitting a run under
a ledger budget the pack asks the usage logs about them by their request ids
(``recover_orphans``) and settles or drops them from what the logs say.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ..amounts import valid_amount
from .ledger import LedgerError
from .texts import credits_text

if TYPE_CHECKING:
    from ..api.client import ApiClient

log = logging.getLogger("flux2_lora")

# Orphaned holds are asked about at most this often (each ask reads a few pages of /v2/logs).
RECOVERY_INTERVAL = 10.0
# How long after a request its usage-log rows are looked for (its answer's wait, retries and log delay).
REQUEST_WINDOW = 3600.0
# How long one admission may spend asking the usage logs about them, all holds together.
RECOVERY_DEADLINE = 5.0


class Recovery:
    """Part of ``Money`` (component.py): the usage logs' verdicts on holds whose answer never came."""

    def recover_orphans(self, client: ApiClient, force: bool = False, cancel: Any = None) -> int:
        """Settle or drop the holds of processes that are gone, from the usage logs; how many were resolved.

        A hold whose request has a ``succeeded`` row is billed at the row's cost (its estimate if
        the row gives none); one whose last attempt has a ``failed`` row (or that was never sent) is
        dropped: every earlier attempt was sent again only once it surely was not billed. Any other
        keeps counting at its estimate. Asked at most every ``RECOVERY_INTERVAL`` seconds, within
        ``RECOVERY_DEADLINE`` seconds in all, the oldest hold not asked about for longest first; a
        failure of the logs changes nothing; ``cancel`` ends it at once (``Cancelled``).
        """
        from ..api.service import ServiceUnavailable

        ledger = self.ledger
        now = time.monotonic()
        with self._lock:
            if ledger is None or (not force and now - self._recovered_at < RECOVERY_INTERVAL):
                return 0
            self._recovered_at = now
        try:
            orphans = [hold for hold in ledger.holds() if hold.orphaned()]
        except LedgerError as exc:
            log.warning("%s", exc)
            return 0
        # Those asked about least recently first, so holds the logs cannot resolve never starve the others.
        orphans.sort(key=lambda hold: self._asked_at.get(hold.request_id, 0.0))
        resolved = 0
        deadline = time.monotonic() + RECOVERY_DEADLINE
        for hold in orphans:
            try:
                if hold.attempts <= hold.cleared:
                    # Never sent (the process died before its POST), or its last attempt was refused.
                    ledger.drop_hold(hold.request_id)
                    resolved += 1
                    continue
                if time.monotonic() >= deadline:
                    break
                self._asked_at[hold.request_id] = time.monotonic()
                verdict = _log_verdict(client, hold.request_id, hold.at, hold.attempts, hold.credits, hold.usd,
                                       cancel, deadline)
            except (ServiceUnavailable, LedgerError) as exc:
                log.warning("request %s left in flight by a stopped ComfyUI still counts at its estimate: %s",
                            hold.request_id, getattr(exc, "reason", exc))
                continue
            try:
                if verdict is None:
                    continue
                if verdict[0] == "billed":
                    _, credits, usd, inference_id = verdict
                    ledger.record(credits, usd, hold.request_id, inference_id)
                    log.info("request %s left in flight by a stopped ComfyUI was billed %s (usage logs)",
                             hold.request_id, credits_text(credits))
                else:
                    ledger.drop_hold(hold.request_id)
                    log.info("request %s left in flight by a stopped ComfyUI failed (usage logs): not billed",
                             hold.request_id)
            except LedgerError as exc:
                log.warning("%s", exc)
                continue
            resolved += 1
        return resolved

    def _resolve_unresolved(self, client: ApiClient, cancel: Any = None) -> None:
        """Ask the usage logs about this process's requests of unknown price that may have been billed."""
        from ..api.service import ServiceUnavailable

        with self._lock:
            waiting = [h for h in self._holds if h.unresolved]
        deadline = time.monotonic() + RECOVERY_DEADLINE
        for hold in waiting:
            try:
                verdict = _log_verdict(client, hold.request_id, hold.at, hold.attempts, None, hold.usd, cancel,
                                       deadline)
            except ServiceUnavailable as exc:
                log.warning("request %s of unknown price: the usage logs could not tell (%s)", hold.request_id,
                            exc.reason)
                continue
            if verdict is None:
                continue
            with self._lock:
                hold.unresolved = False
                self._unreported -= 1
            if verdict[0] == "billed" and valid_amount(verdict[1]):
                self.settle(hold, verdict[1], usd=verdict[2], inference_id=verdict[3])
            elif verdict[0] == "billed":
                self.settle(hold, None, usd=verdict[2], inference_id=verdict[3])  # billed, amount unknown
            else:
                self.release(hold)


def _log_verdict(client: ApiClient, request_id: str, at: float, attempts: int, estimate: float | None,
                 usd_estimate: float | None, cancel: Any, deadline: float) -> tuple | None:
    """What the usage logs say a request cost: ("billed", credits, usd, inference id), ("unbilled",) or None.

    Billed: a ``succeeded`` row of any attempt (at the row's cost, else ``estimate``, which may be
    None: unknown). Unbilled: the last attempt's ``failed`` row (earlier attempts were sent again only
    once surely unbilled). The window ends a while after the request, so the key's later usage
    cannot push its rows out of the pages read.
    """
    from ..api.usage_logs import attempt_request_id, rows_for

    rows = rows_for(client, request_id, at, cancel=cancel, deadline=deadline, until=at + REQUEST_WINDOW)
    succeeded = [row for row in rows if row.status == "succeeded"]
    if succeeded:
        costs = [row.credits if valid_amount(row.credits) else estimate for row in succeeded]
        credits = None if any(c is None for c in costs) else sum(costs)  # type: ignore[arg-type]
        usd = sum(row.usd for row in succeeded if valid_amount(row.usd)) or usd_estimate
        return "billed", credits, usd, succeeded[0].inference_id
    last = attempt_request_id(request_id, max(1, attempts))
    if any(row.status == "failed" and row.client_request_id == last for row in rows):
        return ("unbilled",)
    return None
