"""The transport under every call to the API: one session, the key in one place, capped reads.

``Transport`` holds the reused ``requests.Session`` (its connections report their sockets to
``deadline.Deadline``), the key (sent only by ``BearerAuth``, whose repr hides it), the base URL
and the connect/read timeouts. urllib3's debug log is redacted of every key in use. The body
readers here never let a broken proxy or hostile server fill memory or stall a check.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import requests

from ..errors import redact, shown_url
from ..runtime import current_settings
from ..settings import CONNECT_TIMEOUT_ENV, READ_TIMEOUT_ENV, ApiKey, check_url_scheme, resolve_ca_bundle
from .deadline import DeadlineAdapter

USER_AGENT = "ComfyUI-Flux2-LoRA/1.0"
CHUNK = 256 * 1024


class _KeyRedactingFilter(logging.Filter):
    """Removes the keys in use from urllib3's debug lines.

    urllib3 logs the path and query of every request it sends; a server that puts
    the key into a picture URL would otherwise have it written to the log.
    """

    def __init__(self) -> None:
        super().__init__()
        self._keys: list[ApiKey] = []  # ApiKey's repr hides the value
        self._lock = threading.Lock()

    def hide(self, key: ApiKey) -> None:
        with self._lock:
            if key not in self._keys:
                self._keys.append(key)
                logging.getLogger("urllib3.connectionpool").addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._keys:
            message = record.getMessage()
            cleaned = redact(message, *(key.value for key in self._keys))
            if cleaned != message:
                record.msg, record.args = cleaned, ()
        return True


_urllib3_log_redactor = _KeyRedactingFilter()


class BearerAuth(requests.auth.AuthBase):
    """Adds ``Authorization: Bearer <key>`` to calls to the API only, never to picture downloads.

    Kept in an object whose repr hides the key, so no local variable or
    attribute anywhere in a traceback holds the header in clear.
    """

    def __init__(self, key: ApiKey) -> None:
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._key.value}"
        return request

    def __repr__(self) -> str:
        return f"BearerAuth(key from {self._key.source})"


class _NoAuth:
    """Sends no credentials: truthy, so requests looks up no netrc entry, and it drops any Authorization."""

    def __call__(self, request: Any) -> Any:
        request.headers.pop("Authorization", None)
        return request


NO_AUTH = _NoAuth()


class Transport:
    """The session, key, base URL and timeouts every call to the API goes through; safe to share between threads."""

    def __init__(self, api_key: ApiKey | str, base_url: str, *, connect_timeout: float | None = None,
                 read_timeout: float | None = None, ca_bundle: str | None = None) -> None:
        self.key = api_key if isinstance(api_key, ApiKey) else ApiKey(api_key, "the key given to ApiClient")
        check_url_scheme(base_url, "the base URL")
        self.base_url = base_url.rstrip("/")
        settings = current_settings().check(CONNECT_TIMEOUT_ENV, READ_TIMEOUT_ENV)
        self.connect_timeout = connect_timeout or settings.connect_timeout
        self.read_timeout = read_timeout or settings.read_timeout
        self._auth = BearerAuth(self.key)
        _urllib3_log_redactor.hide(self.key)
        self.session = requests.Session()
        # Proxies come from HTTPS_PROXY/HTTP_PROXY/NO_PROXY (requests' trust_env, on by default).
        # An explicit bundle (certifi's unless REQUESTS_CA_BUNDLE or SSL_CERT_FILE names one).
        self.session.verify = ca_bundle or resolve_ca_bundle()
        # Enough pooled connections for 4 requests and 16 downloads at once.
        adapter = DeadlineAdapter(pool_connections=8, pool_maxsize=32, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers["User-Agent"] = USER_AGENT

    def auth(self, send_key: bool = True) -> Any:
        """What authenticates a call: the key, or (``send_key=False``) explicitly nothing."""
        return self._auth if send_key else NO_AUTH

    def shown_url(self, url: str) -> str:
        """``url`` as outputs show it, full length: without the key (a server may echo it) or a password."""
        return shown_url(url, self.key.value, limit=1 << 16)

    def close(self) -> None:
        self.session.close()


def load_capped_answer(response: requests.Response, cap: int) -> str | None:
    """Read the answer into ``response.content``, or say why it was too large to read.

    The answer is streamed so that a broken proxy or hostile server cannot fill
    memory: past ``cap`` bytes it is abandoned (base64 pictures fit well within the default).
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > cap:
        response.close()
        return (f"The AI/ML API's answer is {int(declared):,} bytes, above the {cap:,} this pack reads; "
                "not read. The request may have been billed.")
    data = bytearray()
    for chunk in response.iter_content(CHUNK):
        data += chunk
        if len(data) > cap:
            response.close()
            return (f"The AI/ML API's answer is larger than the {cap:,} bytes this pack reads; "
                    "abandoned. The request may have been billed.")
    # requests keeps a streamed body here once read; every later .content/.json() uses it.
    response._content = bytes(data)
    return None


def framed(response: requests.Response) -> bool:
    """Whether the body's end is marked (Content-Length or chunked), so a cut-off body cannot pass as whole."""
    return "Content-Length" in response.headers or "chunked" in response.headers.get("Transfer-Encoding", "").lower()


def pieces(response: requests.Response) -> Any:
    """The body in pieces of whatever has arrived (at most one chunk), so a trickle cannot stall the checks."""
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:  # urllib3 1.x
        return response.iter_content(CHUNK)
    return iter(lambda: read1(CHUNK, decode_content=True), b"")
