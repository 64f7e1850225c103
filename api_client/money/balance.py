"""The account balance (GET /v2/billing) and the balance floor a run may not take it below.

The floor comes from the frontend setting if one was given, else env
``FLUX2_LORA_BALANCE_FLOOR`` (USD). With a floor set, every run that would send paid
requests first asks the balance; a run whose estimated cost (``pricing``) would take the
balance below the floor is refused before anything is sent. Because the balance is the
account's, the guard holds across every ComfyUI process and machine sharing the key,
with no coordination of our own. Requests this process has in flight (and those settled
since the balance was read) are counted too; those of other processes are not.
The check itself and the setting (kept on disk) belong to the money component (``money.py``).

When the balance cannot be had (endpoint missing, garbage, network) the run goes ahead
with a logged warning: a generation never fails because the balance is unavailable.

``balance_get_answer`` and ``balance_post_answer`` are the logic behind the pack's
balance route (nodes/routes/money.py), which the key panel and the floor setting call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..api.service import ServiceUnavailable, finite_amount, service_get
from ..errors import ConfigError, Flux2Error
from ..panel.route_input import Answer, RouteInputError, parse_json_object
from ..settings import FLOOR_ENV

if TYPE_CHECKING:
    from threading import Event

    from ..api.client import ApiClient
    from .core import Money

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


def usd_text(value: float) -> str:
    """``$12.35``, and small amounts with enough digits to be seen (``$0.0006``)."""
    if abs(value) >= 1 or value == 0:
        return f"${value:,.2f}"
    digits = f"{value:.6f}".rstrip("0")
    return f"${digits}{'0' * max(0, 2 - len(digits.partition('.')[2]))}"


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


class BalanceFloor:
    """The floor as the key panel and the floor setting see it: a view of the money component.

    It keeps no state of its own: the setting (kept on disk), the last balance and the check
    itself belong to ``money.Money``, which counts the USD held by requests in flight.
    """

    def __init__(self, money: Money | None = None) -> None:
        from .core import Money

        self._money = money if money is not None else Money()

    @property
    def setting(self) -> float | None:
        return self._money.floor_setting

    def set_floor(self, floor: float | None) -> None:
        """The frontend setting: a floor in USD, or None to fall back to the environment (kept on disk)."""
        self._money.set_floor(floor)

    def floor(self, environ: Mapping[str, str] | None = None) -> tuple[float | None, str]:
        """The floor in force and where it comes from."""
        return self._money.floor(environ)

    @property
    def last(self) -> Balance | None:
        return self._money.last_balance

    def refresh(self, client: ApiClient) -> Balance | None:
        """Ask the balance now; None (and the reason kept for the panel) when it cannot be had."""
        return self._money.refresh(client)

    def status(self, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        """What the key panel and the floor setting show."""
        last, problem, setting = self.last, self._money.balance_problem, self.setting
        shown: dict[str, Any] = {"balance": last.usd if last else None, "currency": last.currency if last else None,
                                 "checked_at": last.at if last else None, "floor": None, "floor_source": None,
                                 "floor_setting": setting, "env_var": FLOOR_ENV, "message": ""}
        try:
            floor, source = self.floor(environ)
        except ConfigError as exc:
            shown["message"] = f"{exc} Every paid request stops with this error until it is fixed."
            return shown
        shown.update(floor=floor, floor_source=source if floor is not None else None)
        parts = [f"Balance {usd_text(last.usd)}" if last else
                 f"Balance unavailable ({problem})" if problem else "Balance not asked yet"]
        parts.append(f"floor {usd_text(floor)} (from {source})" if floor is not None else "no balance floor")
        held = self._money.held_usd
        if held:
            parts.append(f"{usd_text(held)} held by requests in flight")
        shown["message"] = "; ".join(parts) + "."
        return shown


def balance_floor() -> BalanceFloor:
    """The floor and last balance of this process's money component."""
    from .core import process_money

    return BalanceFloor(process_money())


def balance_post_answer(body: bytes, content_type: str, floor: BalanceFloor,
                        environ: Mapping[str, str] | None = None) -> Answer:
    """The answer to POST {"floor": USD or null}: set the frontend's floor, then report the status."""
    example = '{"floor": 5}, or {"floor": null} for none'
    try:
        data = parse_json_object(body, content_type, ("floor",), example, "the balance floor")
        if "floor" not in data:
            raise RouteInputError(f'The request body has no "floor"; send {example}.')
        value = data["floor"]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RouteInputError(f'"floor" must be an amount in USD, 0 or more, or null; got {type(value).__name__}.')
        floor.set_floor(value)
    except RouteInputError as exc:
        return exc.status, {"error": str(exc), **floor.status(environ)}
    except ConfigError as exc:
        return 400, {"error": str(exc), **floor.status(environ)}
    return 200, floor.status(environ)
