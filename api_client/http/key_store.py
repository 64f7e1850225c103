"""Saving the API key from ComfyUI's settings: the key file behind the pack's key route.

Plain functions with no aiohttp and no ComfyUI; the route's answers are built in
``panel/key.py`` and its handlers only pass the request body in and the answer out.
The key file is written atomically with mode 0600 from the start, and no answer
ever contains the key: only whether one is set, its last four characters and
where it is read from (environment variables still come first).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..route_input import RouteInputError
from ..settings import KEY_ENV_VARS, environment, resolve_api_key

KEY_MIN_CHARS = 16
KEY_MAX_CHARS = 512
# Characters seen in API keys and tokens (hex, base64, base64url, dashes and dots).
_KEY_CHARS = re.compile(r"[A-Za-z0-9._~+/=:-]+")
_LAST4_MIN_CHARS = 12  # a shorter key would be mostly given away by its last four characters


class KeyInputError(RouteInputError):
    """The request to store a key was refused; ``status`` is the HTTP status to answer with."""


def check_new_key(value: Any) -> str:
    """The key to store, trimmed of surrounding spaces and line breaks; never echoed in an error."""
    if not isinstance(value, str):
        raise KeyInputError(f'"key" must be a string, got {type(value).__name__}.')
    key = value.strip()
    if not key:
        raise KeyInputError('"key" is empty. Paste the key from https://aimlapi.com/app/keys, '
                            'or send {"clear": true} to remove the saved key.')
    if not KEY_MIN_CHARS <= len(key) <= KEY_MAX_CHARS:
        raise KeyInputError(f"The key must be {KEY_MIN_CHARS} to {KEY_MAX_CHARS} characters long; "
                            f"the one given has {len(key)}. Check that it was copied whole.")
    if any(ch.isspace() or not ch.isprintable() for ch in key):
        raise KeyInputError("The key contains spaces, line breaks or control characters inside it; "
                            "copy it again from the AI/ML API dashboard.")
    if not _KEY_CHARS.fullmatch(key):
        raise KeyInputError("The key contains characters an API key never has (allowed: letters, digits "
                            "and . _ ~ + / = : -); copy it again from the AI/ML API dashboard.")
    return key


def make_private_folder(folder: Path) -> None:
    """``folder``, created if needed, with mode 0700 whoever created it first.

    ``mkdir(mode=0o700, exist_ok=True)`` alone leaves an existing folder as it was
    (0755 if something else made it), so the mode is set explicitly.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if hasattr(os, "getuid") and stat.S_IMODE(folder.stat().st_mode) != 0o700:
        os.chmod(folder, 0o700)


def adopt_legacy_key(legacy: Path, path: Path) -> bool:
    """Move a key file saved by an earlier version (``legacy``) to ``path``; False if it is still at ``legacy``.

    A rename within the same folder tree keeps the file's 0600 mode and is atomic:
    at every moment exactly one of the two files holds the key. When ``path``
    already exists it wins and ``legacy`` is left alone (and not read).
    """
    if not legacy.is_file() or path.exists():
        return True
    try:
        make_private_folder(path.parent)
        os.replace(legacy, path)
    except OSError:
        return False  # still readable where it was
    return True


def save_key(path: Path, key: str) -> None:
    """Write ``key`` to ``path`` atomically: a 0600 temporary file in a 0700 folder, then a rename."""
    make_private_folder(path.parent)
    # mkstemp creates the file with mode 0600 (O_EXCL), so the key is never readable by others.
    handle, temporary = tempfile.mkstemp(prefix=".api_key.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(key)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def delete_key(path: Path) -> bool:
    """Remove the saved key; True if there was one."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _last4(key: str) -> str | None:
    return key[-4:] if len(key) >= _LAST4_MIN_CHARS else None


def key_status(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Whether a key is set, where it comes from and its last four characters (never the key)."""
    env = environment() if environ is None else environ
    saved = path.is_file()
    env_var = next((name for name in KEY_ENV_VARS if env.get(name, "").strip()), None)
    status: dict[str, Any] = {
        "set": False, "last4": None, "source": None, "saved": saved, "env_var": env_var, "message": "",
    }
    try:
        key = resolve_api_key(env, extra_key_files=[path])
    except ConfigError as exc:
        status["message"] = (str(exc) if saved else
                             "No key is set. Paste your AI/ML API key here, or set AIML_API_KEY before "
                             "starting ComfyUI.")
        return status
    from_saved = key.source == f"key file {path}"
    status.update({"set": True, "last4": _last4(key.value),
                   "source": "saved in ComfyUI" if from_saved else key.source})
    if env_var:
        status["message"] = f"Using the key from the environment variable {env_var}: it takes precedence " + (
            "over the key saved here. Unset it and restart ComfyUI to use the saved key." if saved else
            "over a key saved here.")
    elif from_saved:
        status["message"] = "Using the key saved in ComfyUI's user folder. It applies to the next run."
    else:
        status["message"] = f"Using the {key.source}. A key saved here would take precedence over it."
    return status
