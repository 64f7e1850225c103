"""The money component: the one owner of a run's money, from admission to settlement.

Every paid request goes through one ``Money`` object per process (``process_money()``):

1. **Settings, read once.** The credit budget, its period, the balance floor and the
   settings a paid request depends on later (the usage-log wait, the timeouts, the request
   cap) are read and validated together into one ``MoneySettings`` value, again only when
   an environment variable or a setting changed. A bad value is a ``ConfigError`` before
   anything is sent, naming the variable, the allowed form and the value. Settings made
   in ComfyUI (the budget, its period, the floor) are kept by the pack on disk in
   ComfyUI's user folder (``flux2_lora/settings.json``) the moment they are set, and are
   in force from start-up, before any page connects.
2. **Admission.** ``admit`` lets a run's requests in, or refuses them all before any is
   sent. Every budget is a hard cap: refused when spent + held + the run's own estimate
   would exceed it. The floor counts the USD held by this process's requests in flight
   and what was settled since the balance was read. One admission at a time in this
   process; for a budget per day/month/all time the check and the holds are one
   exclusive transaction of the ledger, so processes sharing it cannot both take the last
   credits. Cancel is checked after every wait and once more when the holds are written.
3. **Holds, on disk before sending.** Each admitted request's hold (its estimate, keyed by
   its request id) is written to the ledger before its POST, and each attempt is noted
   before it is sent. A hold ends in ``settle`` (what the answer or the usage logs say it
   cost) or ``release`` (surely not billed; or ``may_have_billed``: its estimate is spent).
4. **Holds left by a process that died** still count at their estimate; before admitting
   a run under a ledger budget the pack asks the usage logs about them by their request ids
   (``recover_orphans``) and settles or drops them from what the logs say.
5. **Two budgets, two scopes.** The credit budget (``FLUX2_LORA_CREDIT_BUDGET``) and the budget in
   USD (``FLUX2_LORA_BUDGET_USD``, ``$5`` accepted) are each a hard cap, checked the same way: USD
   estimates come from the documented price (``preflight.RunMoney.before_send``), USD costs from
   ``x-aimlapi-usd-spent`` (the ledger's ``usd`` column). Scope (``FLUX2_LORA_BUDGET_SCOPE``)
   ``machine`` counts this machine's ledger; ``key`` (period ``day`` or ``month`` only, USD
   budget only) counts what ``GET /v2/usage`` says the whole key spent since the period began,
   asked at most once per ``USAGE_INTERVAL`` seconds by this process (``key_usage``; every run in
   between reuses the figure). The figure lags behind billed answers, so the key's spending is
   taken as: the figure + USD this machine's ledger shows billed at or after the figure's end
   minus ``MoneySettings.usage_lag`` (the usage-log wait, 60 s by default) + every hold of this
   machine's requests in flight, checked and held in one ledger transaction. This machine's own
   spending is thus never let through by the lag (recent runs may be counted twice: that errs
   on refusing). Other machines are seen once the figure shows them: machines checking at the
   same moment can each add one run. A figure that cannot be read refuses paid runs
   (``UsageUnavailableError``), never taken as zero.

Lock discipline: ``_admission`` (one admission at a time; waited for with Cancel) is taken
before ``_lock`` (the in-memory state: holds, spent, settings, balance); neither is held
across a network call except ``_admission``, which serialises a run's balance read with its
holds so that two runs can never both spend the same room above the floor. The ledger
has its own short lock for its pending writes and is never called with ``_lock`` held.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.tracing import new_request_id
from ..errors import BudgetExceededError, Cancelled, ConfigError
from ..runtime import current_settings, runtime
from ..settings import (
    BUDGET_ENV,
    BUDGET_USD_ENV,
    MONEY_NAMES,
    PERIOD_ENV,
    PERIODS,
    SCOPE_ENV,
    SCOPES,
    SettingsStore,
    StoredSettings,
    parse_budget,
    parse_budget_usd,
    parse_period,
    parse_scope,
    settings_path,
    valid_amount,
)
from ..settings import Settings as MoneySettings
from .ledger import Committed, LedgerError, SpendingLedger, period_start

if TYPE_CHECKING:
    from ..api.client import ApiClient
    from .balance import Balance

log = logging.getLogger("flux2_lora")

# Orphaned holds are asked about at most this often (each ask reads a few pages of /v2/logs).
RECOVERY_INTERVAL = 10.0
# How long after a request its usage-log rows are looked for (its answer's wait, retries and log delay).
REQUEST_WINDOW = 3600.0
# How long one admission may spend asking the usage logs about them, all holds together.
RECOVERY_DEADLINE = 5.0
# A balance read may not show what was billed this long before it yet: such settlements count too.
BALANCE_LAG = 60.0
# What the floor remembers of settled requests, to count those the balance read may not show yet.
_SETTLED_MEMORY = 600.0
# The key's spending (GET /v2/usage) is asked at most once per this many seconds by this process,
# whatever the number of runs; every run in between uses the same figure plus what this machine
# spent or holds since (see ``Money.key_usage``).
USAGE_INTERVAL = 5.0
USAGE_PATH = "/v2/usage"
# Two USD amounts closer than this are equal: 3 x $0.06 fits a budget of $0.18 (float sums are not exact).
_USD_EPSILON = 1e-9


def credits_text(value: float) -> str:
    """``1,000,000 credits``, ``12.5 credits``: grouped digits, never exponent notation."""
    number = f"{value:,.6f}".rstrip("0").rstrip(".")
    return f"{number} credit{'' if value == 1 else 's'}"


class UsageUnavailableError(BudgetExceededError):
    """A key-scope budget is set and the key's spending (GET /v2/usage) could not be read: not sent."""


