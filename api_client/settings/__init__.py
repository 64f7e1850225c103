"""Every setting of the pack, read and validated in one place.

- ``values``: ``Settings``, the one immutable value of every environment variable and
  frontend setting (``Settings.read(environ, stored)``), and each setting's parser;
- ``parse``: one parser per kind (an amount, a duration, a count, a size, a switch, a choice, a path);
- ``store``: the settings made in ComfyUI, kept in ``<user>/flux2_lora/settings.json``;
- ``sources``: where the API key, the base URL and the TLS certificates come from, and the
  one check for every URL the pack is given.

The current ``Settings`` of the process is kept by ``api_client.runtime`` (``current_settings``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from . import sources
from .parse import parse_size, valid_amount
from .sources import (
    BASE_ENV_VARS,
    CA_BUNDLE_ENV_VARS,
    DEFAULT_BASE_URL,
    KEY_ENV_VARS,
    PACK_DIR,
    ApiKey,
    check_url_scheme,
    is_loopback_host,
    url_host,
)
from .store import SETTINGS_FILE, SettingsStore, StoredSettings, settings_path
from .values import (
    BUDGET_ENV,
    BUDGET_USD_ENV,
    CACHE_DIR_ENV,
    CACHE_MAX_BYTES_ENV,
    CACHE_NAMES,
    CACHE_SWITCH_ENV,
    CHECK_LORAS_ENV,
    CONNECT_TIMEOUT_ENV,
    DEFAULT_CACHE_MAX_BYTES,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HF_ENDPOINT,
    DEFAULT_LOG_WAIT,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_READ_TIMEOUT,
    ENV_NAMES,
    FLOOR_ENV,
    HF_ENDPOINT_ENV,
    KEY_PERIODS,
    LEDGER_ENV,
    LOG_WAIT_ENV,
    MAX_IN_FLIGHT_ENV,
    MONEY_NAMES,
    PERIOD_ENV,
    PERIODS,
    READ_TIMEOUT_ENV,
    SCOPE_ENV,
    SCOPES,
    STORED_KEYS,
    Settings,
    check_stored,
    parse_budget,
    parse_budget_usd,
    parse_check_loras,
    parse_floor,
    parse_log_wait,
    parse_max_in_flight,
    parse_period,
    parse_scope,
    parse_timeout,
)


def environment() -> Mapping[str, str]:
    """The process's environment variables: the one place the pack reads them."""
    return os.environ


def default_key_file(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user key file: ``$XDG_CONFIG_HOME/aimlapi/api_key`` (``~/.config/...``)."""
    return sources.default_key_file(environment() if environ is None else environ)


def resolve_api_key(environ: Mapping[str, str] | None = None, extra_key_files: Iterable[Path] = (),
                    hint: str = "") -> ApiKey:
    """Find the API key (the environment, then the key files); the error for a missing key names every place."""
    return sources.resolve_api_key(environment() if environ is None else environ, extra_key_files, hint)


def resolve_base_url(environ: Mapping[str, str] | None = None) -> str:
    """The API base URL without a trailing slash, checked for a safe scheme."""
    return sources.resolve_base_url(environment() if environ is None else environ)


def resolve_ca_bundle(environ: Mapping[str, str] | None = None) -> str:
    """The certificates TLS is verified against: a bundle named in the environment, else certifi's."""
    return sources.resolve_ca_bundle(environment() if environ is None else environ)


__all__ = [
    "BASE_ENV_VARS", "BUDGET_ENV", "BUDGET_USD_ENV", "CACHE_DIR_ENV", "CACHE_MAX_BYTES_ENV", "CACHE_NAMES",
    "CACHE_SWITCH_ENV", "CA_BUNDLE_ENV_VARS", "CHECK_LORAS_ENV", "CONNECT_TIMEOUT_ENV", "DEFAULT_BASE_URL",
    "DEFAULT_CACHE_MAX_BYTES", "DEFAULT_CONNECT_TIMEOUT", "DEFAULT_HF_ENDPOINT", "DEFAULT_LOG_WAIT",
    "DEFAULT_MAX_IN_FLIGHT", "DEFAULT_READ_TIMEOUT", "ENV_NAMES", "FLOOR_ENV", "HF_ENDPOINT_ENV", "KEY_ENV_VARS",
    "KEY_PERIODS", "LEDGER_ENV", "LOG_WAIT_ENV", "MAX_IN_FLIGHT_ENV", "MONEY_NAMES", "PACK_DIR", "PERIODS",
    "PERIOD_ENV", "READ_TIMEOUT_ENV", "SCOPES", "SCOPE_ENV", "SETTINGS_FILE", "STORED_KEYS", "ApiKey", "Settings",
    "SettingsStore", "StoredSettings", "check_stored", "check_url_scheme", "default_key_file", "environment",
    "is_loopback_host",
    "parse_budget", "parse_budget_usd", "parse_check_loras", "parse_floor", "parse_log_wait", "parse_max_in_flight",
    "parse_period", "parse_scope", "parse_size", "parse_timeout", "resolve_api_key", "resolve_base_url",
    "resolve_ca_bundle", "settings_path", "url_host", "valid_amount",
]
