"""A credit budget: requests are refused before sending once it is used up.

The credits the API reports for each request are added up for as long as the
process runs, and written to the spending ledger (``ledger.py``, SQLite on disk). The
budget comes from the frontend setting (``set_credit_budget``) if one was given, else
from env ``FLUX2_LORA_CREDIT_BUDGET``; without either there is no limit, and the
total is still kept for display. Its period (setting, else env
``FLUX2_LORA_BUDGET_PERIOD``): ``process`` (the default: this process since it
started), ``day`` (since local midnight), ``month`` or ``all``; the last three are
read from the ledger, so they hold across restarts and across ComfyUI processes
sharing the user folder. Pictures served from the result cache cost nothing and are
always allowed.

Requests in flight count from the moment they are admitted: each holds its
estimated cost (``estimate.estimate_credits``) until its answer settles it with
what was billed, or it is released because it surely was not billed. A run is
admitted while the credits spent plus those held are below the budget, so runs
that overlap behave exactly as if they had run one after another in the order
they were admitted: the run that crosses the budget finishes, the next one is
refused. While a request whose cost cannot be estimated yet is in flight (the
process has not been billed for that model yet), a new paid run waits for that
answer instead of guessing; Cancel ends the wait.

``budget_get_answer`` and ``budget_post_answer`` are the logic behind the pack's
budget route (nodes/budget_routes.py), which the frontend setting calls.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import BudgetExceededError, ConfigError
from .ledger import LedgerError, SpendingLedger, period_start
from .route_input import Answer, RouteInputError, parse_json_object

log = logging.getLogger("flux2_lora")

BUDGET_ENV = "FLUX2_LORA_CREDIT_BUDGET"
PERIOD_ENV = "FLUX2_LORA_BUDGET_PERIOD"
PERIODS = ("process", "day", "month", "all")
_PERIOD_WORDS = {"process": "this ComfyUI process has spent", "day": "today (since local midnight) ",
                 "month": "this calendar month ", "all": "in total (all time) "}
_NO_BUDGET_WORDS = {"", "none", "off"}


def _credits_text(value: float) -> str:
    # "1,000,000 credits", "12.5 credits": grouped digits, never exponent notation.
    number = f"{value:,.6f}".rstrip("0").rstrip(".")
    return f"{number} credit{'' if value == 1 else 's'}"


def _valid_amount(credits: float | None) -> bool:
    return credits is not None and math.isfinite(credits) and credits >= 0


def parse_budget(raw: str, name: str = BUDGET_ENV) -> float | None:
    """A budget in credits (0 or more) from text; empty, ``none`` or ``off`` mean no budget."""
    text = raw.strip().lower()
    if text in _NO_BUDGET_WORDS:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{name} must be a number of credits, 0 or more (or empty for no budget); got {raw!r}.")
    return value


def parse_period(raw: str, name: str = PERIOD_ENV) -> str:
    """A budget period from text: process (or empty), day, month or all."""
    text = raw.strip().lower() or "process"
    if text not in PERIODS:
        raise ConfigError(f"{name} must be one of {', '.join(PERIODS)}; got {raw!r}.")
    return text


class Hold:
    """One admitted request's claim on the budget: its estimated cost (None: not known yet)."""

    __slots__ = ("estimate", "open")

    def __init__(self, estimate: float | None) -> None:
        self.estimate = estimate
        self.open = True

    def __repr__(self) -> str:
        return f"Hold(estimate={self.estimate!r}, open={self.open})"


