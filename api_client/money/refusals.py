"""Why a run was refused before anything was sent, in words: the budget in credits, in USD, unknown costs.

Every text says what was counted, against which budget from where, that nothing was sent or
billed, and what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..amounts import USD_EPSILON
from ..settings import BUDGET_ENV, BUDGET_USD_ENV
from .texts import credits_text, usd_text

if TYPE_CHECKING:
    from ..settings import Settings as MoneySettings
    from .holds import Hold
    from .key_usage import KeyUsage


def unresolved_refusal(holds: Sequence[Hold], requests: int) -> str:
    ids = ", ".join(h.request_id for h in holds[:3])
    asked = "request was" if requests == 1 else f"{requests} requests were"
    return (f"Credit budget: request {ids} of a price not known yet may have been billed (its answer never came "
            "and the usage logs have not told yet), so what was spent is unknown and the budget cannot be "
            f"checked. This node's {asked} not sent and nothing was billed. Run again in a minute (the usage "
            "logs are asked again first), or check your usage at https://aimlapi.com/app and raise or remove "
            f"the budget ({BUDGET_ENV} or the setting).")


def usd_refusal(settings: MoneySettings, spent: float, held: float, own: float | None, requests: int,
                 usage: KeyUsage | None, machine: float | None) -> str:
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
                   if extra > USD_EPSILON else "")
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


def credit_refusal(settings: MoneySettings, spent: float, held: float, own: float | None, requests: int,
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
