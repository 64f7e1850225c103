"""Whether LoRAs are checked: the frontend setting (kept on disk), else ``FLUX2_LORA_CHECK_LORAS``, else on.

The setting ("on", "off", or empty for the environment's choice) is posted by the
frontend to ``/flux2_lora/lora_check/setting`` and kept in ComfyUI's user folder
(``flux2_lora/settings.json``, with the money settings; see ``api_client.settings.store``),
so it is in force from start-up, before any browser opens. Off means no request at
all to any LoRA host.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..route_input import Answer, RouteInputError, parse_json_object
from ..runtime import settings_for
from ..settings import CHECK_LORAS_ENV, SETTINGS_FILE, SettingsStore
from ..settings.store import LEGACY_SWITCH_FILE

log = logging.getLogger("flux2_lora")

SWITCH_ENV = CHECK_LORAS_ENV
SETTING_FILE = LEGACY_SWITCH_FILE  # where the setting was kept before it joined settings.json


def _store(folder: Path) -> SettingsStore:
    return SettingsStore(Path(folder) / SETTINGS_FILE)


def read_setting(folder: Path | None) -> str | None:
    """The saved setting, "on" or "off", or None (the environment decides)."""
    if folder is None:
        return None
    try:
        value = _store(folder).load().get("check_loras")
    except ConfigError as exc:
        log.warning("Flux2 LoRA: the LoRA check setting is unreadable (%s); using the environment", exc)
        return None
    return value if value in ("on", "off") else None


def write_setting(folder: Path, value: str | None) -> None:
    """Save "on"/"off", or remove the setting (None); ``OSError`` if it could not be written.

    ``ConfigError`` if settings.json is damaged: the file also holds the money settings, and replacing it
    for the switch would silently drop the budget and the refusal of paid runs the damage causes.
    """
    _store(folder).set("check_loras", value, keep_damaged=True)


def check_enabled(folder: Path | None = None, environ: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """(whether to check, where that comes from)."""
    settings = settings_for(environ, {"check_loras": read_setting(folder)}).check(SWITCH_ENV)
    return settings.check_loras, settings.check_loras_source


def setting_status(folder: Path | None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What the setting shows: on or off, from where, and the saved value."""
    try:
        enabled, source = check_enabled(folder, environ)
    except ConfigError as exc:
        return {"enabled": None, "source": None, "setting": read_setting(folder), "env_var": SWITCH_ENV,
                "message": str(exc)}
    state = "LoRAs are checked before sending" if enabled else "LoRAs are not checked (no request to LoRA hosts)"
    return {"enabled": enabled, "source": source, "setting": read_setting(folder), "env_var": SWITCH_ENV,
            "message": f"{state} (from {source})."}


def setting_post_answer(body: bytes, content_type: str, folder: Path | None,
                        environ: Mapping[str, str] | None = None) -> Answer:
    """POST {"check_loras": "on" | "off" | null}: save the setting (null: the environment decides)."""
    example = '{"check_loras": "off"}, or {"check_loras": null} for the environment\'s choice'
    if folder is None:
        return 503, {"error": "ComfyUI's user folder is unknown."}
    try:
        data = parse_json_object(body, content_type, ("check_loras",), example, "the setting")
        if "check_loras" not in data:
            raise RouteInputError(f'The request body has no "check_loras"; send {example}.')
        value = data["check_loras"]
        if isinstance(value, bool):
            value = "on" if value else "off"
        if value == "":
            value = None
        if value not in ("on", "off", None):
            raise RouteInputError(f'"check_loras" must be "on", "off" or null; got {str(value)[:40]!r}.')
        write_setting(folder, value)
    except RouteInputError as exc:
        return exc.status, {"error": str(exc), **setting_status(folder, environ)}
    except OSError as exc:
        return 500, {"error": f"Could not save the setting: {exc.strerror}.", **setting_status(folder, environ)}
    except ConfigError as exc:
        return 409, {"error": f"{exc} The LoRA check setting was not saved, so the budget settings kept in that "
                              "file stay in force until you set them again.", **setting_status(folder, environ)}
    return 200, setting_status(folder, environ)
