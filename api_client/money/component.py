"""The money component: the one owner of a run's money, from admission to settlement.

Every paid request goes through one ``Money`` object per process (``process_money()``):

1. **Settings, read once** (``api_client/settings``): the credit budget, its period, the balance floor and the
   settings a paid request depends on later, validated together into one ``MoneySettings``
   value, again only when an environment variable or a setting changed. Settings made in
   ComfyUI are kept on disk in ComfyUI's user folder (``flux2_lora/settings.json``).
2. **Admission** (``admission``): a run's requests let in, or all refused before any is sent.
3. **Holds, on disk before sending** (``holds``): each ends in ``settle`` or ``release``.
4. **Holds left by a process that died** (``recovery``): the usage logs are asked about them.
5. **Two budgets, two scopes.** The credit budget (``FLUX2_LORA_CREDIT_BUDGET``) and the budget in
   USD (``FLUX2_LORA_BUDGET_USD``, ``$5`` accepted) are each a hard cap, checked the same way: USD
   estimates come from the documented price (``preflight.RunMoney.before_send``), USD costs from
   ``x-aimlapi-usd-spent`` (the ledger's ``usd`` column). Scope ``machine`` counts this machine's
   ledger; ``key`` what ``GET /v2/usage`` says the whole key spent (``key_usage``).
Refusals are worded in ``refusals``; amounts in ``texts``. ``Money`` is one class made of the
parts those modules define (``Admission``, ``HoldBook``, ``Recovery``, ``KeyUsageBook``): they
share its state and its locks, which are made here, in ``__init__``.

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
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..runtime import current_settings
from ..settings import MONEY_NAMES, StoredSettings, settings_path
from ..settings import Settings as MoneySettings
from .admission import Admission
from .holds import Hold, HoldBook
from .key_usage import KeyUsage, KeyUsageBook, UsageUnavailableError
from .ledger import LedgerError, SpendingLedger, period_start
from .recovery import Recovery
from .texts import usd_line

if TYPE_CHECKING:
    from ..api.client import ApiClient
    from .balance import Balance

log = logging.getLogger("flux2_lora")


class _Stored:
    """A frontend setting of ``Money``, read as a property: its value, or None when the environment decides."""

    def __init__(self, key: str, what: str) -> None:
        self.key, self.what = key, what

    def __get__(self, money: Money | None, owner: type | None = None) -> Any:
        return self if money is None else money._stored.get(self.key)

    def __set__(self, money: Money, value: Any) -> None:
        raise AttributeError("a setting is set by its set_ method, which keeps it on disk")

    def setter(self) -> Callable[[Money, Any], None]:
        """The method that sets it (None falls back to the environment) and keeps it on disk."""
        key = self.key

        def set_value(money: Money, value: Any) -> None:
            money._set(key, value)

        set_value.__doc__ = f"The frontend setting: {self.what}, or None to fall back to the environment. Kept on disk."
        return set_value


class _UnderLock:
    """One attribute of ``Money``'s state, read (only) under its ``_lock``."""

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def __get__(self, money: Money | None, owner: type | None = None) -> Any:
        if money is None:
            return self
        with money._lock:
            return getattr(money, self.attribute)

    def __set__(self, money: Money, value: Any) -> None:
        raise AttributeError(f"{self.attribute[1:]} is read-only")


class Money(Admission, HoldBook, Recovery, KeyUsageBook):
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

    # The frontend settings, each kept on disk; None falls back to the environment.
    setting = _Stored("credit_budget", "a budget in credits")
    set_limit = setting.setter()
    period_setting = _Stored("budget_period", "process, day, month or all")
    set_period = period_setting.setter()
    floor_setting = _Stored("balance_floor", "a floor in USD")
    set_floor = floor_setting.setter()
    usd_setting = _Stored("budget_usd", 'a budget in USD (``5``, ``"$5"``)')
    set_limit_usd = usd_setting.setter()
    scope_setting = _Stored("budget_scope", "machine or key")
    set_scope = scope_setting.setter()

    def limit(self, environ: Mapping[str, str] | None = None) -> tuple[float | None, str]:
        """The budget in force and where it comes from."""
        return self._in_force("budget", environ)

    def period(self, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
        """The budget period in force and where it comes from."""
        return self._in_force("period", environ)

    def floor(self, environ: Mapping[str, str] | None = None) -> tuple[float | None, str]:
        """The balance floor in force and where it comes from."""
        return self._in_force("floor", environ)

    def _in_force(self, name: str, environ: Mapping[str, str] | None) -> tuple[Any, str]:
        settings = self.settings(environ)
        return getattr(settings, name), getattr(settings, f"{name}_source")

    # -- what was spent and is held ------------------------------------------------

    # Credits this process was billed (and estimates of requests that may have been billed), and the USD
    # (estimates where the answer gave no USD).
    spent = _UnderLock("_spent")
    spent_usd = _UnderLock("_spent_usd")

    @property
    def held(self) -> float:
        """Credits held by this process's requests in flight (unknown estimates count 0 here)."""
        with self._lock:
            return sum(h.estimate or 0.0 for h in self._holds)

    @property
    def held_usd(self) -> float:
        with self._lock:
            return sum(h.usd or 0.0 for h in self._holds)

    # Paid requests whose cost the API did not report as a valid amount.
    unreported = _UnderLock("_unreported")

    def spent_in(self, period: str) -> float:
        """Credits spent in ``period``: this process's count, or the ledger's (``LedgerError`` if unreadable)."""
        if period == "process":
            return self.spent
        ledger = self.ledger
        if ledger is None:
            raise LedgerError(f"A budget per {period} needs the spending ledger, which is not set up here.")
        return ledger.total(period_start(period))

    # -- the balance --------------------------------------------------------------------

    last_balance = _UnderLock("_last_balance")
    balance_problem = _UnderLock("_balance_problem")

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
