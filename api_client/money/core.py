"""The money settings, and the process's one money component (``process_money()``).

The credit budget, its period, the balance floor and the settings a paid request depends on
later (the usage-log wait, the timeouts, the request cap) are read and validated together into
one ``MoneySettings`` value, again only when an environment variable or a setting changed. A
bad value is a ``ConfigError`` before anything is sent, naming the variable, the allowed form
and the value. Settings made in ComfyUI (the budget, its period, the floor) are kept by the
pack on disk in ComfyUI's user folder (``flux2_lora/settings.json``) the moment they are set,
and are in force from start-up, before any page connects. The component itself, ``Money``, is
in ``component.py``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .component import Money

log = logging.getLogger("flux2_lora")

BUDGET_ENV = "FLUX2_LORA_CREDIT_BUDGET"
BUDGET_USD_ENV = "FLUX2_LORA_BUDGET_USD"
PERIOD_ENV = "FLUX2_LORA_BUDGET_PERIOD"
SCOPE_ENV = "FLUX2_LORA_BUDGET_SCOPE"
PERIODS = ("process", "day", "month", "all")
SCOPES = ("machine", "key")
# Periods a budget of scope ``key`` can have: the API's figure is asked from their start.
KEY_PERIODS = ("day", "month")
SETTINGS_FILE = "settings.json"
_NO_BUDGET_WORDS = {"", "none", "off"}
# Environment variables a paid request depends on after it was sent: validated with the money settings.
_ENV_NAMES = (BUDGET_ENV, BUDGET_USD_ENV, PERIOD_ENV, SCOPE_ENV, "FLUX2_LORA_BALANCE_FLOOR", "FLUX2_LORA_LOG_WAIT",
              "FLUX2_LORA_READ_TIMEOUT", "FLUX2_LORA_CONNECT_TIMEOUT", "FLUX2_LORA_MAX_IN_FLIGHT")


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


def parse_budget_usd(raw: str, name: str = BUDGET_USD_ENV) -> float | None:
    """A budget in USD (0 or more; ``5``, ``$5``, ``4.50``) from text; empty, ``none`` or ``off`` mean no budget."""
    text = raw.strip().lower()
    if text in _NO_BUDGET_WORDS:
        return None
    number = text[1:].strip() if text.startswith("$") else text
    try:
        value = float(number.replace(",", "")) if number and not number.startswith(("+", "-$")) else -1.0
    except ValueError:
        value = -1.0
    if not (value >= 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be an amount in USD, 0 or more, such as 5 or $5 (or empty for no budget); "
                          f"got {raw!r}.")
    return value


def parse_scope(raw: str, name: str = SCOPE_ENV) -> str:
    """A budget scope from text: machine (or empty) or key."""
    text = raw.strip().lower() or "machine"
    if text not in SCOPES:
        raise ConfigError(f"{name} must be machine (this machine's spending, the default) or key (what the API "
                          f"says the whole key spent, every machine together); got {raw!r}.")
    return text


def parse_period(raw: str, name: str = PERIOD_ENV) -> str:
    """A budget period from text: process (or empty), day, month or all."""
    text = raw.strip().lower() or "process"
    if text not in PERIODS:
        raise ConfigError(f"{name} must be one of {', '.join(PERIODS)}; got {raw!r}.")
    return text


@dataclass(frozen=True)
class MoneySettings:
    """Every money setting in force, validated, and where each comes from."""

    budget: float | None
    budget_source: str
    period: str
    period_source: str
    floor: float | None
    floor_source: str
    log_wait: float
    budget_usd: float | None = None
    budget_usd_source: str = ""
    scope: str = "machine"
    scope_source: str = "the default"

    @property
    def ledger_period(self) -> bool:
        """Whether a budget is counted in the ledger (per day, month or all time)."""
        return (self.budget is not None or self.budget_usd is not None) and self.period != "process"

    @property
    def key_scope(self) -> bool:
        """Whether the USD budget counts the whole key's spending, as GET /v2/usage reports it."""
        return self.scope == "key" and self.budget_usd is not None

    @property
    def usage_lag(self) -> float:
        """Seconds the API's usage figure may lag behind a billed answer: the usage-log wait (60 s if off)."""
        from ..api.usage_logs import DEFAULT_LOG_WAIT

        return self.log_wait if self.log_wait > 0 else DEFAULT_LOG_WAIT


