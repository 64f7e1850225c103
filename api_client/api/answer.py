"""Reading a generation answer: its pictures, its ids and what it cost.

A 200 answer is parsed into a ``GenerationResponse`` or an ``APIResponseError`` (returned, not
raised: the body, which may echo anything, stays in the parsing frame). The cost comes from the
``x-aimlapi-*`` headers, else from ``meta.usage`` in the body (``usage_from_body``); an amount is
only ever a finite number of 0 or more (``amounts.amount``), else unknown (None): never 0, never a
refund, never a NaN in the totals.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from ..amounts import amount
from ..errors import APIResponseError, redact
from ..http.error_mapping import NOT_JSON, json_body, server_message
from ..settings import ApiKey
from .tracing import CREDITS_HEADER, INFERENCE_ID_HEADER, USD_HEADER

log = logging.getLogger("flux2_lora")

# An inference id is only ever shown and matched, never sent: keep it short and printable.
_INFERENCE_ID = re.compile(r"^[\x21-\x7e]{1,200}$")


@dataclass(frozen=True)
class ImageRef:
    """One picture of a response: a URL to download or inline base64 data."""

    url: str | None = None
    b64_json: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class GenerationResponse:
    """A successful answer: the pictures and what it cost (None where not reported).

    ``request_id`` is the X-Client-Request-Id of the attempt that was answered (``<request id>.<n>``,
    as the usage logs list it as ``client_request_id``), ``inference_id`` the API's
    id for it, ``resent`` how often it was sent again because the usage logs showed the
    earlier attempt failed (and so was not billed).
    """

    images: list[ImageRef]
    credits_used: float | None
    request_id: str | None = None
    inference_id: str | None = None
    usd_spent: float | None = None
    resent: int = 0


def usage_from_body(payload: Any, *, warn: bool = True) -> tuple[float | None, float | None]:
    """(credits, USD) from ``meta.usage`` of an answer (``credits_used``, older ``tokens_used``; ``usd_spent``).

    The first of ``credits_used``/``tokens_used`` present counts; an amount that is not a finite
    number of 0 or more is taken as None, unknown (and logged, if ``warn``).
    """
    meta = payload.get("meta") if isinstance(payload, dict) else None
    usage = meta.get("usage") if isinstance(meta, dict) else None
    if not isinstance(usage, dict):
        return None, None
    credits = None
    for name in ("credits_used", "tokens_used"):
        if name in usage and usage[name] is not None:
            credits = amount(usage[name])
            if credits is None and warn:
                # Text is described, not quoted: a server echoing anything (the key too) must not reach the log.
                value = usage[name]
                said = f"text of {len(value)} characters" if isinstance(value, str) else f"{value!r:.40}"
                log.warning("the API reported meta.usage.%s as %s, not a number of credits of 0 or more; "
                            "counted as unknown", name, said)
            break
    return credits, amount(usage.get("usd_spent"))


@dataclass(frozen=True)
class CallCost:
    """What one answer says about itself: its inference id, credits and USD (None where not said)."""

    inference_id: str | None
    credits_used: float | None
    usd_spent: float | None


def call_cost(headers: Mapping[str, str], payload: Any, secret: str = "") -> CallCost:
    """The answer's inference id and cost: each header wins over ``meta.usage``; either may be missing.

    The inference id is shown (info output) and stored (ledger): it is redacted with ``secret``, the
    key, as everything the service client returns is, in case the server echoes the key there.
    """
    header_credits = amount(headers.get(CREDITS_HEADER))
    header_usd = amount(headers.get(USD_HEADER))
    # A bad meta.usage amount is only worth a warning when no header says the credits.
    body_credits, body_usd = usage_from_body(payload, warn=header_credits is None)
    inference = headers.get(INFERENCE_ID_HEADER)
    inference = redact(inference.strip(), secret) if isinstance(inference, str) else None
    return CallCost(
        inference_id=inference if inference and _INFERENCE_ID.match(inference) else None,
        credits_used=header_credits if header_credits is not None else body_credits,
        usd_spent=header_usd if header_usd is not None else body_usd,
    )


def parse_generation(response: requests.Response, key: ApiKey, request_id: str | None = None,
                     resent: int = 0) -> GenerationResponse | APIResponseError:
    """The pictures of a 200 answer, or the error to raise (returned: the body, which may
    echo anything, stays in this frame and is gone once it returns). ``key``: redacted from
    what is shown (held as the ``ApiKey``, whose repr hides it, never as text in a local)."""
    raw = response.content
    if not raw.strip():
        return APIResponseError("The AI/ML API answered 200 with an empty body. The request may have been "
                                "billed; check your usage before running again.")
    payload = json_body(response)
    if payload is NOT_JSON:
        snippet = redact(raw[:120].decode("utf-8", "replace"), key.value)
        return APIResponseError(f"The AI/ML API answered 200 with a body that is not JSON: {snippet!r}. "
                                "A proxy may be in the way; check AIML_API_BASE.")
    if not isinstance(payload, dict):
        return APIResponseError("The AI/ML API answered 200 with JSON that is not an object.")
    data = payload.get("data")
    if not isinstance(data, list) or not data:
        said = server_message(response, key.value)
        return APIResponseError(f"The AI/ML API answered 200 without any pictures. {said}".strip())
    images = []
    for i, item in enumerate(data):
        url = item.get("url") if isinstance(item, dict) else None
        b64 = item.get("b64_json") if isinstance(item, dict) else None
        if not (isinstance(url, str) and url) and not (isinstance(b64, str) and b64):
            return APIResponseError(f"Picture {i + 1} of the API's answer has neither a url nor b64_json.")
        images.append(ImageRef(url=url or None, b64_json=b64 or None))
    cost = call_cost(response.headers, payload, key.value)
    return GenerationResponse(images=images, credits_used=cost.credits_used, request_id=request_id,
                              inference_id=cost.inference_id, usd_spent=cost.usd_spent, resent=resent)
