"""GETs to the API's service endpoints: usage logs, balance and the model catalogue.

They go to the same host as the generation POST (``AIML_API_BASE`` without its ``/v1``),
over the same session and with the same key, and never to a picture host. None of them
may ever fail a generation: every problem (missing endpoint, refused key, garbage,
timeout) becomes ``ServiceUnavailable`` with a short reason for people, and the caller
carries on without the answer.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import requests

from .errors import redact

if TYPE_CHECKING:
    from .client import ApiClient

log = logging.getLogger("flux2_lora")

SERVICE_TIMEOUT = 10.0
# The answers read here are small; a proxy's endless page is cut off.
MAX_SERVICE_BYTES = 2 * 1024 * 1024


class ServiceUnavailable(Exception):
    """A service GET gave no usable answer; ``permanent`` when asking again soon will not help."""

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class ServiceAnswer:
    """A service GET's status, parsed JSON (None for 304) and headers."""

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


def service_get(client: ApiClient, path: str, params: list[tuple[str, str]] | None = None,
                headers: dict[str, str] | None = None, *, under_base: bool = False,
                accept_not_modified: bool = False) -> ServiceAnswer:
    """GET ``path`` on the API host (or under the base URL) with the key; raise ``ServiceUnavailable``.

    Redirects are not followed, so the key never travels to another host.
    """
    url = f"{client.base_url if under_base else api_root(client.base_url)}{path}"
    try:
        response = client.session.get(url, params=params or [], headers=headers or {}, auth=client._auth,
                                      allow_redirects=False, stream=True,
                                      timeout=(client.connect_timeout, SERVICE_TIMEOUT))
    except requests.exceptions.RequestException as exc:
        reason = f"{urlsplit(url).path} could not be reached ({type(exc).__name__})"
    except (ValueError, UnicodeError):
        reason = "the key cannot be sent in a header"
    else:
        with response:
            return _answer(response, url, accept_not_modified)
    raise ServiceUnavailable(reason)


def _answer(response: requests.Response, url: str, accept_not_modified: bool) -> ServiceAnswer:
    where = urlsplit(url).path
    status = response.status_code
    headers = {k.lower(): v for k, v in response.headers.items()}
    if status == 304 and accept_not_modified:
        return ServiceAnswer(304, None, headers)
    if status != 200:
        # 404: an older API or a proxy without this route; 401/403: the key may not read it.
        permanent = status in (400, 401, 403, 404, 405, 410) or 300 <= status < 400
        raise ServiceUnavailable(f"{where} answered status {status}", permanent=permanent)
    try:
        data = bytearray()
        for chunk in response.iter_content(64 * 1024):
            data += chunk
            if len(data) > MAX_SERVICE_BYTES:
                raise ServiceUnavailable(f"{where} answered more than {MAX_SERVICE_BYTES:,} bytes", permanent=True)
    except requests.exceptions.RequestException as exc:
        raise ServiceUnavailable(f"{where}: the answer broke off ({type(exc).__name__})") from None
    try:
        payload = json.loads(bytes(data).decode("utf-8"))
    except (ValueError, UnicodeError):
        snippet = redact(bytes(data[:60]).decode("utf-8", "replace"))
        raise ServiceUnavailable(f"{where} answered something that is not JSON ({snippet!r})", permanent=True) from None
    return ServiceAnswer(200, payload, headers)