def _read_settings(frontend: Mapping[str, Any], env: Mapping[str, str]) -> MoneySettings:
    from ..api.client import validate_timeouts
    from ..api.usage_logs import log_wait
    from ..run.request_slots import parse_max_in_flight
    from .balance import FLOOR_ENV, parse_floor

    budget = frontend.get("credit_budget")
    if budget is not None:
        budget_source = "the Flux2 LoRA credit budget setting"
    else:
        budget = parse_budget(env.get(BUDGET_ENV, ""))
        budget_source = f"environment variable {BUDGET_ENV}"
    period = frontend.get("budget_period")
    if period is not None:
        period_source = "the Flux2 LoRA budget period setting"
    else:
        raw = env.get(PERIOD_ENV, "")
        period = parse_period(raw)
        period_source = f"environment variable {PERIOD_ENV}" if raw.strip() else "the default"
    budget_usd = frontend.get("budget_usd")
    if budget_usd is not None:
        budget_usd_source = "the Flux2 LoRA budget in USD setting"
    else:
        budget_usd = parse_budget_usd(env.get(BUDGET_USD_ENV, ""))
        budget_usd_source = f"environment variable {BUDGET_USD_ENV}"
    scope = frontend.get("budget_scope")
    if scope is not None:
        scope_source = "the Flux2 LoRA budget scope setting"
    else:
        raw = env.get(SCOPE_ENV, "")
        scope = parse_scope(raw)
        scope_source = f"environment variable {SCOPE_ENV}" if raw.strip() else "the default"
    if scope == "key" and period not in KEY_PERIODS:
        raise ConfigError(
            f"A budget scope of key (from {scope_source}) counts what the API says the whole key spent since local "
            f"midnight or the first of the month, so the budget period must be day or month; got {period!r} (from "
            f"{period_source}). Set {PERIOD_ENV} (or the budget period setting) to day or month, or the scope to "
            "machine.")
    if scope == "key" and budget_usd is None and budget is not None:
        raise ConfigError(
            f"A budget scope of key (from {scope_source}) counts the key's spending in USD, as the API reports it, "
            f"but only a credit budget is set ({budget_source}). Set a budget in USD ({BUDGET_USD_ENV} or the "
            "budget in USD setting), or set the scope to machine.")
    floor = frontend.get("balance_floor")
    if floor is not None:
        floor_source = "the Flux2 LoRA balance floor setting"
    else:
        floor = parse_floor(env.get(FLOOR_ENV, ""))
        floor_source = f"environment variable {FLOOR_ENV}"
    wait = log_wait(env)
    validate_timeouts(env)
    if env.get("FLUX2_LORA_MAX_IN_FLIGHT", "").strip():
        parse_max_in_flight(env["FLUX2_LORA_MAX_IN_FLIGHT"])
    return MoneySettings(budget, budget_source, period, period_source, floor, floor_source, wait,
                         budget_usd, budget_usd_source, scope, scope_source)


class SettingsStore:
    """The money settings made in ComfyUI, kept in a small JSON file so they hold from start-up."""

    KEYS = ("credit_budget", "budget_period", "balance_floor", "budget_usd", "budget_scope")

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any]:
        """The kept settings ({} without a file); ``ConfigError`` for a file that cannot be read as kept."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"The Flux2 LoRA settings file {self.path} cannot be read ({exc.strerror or exc}); "
                              "fix its permissions or delete it and set the budget and floor again.") from None
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ConfigError(f"The Flux2 LoRA settings file {self.path} is damaged (not a JSON object); delete it "
                              "and set the budget and floor again in ComfyUI's settings.")
        return {key: data.get(key) for key in self.KEYS}

    def save(self, values: Mapping[str, Any]) -> None:
        """Write ``values`` at once (a temporary file replaced in one step: never half written)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, delete=False, suffix=".tmp",
                                             encoding="utf-8") as fh:
                json.dump({key: values.get(key) for key in self.KEYS}, fh)
            os.replace(fh.name, self.path)
        except OSError as exc:
            log.warning("Flux2 LoRA settings not kept in %s (%s): they hold until ComfyUI restarts.", self.path,
                        exc.strerror or exc)


def settings_path(user_dir: Path) -> Path:
    """Where the settings made in ComfyUI are kept: ``<user>/flux2_lora/settings.json``."""
    return Path(user_dir) / "flux2_lora" / SETTINGS_FILE


_process_money: Money | None = None
_process_money_lock = threading.Lock()


def process_money() -> Money:
    """The money component shared by every node and route of this process (made on first use)."""
    global _process_money
    from .component import Money

    with _process_money_lock:
        if _process_money is None:
            _process_money = Money()
        return _process_money


def reset_process_money() -> Money:
    """A fresh money component for this process (tests: what a restart does); returns it."""
    global _process_money
    from .component import Money

    with _process_money_lock:
        _process_money = Money()
        return _process_money


__all__ = ["BUDGET_ENV", "BUDGET_USD_ENV", "PERIODS", "PERIOD_ENV", "SCOPES", "SCOPE_ENV", "MoneySettings",
           "SettingsStore", "parse_budget", "parse_budget_usd", "parse_period", "parse_scope", "process_money",
           "reset_process_money", "settings_path"]
