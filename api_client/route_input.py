"""The request bodies of the pack's routes in ComfyUI's server: small JSON objects, checked.

Shared by the key, budget, balance and LoRA-setting routes (panel/key.py, panel/budget.py, ...): JSON only
(which also keeps plain cross-site form posts out), a size limit, an object with
known fields. Errors carry the HTTP status to answer with.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

MAX_BODY_BYTES = 4096

Answer = tuple[int, dict[str, Any]]


class RouteInputError(ValueError):
    """A route's request was refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_json_object(body: bytes, content_type: str, fields: Collection[str], example: str,
                      what: str = "the request") -> dict[str, Any]:
    """The body as a JSON object holding only ``fields``; ``example`` shows people what to send."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        # Cross-site form posts cannot send this content type.
        raise RouteInputError(f"Send {what} as JSON (Content-Type: application/json).", 415)
    if len(body) > MAX_BODY_BYTES:
        raise RouteInputError(f"The request body is larger than {MAX_BODY_BYTES} bytes.", 413)
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RouteInputError(f"The request body is not valid JSON; send {example}.") from None
    if not isinstance(data, dict):
        raise RouteInputError(f"The request body must be a JSON object: {example}.")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        allowed = " or ".join(f'"{name}"' for name in fields)
        raise RouteInputError(f"Unknown field(s) {', '.join(map(repr, unknown[:5]))}; send only {allowed}.")
    return data
