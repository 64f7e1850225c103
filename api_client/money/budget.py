"""The credit budget as users see it: its status and the budget route's answers.

The budget itself (the setting, its period, the holds of requests in flight, the hard
cap) lives in the money component (``money.py``): ``CreditBudget`` is that component and
``credit_budget()`` the process's one. A budget comes from the frontend setting (kept on
disk by the pack) if one was given, else from env ``FLUX2_LORA_CREDIT_BUDGET``; without
either there is no limit, and the total is still kept for display. Its period (setting,
else env ``FLUX2_LORA_BUDGET_PERIOD``): ``process`` (the default: this process since it
started), ``day`` (since local midnight), ``month`` or ``all``; the last three are read
from the spending ledger, so they hold across restarts and across ComfyUI processes
sharing the user folder. Pictures served from the result cache cost nothing and are
always allowed.

A budget in USD (setting, else env ``FLUX2_LORA_BUDGET_USD``) counts the same way in USD, on
this machine or, with the scope ``key`` (env ``FLUX2_LORA_BUDGET_SCOPE``), for every machine
using the key as ``GET /v2/usage`` reports it (see ``money.py``).

Every budget is a hard cap: a run is refused before sending when the credits spent plus
those held by requests in flight plus the run's own estimate would exceed it. While a
request whose cost cannot be estimated yet is in flight, a new paid run waits for that
answer instead of guessing; Cancel ends the wait.

``budget_get_answer`` and ``budget_post_answer`` are the logic behind the pack's
budget route (nodes/routes/budget.py), which the frontend setting calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import BudgetExceededError, ConfigError
from ..panel.route_input import Answer, RouteInputError, parse_json_object
from .core import (
    BUDGET_ENV,
    BUDGET_USD_ENV,
    PERIOD_ENV,
    PERIODS,
    SCOPE_ENV,
    SCOPES,
    Hold,
    Money,
    parse_budget,
    parse_period,
    process_money,
    usd_line,
)
from .core import credits_text as _credits_text
from .ledger import LedgerError

# The money component is the budget: one object owns every credit of the process.
CreditBudget = Money


def credit_budget() -> Money:
    """The budget shared by every node in this process (the money component)."""
    return process_money()


def set_credit_budget(limit: float | None) -> None:
    """Set this process's budget in credits (the frontend setting); None returns to env FLUX2_LORA_CREDIT_BUDGET."""
    process_money().set_limit(limit)


def budget_status(budget: CreditBudget, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What the budget setting shows: spent, the budget in force, what is left and where it comes from.

    With a budget in USD also ``budget_usd``, ``scope``, ``key_spent_usd`` (the key's spending as the
    last paid run counted it; None before the first), ``machine_spent_usd`` and ``usd_line``.
    """
    status = _budget_status(budget, environ)
    status.update(budget_usd=None, budget_usd_setting=budget.usd_setting, budget_usd_env_var=BUDGET_USD_ENV,
                  scope="machine", scope_setting=budget.scope_setting, scope_env_var=SCOPE_ENV, usd_line="")
    try:
        settings = budget.settings(environ)
    except ConfigError:
        settings = None
    if settings is not None:
        status["scope"] = settings.scope
        if settings.budget_usd is not None:
            key, machine = budget.key_spending(settings)
            line = usd_line(settings, key, machine)
            status.update(budget_usd=settings.budget_usd, budget_usd_source=settings.budget_usd_source,
                          key_spent_usd=key, machine_spent_usd=machine, usd_line=line)
            status["message"] = f"{status['message']} Budget in USD (from {settings.budget_usd_source}): {line}."
    return _with_unreported(status, budget.unreported)


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
    """The answer to POST {"budget": credits or null, "period": "day" or null, "budget_usd": 5 or "$5" or null,
    "scope": "key" or null}: set the frontend's budgets, period and/or scope, then report the status."""
    example = ('{"budget": 500000}, or {"budget": null} for none, and/or {"period": "day"}, '
               '{"budget_usd": 5} (or "$5"), {"scope": "key"}')
    fields = ("budget", "period", "budget_usd", "scope")
    try:
        data = parse_json_object(body, content_type, fields, example, "the budget")
        if not any(name in data for name in fields):
            raise RouteInputError(f"The request body has no \"budget\"; send {example}.")
        usd = data.get("budget_usd")
        if usd is not None and (isinstance(usd, bool) or not isinstance(usd, (int, float, str))):
            raise RouteInputError(f'"budget_usd" must be an amount in USD, 0 or more (5 or "$5"), or null for no '
                                  f"budget; got {type(usd).__name__}.")
        scope = data.get("scope")
        if scope is not None and not isinstance(scope, str):
            raise RouteInputError(f'"scope" must be one of {", ".join(SCOPES)}, or null; got {type(scope).__name__}.')
        value = data.get("budget")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RouteInputError(f'"budget" must be a number of credits, 0 or more, or null for no budget; '
                                  f"got {type(value).__name__}.")
        period = data.get("period")
        if period is not None and not isinstance(period, str):
            raise RouteInputError(f'"period" must be one of {", ".join(PERIODS)}, or null; '
                                  f"got {type(period).__name__}.")
        def current() -> tuple:
            return budget.setting, budget.period_setting, budget.usd_setting, budget.scope_setting

        before = current()
        try:
            budget.settings(environ)
            valid_before = True
        except ConfigError:
            valid_before = False
        if "period" in data:
            budget.set_period(period)
        if "budget" in data:
            budget.set_limit(value)
        if "budget_usd" in data:
            budget.set_limit_usd(usd)
        if "scope" in data:
            budget.set_scope(scope)
        if valid_before:
            try:
                budget.settings(environ)
            except ConfigError:
                # This change made the settings unusable together (scope key with period all):
                # refused now, as it was typed, and the settings kept as they were.
                budget.set_period(before[1])
                budget.set_limit(before[0])
                budget.set_limit_usd(before[2])
                budget.set_scope(before[3])
                raise
    except RouteInputError as exc:
        return exc.status, {"error": str(exc), **budget_status(budget, environ)}
    except ConfigError as exc:
        return 400, {"error": str(exc), **budget_status(budget, environ)}
    return 200, {**budget_status(budget, environ), "changed": current() != before}


__all__ = ["BUDGET_ENV", "BUDGET_USD_ENV", "PERIODS", "PERIOD_ENV", "SCOPES", "SCOPE_ENV", "BudgetExceededError",
           "CreditBudget", "Hold", "budget_get_answer",
           "budget_post_answer", "budget_status", "credit_budget", "parse_budget", "parse_period",
           "set_credit_budget"]
