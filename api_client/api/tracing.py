"""Request tracing and cost headers, as the AI/ML API documents them.

Every generation POST carries our own ``X-Client-Request-Id``; the API stores it and
reports it as ``client_request_id`` in its usage logs (GET /v2/logs), which is how an
ambiguous failure is resolved afterwards (see ``usage_logs``). The answer carries
``x-inference-id`` (always) and, for JSON answers, ``x-aimlapi-credits-used`` and
``x-aimlapi-usd-spent``; ``meta.usage`` in the body may say the same, and the header wins.

A value outside the documented alphabet or over 128 characters is silently dropped
by the API (the request still runs and is billed, with no correlation), so ids are
made here from a fixed alphabet and checked before sending.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import redact

REQUEST_ID_HEADER = "X-Client-Request-Id"
INFERENCE_ID_HEADER = "x-inference-id"
CREDITS_HEADER = "x-aimlapi-credits-used"
USD_HEADER = "x-aimlapi-usd-spent"
REQUEST_ID_PREFIX = "flux2-"
# 1-128 characters from A-Z, a-z, 0-9, ".", "_", ":" and "-" (request-tracing-and-cost.md).
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# An inference id is only ever shown and matched, never sent: keep it short and printable.
_INFERENCE_ID = re.compile(r"^[\x21-\x7e]{1,200}$")


def new_request_id() -> str:
    """A fresh client request id: ``flux2-`` and 32 hex digits (38 characters, valid by the docs)."""
    return f"{REQUEST_ID_PREFIX}{uuid.uuid4().hex}"


def is_valid_request_id(value: Any) -> bool:
    """Whether the API would keep ``value`` as a client request id (else it drops it silently)."""
    return isinstance(value, str) and bool(_REQUEST_ID.match(value))


@dataclass(frozen=True)
class CallCost:
    """What one answer says about itself: its inference id, credits and USD (None where not said)."""

    inference_id: str | None
    credits_used: float | None
    usd_spent: float | None
    header_credits: float | None = None  # what x-aimlapi-credits-used said, if it was a valid amount


def _number(value: Any) -> float | None:
    """A finite, non-negative number from JSON or header text; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):  # not a number; an integer too large for a float
        return None
    return number if math.isfinite(number) and number >= 0 else None


def usage_from_body(payload: Any) -> tuple[float | None, float | None]:
    """(credits, USD) from ``meta.usage`` of an answer (``credits_used``, older ``tokens_used``; ``usd_spent``)."""
    meta = payload.get("meta") if isinstance(payload, dict) else None
    usage = meta.get("usage") if isinstance(meta, dict) else None
    if not isinstance(usage, dict):
        return None, None
    credits = next((c for c in (_number(usage.get(n)) for n in ("credits_used", "tokens_used")) if c is not None),
                   None)
    return credits, _number(usage.get("usd_spent"))


def call_cost(headers: Mapping[str, str], payload: Any, secret: str = "") -> CallCost:
    """The answer's inference id and cost: each header wins over ``meta.usage``; either may be missing.

    The inference id is shown (info output) and stored (ledger): it is redacted with ``secret``, the
    key, as everything the service client returns is, in case the server echoes the key there.
    """
    body_credits, body_usd = usage_from_body(payload)
    header_credits = _number(headers.get(CREDITS_HEADER))
    header_usd = _number(headers.get(USD_HEADER))
    inference = headers.get(INFERENCE_ID_HEADER)
    inference = redact(inference.strip(), secret) if isinstance(inference, str) else None
    return CallCost(
        inference_id=inference if inference and _INFERENCE_ID.match(inference) else None,
        credits_used=header_credits if header_credits is not None else body_credits,
        usd_spent=header_usd if header_usd is not None else body_usd,
        header_credits=header_credits,
    )


def credits_per_usd(credits: float | None, usd: float | None) -> float | None:
    """The account's credits-per-USD rate shown by one answer, or None if it cannot be told."""
    if credits is None or usd is None or usd <= 0 or credits <= 0:
        return None
    return credits / usd