@dataclass(frozen=True)
class KeyUsage:
    """What GET /v2/usage said the key spent from ``start`` (Unix time) until it was asked.

    ``trusted_from``: this machine's own spending settled at or after this Unix time may be
    missing from ``spend`` (the figure lags behind the answers), so it is counted on top.
    """

    spend: float
    start: float
    asked_at: float
    trusted_from: float
    requests: int | None


def _utc_iso(moment: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _iso_time(text: Any) -> float | None:
    from datetime import datetime, timezone

    if not isinstance(text, str) or len(text) > 64:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


def read_key_usage(client: ApiClient, start: float, lag: float, cancel: Any = None) -> KeyUsage:
    """Ask GET /v2/usage what the key spent from ``start`` until now; ``ServiceUnavailable`` if unreadable.

    The window is sent as explicit UTC times (``start``: local midnight or the 1st of the month).
    ``lag``: seconds the figure may lag behind a billed answer.
    """
    from ..api.service import ServiceUnavailable, finite_amount, service_get

    asked_at = time.time()
    answer = service_get(client, USAGE_PATH, [("start", _utc_iso(start)), ("end", _utc_iso(asked_at))],
                         cancel=cancel)
    data = answer.payload
    if not isinstance(data, dict):
        raise ServiceUnavailable(f"{USAGE_PATH} answered JSON of another shape (no object)", permanent=True)
    spend = finite_amount(data.get("spend"))
    if spend is None or spend < 0:
        raise ServiceUnavailable(f"{USAGE_PATH} answered no readable spend", permanent=True)
    if data.get("currency", "USD") != "USD":
        raise ServiceUnavailable(f"{USAGE_PATH} answered a spend that is not in USD", permanent=True)
    count = data.get("requests")
    requests = count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else None
    end = _iso_time(data.get("end"))
    measured_to = asked_at if end is None else min(asked_at, end)
    return KeyUsage(spend, start, asked_at, measured_to - lag, requests)


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


class Money:
    """The process's money: settings, holds, spending, the last balance; thread-safe (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._admission = threading.Lock()
        self._spent = 0.0
        self._spent_usd = 0.0
        self._holds: list[Hold] = []
        self._unreported = 0
        self._stored = StoredSettings()  # the settings made in ComfyUI, kept on disk
        self._ledger: SpendingLedger | None = None
        self._last_balance: Balance | None = None
        self._balance_problem = ""
        self._settled_usd: deque[tuple[float, float]] = deque()
        self._recovered_at = -math.inf
        self._asked_at: dict[str, float] = {}  # request id -> when the usage logs were last asked about it
        # The key's last usage figure (or why it could not be had) and when it was asked (monotonic).
        self._usage: tuple[float, float | None, KeyUsage | UsageUnavailableError] | None = None

    # -- where things are kept ------------------------------------------------

    def use_ledger(self, path: Path | None) -> None:
        """Record spending and holds in the ledger file at ``path`` (None: no ledger)."""
        with self._lock:
            if path is None:
                self._ledger = None
            elif self._ledger is None or self._ledger.path != Path(path):
                self._ledger = SpendingLedger(Path(path))

    def use_user_dir(self, user_dir: Path | None) -> None:
        """Keep the settings made in ComfyUI in ``user_dir`` and apply what is kept there (once per folder)."""
        if user_dir is not None:
            self._stored.use_file(settings_path(user_dir))

    def _apply_store(self) -> None:
        """Take every setting kept on disk (another process may have set one); a bad file is kept as the problem."""
        self._stored.reload()

    def _set(self, key: str, value: Any) -> None:
        """Set one setting and keep it on disk (see ``StoredSettings.set``)."""
        self._stored.set(key, value)

    @property
    def ledger(self) -> SpendingLedger | None:
        with self._lock:
            return self._ledger

    # -- settings ---------------------------------------------------------------

    def settings(self, environ: Mapping[str, str] | None = None) -> MoneySettings:
        """Every setting in force, validated (``ConfigError`` names a bad one a paid request depends on).

        From the process's current ``Settings`` (read again only on a change), or from ``environ``.
        """
        stored = self._stored.values()
        settings = current_settings(stored) if environ is None else MoneySettings.read(environ, stored)
        return settings.check(*MONEY_NAMES)

    @property
    def setting(self) -> float | None:
        """The budget from the frontend setting, or None when the environment decides."""
        return self._stored.get("credit_budget")

    def set_limit(self, limit: float | None) -> None:
        """The frontend setting: a budget in credits, or None to fall back to the environment. Kept on disk."""
        self._set("credit_budget", limit)

    @property
    def period_setting(self) -> str | None:
        return self._stored.get("budget_period")

    def set_period(self, period: str | None) -> None:
        """The frontend setting: process, day, month or all; None falls back to the environment. Kept on disk."""
        self._set("budget_period", period)

    @property
    def floor_setting(self) -> float | None:
        return self._stored.get("balance_floor")

    def set_floor(self, floor: float | None) -> None:
        """The frontend setting: a floor in USD, or None to fall back to the environment. Kept on disk."""
        self._set("balance_floor", floor)

    @property
    def usd_setting(self) -> float | None:
        return self._stored.get("budget_usd")

    def set_limit_usd(self, limit: float | str | None) -> None:
        """The frontend setting: a budget in USD (``5``, ``"$5"``), or None to fall back to the environment. Kept."""
        self._set("budget_usd", limit)

    @property
    def scope_setting(self) -> str | None:
        return self._stored.get("budget_scope")

    def set_scope(self, scope: str | None) -> None:
        """The frontend setting: machine or key; None falls back to the environment. Kept on disk."""
        self._set("budget_scope", scope)

    def limit(self, environ: Mapping[str, str] | None = None) -> tuple[float | None, str]:
        """The budget in force and where it comes from."""
        settings = self.settings(environ)
        return settings.budget, settings.budget_source

    def period(self, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
        """The budget period in force and where it comes from."""
        settings = self.settings(environ)
        return settings.period, settings.period_source

    def floor(self, environ: Mapping[str, str] | None = None) -> tuple[float | None, str]:
        """The balance floor in force and where it comes from."""
        settings = self.settings(environ)
        return settings.floor, settings.floor_source

    # -- what was spent and is held ------------------------------------------------

    @property
    def spent(self) -> float:
        """Credits this process was billed (and estimates of requests that may have been billed)."""
        with self._lock:
            return self._spent

    @property
    def spent_usd(self) -> float:
        """USD this process was billed (estimates where the answer gave no USD)."""
        with self._lock:
            return self._spent_usd

    def spent_usd_in(self, period: str) -> float:
        """USD spent in ``period`` on this machine: this process's count, or the ledger's (``LedgerError``)."""
        if period == "process":
            return self.spent_usd
        ledger = self.ledger
        if ledger is None:
            raise LedgerError(f"A budget per {period} needs the spending ledger, which is not set up here.")
        return ledger.total_usd(period_start(period))

    @property
    def held(self) -> float:
        """Credits held by this process's requests in flight (unknown estimates count 0 here)."""
        with self._lock:
            return sum(h.estimate or 0.0 for h in self._holds)

    @property
    def held_usd(self) -> float:
        with self._lock:
            return sum(h.usd or 0.0 for h in self._holds)

    @property
    def unreported(self) -> int:
        """Paid requests whose cost the API did not report as a valid amount."""
        with self._lock:
            return self._unreported

    def spent_in(self, period: str) -> float:
        """Credits spent in ``period``: this process's count, or the ledger's (``LedgerError`` if unreadable)."""
        if period == "process":
            return self.spent
        ledger = self.ledger
        if ledger is None:
            raise LedgerError(f"A budget per {period} needs the spending ledger, which is not set up here.")
        return ledger.total(period_start(period))

    def reset_spent(self) -> None:
        """Start this process's count from zero (requests in flight keep their holds)."""
        with self._lock:
            self._spent = 0.0
            self._spent_usd = 0.0
            self._unreported = 0

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

    # -- admission ------------------------------------------------------------------

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
                    raise BudgetExceededError(_unresolved_refusal(unresolved, len(estimates)))
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
        raise BudgetExceededError(_refusal(settings, spent, held, own if known else None, len(estimates),
                                           self._ledger.path if self._ledger else None))

    def _check_usd(self, settings: MoneySettings, spent: float, held: float, usd: Sequence[float | None], *,
                   usage: KeyUsage | None = None, machine: float | None = None) -> None:
        """Refuse (``BudgetExceededError``) if spent + held + this run's USD would exceed the budget in USD."""
        limit = settings.budget_usd
        if limit is None:
            return
        known = all(u is not None for u in usd)
        own = sum(u or 0.0 for u in usd)
        if (spent + held + own <= limit + _USD_EPSILON) if known else (spent + held < limit - _USD_EPSILON):
            return
        raise BudgetExceededError(_usd_refusal(settings, spent, held, own if known else None, len(usd), usage,
                                               machine))

    def _check_floor(self, settings: MoneySettings, balance: Balance | None, usd: Sequence[float | None],
                     requests: int) -> None:
        """Refuse (``BalanceFloorError``) a run that would take the balance below the floor (``_lock`` held)."""
        from .balance import FLOOR_ENV, BalanceFloorError, usd_text

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

    # -- while a request is in flight, and after -------------------------------------------

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

    # -- the balance --------------------------------------------------------------------

    @property
    def last_balance(self) -> Balance | None:
        with self._lock:
            return self._last_balance

    @property
    def balance_problem(self) -> str:
        with self._lock:
            return self._balance_problem

    def refresh(self, client: ApiClient, cancel: Any = None) -> Balance | None:
        """Ask the balance now; None (and the reason kept for the panel) when it cannot be had.

        ``cancel`` (anything with ``is_set()``) ends the ask at once with ``Cancelled``.
        """
        from ..api.service import ServiceUnavailable
        from .balance import fetch_balance

        try:
            balance = fetch_balance(client, cancel=cancel)
        except ServiceUnavailable as exc:
            with self._lock:
                self._balance_problem = exc.reason
            log.warning("account balance unavailable: %s", exc.reason)
            return None
        with self._lock:
            self._last_balance, self._balance_problem = balance, ""
        return balance

    # -- the key's spending, every machine together --------------------------------------------

    def key_usage(self, client: ApiClient | None, settings: MoneySettings, cancel: Any = None) -> KeyUsage:
        """The key's spending this period (GET /v2/usage), asked at most once per ``USAGE_INTERVAL`` s.

        Every run of the process in between gets the same figure (admissions are one at a time,
        and what this machine spent or holds since is counted from its ledger). A figure that
        cannot be had refuses the run (``UsageUnavailableError``): a key-wide budget is never free.
        """
        from ..api.service import ServiceUnavailable

        start = period_start(settings.period) or 0.0
        now = time.monotonic()
        with self._lock:
            cached = self._usage
        if cached is not None and cached[0] == start and cached[1] is not None and now - cached[1] < USAGE_INTERVAL:
            found = cached[2]
        else:
            try:
                if client is None:
                    raise ServiceUnavailable("no client to ask with")
                found = read_key_usage(client, start, settings.usage_lag, cancel)
            except ServiceUnavailable as exc:
                found = UsageUnavailableError(_usage_refusal(settings, exc.reason))
            with self._lock:
                self._usage = (start, time.monotonic(), found)
        if isinstance(found, UsageUnavailableError):
            raise found
        return found

    @property
    def last_key_usage(self) -> KeyUsage | None:
        """The last figure read from GET /v2/usage (None: none yet, or the last ask failed)."""
        with self._lock:
            cached = self._usage
        return cached[2] if cached is not None and isinstance(cached[2], KeyUsage) else None

    def key_spending(self, settings: MoneySettings) -> tuple[float | None, float | None]:
        """(the key's spending as the last admission counted it, this machine's USD this period); None: unknown."""
        usage = self.last_key_usage
        start = period_start(settings.period) if settings.period != "process" else None
        machine: float | None = None
        recent = 0.0
        ledger = self.ledger
        try:
            if ledger is not None and start is not None:
                machine = ledger.total_usd(start)
                held = ledger.committed_usd(start)[1]
                if usage is not None and usage.start == start:
                    recent = ledger.total_usd(max(start, usage.trusted_from)) + held
            elif start is None:
                machine = self.spent_usd
        except LedgerError:
            machine = None
        key = usage.spend + recent if usage is not None and usage.start == start else None
        return key, machine

    # -- holds left by a process that died ----------------------------------------------------

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

    # -- what the frontend shows -----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """{"spent": credits this process spent, "budget": the limit or None}, for the node's money line.

        With a ledger period also "period" and "period_spent" (None if the ledger cannot be read).
        """
        try:
            settings: MoneySettings | None = self.settings()
        except ConfigError:
            settings = None
        shown: dict[str, Any] = {"spent": self.spent, "budget": settings.budget if settings else None}
        period = settings.period if settings else "process"
        if period != "process":
            try:
                period_spent: float | None = self.spent_in(period)
            except LedgerError:
                period_spent = None
            shown.update(period=period, period_spent=period_spent)
        if settings is not None and settings.budget_usd is not None:
            key, machine = self.key_spending(settings)
            shown.update(budget_usd=settings.budget_usd, scope=settings.scope, key_spent_usd=key,
                         machine_spent_usd=machine, usd_line=usd_line(settings, key, machine))
        return shown


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


def _unresolved_refusal(holds: Sequence[Hold], requests: int) -> str:
    ids = ", ".join(h.request_id for h in holds[:3])
    asked = "request was" if requests == 1 else f"{requests} requests were"
    return (f"Credit budget: request {ids} of a price not known yet may have been billed (its answer never came "
            "and the usage logs have not told yet), so what was spent is unknown and the budget cannot be "
            f"checked. This node's {asked} not sent and nothing was billed. Run again in a minute (the usage "
            "logs are asked again first), or check your usage at https://aimlapi.com/app and raise or remove "
            f"the budget ({BUDGET_ENV} or the setting).")


_WHEN = {"process": "since ComfyUI started", "day": "today", "month": "this month", "all": "in all"}


def usd_line(settings: MoneySettings, key: float | None, machine: float | None) -> str:
    """``Key today: $4.12 of $5.00 (all machines) · this machine: $0.66``: the USD budget in one line."""
    from .balance import usd_text

    limit = settings.budget_usd
    if limit is None:
        return ""
    when = _WHEN[settings.period]
    mine = usd_text(machine) if machine is not None else "unknown (ledger unreadable)"
    if settings.key_scope:
        spent = usd_text(key) if key is not None else "not asked yet (asked before each paid run)"
        return f"Key {when}: {spent} of {usd_text(limit)} (all machines) · this machine: {mine}"
    who = "This ComfyUI" if settings.period == "process" else f"This machine {when}"
    return f"{who}: {mine} of {usd_text(limit)}"


def _usage_refusal(settings: MoneySettings, reason: str) -> str:
    from .balance import usd_text

    return (f"Budget in USD for the whole key: what the key spent {_WHEN[settings.period]} could not be read from "
            f"GET {USAGE_PATH} ({reason}), so this node's request was not sent and nothing was billed: a key-wide "
            f"budget of {usd_text(settings.budget_usd or 0.0)} (from {settings.budget_usd_source}) is never taken "
            f"as free. Try again in a moment; if it persists, check the network and AIML_API_BASE, or set "
            f"{SCOPE_ENV} (or the budget scope setting) to machine to count this machine's spending only.")


def _usd_refusal(settings: MoneySettings, spent: float, held: float, own: float | None, requests: int,
                 usage: KeyUsage | None, machine: float | None) -> str:
    from .balance import usd_text

    limit = settings.budget_usd or 0.0
    asked = "request was" if requests == 1 else f"{requests} requests were"
    when = {"process": "by this ComfyUI process since it started", "day": "today (since local midnight)",
            "month": "this calendar month", "all": "in total (all time)"}[settings.period]
    in_flight = f" (and {usd_text(held)} more held by requests waiting for their answers)" if held else ""
    cost = (f"; this run's estimated {usd_text(own)} would take it to {usd_text(spent + held + own)}"
            if own is not None else "; this run's cost cannot be estimated (no price)")
    per = "" if settings.period == "process" else f" per {settings.period if settings.period != 'all' else 'all time'}"
    if usage is not None:
        shown = usage.spend
        extra = spent - shown
        lagging = (f" plus {usd_text(extra)} this machine spent that the API's figure may not show yet"
                   if extra > _USD_EPSILON else "")
        where = (f"the API says the key spent {usd_text(shown)} {when} on every machine using it{lagging}"
                 f"{in_flight}; this machine alone {usd_text(machine or 0.0)}")
        scope = f"; scope key from {settings.scope_source}"
        fix = (f"Raise the budget ({BUDGET_USD_ENV} or the setting), wait for the next period, or give each machine "
               "or person a key of its own (see the README, \"One budget for every machine\").")
    else:
        where = f"{usd_text(spent)} spent {when}{' on this machine' if settings.period != 'process' else ''}{in_flight}"
        scope = ""
        fix = (f"Raise the budget ({BUDGET_USD_ENV} or the setting)"
               + (" or restart ComfyUI to count from zero." if settings.period == "process" else
                  ", or wait for the next period." if settings.period != "all" else "."))
    return (f"Budget in USD reached: {where}, of a budget of {usd_text(limit)}{per} (from "
            f"{settings.budget_usd_source}{scope}){cost}. This node's {asked} not sent and nothing was billed. "
            f"Every budget is a hard cap. {fix} Results already in the cache still run for free.")


def _refusal(settings: MoneySettings, spent: float, held: float, own: float | None, requests: int,
             ledger_path: Path | None) -> str:
    limit = settings.budget or 0.0
    asked = "request was" if requests == 1 else f"{requests} requests were"
    in_flight = (f" (and {credits_text(held)} more are held by requests still waiting for their answers)"
                 if held else "")
    cost = (f"; this run's estimated {credits_text(own)} would take it to {credits_text(spent + held + own)}"
            if own is not None else "")
    cached = " Results already in the cache still run for free."
    if settings.period == "process":
        return (f"Credit budget reached: this ComfyUI process has spent {credits_text(spent)}{in_flight} of its "
                f"budget of {credits_text(limit)} (from {settings.budget_source}){cost}, so this node's {asked} not "
                f"sent and nothing was billed. Every budget is a hard cap. Raise the budget ({BUDGET_ENV} or the "
                "setting) or restart ComfyUI to count from zero." + cached)
    words = {"day": "today (since local midnight)", "month": "this calendar month", "all": "in total (all time)"}
    per = settings.period if settings.period != "all" else "all time"
    return (f"Credit budget reached: {credits_text(spent)} spent {words[settings.period]}{in_flight} of a budget of "
            f"{credits_text(limit)} per {per} (from {settings.budget_source}; period from {settings.period_source})"
            f"{cost}, counted in the spending ledger {ledger_path or ''} across restarts and ComfyUI processes. "
            f"This node's {asked} not sent and nothing was billed. Every budget is a hard cap. Raise the budget "
            f"({BUDGET_ENV} or the setting)" + (", or wait for the next period." if settings.period != "all" else ".")
            + cached)


def process_money() -> Money:
    """The money component shared by every node and route of this process (made on first use)."""
    return runtime().part("money", Money)


def reset_process_money() -> Money:
    """A fresh money component for this process (tests: what a restart does); returns it."""
    return runtime().replace("money", Money())


__all__ = ["BUDGET_ENV", "BUDGET_USD_ENV", "PERIODS", "PERIOD_ENV", "SCOPES", "SCOPE_ENV", "USAGE_INTERVAL",
           "Cancelled", "Hold", "KeyUsage", "Money", "MoneySettings", "SettingsStore", "UsageUnavailableError",
           "credits_text", "parse_budget", "parse_budget_usd", "parse_period", "parse_scope", "process_money",
           "read_key_usage", "reset_process_money", "settings_path", "usd_line", "valid_amount"]
