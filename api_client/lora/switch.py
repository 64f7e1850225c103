"""Whether LoRAs are checked: the frontend setting (kept on disk), else ``FLUX2_LORA_CHECK_LORAS``, else on.

The setting ("on", "off", or empty for the environment's choice) is posted by the
frontend to ``/flux2_lora/lora_check/setting`` and kept in ComfyUI's user folder,
so it is in force from start-up, before any browser opens. Off means no request at
all to any LoRA host.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..panel.route_input import Answer, RouteInputError, parse_json_object

log = logging.getLogger("flux2_lora")

SWITCH_ENV = "FLUX2_LORA_CHECK_LORAS"
SETTING_FILE = "lora_check_setting.json"
_OFF = {"0", "false", "no", "off"}
_ON = {"1", "true", "yes", "on", ""}


def _setting_path(folder: Path | None) -> Path | None:
    return Path(folder) / SETTING_FILE if folder is not None else None


def read_setting(folder: Path | None) -> str | None:
    """The saved setting, "on" or "off", or None (the environment decides)."""
    path = _setting_path(folder)
    if path is None:
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("check_loras")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("Flux2 LoRA: the LoRA check setting %s is unreadable (%s); using the environment", path,
                    type(exc).__name__)
        return None
    return value if value in ("on", "off") else None


def write_setting(folder: Path, value: str | None) -> None:
    """Save "on"/"off", or remove the setting (None)."""
    path = Path(folder) / SETTING_FILE
    if value is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=".lora_check-", suffix=".tmp", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump({"check_loras": value}, out)
    os.replace(temp, path)


def check_enabled(folder: Path | None = None, environ: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """(whether to check, where that comes from)."""
    setting = read_setting(folder)
    if setting is not None:
        return setting == "on", "the Flux2 LoRA setting \"Check LoRAs before sending\""
    env = os.environ if environ is None else environ
    raw = env.get(SWITCH_ENV, "").strip().lower()
    if raw in _OFF:
        return False, f"environment variable {SWITCH_ENV}"
    if raw in _ON:
        return True, f"environment variable {SWITCH_ENV}" if raw else "the default"
    raise ConfigError(f"{SWITCH_ENV} must be 1 (check LoRAs before sending) or 0 (do not); got {raw!r}. "
                      "Fix it in ComfyUI's environment and restart.")


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
    return 200, setting_status(folder, environ)
