"""Admission: a run's paid requests let in, or all refused before any is sent.

Every budget is a hard cap: refused when spent + held + the run's own estimate would exceed it.
The floor counts the USD held by this process's requests in flight and what was settled since
the balance was read. One admission at a time in this process; for a budget per day/month/all
time the check and the holds are one exclusive transaction of the ledger, so processes sharing
it cannot both take the last credits. Cancel is checked after every wait and once more when the
holds are written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..amounts import USD_EPSILON
from ..api.tracing import new_request_id
from ..errors import BudgetExceededError, Cancelled
from ..settings import BUDGET_ENV
from .holds import Hold
from .ledger import Committed, LedgerError, period_start
from .refusals import credit_refusal, unresolved_refusal, usd_refusal
from .texts import usd_text

if TYPE_CHECKING:
    from ..api.client import ApiClient
    from ..settings import Settings as MoneySettings
    from .balance import Balance
    from .key_usage import KeyUsage

log = logging.getLogger("flux2_lora")

# A balance read may not show what was billed this long before it yet: such settlements count too.
BALANCE_LAG = 60.0
# What the floor remembers of settled requests, to count those the balance read may not show yet.
_SETTLED_MEMORY = 600.0


def _no_cancel() -> None:
    return None


class _CancelFlag:
    """A Cancel read by a function, shaped as the event the service client watches (``is_set``)."""

    def __init__(self, is_cancelled: Callable[[], bool]) -> None:
        self._is_cancelled = is_cancelled

    def is_set(self) -> bool:
        return bool(self._is_cancelled())

    def wait(self, timeout: float | None = None) -> bool:
        end = time.monotonic() + (timeout or 0.0)
        while not self.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.05, left))
        return True


class Admission:
    """Part of ``Money`` (component.py): ``admit`` and the checks it makes."""

    def admit(self, estimates: Sequence[float | None], check_cancel: Callable[[], None] | None = None,
              poll_interval: float = 0.05, *, usd: Sequence[float | None] | None = None,
              client: ApiClient | None = None, request_ids: Sequence[str] | None = None,
              is_cancelled: Callable[[], bool] | None = None,
              reestimate: Callable[[], Sequence[float | None]] | None = None) -> list[Hold]:
        """Admit one run's paid requests (their estimated credits and USD), or refuse them all before any is sent.

        Refused (``BudgetExceededError``) when spent + held + this run's estimate would exceed the
        budget; (``BalanceFloorError``) when the balance, less what this process holds and settled
        since it was read, less this run's estimate, would fall below the floor. While a request of
        unknown cost is in flight under a budget, its answer is waited for first. ``check_cancel``
        is called after every wait and before returning; whatever it raises ends the admission with
        nothing held; ``is_cancelled`` (the same Cancel, read without clearing it) also ends the
        balance read and the usage-log asks at once. Every hold returned is in the ledger and must
        end in ``settle`` or ``release``. ``reestimate`` gives the estimates again after a wait for
        a request of unknown cost (whose answer may have made the price known).
        """
        cancel = check_cancel or _no_cancel
        count = len(estimates)
        usd = list(usd) if usd is not None else [None] * count
        ids = list(request_ids) if request_ids is not None else [new_request_id() for _ in range(count)]
        settings = self.settings()
        flag = _CancelFlag(is_cancelled) if is_cancelled is not None else None
        self._wait_for_admission(cancel, poll_interval)
        try:
            settings = self.settings()  # again: a setting changed while this run waited for its turn counts
            balance = None
            try:
                if settings.floor is not None and client is not None:
                    balance = self.refresh(client, flag)
                    cancel()
                if settings.ledger_period and client is not None:
                    self.recover_orphans(client, cancel=flag)
                    cancel()
                if (settings.budget is not None or settings.budget_usd is not None) and client is not None:
                    self._resolve_unresolved(client, flag)
                    cancel()
                usage = None
                if settings.key_scope:
                    usage = self.key_usage(client, settings, flag)
                    cancel()
            except Cancelled:
                cancel()  # the run's own Cancel (ComfyUI's interrupt, say), if it has one
                raise
            holds = self._hold_in_memory(settings, estimates, usd, ids, balance, cancel, poll_interval, reestimate)
            try:
                self._hold_in_ledger(settings, holds, usage)
                cancel()
            except BaseException:
                for hold in holds:
                    self._close(hold, None)
                    self._drop_from_ledger(hold)
                raise
            return holds
        finally:
            self._admission.release()

    def _wait_for_admission(self, cancel: Callable[[], None], poll_interval: float) -> None:
        while not self._admission.acquire(timeout=poll_interval):
            cancel()
        try:
            cancel()
        except BaseException:
            self._admission.release()
            raise

    def _hold_in_memory(self, settings: MoneySettings, estimates: Sequence[float | None],
                        usd: Sequence[float | None], ids: Sequence[str], balance: Balance | None,
                        cancel: Callable[[], None], poll_interval: float,
                        reestimate: Callable[[], Sequence[float | None]] | None) -> list[Hold]:
        warned = False
        while True:
            if warned:
                settings = self.settings()  # a setting changed during the wait counts
                if reestimate is not None:
                    estimates = list(reestimate())  # the answer waited for may have made the price known
            with self._lock:
                unresolved = [h for h in self._holds if h.unresolved]
                if (settings.budget is not None or settings.budget_usd is not None) and unresolved:
                    raise BudgetExceededError(unresolved_refusal(unresolved, len(estimates)))
                unknown_in_flight = any(h.estimate is None for h in self._holds)
                if settings.budget_usd is not None:
                    unknown_in_flight = unknown_in_flight or any(h.usd is None for h in self._holds)
                if (settings.budget is None and settings.budget_usd is None) or not unknown_in_flight:
                    self._check_floor(settings, balance, usd, len(estimates))
                    if settings.budget is not None and settings.period == "process":
                        self._check_budget(settings, self._spent, sum(h.estimate or 0.0 for h in self._holds),
                                           estimates)
                    if settings.budget_usd is not None and settings.period == "process":
                        self._check_usd(settings, self._spent_usd, sum(h.usd or 0.0 for h in self._holds), usd)
                    holds = [Hold(e, u, i) for e, u, i in zip(estimates, usd, ids, strict=True)]
                    self._holds += holds
                    return holds
                if not warned:
                    log.info("Credit budget: waiting for the answer of a request of unknown cost before sending more.")
                    warned = True
                self._changed.wait(poll_interval)
            cancel()

    def _hold_in_ledger(self, settings: MoneySettings, holds: list[Hold], usage: KeyUsage | None = None) -> None:
        """Write the holds before anything is sent; under a ledger budget, checked in the same transaction.

        With a key-scope budget (``usage``), the key's figure plus what this machine's ledger shows
        spent since the figure can be trusted (``usage.trusted_from``) and held now is the spending.
        """
        ledger = self.ledger
        if ledger is None:
            if settings.ledger_period:
                raise LedgerError(f"A budget per {settings.period} needs the spending ledger, which is not set up "
                                  "here.")
            return
        rows = [(h.request_id, h.estimate, h.usd) for h in holds]
        estimates = [h.estimate for h in holds]
        usd = [h.usd for h in holds]

        def check(totals: Committed) -> None:
            if not settings.ledger_period:
                return
            self._check_budget(settings, totals.spent, totals.held, estimates)
            if usage is not None:
                self._check_usd(settings, usage.spend + totals.recent_usd, totals.held_usd, usd, usage=usage,
                                machine=totals.spent_usd)
            elif settings.budget_usd is not None:
                self._check_usd(settings, totals.spent_usd, totals.held_usd, usd)

        since = period_start(settings.period) if settings.ledger_period else None
        recent = max(usage.start, usage.trusted_from) if usage is not None else None
        try:
            ledger.admit(rows, since, check, recent_since=recent)
        except LedgerError as exc:
            if settings.ledger_period:
                raise
            log.warning("%s Requests in flight are not kept on disk meanwhile.", exc)
            return
        for hold in holds:
            hold.in_ledger = True

    def _check_budget(self, settings: MoneySettings, spent: float, held: float,
                      estimates: Sequence[float | None]) -> None:
        """Refuse (``BudgetExceededError``) if spent + held + these estimates would exceed the budget."""
        limit = settings.budget
        if limit is None:
            return
        known = all(e is not None for e in estimates)
        own = sum(e or 0.0 for e in estimates)
        unknown = sum(e is None for e in estimates)
        if unknown > 1:
            raise BudgetExceededError(
                f"Credit budget: the price of this model is not known yet in this ComfyUI process (no request of "
                f"it has been billed with a cost yet), and under a budget at most one request of unknown price "
                f"is sent at a time; this node's {len(estimates)} requests were not sent and nothing was billed. "
                "Run it once with num_images 4 or fewer (one request) so its answer shows the price, then run "
                f"the rest; or remove the budget ({BUDGET_ENV} or the setting).")
        if (spent + held + own <= limit) if known else (spent + held < limit):
            return
        raise BudgetExceededError(credit_refusal(settings, spent, held, own if known else None, len(estimates),
                                           self._ledger.path if self._ledger else None))

    def _check_usd(self, settings: MoneySettings, spent: float, held: float, usd: Sequence[float | None], *,
                   usage: KeyUsage | None = None, machine: float | None = None) -> None:
        """Refuse (``BudgetExceededError``) if spent + held + this run's USD would exceed the budget in USD."""
        limit = settings.budget_usd
        if limit is None:
            return
        known = all(u is not None for u in usd)
        own = sum(u or 0.0 for u in usd)
        if (spent + held + own <= limit + USD_EPSILON) if known else (spent + held < limit - USD_EPSILON):
            return
        raise BudgetExceededError(usd_refusal(settings, spent, held, own if known else None, len(usd), usage,
                                               machine))

    def _check_floor(self, settings: MoneySettings, balance: Balance | None, usd: Sequence[float | None],
                     requests: int) -> None:
        """Refuse (``BalanceFloorError``) a run that would take the balance below the floor (``_lock`` held)."""
        from ..settings import FLOOR_ENV
        from .balance import BalanceFloorError

        floor = settings.floor
        if floor is None:
            return
        if balance is None:
            log.warning("the balance floor of %s was not checked: the balance is unavailable", usd_text(floor))
            return
        cutoff = time.time() - _SETTLED_MEMORY
        while self._settled_usd and self._settled_usd[0][0] < cutoff:
            self._settled_usd.popleft()
        committed = sum(h.usd or 0.0 for h in self._holds) + sum(
            amount for at, amount in self._settled_usd if at >= balance.at - BALANCE_LAG)
        own = None if any(u is None for u in usd) else sum(usd)  # type: ignore[arg-type]
        after = balance.usd - committed - (own or 0.0)
        if after >= floor and (own is not None or balance.usd - committed > floor):
            return
        asked = "request was" if requests == 1 else f"{requests} requests were"
        held = f" less {usd_text(committed)} held or spent by this ComfyUI's requests since" if committed else ""
        cost = (f"this run's estimated {usd_text(own)} would leave {usd_text(after)}"
                if own is not None else "this run's cost cannot be estimated (no price), and the balance "
                                        "is already at the floor")
        raise BalanceFloorError(
            f"Balance floor: the account balance is {usd_text(balance.usd)}{held} and {cost}, below the floor of "
            f"{usd_text(floor)} (from {settings.floor_source}). This node's {asked} not sent and nothing was billed. "
            f"Top up at https://aimlapi.com/app/billing, or lower the floor ({FLOOR_ENV} or the setting)."
        )
