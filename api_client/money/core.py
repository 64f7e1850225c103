"""The process's one money component (``process_money()``), a part of the runtime.

The component itself, ``Money``, is in ``component.py``; the money settings it reads (the
budgets, their period and scope, the floor) are read and validated in ``api_client/settings``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..runtime import runtime

if TYPE_CHECKING:
    from .component import Money


def process_money() -> Money:
    """The money component shared by every node and route of this process (made on first use)."""
    from .component import Money

    return runtime().part("money", Money)


def reset_process_money() -> Money:
    """A fresh money component for this process (tests: what a restart does); returns it."""
    from .component import Money

    return runtime().replace("money", Money())


__all__ = ["process_money", "reset_process_money"]
