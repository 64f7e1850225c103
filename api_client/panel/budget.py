"""The budget route's answers (GET and POST /flux2_lora/budget): the budgets' status, for people.

Pure of ComfyUI: nodes/routes/budget.py moves the body in and this JSON out. The budgets
themselves (settings, holds, the hard cap) belong to the money component (money/component.py).
The frontend's settings "Credit budget", "Budget in USD", "Budget period" and "Budget scope"
post here when they change and once at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..money.ledger import LedgerError
from ..money.texts import WHEN, credits_text, usd_line
from ..route_input import Answer, RouteInputError, parse_json_object
from ..settings import BUDGET_ENV, BUDGET_USD_ENV, PERIOD_ENV, PERIODS, SCOPE_ENV, SCOPES

if TYPE_CHECKING:
    from ..money.component import Money


def budget_status(budget: Money, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
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


def _budget_status(budget: Money, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
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
    when = WHEN[period]
    status["period_spent"] = spent
    if limit is None:
        status["message"] = (f"No credit budget; {credits_text(spent)} spent {when}. "
                             f"Set one here or with {BUDGET_ENV}.")
        return status
    left = max(0.0, limit - spent)
    status.update(budget=limit, left=left, source=source)
    until = "ComfyUI restarts" if period == "process" else "the next period" if period != "all" else "it is raised"
    state = (f"reached: further requests are refused until it is raised or {until}" if spent >= limit
             else f"{credits_text(left)} left")
    per = "" if period == "process" else f" per {period if period != 'all' else 'all time'}"
    spent_when = "" if period == "process" else f" {when}"
    status["message"] = (f"Budget {credits_text(limit)}{per} (from {source}): "
                         f"{credits_text(spent)} spent{spent_when}, {state}.")
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


def budget_get_answer(budget: Money, environ: Mapping[str, str] | None = None) -> Answer:
    """The answer to GET: the budget's status. Reads only."""
    return 200, budget_status(budget, environ)


def budget_post_answer(body: bytes, content_type: str, budget: Money,
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
