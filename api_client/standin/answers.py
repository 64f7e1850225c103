"""Answers as the stand-in's servers write them, and the request-side checks every endpoint shares.

``Answer`` is a whole HTTP answer decided without any HTTP plumbing (the handler writes it);
the helpers shape JSON and errors as the AI/ML API does. Stdlib only.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any


@dataclass
class Answer:
    """A complete HTTP answer: status, body bytes, content type, extra headers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    credits: int | None = None  # what a generation answer bills (its cost headers and log row)


def json_answer(status: int, payload: Any, headers: dict[str, str] | None = None) -> Answer:
    """An answer carrying ``payload`` as JSON."""
    return Answer(status, json.dumps(payload).encode("utf-8"), "application/json", dict(headers or {}))


def error_answer(status: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    """An error in the AI/ML API shape: ``{"statusCode", "message", "error"}``."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return json_answer(status, {"statusCode": status, "message": message, "error": phrase}, headers)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_body(raw: bytes) -> Any:
    """Parse a JSON request body strictly (NaN/Infinity refused); ValueError if invalid."""
    return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)


def authorized(auth_header: str | None, key: str) -> bool:
    """True when the header is exactly ``Bearer <key>`` (constant-time compare)."""
    if not auth_header or not auth_header.startswith("Bearer "):
        return False
    return hmac.compare_digest(auth_header[len("Bearer "):].strip().encode(), key.encode())


def parse_body_or_none(raw: bytes) -> Any:
    """The parsed JSON body if it is an object, else None."""
    try:
        body = parse_body(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def merged(base: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    """``base`` with ``extra`` merged in: nested objects merged key by key, anything else replaced."""
    if not extra:
        return base
    result = dict(base)
    for key, value in extra.items():
        old = result.get(key)
        result[key] = merged(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return result


def iso_time(moment: float) -> str:
    """``moment`` (seconds since the epoch) as the API writes times: ``2026-01-31T12:00:00.123Z``."""
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{int(moment * 1000) % 1000:03d}Z"