class CreditBudget:
    """The credits spent (by this process, and in the ledger), those held by requests in flight, and the
    limit; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._spent = 0.0
        self._holds: list[Hold] = []
        self._unreported = 0
        self._setting: float | None = None
        self._period_setting: str | None = None
        self._ledger: SpendingLedger | None = None
        self._unrecorded = 0.0  # billed credits the ledger could not take; still counted in every period

    def use_ledger(self, path: Path | None) -> None:
        """Record spending in the ledger file at ``path`` (None: no ledger)."""
        with self._lock:
            if path is None:
                self._ledger = None
            elif self._ledger is None or self._ledger.path != Path(path):
                self._ledger = SpendingLedger(Path(path))

    @property
    def ledger(self) -> SpendingLedger | None:
        with self._lock:
            return self._ledger

    @property
    def period_setting(self) -> str | None:
        """The period from the frontend setting, or None when the environment decides."""
        with self._lock:
            return self._period_setting

    def set_period(self, period: str | None) -> None:
        """The frontend setting: process, day, month or all; None falls back to the environment."""
        if period is not None:
            period = parse_period(str(period), "The budget period setting")
        with self._lock:
            self._period_setting = period

    def period(self, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
        """The budget period in force and where it comes from."""
        with self._lock:
            setting = self._period_setting
        if setting is not None:
            return setting, "the Flux2 LoRA budget period setting"
        env = os.environ if environ is None else environ
        raw = env.get(PERIOD_ENV, "")
        return parse_period(raw), (f"environment variable {PERIOD_ENV}" if raw.strip() else "the default")

    def spent_in(self, period: str) -> float:
        """Credits spent in ``period``: this process's count, or the ledger's (``LedgerError`` if unreadable)."""
        if period == "process":
            return self.spent
        ledger = self.ledger
        if ledger is None:
            raise LedgerError(f"A budget per {period} needs the spending ledger, which is not set up here.")
        with self._lock:
            unrecorded = self._unrecorded
        return ledger.total(period_start(period)) + unrecorded

    @property
    def spent(self) -> float:
        with self._lock:
            return self._spent

    @property
    def setting(self) -> float | None:
        """The budget from the frontend setting, or None when the environment decides."""
        with self._lock:
            return self._setting

    def set_limit(self, limit: float | None) -> None:
        """The frontend setting: a budget in credits, or None to fall back to the environment."""
        if limit is not None:
            limit = parse_budget(str(limit), "The credit budget setting")
        with self._lock:
            self._setting = limit

    def limit(self, environ: Mapping[str, str] | None = None) -> tuple[float | None, str]:
        """The budget in force and where it comes from; (None, "") when there is none."""
        with self._lock:
            setting = self._setting
        if setting is not None:
            return setting, "the Flux2 LoRA credit budget setting"
        env = os.environ if environ is None else environ
        return parse_budget(env.get(BUDGET_ENV, "")), f"environment variable {BUDGET_ENV}"

    @property
    def held(self) -> float:
        """Credits held by requests in flight (their estimates; unknown ones count 0 here)."""
        with self._lock:
            return sum(h.estimate or 0.0 for h in self._holds)

    @property
    def unreported(self) -> int:
        """Paid requests whose cost the API did not report as a valid amount (in ``spent`` by estimate at most)."""
        with self._lock:
            return self._unreported

    def _record(self, credits: float | None, usd: float | None, request_id: str | None,
                inference_id: str | None) -> None:
        """Write billed credits to the ledger; a ledger that cannot take them is a logged warning."""
        ledger = self.ledger
        if not credits or ledger is None:
            return
        try:
            ledger.record(credits, usd, request_id, inference_id)
        except LedgerError as exc:
            # The money is spent either way: this process keeps counting it in every period.
            log.warning("%s The %s credits are counted by this process only.", exc, f"{credits:,.0f}")
            with self._lock:
                self._unrecorded += credits

    def add(self, credits_used: float | None, *, usd: float | None = None, request_id: str | None = None,
            inference_id: str | None = None) -> None:
        """Count the credits one request cost (None: the API did not say, counted as unreported), here and
        in the ledger.

        Only finite amounts of 0 or more are added: a NaN would poison the total for good
        (and is not valid JSON), a negative amount would give budget back.
        """
        known = _valid_amount(credits_used)
        with self._lock:
            if known:
                self._spent += credits_used  # type: ignore[operator]
            else:
                self._unreported += 1
        if known:
            self._record(credits_used, usd, request_id, inference_id)

    def reset_spent(self) -> None:
        """Start counting from zero again (requests still in flight keep their holds)."""
        with self._lock:
            self._spent = 0.0
            self._unreported = 0

    def check(self, requests: int) -> None:
        """Refuse ``requests`` paid requests if the budget has been reached; nothing is sent then."""
        limit, source = self.limit()
        period, period_source = self.period()
        base = self._period_base(period) if limit is not None else None
        with self._lock:
            self._refuse_if_reached(limit, source, requests, period, period_source, base)

    def _period_base(self, period: str) -> float | None:
        """The ledger's credits for ``period`` (None for ``process``); read outside the lock.

        A ledger that cannot be read is a clear error (LedgerError) here, never a silent pass or block.
        """
        return None if period == "process" else self.spent_in(period)

    def _refuse_if_reached(self, limit: float | None, source: str, requests: int, period: str = "process",
                           period_source: str = "", base: float | None = None) -> None:
        # Called with the lock held. ``base``: the ledger's total for a day/month/all period.
        held = sum(h.estimate or 0.0 for h in self._holds)
        spent = self._spent if base is None else base
        if limit is None or spent + held < limit:
            return
        asked = "request was" if requests == 1 else f"{requests} requests were"
        in_flight = (f" (and {_credits_text(held)} more are held by requests still waiting for their answers)"
                     if held else "")
        if period == "process":
            raise BudgetExceededError(
                f"Credit budget reached: this ComfyUI process has spent {_credits_text(spent)}{in_flight} "
                f"of its budget of {_credits_text(limit)} (from {source}), so this node's {asked} not sent and "
                f"nothing was billed. Raise the budget ({BUDGET_ENV} or the setting) or restart ComfyUI to count "
                "from zero. Results already in the cache still run for free."
            )
        raise BudgetExceededError(
            f"Credit budget reached: {_credits_text(spent)} spent {_PERIOD_WORDS[period]}{in_flight} of a budget "
            f"of {_credits_text(limit)} per {period if period != 'all' else 'all time'} (from {source}; period "
            f"from {period_source}), counted in the spending ledger {self._ledger.path if self._ledger else ''} "
            f"across restarts and ComfyUI processes. This node's {asked} not sent and nothing was billed. Raise "
            f"the budget ({BUDGET_ENV} or the setting)"
            + (", or wait for the next period." if period != "all" else ".")
            + " Results already in the cache still run for free."
        )

    def admit(self, estimates: Sequence[float | None], check_cancel: Callable[[], None] | None = None,
              poll_interval: float = 0.05) -> list[Hold]:
        """Admit one run's paid requests (their estimated costs), or refuse them all before any is sent.

        Refused (``BudgetExceededError``) when the credits spent (in the budget's period) plus
        those held by requests in flight have reached the budget. While a request of unknown
        cost is in flight, its answer is waited for first (``check_cancel`` is called every
        ``poll_interval`` seconds meanwhile). Every hold returned must end in ``settle`` or ``release``.
        """
        warned = False
        while True:
            limit, source = self.limit()
            period, period_source = self.period()
            base = self._period_base(period) if limit is not None else None
            with self._lock:
                self._refuse_if_reached(limit, source, len(estimates), period, period_source, base)
                if limit is None or all(h.estimate is not None for h in self._holds):
                    holds = [Hold(estimate) for estimate in estimates]
                    self._holds += holds
                    return holds
                if not warned:
                    log.info("Credit budget: waiting for the answer of a request of unknown cost before "
                             "sending more.")
                    warned = True
                self._changed.wait(poll_interval)
            if check_cancel is not None:
                check_cancel()

    def settle(self, hold: Hold, credits_used: float | None, *, usd: float | None = None,
               request_id: str | None = None, inference_id: str | None = None) -> None:
        """The request was answered (or the usage logs say it was billed): replace its estimate by its cost.

        An answer without a valid cost (None, or not a finite amount of 0 or more) is counted
        as unreported and keeps its estimate as the cost: never free, never a refund.
        The cost goes to the ledger before the hold ends, so no moment counts it in neither.
        """
        if not hold.open:
            return
        if _valid_amount(credits_used):
            self._record(credits_used, usd, request_id, inference_id)
            self._close(hold, credits_used)
        else:
            self._record(hold.estimate, None, request_id, inference_id)
            self._close(hold, hold.estimate, unreported=True)

    def release(self, hold: Hold, may_have_billed: bool = False, request_id: str | None = None) -> None:
        """The request failed: drop its hold, or (``may_have_billed``) count its estimate as spent."""
        if not hold.open:
            return
        if may_have_billed:
            log.info("A request that may have been billed failed; counting its estimated %s against the budget.",
                     _credits_text(hold.estimate or 0.0))
            self._record(hold.estimate, None, request_id, None)
        self._close(hold, hold.estimate if may_have_billed else None)

    def _close(self, hold: Hold, spent: float | None, unreported: bool = False) -> None:
        with self._lock:
            if not hold.open:
                return
            hold.open = False
            self._holds = [h for h in self._holds if h is not hold]
            if spent:
                self._spent += spent
            self._unreported += unreported
            self._changed.notify_all()

    def snapshot(self) -> dict[str, Any]:
        """{"spent": credits this process spent, "budget": the limit or None}, for the frontend.

        With a ledger period also "period" and "period_spent" (None if the ledger cannot be read).
        """
        try:
            limit = self.limit()[0]
        except ConfigError:
            limit = None
        shown: dict[str, Any] = {"spent": self.spent, "budget": limit}
        try:
            period = self.period()[0]
        except ConfigError:
            period = "process"
        if period != "process":
            try:
                period_spent: float | None = self.spent_in(period)
            except LedgerError:
                period_spent = None
            shown.update(period=period, period_spent=period_spent)
        return shown


_process_budget = CreditBudget()


def credit_budget() -> CreditBudget:
    """The budget shared by every node in this process."""
    return _process_budget


def set_credit_budget(limit: float | None) -> None:
    """Set this process's budget in credits (the frontend setting); None returns to env FLUX2_LORA_CREDIT_BUDGET."""
    _process_budget.set_limit(limit)


def set_budget_period(period: str | None) -> None:
    """Set the budget period (the frontend setting); None returns to env FLUX2_LORA_BUDGET_PERIOD."""
    _process_budget.set_period(period)


def budget_status(budget: CreditBudget, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What the budget setting shows: spent, the budget in force, what is left and where it comes from."""
    return _with_unreported(_budget_status(budget, environ), budget.unreported)


def _budget_status(budget: CreditBudget, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    spent = budget.spent
    status: dict[str, Any] = {"spent": spent, "budget": None, "left": None, "source": None,
                              "setting": budget.setting, "env_var": BUDGET_ENV, "message": "",
                              "period": "process", "period_setting": budget.period_setting,
                              "period_env_var": PERIOD_ENV, "ledger": None}
    try:
        limit, source = budget.limit(environ)
        period, _ = budget.period(environ)
    except ConfigError as exc:
        status["message"] = f"{exc} Every paid request stops with this error until it is fixed or a budget is set here."
        return status
    status["period"] = period
    status["ledger"] = str(budget.ledger.path) if budget.ledger else None
    if period != "process":
        try:
            spent = budget.spent_in(period)
        except LedgerError as exc:
            status["message"] = f"{exc} While a budget per {period} is set, paid requests stop with this error."
            return status
    when = {"process": "since ComfyUI started", "day": "today", "month": "this month", "all": "in all"}[period]
    status["period_spent"] = spent
    if limit is None:
        status["message"] = (f"No credit budget; {_credits_text(spent)} spent {when}. "
                             f"Set one here or with {BUDGET_ENV}.")
        return status
    left = max(0.0, limit - spent)
    status.update(budget=limit, left=left, source=source)
    until = "ComfyUI restarts" if period == "process" else "the next period" if period != "all" else "it is raised"
    state = (f"reached: further requests are refused until it is raised or {until}" if spent >= limit
             else f"{_credits_text(left)} left")
    per = "" if period == "process" else f" per {period if period != 'all' else 'all time'}"
    spent_when = "" if period == "process" else f" {when}"
    status["message"] = (f"Budget {_credits_text(limit)}{per} (from {source}): "
                         f"{_credits_text(spent)} spent{spent_when}, {state}.")
    return status


def _with_unreported(status: dict[str, Any], unreported: int) -> dict[str, Any]:
    """The status, saying how many paid requests are missing from ``spent`` because their cost is unknown."""
    status["unreported"] = unreported
    if unreported:
        asked = "1 paid request" if unreported == 1 else f"{unreported} paid requests"
        status["message"] += (f" {asked} did not report a valid cost and {'is' if unreported == 1 else 'are'} in "
                              "this total only at the estimated price, if one was known; check your usage at "
                              "https://aimlapi.com/app.")
    return status


def budget_get_answer(budget: CreditBudget, environ: Mapping[str, str] | None = None) -> Answer:
    """The answer to GET: the budget's status. Reads only."""
    return 200, budget_status(budget, environ)


def budget_post_answer(body: bytes, content_type: str, budget: CreditBudget,
                       environ: Mapping[str, str] | None = None) -> Answer:
    """The answer to POST {"budget": credits or null, "period": "day" or null}: set the frontend's budget
    and/or its period, then report the status."""
    example = '{"budget": 500000}, or {"budget": null} for none, and/or {"period": "day"}'
    try:
        data = parse_json_object(body, content_type, ("budget", "period"), example, "the budget")
        if "budget" not in data and "period" not in data:
            raise RouteInputError(f"The request body has no \"budget\"; send {example}.")
        value = data.get("budget")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RouteInputError(f'"budget" must be a number of credits, 0 or more, or null for no budget; '
                                  f"got {type(value).__name__}.")
        period = data.get("period")
        if period is not None and not isinstance(period, str):
            raise RouteInputError(f'"period" must be one of {", ".join(PERIODS)}, or null; '
                                  f"got {type(period).__name__}.")
        before = (budget.setting, budget.period_setting)
        if "period" in data:
            budget.set_period(period)
        if "budget" in data:
            budget.set_limit(value)
    except RouteInputError as exc:
        return exc.status, {"error": str(exc), **budget_status(budget, environ)}
    except ConfigError as exc:
        return 400, {"error": str(exc), **budget_status(budget, environ)}
    return 200, {**budget_status(budget, environ), "changed": (budget.setting, budget.period_setting) != before}
