"""``Settings``: every environment variable and frontend setting of the pack, read once into one value.

``Settings.read(environ, stored)`` reads them all; ``stored`` are the settings made in
ComfyUI (see ``store.py``), which win over the environment. Reading never fails: a bad
value is kept as a problem (a ``ConfigError`` naming the variable or setting, the form
it takes and the value), the field keeps its default, and ``check(*names)`` raises the
first problem among what a caller depends on before anything is sent. The runtime
(``api_client.runtime``) keeps the current value and reads again only when an
environment variable or a stored setting changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .parse import parse_amount, parse_choice, parse_count, parse_path, parse_seconds, parse_size, parse_switch
from .sources import (
    BASE_ENV_VARS,
    CA_BUNDLE_ENV_VARS,
    DEFAULT_BASE_URL,
    KEY_ENV_VARS,
    check_url_scheme,
    resolve_base_url,
)

BUDGET_ENV = "FLUX2_LORA_CREDIT_BUDGET"
BUDGET_USD_ENV = "FLUX2_LORA_BUDGET_USD"
PERIOD_ENV = "FLUX2_LORA_BUDGET_PERIOD"
SCOPE_ENV = "FLUX2_LORA_BUDGET_SCOPE"
FLOOR_ENV = "FLUX2_LORA_BALANCE_FLOOR"
LOG_WAIT_ENV = "FLUX2_LORA_LOG_WAIT"
CONNECT_TIMEOUT_ENV = "FLUX2_LORA_CONNECT_TIMEOUT"
READ_TIMEOUT_ENV = "FLUX2_LORA_READ_TIMEOUT"
MAX_IN_FLIGHT_ENV = "FLUX2_LORA_MAX_IN_FLIGHT"
CACHE_SWITCH_ENV = "FLUX2_LORA_CACHE"
CACHE_DIR_ENV = "FLUX2_LORA_CACHE_DIR"
CACHE_MAX_BYTES_ENV = "FLUX2_LORA_CACHE_MAX_BYTES"
LEDGER_ENV = "FLUX2_LORA_LEDGER"
CHECK_LORAS_ENV = "FLUX2_LORA_CHECK_LORAS"
HF_ENDPOINT_ENV = "HF_ENDPOINT"  # huggingface_hub's own variable
HOME_ENV_VARS = ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME")
# Every environment variable the pack reads: a change to any of them means reading again.
ENV_NAMES = (*KEY_ENV_VARS, *BASE_ENV_VARS, *CA_BUNDLE_ENV_VARS, *HOME_ENV_VARS, HF_ENDPOINT_ENV, BUDGET_ENV,
             BUDGET_USD_ENV, PERIOD_ENV, SCOPE_ENV, FLOOR_ENV, LOG_WAIT_ENV, CONNECT_TIMEOUT_ENV, READ_TIMEOUT_ENV,
             MAX_IN_FLIGHT_ENV, CACHE_SWITCH_ENV, CACHE_DIR_ENV, CACHE_MAX_BYTES_ENV, LEDGER_ENV, CHECK_LORAS_ENV)

PERIODS = ("process", "day", "month", "all")
SCOPES = ("machine", "key")
# Periods a budget of scope ``key`` can have: the API's figure is asked from their start.
KEY_PERIODS = ("day", "month")
DEFAULT_LOG_WAIT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 180.0
DEFAULT_MAX_IN_FLIGHT = 8
DEFAULT_CACHE_MAX_BYTES = 2 * 1024**3
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
# The settings made in ComfyUI and kept on disk (store.py), by their key there.
STORED_KEYS = ("credit_budget", "budget_period", "balance_floor", "budget_usd", "budget_scope", "check_loras")
SCOPE_AND_PERIOD = "budget scope and period"
# What a paid request depends on, checked together before it is sent (``Settings.check``).
MONEY_NAMES = ("credit_budget", BUDGET_ENV, "budget_period", PERIOD_ENV, "budget_usd", BUDGET_USD_ENV,
               "budget_scope", SCOPE_ENV, SCOPE_AND_PERIOD, "balance_floor", FLOOR_ENV, LOG_WAIT_ENV,
               CONNECT_TIMEOUT_ENV, READ_TIMEOUT_ENV, MAX_IN_FLIGHT_ENV)
CACHE_NAMES = (CACHE_SWITCH_ENV, CACHE_DIR_ENV, CACHE_MAX_BYTES_ENV)

_SECONDS_ABOVE_0 = "a number of seconds above 0 (such as 180)"
_CREDITS = "a number of credits, 0 or more (or empty for no budget)"
_USD_BUDGET = "an amount in USD, 0 or more, such as 5 or $5 (or empty for no budget)"
_USD_FLOOR = "an amount in USD, 0 or more (or empty for no floor)"
_SCOPE_FORM = ("machine (this machine's spending, the default) or key (what the API says the whole key spent, every "
               "machine together)")
CHECK_LORAS_SETTING = "the Flux2 LoRA setting \"Check LoRAs before sending\""


def parse_budget(raw: str, name: str = BUDGET_ENV) -> float | None:
    """A budget in credits (0 or more) from text; empty, ``none`` or ``off`` mean no budget."""
    return parse_amount(raw, name, _CREDITS)


def parse_budget_usd(raw: str, name: str = BUDGET_USD_ENV) -> float | None:
    """A budget in USD (0 or more; ``5``, ``$5``, ``4.50``) from text; empty, ``none`` or ``off`` mean no budget."""
    return parse_amount(raw, name, _USD_BUDGET, dollar=True, grouping=True)


def parse_floor(raw: str, name: str = FLOOR_ENV) -> float | None:
    """A floor in USD (0 or more) from text; empty, ``none`` or ``off`` mean no floor."""
    return parse_amount(raw, name, _USD_FLOOR, dollar=True)


def parse_scope(raw: str, name: str = SCOPE_ENV) -> str:
    """A budget scope from text: machine (or empty) or key."""
    return parse_choice(raw, name, SCOPES, _SCOPE_FORM)


def parse_period(raw: str, name: str = PERIOD_ENV) -> str:
    """A budget period from text: process (or empty), day, month or all."""
    return parse_choice(raw, name, PERIODS)


def parse_log_wait(raw: str, name: str = LOG_WAIT_ENV) -> float:
    """Seconds to poll the usage logs after an ambiguous failure (0 turns it off; empty: 60)."""
    return parse_seconds(raw, name, DEFAULT_LOG_WAIT, "a number of seconds, 0 or more (0: do not ask the usage logs)",
                         zero=True)


def parse_timeout(raw: str, name: str, default: float) -> float:
    """A connect or read timeout in seconds, above 0."""
    return parse_seconds(raw, name, default, _SECONDS_ABOVE_0)


def parse_max_in_flight(raw: str, name: str = MAX_IN_FLIGHT_ENV) -> int:
    """The cap on requests in flight (empty: the default)."""
    return parse_count(raw, name, DEFAULT_MAX_IN_FLIGHT, "a whole number of requests, 1 or more",
                       hint=f"Unset it for the default of {DEFAULT_MAX_IN_FLIGHT}.")


def parse_check_loras(raw: str, name: str = CHECK_LORAS_ENV) -> bool:
    """Whether LoRAs are checked before sending (empty: yes)."""
    return parse_switch(raw, name, True, "1 (check LoRAs before sending) or 0 (do not)",
                        hint="Fix it in ComfyUI's environment and restart.")


# How each stored setting is checked (its value as text, named as the setting).
_STORED_PARSERS: dict[str, Any] = {
    "credit_budget": lambda text: parse_budget(text, "The credit budget setting"),
    "budget_period": lambda text: parse_period(text, "The budget period setting"),
    "budget_usd": lambda text: parse_budget_usd(text, "The budget in USD setting"),
    "budget_scope": lambda text: parse_scope(text, "The budget scope setting"),
    "balance_floor": lambda text: parse_floor(text, "The balance floor setting"),
    "check_loras": lambda text: text if text in ("on", "off") else None,
}


def check_stored(key: str, value: Any) -> Any:
    """A stored setting's value, checked (None stays None); ``ConfigError`` names the setting."""
    return None if value is None else _STORED_PARSERS[key](str(value))


