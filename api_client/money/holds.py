"""A paid request's hold, from admission to its end: ``settle`` (billed) or ``release`` (not, or maybe).

Each admitted request's hold (its estimate, keyed by its request id) is written to the ledger
before its POST (``admission``), and each attempt is noted before it is sent. A hold ends in
``settle`` (what the answer or the usage logs say it cost) or ``release`` (surely not billed;
or ``may_have_billed``: its estimate is spent). Unknown is never free: a request of unknown
price that may have been billed stays open until the usage logs tell (``recovery``).
"""

from __future__ import annotations

import logging
import time

from ..amounts import valid_amount
from ..api.tracing import new_request_id
from ..errors import ConfigError
from .ledger import LedgerError
from .texts import credits_text

log = logging.getLogger("flux2_lora")


class Hold:
    """One admitted request's claim: its estimated credits and USD (None: not known) and its request id."""

    __slots__ = ("at", "attempts", "estimate", "in_ledger", "open", "request_id", "unresolved", "usd")

    def __init__(self, estimate: float | None, usd: float | None = None, request_id: str | None = None) -> None:
        self.estimate = estimate
        self.usd = usd
        self.request_id = request_id or new_request_id()
        self.open = True
        self.in_ledger = False
        self.at = time.time()
        self.attempts = 0
        # Ended without an answer, may have been billed, price unknown: open until the usage logs tell.
        self.unresolved = False

    def __repr__(self) -> str:
        return f"Hold(estimate={self.estimate!r}, usd={self.usd!r}, open={self.open})"


class HoldBook:
    """Part of ``Money`` (component.py): what one request cost, and the end of its hold."""

    def add(self, credits_used: float | None, *, usd: float | None = None, request_id: str | None = None,
            inference_id: str | None = None) -> None:
        """Count what one request cost (None: not reported, counted as unreported), here and in the ledger."""
        known = valid_amount(credits_used)
        with self._lock:
            if known:
                self._spent += credits_used  # type: ignore[operator]
                if valid_amount(usd):
                    self._spent_usd += usd  # type: ignore[operator]
            else:
                self._unreported += 1
        if known:
            self._record(credits_used, usd, request_id, inference_id)

    def _record(self, credits: float | None, usd: float | None, request_id: str | None,
                inference_id: str | None) -> None:
        """Write billed credits to the ledger (ending the request's hold there); a failure is logged and kept."""
        ledger = self.ledger
        if ledger is None:
            return
        try:
            if credits:
                ledger.record(credits, usd, request_id, inference_id)
            elif request_id is not None:
                ledger.drop_hold(request_id)
        except LedgerError as exc:
            # The money is spent either way: the ledger keeps the row in memory and writes it later.
            log.warning("%s The %s credits are counted by this process only (kept in memory) until the ledger "
                        "works again.", exc, f"{credits or 0:,.0f}")

    def note_attempt(self, hold: Hold, attempt: int) -> None:
        """Say in the ledger that attempt ``attempt`` of ``hold``'s request is about to be sent.

        If the ledger cannot take it while a ledger budget needs it, ``LedgerError``: not sent.
        """
        hold.attempts = max(hold.attempts, attempt)
        ledger = self.ledger
        if ledger is None or not hold.in_ledger:
            return
        try:
            ledger.note_attempt(hold.request_id, attempt)
        except LedgerError:
            try:
                needed = self.settings().ledger_period
            except ConfigError:
                needed = True
            if needed:
                raise
            log.warning("attempt %d of request %s not noted in the ledger", attempt, hold.request_id)

    def note_cleared(self, hold: Hold, attempt: int) -> None:
        """Say in the ledger that attempt ``attempt`` ended surely unbilled (a restart need not ask the logs)."""
        ledger = self.ledger
        if ledger is None or not hold.in_ledger:
            return
        try:
            ledger.note_cleared(hold.request_id, attempt)
        except LedgerError as exc:
            log.warning("%s", exc)  # the hold only waits longer for the usage logs after a restart

    def settle(self, hold: Hold, credits_used: float | None, *, usd: float | None = None,
               request_id: str | None = None, inference_id: str | None = None) -> None:
        """The request was billed (its answer or the usage logs say so): its cost replaces its estimate.

        An answer without a valid cost keeps its estimate as the cost and counts as unreported:
        never free, never a refund. The ledger gets the cost before the hold ends.
        """
        if not hold.open:
            return
        known = valid_amount(credits_used)
        cost = credits_used if known else hold.estimate
        self._record(cost, usd if valid_amount(usd) else hold.usd, request_id or hold.request_id, inference_id)
        self._close(hold, cost, unreported=not known, usd=usd if valid_amount(usd) else hold.usd)

    def release(self, hold: Hold, may_have_billed: bool = False, request_id: str | None = None) -> None:
        """The request failed: drop its hold, or (``may_have_billed``) count its estimate as spent."""
        if not hold.open:
            return
        if may_have_billed and hold.estimate is None:
            # Unknown is never free: it stays open, refusing budgeted runs until the usage logs tell.
            with self._lock:
                hold.unresolved = True
                self._unreported += 1
                self._changed.notify_all()
            log.warning("request %s of unknown price may have been billed; what it cost is asked of the usage "
                        "logs before the next run under a credit budget", hold.request_id)
            return
        if may_have_billed:
            log.info("A request that may have been billed failed; counting its estimated %s against the budget.",
                     credits_text(hold.estimate or 0.0))
            self._record(hold.estimate, hold.usd, hold.request_id, None)
            self._close(hold, hold.estimate, usd=hold.usd)
        else:
            self._drop_from_ledger(hold)
            self._close(hold, None)

    def _drop_from_ledger(self, hold: Hold) -> None:
        ledger = self.ledger
        if ledger is None or not hold.in_ledger:
            return
        try:
            ledger.drop_hold(hold.request_id)
        except LedgerError as exc:
            # Counted at its estimate until the ledger works again: never freed by a failure.
            log.warning("%s The hold of request %s stays counted meanwhile.", exc, hold.request_id)

    def _close(self, hold: Hold, spent: float | None, unreported: bool = False, usd: float | None = None) -> None:
        with self._lock:
            if not hold.open:
                return
            hold.open = False
            self._holds = [h for h in self._holds if h is not hold]
            if spent:
                self._spent += spent
            if usd:
                self._settled_usd.append((time.time(), usd))
                self._spent_usd += usd
            self._unreported += unreported
            self._changed.notify_all()
