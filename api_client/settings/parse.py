"""One parser per kind of setting: an amount, a duration, a count, a size, a switch, a choice, a path.

Each takes the text as written (an environment variable's value, or a setting's value
as text) and the name to show, and returns the value or raises ``ConfigError`` naming
the setting, the form it takes and what was given. Callers give their own wording of
the form (``refusal``), so every message reads as before.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..amounts import valid_amount
from ..errors import ConfigError

# Words meaning "none" for a budget or a floor.
NONE_WORDS = frozenset({"", "none", "off"})
OFF_WORDS = frozenset({"0", "false", "no", "off"})
ON_WORDS = frozenset({"1", "true", "yes", "on"})
N = TypeVar("N", int, float)
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_amount(raw: str, name: str, refusal: str, *, dollar: bool = False, grouping: bool = False) -> float | None:
    """A finite amount, 0 or more; empty, ``none`` or ``off`` mean None (no limit).

    ``dollar``: a leading ``$`` is allowed (and a leading ``+`` refused); ``grouping``: ``1,000``
    is read as a thousand. ``refusal`` is the form shown in the error ("must be ...").
    """
    text = raw.strip().lower()
    if text in NONE_WORDS:
        return None
    if dollar:
        text = text[1:].strip() if text.startswith("$") else text
    if grouping:
        text = text.replace(",", "")
    try:
        value = float(text) if text and not (dollar and text.startswith(("+", "-$", "$"))) else -1.0
    except ValueError:
        value = -1.0
    if not valid_amount(value):
        raise ConfigError(f"{name} must be {refusal}; got {raw!r}.")
    return value


def parse_seconds(raw: str, name: str, default: float, refusal: str, *, zero: bool = False) -> float:
    """A finite number of seconds above 0 (or 0 too with ``zero``); empty gives ``default``."""
    return _parse_number(raw, name, default, refusal, float,
                         lambda value: math.isfinite(value) and (value >= 0 if zero else value > 0))


def parse_count(raw: str, name: str, default: int, refusal: str, minimum: int = 1, hint: str = "") -> int:
    """A whole number, ``minimum`` or more; empty gives ``default``."""
    return _parse_number(raw, name, default, refusal, int, lambda value: value >= minimum, hint)


def _parse_number(raw: str, name: str, default: N, refusal: str, read: Callable[[str], N],
                  allowed: Callable[[N], bool], hint: str = "") -> N:
    """``read(text)`` if it reads and is ``allowed``; empty gives ``default``; else ``ConfigError``."""
    text = raw.strip()
    if not text:
        return default
    try:
        value: N | None = read(text)
    except ValueError:
        value = None
    if value is None or not allowed(value):
        raise ConfigError(f"{name} must be {refusal}; got {raw!r}.{' ' + hint if hint else ''}")
    return value


def parse_size(text: str, name: str = "FLUX2_LORA_CACHE_MAX_BYTES") -> int:
    """Bytes from ``2147483648``, ``500M``, ``2G`` or ``1.5GiB`` (binary units)."""
    match = _SIZE.match(text)
    if not match:
        raise ConfigError(f"{name} must be a size in bytes, such as 2147483648, 500M or 2G; got {text!r}.")
    number, unit = match.groups()
    return int(float(number) * 1024 ** " kmgt".index(unit.lower() or " "))


def parse_switch(raw: str, name: str, default: bool, refusal: str | None = None, hint: str = "") -> bool:
    """On (1, true, yes, on) or off (0, false, no, off); empty gives ``default``.

    Other text: ``ConfigError`` with ``refusal``, or (``refusal`` None) ``default``.
    """
    text = raw.strip().lower()
    if not text:
        return default
    if text in OFF_WORDS:
        return False
    if text in ON_WORDS or refusal is None:
        return text in ON_WORDS or default
    raise ConfigError(f"{name} must be {refusal}; got {text!r}.{' ' + hint if hint else ''}")


def parse_choice(raw: str, name: str, choices: tuple[str, ...], refusal: str | None = None) -> str:
    """One of ``choices`` (case does not matter); empty gives the first."""
    text = raw.strip().lower() or choices[0]
    if text not in choices:
        raise ConfigError(f"{name} must be {refusal or 'one of ' + ', '.join(choices)}; got {raw!r}.")
    return text


def parse_path(raw: str) -> Path | None:
    """A path (``~`` expanded), or None for empty text."""
    text = raw.strip()
    return Path(text).expanduser() if text else None


__all__ = ["NONE_WORDS", "OFF_WORDS", "ON_WORDS", "parse_amount", "parse_choice", "parse_count", "parse_path",
           "parse_seconds", "parse_size", "parse_switch", "valid_amount"]
