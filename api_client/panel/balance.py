"""The balance route's answers (GET and POST /flux2_lora/balance): the balance and its floor, for people.

Pure of ComfyUI: nodes/routes/money.py asks the balance and moves the body in and this JSON
out. The floor's check, its setting (kept on disk) and the last balance belong to the money
component (money/component.py); the balance itself is read in money/balance.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..money.balance import Balance
from ..money.core import process_money
from ..money.texts import usd_text
from ..route_input import Answer, RouteInputError, parse_json_object
from ..settings import FLOOR_ENV

if TYPE_CHECKING:
    from ..api.client import ApiClient
    from ..money.component import Money


class BalanceFloor:
    """The floor as the key panel and the floor setting see it: a view of the money component.

    It keeps no state of its own: the setting (kept on disk), the last balance and the check
    itself belong to ``money.Money``, which counts the USD held by requests in flight.
    """

    def __init__(self, money: Money | None = None) -> None:
        from ..money.component import Money

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