def _home(env: Mapping[str, str], name: str, *default: str) -> Path:
    return Path(env.get(name) or Path.home().joinpath(*default))


@dataclass(frozen=True)
class Settings:
    """Every setting in force, validated, and where the money settings come from; see the module docstring.

    Build one directly in tests (``Settings(budget=500.0)``); ``Settings.read`` reads the real ones.
    """

    budget: float | None = None
    budget_source: str = f"environment variable {BUDGET_ENV}"
    period: str = "process"
    period_source: str = "the default"
    floor: float | None = None
    floor_source: str = f"environment variable {FLOOR_ENV}"
    log_wait: float = DEFAULT_LOG_WAIT
    budget_usd: float | None = None
    budget_usd_source: str = f"environment variable {BUDGET_USD_ENV}"
    scope: str = "machine"
    scope_source: str = "the default"
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    cache_on: bool = True
    cache_dir: Path | None = None
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
    ledger: Path | None = None
    check_loras: bool = True
    check_loras_source: str = "the default"
    check_loras_setting: str | None = None
    base_url: str = DEFAULT_BASE_URL
    hf_endpoint: str = DEFAULT_HF_ENDPOINT
    config_home: Path = field(default_factory=lambda: Path.home() / ".config")
    cache_home: Path = field(default_factory=lambda: Path.home() / ".cache")
    data_home: Path = field(default_factory=lambda: Path.home() / ".local" / "share")
    # (name, error) for each bad value, in reading order; ``check`` raises them.
    problems: tuple[tuple[str, ConfigError], ...] = ()

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
        return self.log_wait if self.log_wait > 0 else DEFAULT_LOG_WAIT

    def problem(self, *names: str) -> ConfigError | None:
        """The first bad value among ``names`` (every one if none is given), or None."""
        return next((error for name, error in self.problems if not names or name in names), None)

    def check(self, *names: str) -> Settings:
        """Raise the first bad value among ``names`` (every one if none is given); else return self."""
        error = self.problem(*names)
        if error is not None:
            raise error
        return self

    @classmethod
    def read(cls, environ: Mapping[str, str], stored: Mapping[str, Any] | None = None) -> Settings:
        """Every setting from ``environ`` and the stored settings (which win); bad values become problems."""
        return _Reader(environ, stored or {}).settings()


