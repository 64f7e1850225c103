"""The one service client: every read-only GET to the API (usage logs, balance, model catalogue,
the key's usage, the model deprecations feed).

They go to the same host as the generation POST (``AIML_API_BASE`` without its ``/v1``),
over the same session and with the same key (none at all for the public deprecations feed:
``send_key=False``), and never to a picture host. None of them
may ever fail a generation: every problem (missing endpoint, refused key, garbage,
timeout) becomes ``ServiceUnavailable`` with a short reason for people, and the caller
carries on without the answer. Every call made by ``service_get``:

- **ends in time**: a hard deadline covers the whole exchange (connecting, the headers, a
  body trickling in a byte at a time): the caller's ``deadline``, and at the latest
  ``connect timeout + SERVICE_TIMEOUT`` (10 + 10 s by default) after the call starts. The
  watchdog of ``deadline.py`` shuts the connection when it is reached, as for the POST;
- **ends at once on Cancel**: ``cancel`` (or the node's, see ``http/cancel.cancel_scope``) races
  the exchange; the deadline's watchdog shuts the connection as soon as it is set, and
  ``Cancelled`` is raised;
- **reads the answer strictly**: at most ``MAX_SERVICE_BYTES``, JSON nested at most
  ``MAX_DEPTH`` deep (checked without recursion before parsing), every number finite and at
  most ``MAX_NUMBER`` in size. A number outside that (400 digits, ``1e999``, ``NaN``) is read
  as NaN: an *unknown* amount, which the readers (``finite_amount``) never take for 0. An
  unreadable answer is ``ServiceUnavailable``, never a bare Python error;
- **redacts before handing on**: every string of the answer (object keys too) and every header
  value go through ``errors.redact`` with the key, so an echoed key is never stored or shown.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from urllib3.exceptions import HTTPError as Urllib3Error

from ..errors import Cancelled, redact
from ..http.cancel import scoped_cancel
from ..http.deadline import Deadline
from ..http.transport import Transport

log = logging.getLogger("flux2_lora")

# Seconds for each wait for data, and (with the connect timeout) for the whole exchange when
# the caller gives no deadline of its own.
SERVICE_TIMEOUT = 10.0
# The answers read here are small; a proxy's endless page is cut off.
MAX_SERVICE_BYTES = 2 * 1024 * 1024
# The documented answers nest 4 levels deep; json's parser recurses once per level.
MAX_DEPTH = 32
# Credits, USD and counts in these answers are far below this; a larger number is unknown.
MAX_NUMBER = 1e15
_CHUNK = 64 * 1024


class ServiceUnavailable(Exception):
    """A service GET gave no usable answer; ``permanent`` when asking again soon will not help."""

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class ServiceAnswer:
    """A service GET's status, parsed and redacted JSON (None for 304) and redacted headers (lower-case names)."""

    status: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)


def api_root(base_url: str) -> str:
    """The API host's root: ``https://api.aimlapi.com`` from ``https://api.aimlapi.com/v1``.

    The /v2 endpoints are not under /v1; a base URL with another path keeps that path
    minus a trailing ``/v1``, so a proxy mounted under a prefix still works.
    """
    parts = urlsplit(base_url.rstrip("/"))
    path = parts.path[:-3] if parts.path.endswith("/v1") else parts.path
    return urlunsplit((parts.scheme, parts.netloc, path.rstrip("/"), "", ""))


# -- reading answers ------------------------------------------------------------------------------

def finite_amount(value: Any) -> float | None:
    """A number of a service answer as a float, or None when unreadable.

    None for anything that is not a JSON number (a bool, text, an object), for NaN (how
    ``service_get`` hands on a number it could not read) and for anything beyond ``MAX_NUMBER``.
    Callers decide what unknown means for them; it never means 0.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float (only from a caller's own data)
        return None
    return number if math.isfinite(number) and abs(number) <= MAX_NUMBER else None


def finite_cost(value: Any) -> float | None:
    """A price, cost or count of a service answer: ``finite_amount`` of 0 or more, else None (unknown)."""
    number = finite_amount(value)
    return number if number is not None and number >= 0 else None


def _read_int(text: str) -> int | float:
    # Checked by length first: a 5,000-digit integer is never converted (Python refuses past 4,300).
    if len(text) > 20:
        return math.nan
    value = int(text)
    return value if abs(value) <= MAX_NUMBER else math.nan


def _read_float(text: str) -> float:
    value = float(text) if len(text) <= 64 else math.inf
    return value if math.isfinite(value) and abs(value) <= MAX_NUMBER else math.nan


def _read_constant(name: str) -> float:
    return math.nan  # NaN, Infinity, -Infinity: not JSON numbers, and not amounts


_STRING = re.compile(r'"[^"]*"')
_BRACKET = re.compile(r"[\[\]{}]")


def nested_too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON ``text`` nests arrays and objects more than ``limit`` deep; no recursion, linear time.

    Escapes are taken out first (``\\\\`` pairs, then ``\\"``), then the strings, so only the
    brackets the parser would see are counted. Past the first error, what is counted may differ
    from what the parser would see, but the parser stops at that error.
    """
    plain = _STRING.sub("", text.replace("\\\\", "").replace('\\"', ""))
    depth = 0
    for match in _BRACKET.finditer(plain):
        if match.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def parse_service_json(data: bytes, where: str, secret: str = "") -> Any:
    """The JSON of a service answer, strictly (see the module docstring); ``ServiceUnavailable`` if unreadable."""
    text: str | None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    reason = ""
    if text is not None and nested_too_deep(text):
        reason = f"{where} answered unreadable JSON (nested more than {MAX_DEPTH} deep)"
    elif text is not None:
        try:
            return json.loads(text, parse_int=_read_int, parse_float=_read_float, parse_constant=_read_constant)
        except (ValueError, TypeError, RecursionError):
            pass  # said below, outside the except block: the decode error holds the whole text
    if not reason:
        shown = data[:60 + len(secret)].decode("utf-8", "replace")
        snippet = redact(shown, secret)[:60]  # redacted before shortening: no piece of the key is left
        reason = f"{where} answered something that is not JSON ({snippet!r})"
    raise ServiceUnavailable(reason, permanent=True)


