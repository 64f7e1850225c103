"""Request tracing and cost headers, as the AI/ML API documents them.

Every generation POST carries our own ``X-Client-Request-Id``; the API stores it and
reports it as ``client_request_id`` in its usage logs (GET /v2/logs), which is how an
ambiguous failure is resolved afterwards (see ``usage_logs``). The answer carries
``x-inference-id`` (always) and, for JSON answers, ``x-aimlapi-credits-used`` and
``x-aimlapi-usd-spent``; ``meta.usage`` in the body may say the same, and the header wins (read in ``answer``).

A value outside the documented alphabet or over 128 characters is silently dropped
by the API (the request still runs and is billed, with no correlation), so ids are
made here from a fixed alphabet and checked before sending.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

REQUEST_ID_HEADER = "X-Client-Request-Id"
INFERENCE_ID_HEADER = "x-inference-id"
CREDITS_HEADER = "x-aimlapi-credits-used"
USD_HEADER = "x-aimlapi-usd-spent"
REQUEST_ID_PREFIX = "flux2-"
# 1-128 characters from A-Z, a-z, 0-9, ".", "_", ":" and "-" (request-tracing-and-cost.md).
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_request_id() -> str:
    """A fresh client request id: ``flux2-`` and 32 hex digits (38 characters, valid by the docs)."""
    return f"{REQUEST_ID_PREFIX}{uuid.uuid4().hex}"


def is_valid_request_id(value: Any) -> bool:
    """Whether the API would keep ``value`` as a client request id (else it drops it silently)."""
    return isinstance(value, str) and bool(_REQUEST_ID.match(value))
