"""The one rule for amounts of money: a finite amount of 0 or more, else unknown (never free).

Credits and USD reach the pack from cost headers, answer bodies, the usage logs and the price
list. Anything that is not a number (a bool, an object, text that does not read as one), NaN,
infinity or a negative amount is *unknown*: the callers count it as unknown, never as 0.
"""

from __future__ import annotations

import math
from typing import Any

# Two USD amounts closer than this are equal: 3 x $0.06 fits a budget of $0.18 (float sums are not exact).
USD_EPSILON = 1e-9


def amount(value: Any) -> float | None:
    """``value`` as a finite amount of 0 or more, or None (a numeric string is read; bools are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):  # not a number; an integer too large for a float
        return None
    return number if math.isfinite(number) and number >= 0 else None


def valid_amount(value: Any) -> bool:
    """Whether ``value`` is a number (not text, not a bool) that is a finite amount of 0 or more."""
    return isinstance(value, (int, float)) and amount(value) is not None