def redact_payload(value: Any, secret: str) -> Any:
    """``value`` with every string in it, object keys too, redacted with ``secret`` (depth already bounded)."""
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, list):
        return [redact_payload(item, secret) for item in value]
    if isinstance(value, dict):
        return {redact(str(key), secret): redact_payload(item, secret) for key, item in value.items()}
    return value


def is_permanent(status: int) -> bool:
    """Whether a service GET answered ``status`` will answer the same if asked again soon.

    Redirects (never followed: the key stays on the API host), refusals of the request or the
    key (4xx, except 408, 409, 425 and 429, which say "later"), and 501/505 (not implemented).
    """
    if 300 <= status < 400:
        return True
    if 400 <= status < 500:
        return status not in (408, 409, 425, 429)
    return status in (501, 505)


# -- the GET ---------------------------------------------------------------------------------------

def service_get(client: Transport, path: str, params: list[tuple[str, str]] | None = None,
                headers: dict[str, str] | None = None, *, under_base: bool = False,
                accept_not_modified: bool = False, cancel: threading.Event | None = None,
                deadline: float | None = None, send_key: bool = True) -> ServiceAnswer:
    """GET ``path`` on the API host (or under the base URL) with the key; raise ``ServiceUnavailable``.

    ``send_key=False`` sends no key at all (no ``Authorization`` header, no netrc) for the
    public endpoints that need none (the deprecations feed); everything else is the same.

    ``deadline`` (a ``time.monotonic()`` time) ends the whole call, and it ends at the latest
    ``client.connect_timeout + SERVICE_TIMEOUT`` seconds after it starts. ``cancel`` (default:
    the thread's ``cancel_scope``) ends it at once with ``Cancelled``. Redirects are not
    followed, so the key never travels to another host. The answer is parsed strictly and
    redacted (see the module docstring).
    """
    cancel = cancel if cancel is not None else scoped_cancel()
    url = f"{client.base_url if under_base else api_root(client.base_url)}{path}"
    where = urlsplit(url).path
    started = time.monotonic()
    end = started + client.connect_timeout + SERVICE_TIMEOUT
    if deadline is not None:
        end = min(end, deadline)
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"Cancelled before asking {where}.")
    if end <= started:
        raise ServiceUnavailable(f"{where} was not asked: no time was left")
    guard = Deadline(at=end, cancel=cancel)
    answer: ServiceAnswer | None = None
    failure: ServiceUnavailable | None = None
    try:
        with guard:
            answer = _exchange(client, url, where, params, headers, accept_not_modified, end - started,
                               client.auth(send_key))
    except ServiceUnavailable as exc:
        failure = exc
    # Raised out here: no requests exception (which holds the request and its headers) travels along.
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"Cancelled while asking {where}.")
    if guard.expired:
        raise ServiceUnavailable(f"{where} did not answer in full within {end - started:.3g} s")
    if failure is not None:
        raise failure
    assert answer is not None
    return answer


def _exchange(client: Transport, url: str, where: str, params: list[tuple[str, str]] | None,
              headers: dict[str, str] | None, accept_not_modified: bool, left: float, auth: Any) -> ServiceAnswer:
    reason = ""
    try:
        response = client.session.get(url, params=params or [], headers=headers or {}, auth=auth,
                                      allow_redirects=False, stream=True,
                                      timeout=(min(client.connect_timeout, left), min(SERVICE_TIMEOUT, left)))
    except requests.exceptions.RequestException as exc:
        reason = f"{where} could not be reached ({type(exc).__name__})"
    except (ValueError, UnicodeError):
        reason = "the key cannot be sent in a header"
    if reason:
        raise ServiceUnavailable(reason)
    with response:
        return _answer(response, where, accept_not_modified, client.key.value)


def _answer(response: requests.Response, where: str, accept_not_modified: bool, secret: str) -> ServiceAnswer:
    status = response.status_code
    headers = {name.lower(): redact(value, secret) for name, value in response.headers.items()}
    if status == 304 and accept_not_modified:
        return ServiceAnswer(304, None, headers)
    if status != 200:
        # 404: an older API or a proxy without this route; 401/403: the key may not read it.
        raise ServiceUnavailable(f"{where} answered status {status}", permanent=is_permanent(status))
    data = _read_capped(response, where)
    return ServiceAnswer(200, redact_payload(parse_service_json(data, where, secret), secret), headers)


def _read_capped(response: requests.Response, where: str) -> bytes:
    too_big = ServiceUnavailable(f"{where} answered more than {MAX_SERVICE_BYTES:,} bytes", permanent=True)
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_SERVICE_BYTES:
        raise too_big
    data = bytearray()
    broke = ""
    try:
        for chunk in response.iter_content(_CHUNK):
            data += chunk
            if len(data) > MAX_SERVICE_BYTES:
                break
    except (requests.exceptions.RequestException, Urllib3Error, OSError) as exc:
        broke = type(exc).__name__
    if broke:
        raise ServiceUnavailable(f"{where}: the answer broke off ({broke})")
    if len(data) > MAX_SERVICE_BYTES:
        raise too_big
    return bytes(data)