class _Reader:
    """One reading: each value parsed once, a bad one noted under its name and left at its default."""

    def __init__(self, environ: Mapping[str, str], stored: Mapping[str, Any]) -> None:
        self.env = environ
        self.stored = stored
        self.problems: list[tuple[str, ConfigError]] = []

    def _try(self, name: str, read: Any, default: Any) -> Any:
        try:
            return read()
        except ConfigError as exc:
            self.problems.append((name, exc))
            return default

    def _either(self, key: str, setting: str, env_name: str, parse: Any, default: Any,
                quiet_default: bool = False) -> tuple[Any, str]:
        """(value, source): the stored setting if set, else the environment variable."""
        value = self._try(key, lambda: check_stored(key, self.stored.get(key)), None)
        if value is not None:
            return value, f"the Flux2 LoRA {setting} setting"
        raw = self.env.get(env_name, "")
        source = f"environment variable {env_name}"
        if quiet_default and not raw.strip():
            source = "the default"
        return self._try(env_name, lambda: parse(raw), default), source

    def _timeout(self, name: str, default: float) -> float:
        return self._try(name, lambda: parse_timeout(self.env.get(name, ""), name, default), default)

    def _money(self) -> dict[str, Any]:
        budget, budget_source = self._either("credit_budget", "credit budget", BUDGET_ENV, parse_budget, None)
        period, period_source = self._either("budget_period", "budget period", PERIOD_ENV, parse_period, "process",
                                              quiet_default=True)
        usd, usd_source = self._either("budget_usd", "budget in USD", BUDGET_USD_ENV, parse_budget_usd, None)
        scope, scope_source = self._either("budget_scope", "budget scope", SCOPE_ENV, parse_scope, "machine",
                                           quiet_default=True)
        if scope == "key" and period not in KEY_PERIODS:
            self.problems.append((SCOPE_AND_PERIOD, ConfigError(
                f"A budget scope of key (from {scope_source}) counts what the API says the whole key spent since "
                f"local midnight or the first of the month, so the budget period must be day or month; got "
                f"{period!r} (from {period_source}). Set {PERIOD_ENV} (or the budget period setting) to day or "
                "month, or the scope to machine.")))
        elif scope == "key" and usd is None and budget is not None:
            self.problems.append((SCOPE_AND_PERIOD, ConfigError(
                f"A budget scope of key (from {scope_source}) counts the key's spending in USD, as the API reports "
                f"it, but only a credit budget is set ({budget_source}). Set a budget in USD ({BUDGET_USD_ENV} or "
                "the budget in USD setting), or set the scope to machine.")))
        floor, floor_source = self._either("balance_floor", "balance floor", FLOOR_ENV, parse_floor, None)
        env = self.env
        return dict(
            budget=budget, budget_source=budget_source, period=period, period_source=period_source, floor=floor,
            floor_source=floor_source, budget_usd=usd, budget_usd_source=usd_source, scope=scope,
            scope_source=scope_source,
            log_wait=self._try(LOG_WAIT_ENV, lambda: parse_log_wait(env.get(LOG_WAIT_ENV, "")), DEFAULT_LOG_WAIT),
            connect_timeout=self._timeout(CONNECT_TIMEOUT_ENV, DEFAULT_CONNECT_TIMEOUT),
            read_timeout=self._timeout(READ_TIMEOUT_ENV, DEFAULT_READ_TIMEOUT),
            max_in_flight=self._try(MAX_IN_FLIGHT_ENV, lambda: parse_max_in_flight(env.get(MAX_IN_FLIGHT_ENV, "")),
                                    DEFAULT_MAX_IN_FLIGHT),
        )

    def _rest(self) -> dict[str, Any]:
        env = self.env
        stored_switch = check_stored("check_loras", self.stored.get("check_loras"))
        if stored_switch is not None:
            check_loras, check_source = stored_switch == "on", CHECK_LORAS_SETTING
        else:
            raw = env.get(CHECK_LORAS_ENV, "")
            check_loras = self._try(CHECK_LORAS_ENV, lambda: parse_check_loras(raw), True)
            check_source = f"environment variable {CHECK_LORAS_ENV}" if raw.strip() else "the default"
        size = env.get(CACHE_MAX_BYTES_ENV, "").strip()
        return dict(
            cache_on=parse_switch(env.get(CACHE_SWITCH_ENV, ""), CACHE_SWITCH_ENV, True),
            cache_dir=parse_path(env.get(CACHE_DIR_ENV, "")),
            cache_max_bytes=self._try(CACHE_MAX_BYTES_ENV, lambda: parse_size(size, CACHE_MAX_BYTES_ENV),
                                      DEFAULT_CACHE_MAX_BYTES) if size else DEFAULT_CACHE_MAX_BYTES,
            ledger=parse_path(env.get(LEDGER_ENV, "")),
            check_loras=check_loras, check_loras_source=check_source, check_loras_setting=stored_switch,
            base_url=self._try("base_url", lambda: resolve_base_url(env), DEFAULT_BASE_URL),
            hf_endpoint=self._try(HF_ENDPOINT_ENV, lambda: _hf_endpoint(env), DEFAULT_HF_ENDPOINT),
            config_home=_home(env, "XDG_CONFIG_HOME", ".config"), cache_home=_home(env, "XDG_CACHE_HOME", ".cache"),
            data_home=_home(env, "XDG_DATA_HOME", ".local", "share"),
        )

    def settings(self) -> Settings:
        values = {**self._money(), **self._rest()}
        return Settings(**values, problems=tuple(self.problems))


def _hf_endpoint(env: Mapping[str, str]) -> str:
    """``HF_ENDPOINT`` (huggingface_hub's variable) or https://huggingface.co, checked like every URL of the pack."""
    raw = env.get(HF_ENDPOINT_ENV, "").strip()
    endpoint = (raw or DEFAULT_HF_ENDPOINT).rstrip("/")
    check_url_scheme(endpoint, f"the Hugging Face endpoint from {HF_ENDPOINT_ENV}" if raw else "the Hugging Face "
                     "endpoint")
    return endpoint
