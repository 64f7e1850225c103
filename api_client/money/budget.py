"""The credit budget under the name the pack's nodes and ``api_client`` know: the money component.

The budget itself (the setting, its period, the holds of requests in flight, the hard cap)
lives in the money component (``component.py``): ``CreditBudget`` is that component and
``credit_budget()`` the process's one. A budget comes from the frontend setting (kept on disk
by the pack) if one was given, else from env ``FLUX2_LORA_CREDIT_BUDGET``; without either
there is no limit, and the total is still kept for display. Its period (setting, else env
``FLUX2_LORA_BUDGET_PERIOD``): ``process`` (the default: this process since it started),
``day`` (since local midnight), ``month`` or ``all``; the last three are read from the spending
ledger, so they hold across restarts and across ComfyUI processes sharing the user folder.
Pictures served from the result cache cost nothing and are always allowed.

A budget in USD (setting, else env ``FLUX2_LORA_BUDGET_USD``) counts the same way in USD, on
this machine or, with the scope ``key`` (env ``FLUX2_LORA_BUDGET_SCOPE``), for every machine
using the key as ``GET /v2/usage`` reports it (see ``key_usage.py``).

Every budget is a hard cap: a run is refused before sending when the credits spent plus
those held by requests in flight plus the run's own estimate would exceed it. While a
request whose cost cannot be estimated yet is in flight, a new paid run waits for that
answer instead of guessing; Cancel ends the wait. What the budget route answers is in
``panel/budget.py``.
"""

from __future__ import annotations

from .component import Money
from .core import process_money
from .holds import Hold

# The money component is the budget: one object owns every credit of the process.
CreditBudget = Money


def credit_budget() -> Money:
    """The budget shared by every node in this process (the money component)."""
    return process_money()


def set_credit_budget(limit: float | None) -> None:
    """Set this process's budget in credits (the frontend setting); None returns to env FLUX2_LORA_CREDIT_BUDGET."""
    process_money().set_limit(limit)


__all__ = ["CreditBudget", "Hold", "credit_budget", "set_credit_budget"]
