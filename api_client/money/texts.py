"""Amounts as people read them: credits, USD, and the USD budget's line for the panel and the node."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..settings import Settings as MoneySettings

# What a budget's period is called in a line of text.
WHEN = {"process": "since ComfyUI started", "day": "today", "month": "this month", "all": "in all"}


def credits_text(value: float) -> str:
    """``1,000,000 credits``, ``12.5 credits``: grouped digits, never exponent notation."""
    number = f"{value:,.6f}".rstrip("0").rstrip(".")
    return f"{number} credit{'' if value == 1 else 's'}"



def usd_text(value: float) -> str:
    """``$12.35``, and small amounts with enough digits to be seen (``$0.0006``)."""
    if abs(value) >= 1 or value == 0:
        return f"${value:,.2f}"
    digits = f"{value:.6f}".rstrip("0")
    return f"${digits}{'0' * max(0, 2 - len(digits.partition('.')[2]))}"


def usd_line(settings: MoneySettings, key: float | None, machine: float | None) -> str:
    """``Key today: $4.12 of $5.00 (all machines) · this machine: $0.66``: the USD budget in one line."""
    limit = settings.budget_usd
    if limit is None:
        return ""
    when = WHEN[settings.period]
    mine = usd_text(machine) if machine is not None else "unknown (ledger unreadable)"
    if settings.key_scope:
        spent = usd_text(key) if key is not None else "not asked yet (asked before each paid run)"
        return f"Key {when}: {spent} of {usd_text(limit)} (all machines) · this machine: {mine}"
    who = "This ComfyUI" if settings.period == "process" else f"This machine {when}"
    return f"{who}: {mine} of {usd_text(limit)}"
