"""A per-process credit budget: requests are refused before sending once it is used up.

The credits the API reports for each request are added up for as long as the
process runs. The budget comes from the frontend setting (``set_credit_budget``)
if one was given, else from env ``FLUX2_LORA_CREDIT_BUDGET``; without either
there is no limit, and the total is still kept for display. Pictures served
from the result cache cost nothing and are always allowed.

``budget_get_answer`` and ``budget_post_answer`` are the logic behind the pack's
budget route (nodes/budget_routes.py), which the frontend setting calls.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping
from typing import Any

from .errors import BudgetExceededError, ConfigError
from .route_input import Answer, RouteInputError, parse_json_object

BUDGET_ENV = "FLUX2_LORA_CREDIT_BUDGET"
_NO_BUDGET_WORDS = {"", "none", "off"}


def _credits_text(value: float) -> str:
    # "1,000,000 credits", "12.5 credits": grouped digits, never exponent notation.
    number = f"{value:,.6f}".rstrip("0").rstrip(".")
    return f"{number} credit{'' if value == 1 else 's'}"


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


class CreditBudget:
    """The credits spent by this process and the limit they may reach; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent = 0.0
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
    def unreported(self) -> int:
        """Paid requests whose cost the API did not report as a valid amount (not in ``spent``)."""
        with self._lock:
            return self._unreported

    def add(self, credits_used: float | None) -> None:
        """Count the credits one request cost (None: the API did not say, counted as unreported).

        Only finite amounts of 0 or more are added: a NaN would poison the total for good
        (and is not valid JSON), a negative amount would give budget back.
        """
        known = credits_used is not None and math.isfinite(credits_used) and credits_used >= 0
        with self._lock:
            if known:
                self._spent += credits_used  # type: ignore[operator]
            else:
                self._unreported += 1

    def reset_spent(self) -> None:
        """Start counting from zero again."""
        with self._lock:
            self._spent = 0.0
            self._unreported = 0

    def check(self, requests: int) -> None:
        """Refuse ``requests`` paid requests if the budget has been reached; nothing is sent then."""
        limit, source = self.limit()
        spent = self.spent
        if limit is None or spent < limit:
            return
        asked = "request was" if requests == 1 else f"{requests} requests were"
        raise BudgetExceededError(
            f"Credit budget reached: this ComfyUI process has spent {_credits_text(spent)} of its budget of "
            f"{_credits_text(limit)} (from {source}), so this node's {asked} not sent and nothing was billed. "
            f"Raise the budget ({BUDGET_ENV} or the setting) or restart ComfyUI to count from zero. "
            "Results already in the cache still run for free."
        )

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
        status["message"] += (f" {asked} did not report a valid cost and {'is' if unreported == 1 else 'are'} not "
                              "in this total; check your usage at https://aimlapi.com/app.")
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
