"""A budget of scope ``key``: what ``GET /v2/usage`` says the whole key spent, every machine together.

With ``FLUX2_LORA_BUDGET_SCOPE=key`` (period ``day`` or ``month`` only, USD budget only) the
budget counts what ``GET /v2/usage`` says the whole key spent since the period began, asked at
most once per ``USAGE_INTERVAL`` seconds by this process (``Money.key_usage``; every run in
between reuses the figure). The figure lags behind billed answers, so the key's spending is
taken as: the figure + USD this machine's ledger shows billed at or after the figure's end
minus ``MoneySettings.usage_lag`` (the usage-log wait, 60 s by default) + every hold of this
machine's requests in flight, checked and held in one ledger transaction (``admission``).
This machine's own spending is thus never let through by the lag (recent runs may be counted
twice: that errs on refusing). Other machines are seen once the figure shows them: machines
checking at the same moment can each add one run. A figure that cannot be read refuses paid
runs (``UsageUnavailableError``), never taken as zero.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import BudgetExceededError
from ..settings import SCOPE_ENV
from .ledger import LedgerError, period_start
from .texts import WHEN, usd_text

if TYPE_CHECKING:
    from ..api.client import ApiClient
    from ..settings import Settings as MoneySettings

# The key's spending (GET /v2/usage) is asked at most once per this many seconds by this process,
# whatever the number of runs; every run in between uses the same figure plus what this machine
# spent or holds since (see ``Money.key_usage``).
USAGE_INTERVAL = 5.0
USAGE_PATH = "/v2/usage"


class UsageUnavailableError(BudgetExceededError):
    """A key-scope budget is set and the key's spending (GET /v2/usage) could not be read: not sent."""


@dataclass(frozen=True)
class KeyUsage:
    """What GET /v2/usage said the key spent from ``start`` (Unix time) until it was asked.

    ``trusted_from``: this machine's own spending settled at or after this Unix time may be
    missing from ``spend`` (the figure lags behind the answers), so it is counted on top.
    """

    spend: float
    start: float
    asked_at: float
    trusted_from: float
    requests: int | None


def _utc_iso(moment: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _iso_time(text: Any) -> float | None:
    from datetime import datetime, timezone

    if not isinstance(text, str) or len(text) > 64:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


def read_key_usage(client: ApiClient, start: float, lag: float, cancel: Any = None) -> KeyUsage:
    """Ask GET /v2/usage what the key spent from ``start`` until now; ``ServiceUnavailable`` if unreadable.

    The window is sent as explicit UTC times (``start``: local midnight or the 1st of the month).
    ``lag``: seconds the figure may lag behind a billed answer.
    """
    from ..api.service import ServiceUnavailable, finite_cost, service_get

    asked_at = time.time()
    answer = service_get(client, USAGE_PATH, [("start", _utc_iso(start)), ("end", _utc_iso(asked_at))],
                         cancel=cancel)
    data = answer.payload
    if not isinstance(data, dict):
        raise ServiceUnavailable(f"{USAGE_PATH} answered JSON of another shape (no object)", permanent=True)
    spend = finite_cost(data.get("spend"))
    if spend is None:
        raise ServiceUnavailable(f"{USAGE_PATH} answered no readable spend", permanent=True)
    if data.get("currency", "USD") != "USD":
        raise ServiceUnavailable(f"{USAGE_PATH} answered a spend that is not in USD", permanent=True)
    count = data.get("requests")
    requests = count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else None
    end = _iso_time(data.get("end"))
    measured_to = asked_at if end is None else min(asked_at, end)
    return KeyUsage(spend, start, asked_at, measured_to - lag, requests)


def _usage_refusal(settings: MoneySettings, reason: str) -> str:
    return (f"Budget in USD for the whole key: what the key spent {WHEN[settings.period]} could not be read from "
            f"GET {USAGE_PATH} ({reason}), so this node's request was not sent and nothing was billed: a key-wide "
            f"budget of {usd_text(settings.budget_usd or 0.0)} (from {settings.budget_usd_source}) is never taken "
            f"as free. Try again in a moment; if it persists, check the network and AIML_API_BASE, or set "
            f"{SCOPE_ENV} (or the budget scope setting) to machine to count this machine's spending only.")


class KeyUsageBook:
    """Part of ``Money`` (component.py): the key's last usage figure, asked at most once per interval."""

    def key_usage(self, client: ApiClient | None, settings: MoneySettings, cancel: Any = None) -> KeyUsage:
        """The key's spending this period (GET /v2/usage), asked at most once per ``USAGE_INTERVAL`` s.

        Every run of the process in between gets the same figure (admissions are one at a time,
        and what this machine spent or holds since is counted from its ledger). A figure that
        cannot be had refuses the run (``UsageUnavailableError``): a key-wide budget is never free.
        """
        from ..api.service import ServiceUnavailable

        start = period_start(settings.period) or 0.0
        now = time.monotonic()
        with self._lock:
            cached = self._usage
        if cached is not None and cached[0] == start and cached[1] is not None and now - cached[1] < USAGE_INTERVAL:
            found = cached[2]
        else:
            try:
                if client is None:
                    raise ServiceUnavailable("no client to ask with")
                found = read_key_usage(client, start, settings.usage_lag, cancel)
            except ServiceUnavailable as exc:
                found = UsageUnavailableError(_usage_refusal(settings, exc.reason))
            with self._lock:
                self._usage = (start, time.monotonic(), found)
        if isinstance(found, UsageUnavailableError):
            raise found
        return found

    @property
    def last_key_usage(self) -> KeyUsage | None:
        """The last figure read from GET /v2/usage (None: none yet, or the last ask failed)."""
        with self._lock:
            cached = self._usage
        return cached[2] if cached is not None and isinstance(cached[2], KeyUsage) else None

    def key_spending(self, settings: MoneySettings) -> tuple[float | None, float | None]:
        """(the key's spending as the last admission counted it, this machine's USD this period); None: unknown."""
        usage = self.last_key_usage
        start = period_start(settings.period) if settings.period != "process" else None
        machine: float | None = None
        recent = 0.0
        ledger = self.ledger
        try:
            if ledger is not None and start is not None:
                machine = ledger.total_usd(start)
                held = ledger.committed_usd(start)[1]
                if usage is not None and usage.start == start:
                    recent = ledger.total_usd(max(start, usage.trusted_from)) + held
            elif start is None:
                machine = self.spent_usd
        except LedgerError:
            machine = None
        key = usage.spend + recent if usage is not None and usage.start == start else None
        return key, machine
