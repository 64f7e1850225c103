"""A per-process credit budget: requests are refused before sending once it is used up.

The credits the API reports for each request are added up for as long as the
process runs. The budget comes from the frontend setting (``set_credit_budget``)
if one was given, else from env ``FLUX2_LORA_CREDIT_BUDGET``; without either
there is no limit, and the total is still kept for display. Pictures served
from the result cache cost nothing and are always allowed.

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
from typing import Any

from .errors import BudgetExceededError, ConfigError
from .route_input import Answer, RouteInputError, parse_json_object

log = logging.getLogger("flux2_lora")

BUDGET_ENV = "FLUX2_LORA_CREDIT_BUDGET"
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


class Hold:
    """One admitted request's claim on the budget: its estimated cost (None: not known yet)."""

    __slots__ = ("estimate", "open")

    def __init__(self, estimate: float | None) -> None:
        self.estimate = estimate
        self.open = True

    def __repr__(self) -> str:
        return f"Hold(estimate={self.estimate!r}, open={self.open})"


class CreditBudget:
    """The credits spent by this process, those held by requests in flight, and the limit; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._spent = 0.0
        self._holds: list[Hold] = []
        self._unreported = 0
        self._setting: float | None = None

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

    def add(self, credits_used: float | None) -> None:
        """Count the credits one request cost (None: the API did not say, counted as unreported).

        Only finite amounts of 0 or more are added: a NaN would poison the total for good
        (and is not valid JSON), a negative amount would give budget back.
        """
        known = _valid_amount(credits_used)
        with self._lock:
            if known:
                self._spent += credits_used  # type: ignore[operator]
            else:
                self._unreported += 1

    def reset_spent(self) -> None:
        """Start counting from zero again (requests still in flight keep their holds)."""
        with self._lock:
            self._spent = 0.0
            self._unreported = 0

    def check(self, requests: int) -> None:
        """Refuse ``requests`` paid requests if the budget has been reached; nothing is sent then."""
        limit, source = self.limit()
        with self._lock:
            self._refuse_if_reached(limit, source, requests)

    def _refuse_if_reached(self, limit: float | None, source: str, requests: int) -> None:
        # Called with the lock held.
        held = sum(h.estimate or 0.0 for h in self._holds)
        if limit is None or self._spent + held < limit:
            return
        asked = "request was" if requests == 1 else f"{requests} requests were"
        in_flight = (f" (and {_credits_text(held)} more are held by requests still waiting for their answers)"
                     if held else "")
        raise BudgetExceededError(
            f"Credit budget reached: this ComfyUI process has spent {_credits_text(self._spent)}{in_flight} "
            f"of its budget of {_credits_text(limit)} (from {source}), so this node's {asked} not sent and "
            f"nothing was billed. Raise the budget ({BUDGET_ENV} or the setting) or restart ComfyUI to count "
            "from zero. Results already in the cache still run for free."
        )

    def admit(self, estimates: Sequence[float | None], check_cancel: Callable[[], None] | None = None,
              poll_interval: float = 0.05) -> list[Hold]:
        """Admit one run's paid requests (their estimated costs), or refuse them all before any is sent.

        Refused (``BudgetExceededError``) when the credits spent plus those held by requests in
        flight have reached the budget. While a request of unknown cost is in flight, its answer
        is waited for first (``check_cancel`` is called every ``poll_interval`` seconds meanwhile).
        Every hold returned must end in ``settle`` or ``release``.
        """
        warned = False
        while True:
            limit, source = self.limit()
            with self._lock:
                self._refuse_if_reached(limit, source, len(estimates))
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

    def settle(self, hold: Hold, credits_used: float | None) -> None:
        """The request was answered: replace its estimate by what it cost.

        An answer without a valid cost (None, or not a finite amount of 0 or more) is counted
        as unreported and keeps its estimate as the cost: never free, never a refund.
        """
        if _valid_amount(credits_used):
            self._close(hold, credits_used)
        else:
            self._close(hold, hold.estimate, unreported=True)

    def release(self, hold: Hold, may_have_billed: bool = False) -> None:
        """The request failed: drop its hold, or (``may_have_billed``) count its estimate as spent."""
        if may_have_billed:
            log.info("A request that may have been billed failed; counting its estimated %s against the budget.",
                     _credits_text(hold.estimate or 0.0))
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

    def snapshot(self) -> dict[str, float | None]:
        """{"spent": credits so far, "budget": the limit or None}, for the frontend."""
        try:
            limit = self.limit()[0]
        except ConfigError:
            limit = None
        return {"spent": self.spent, "budget": limit}


_process_budget = CreditBudget()


def credit_budget() -> CreditBudget:
    """The budget shared by every node in this process."""
    return _process_budget


def set_credit_budget(limit: float | None) -> None:
    """Set this process's budget in credits (the frontend setting); None returns to env FLUX2_LORA_CREDIT_BUDGET."""
    _process_budget.set_limit(limit)


def budget_status(budget: CreditBudget, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What the budget setting shows: spent, the budget in force, what is left and where it comes from."""
    return _with_unreported(_budget_status(budget, environ), budget.unreported)


def _budget_status(budget: CreditBudget, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    spent = budget.spent
    status: dict[str, Any] = {"spent": spent, "budget": None, "left": None, "source": None,
                              "setting": budget.setting, "env_var": BUDGET_ENV, "message": ""}
    try:
        limit, source = budget.limit(environ)
    except ConfigError as exc:
        status["message"] = f"{exc} Every paid request stops with this error until it is fixed or a budget is set here."
        return status
    if limit is None:
        status["message"] = (f"No credit budget; {_credits_text(spent)} spent since ComfyUI started. "
                             f"Set one here or with {BUDGET_ENV}.")
        return status
    left = max(0.0, limit - spent)
    status.update(budget=limit, left=left, source=source)
    state = ("reached: further requests are refused until it is raised or ComfyUI restarts" if spent >= limit
             else f"{_credits_text(left)} left")
    status["message"] = f"Budget {_credits_text(limit)} (from {source}): {_credits_text(spent)} spent, {state}."
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
    """The answer to POST {"budget": credits or null}: set the frontend's budget, then report the status."""
    example = '{"budget": 500000}, or {"budget": null} for none'
    try:
        data = parse_json_object(body, content_type, ("budget",), example, "the budget")
        if "budget" not in data:
            raise RouteInputError(f"The request body has no \"budget\"; send {example}.")
        value = data["budget"]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RouteInputError(f'"budget" must be a number of credits, 0 or more, or null for no budget; '
                                  f"got {type(value).__name__}.")
        before = budget.setting
        budget.set_limit(value)
    except RouteInputError as exc:
        return exc.status, {"error": str(exc), **budget_status(budget, environ)}
    except ConfigError as exc:
        return 400, {"error": str(exc), **budget_status(budget, environ)}
    return 200, {**budget_status(budget, environ), "changed": budget.setting != before}
