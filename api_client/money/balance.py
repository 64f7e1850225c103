"""The account balance (GET /v2/billing) and the balance floor a run may not take it below.

The floor comes from the frontend setting if one was given, else env
``FLUX2_LORA_BALANCE_FLOOR`` (USD). With a floor set, every run that would send paid
requests first asks the balance; a run whose estimated cost (``pricing``) would take the
balance below the floor is refused before anything is sent. Because the balance is the
account's, the guard holds across every ComfyUI process and machine sharing the key,
with no coordination of our own. Requests this process has in flight (and those settled
since the balance was read) are counted too; those of other processes are not.
The check itself and the setting (kept on disk) belong to the money component (``component.py``).

When the balance cannot be had (endpoint missing, garbage, network) the run goes ahead
with a logged warning: a generation never fails because the balance is unavailable.

What the balance route answers (the key panel and the floor setting) is in ``panel/balance.py``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..api.service import ServiceUnavailable, finite_amount, service_get
from ..errors import Flux2Error

if TYPE_CHECKING:
    from threading import Event

    from ..api.client import ApiClient

log = logging.getLogger("flux2_lora")

BILLING_PATH = "/v2/billing"


class BalanceFloorError(Flux2Error):
    """A run was refused before sending: its estimate would take the balance below the floor."""


@dataclass(frozen=True)
class Balance:
    """The account's balance as GET /v2/billing told it, and when (Unix time)."""

    usd: float
    currency: str
    at: float


def fetch_balance(client: ApiClient, *, cancel: Event | None = None,
                  deadline: float | None = None) -> Balance:
    """GET /v2/billing on the API host with the key; ``ServiceUnavailable`` if it gives no usable balance.

    A ``current_balance`` that cannot be read (text, NaN, 400 digits) is no balance, never 0.
    ``cancel`` and ``deadline`` (monotonic) as for ``service_get``.
    """
    answer = service_get(client, BILLING_PATH, cancel=cancel, deadline=deadline)
    payload = answer.payload if isinstance(answer.payload, dict) else {}
    value = finite_amount(payload.get("current_balance"))
    if value is None:
        raise ServiceUnavailable(f"{BILLING_PATH} answered without a readable current_balance (a number of USD)",
                                 permanent=True)
    currency = payload.get("currency")
    currency = currency.strip()[:16] if isinstance(currency, str) and currency.strip() else "USD"
    return Balance(value, currency, time.time())
