"""The one place an HTTP failure becomes an error for people: a status, or a connection that failed.

``error_for_status`` maps an answer's status (with what the server said, redacted and
short); ``connection_error`` tells apart what kept a request from reaching the API;
``reach_of`` says how far a failed POST may have got (see ``retry.Reach``).
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NewConnectionError

from ..errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    redact,
    shown_url,
)
from ..settings import ApiKey
from .retry import Reach

NOT_JSON = object()


def json_body(response: requests.Response) -> Any:
    """The parsed JSON body, or ``NOT_JSON``.

    The decode error is dropped here, not chained: it holds the whole body text.
    """
    try:
        return response.json()
    except ValueError:
        return NOT_JSON


def server_message(response: requests.Response, *secrets: str) -> str:
    """The human part of an error body (JSON ``message``/``error``/``detail``), redacted and short."""
    text = ""
    payload = json_body(response)
    if isinstance(payload, dict):
        for key in ("message", "error", "detail", "msg"):
            value = payload.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("detail")
            if isinstance(value, list):
                value = "; ".join(str(v.get("msg", v) if isinstance(v, dict) else v) for v in value)
            if value:
                text = str(value)
                break
    if not text:
        raw = response.text.strip() if response.content else ""
        if raw.lower().startswith(("<!doctype", "<html")):
            text = f"an HTML page instead of JSON ({len(raw)} characters)"
        else:
            text = raw
    text = " ".join(redact(text, *secrets).split())
    return text[:500] + ("..." if len(text) > 500 else "")


# The statuses no retry changes: the error class and what to tell people ({source}: where the key
# was read; {url}: the address asked, without the key).
_REFUSALS: dict[int, tuple[type[APIStatusError], str]] = {
    400: (BadRequestError, "The AI/ML API refused the request (400)."),
    401: (AuthenticationError, "The AI/ML API refused the key (401) read from {source}. Check that it is "
                               "current at https://aimlapi.com/app/keys, then set it again."),
    402: (PermissionDeniedError, "The AI/ML API says the account has no credits left (402). Top up, then run again."),
    403: (PermissionDeniedError, "The AI/ML API refused access (403): the key may not use this model or the "
                                 "account lacks permission."),
    404: (NotFoundError, "The AI/ML API answered 404 at {url}: check AIML_API_BASE (it should end in /v1)."),
    422: (BadRequestError, "The AI/ML API refused the request (422)."),
}


def error_for_status(response: requests.Response, key: ApiKey | None, attempts: int = 1,
                     note: str = "") -> APIStatusError:
    """The one place an HTTP error status becomes a message for people (``note``: why not retried)."""
    status = response.status_code
    if 300 <= status < 400:
        return APIStatusError(
            f"The AI/ML API redirected the request ({status}) to "
            f"{shown_url(response.headers.get('Location', '?'), key.value if key else '')}; set AIML_API_BASE to the "
            "final address.", status)
    said = server_message(response, key.value if key else "")
    quoted = f' The API said: "{said}"' if said else ""
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if status in _REFUSALS:
        kind, text = _REFUSALS[status]
        told = text.format(source=key.source if key else "the configured key",
                           url=shown_url(response.url, key.value if key else ""))
        return kind(f"{told}{quoted}", status, said)
    if status == 429:
        return RateLimitError(
            f"The AI/ML API is rate limiting this key (429){tries}.{note} Wait a minute or lower "
            f"num_images.{quoted}", status, said)
    if status >= 500:
        return ServerError(
            f"The AI/ML API had a server error ({status}){tries}.{note} Try again later.{quoted}", status, said)
    return APIStatusError(f"The AI/ML API answered with status {status}.{quoted}", status, said)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (urllib3 keeps the socket error in ``reason`` and ``__cause__``)."""
    found: list[BaseException] = []
    todo: list[object] = [exc]
    while todo and len(found) < 12:
        item = todo.pop()
        if isinstance(item, BaseException) and all(item is not seen for seen in found):
            found.append(item)
            todo += [getattr(item, "reason", None), item.__cause__, item.__context__, *item.args]
    return found


def connection_error(exc: Exception, url: str, key: ApiKey | None) -> APIConnectionError:
    """What kept the request from reaching the API, told apart from errors the API returns."""
    host = urlsplit(url).hostname or url
    causes = _causes(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        what = ("the TLS (certificate) check failed; behind a proxy that re-signs TLS, point "
                "REQUESTS_CA_BUNDLE at its certificate")
    elif isinstance(exc, requests.exceptions.ProxyError):
        what = "the proxy (HTTPS_PROXY) refused or failed"
    elif any(isinstance(c, socket.gaierror) for c in causes):
        what = "its host name could not be resolved (DNS)"
    elif isinstance(exc, requests.exceptions.ConnectTimeout):
        what = "connecting timed out"
    elif any(isinstance(c, ConnectionRefusedError) for c in causes):
        what = "the connection was refused"
    else:
        what = "the connection failed or was dropped"
    detail = redact(str(exc), key.value if key else "")[:300]
    return APIConnectionError(f"Cannot reach the AI/ML API at {host}: {what}. Check the network, "
                              f"proxy and AIML_API_BASE. ({detail})")


def reach_of(exc: Exception) -> Reach:
    """How far a POST that failed with ``exc`` may have got.

    A connect error or connect timeout (or a proxy or TLS failure) never sent the body. A read
    timeout, or an answer that broke off midway, means the server got it and may be working.
    A connection dropped before any answer is in between (see ``retry.may_resend``).
    """
    if isinstance(exc, (requests.exceptions.ReadTimeout, requests.exceptions.ChunkedEncodingError,
                        requests.exceptions.ContentDecodingError)):
        return Reach.RECEIVED
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError,
                        requests.exceptions.SSLError)):
        return Reach.NEVER
    if any(isinstance(c, NewConnectionError) for c in _causes(exc)):
        return Reach.NEVER
    return Reach.DROPPED
