"""The HTTP client for POST {base}/images/generations and the picture downloads.

One reused ``requests.Session`` per (base URL, key), explicit connect and read
timeouts, retries only where a repeat cannot bill twice, and one function that
turns any HTTP failure into an error from ``errors``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError

from ..errors import (
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BilledWithoutAnswerError,
    Cancelled,
    ConfigError,
    DownloadError,
    Flux2Error,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    redact,
    redacted_headers,
    shown_url,
)
from ..http.deadline import Deadline, DeadlineAdapter
from ..http.retry import (
    DOWNLOAD_RETRY_STATUSES,
    REFUSED_STATUSES,
    RETRY_STATUSES,
    RetryPolicy,
    parse_retry_after,
    sleep_or_cancel,
)
from ..run.request_slots import request_slots
from ..runtime import current_settings, runtime
from ..settings import CONNECT_TIMEOUT_ENV, READ_TIMEOUT_ENV, ApiKey, check_url_scheme, resolve_ca_bundle
from .tracing import REQUEST_ID_HEADER, call_cost, is_valid_request_id, new_request_id
from .usage_logs import attempt_request_id, log_wait, wait_for_verdict

log = logging.getLogger("flux2_lora")

DEFAULT_MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
# The generation answer: room for 4 base64 pictures at the download cap.
MAX_ANSWER_BYTES = 6 * DEFAULT_MAX_DOWNLOAD_BYTES
DOWNLOAD_DEADLINE = 300.0
_CHUNK = 256 * 1024
# MIME wraps base64 in lines of 76 characters (RFC 2045); tools add a final newline.
_B64_WHITESPACE = str.maketrans("", "", " \t\r\n\f\v")
_MAX_REDIRECTS = 5
USER_AGENT = "ComfyUI-Flux2-LoRA/1.0"


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


_NOT_JSON = object()


def _json_body(response: requests.Response) -> Any:
    """The parsed JSON body, or ``_NOT_JSON``.

    The decode error is dropped here, not chained: it holds the whole body text.
    """
    try:
        return response.json()
    except ValueError:
        return _NOT_JSON


def server_message(response: requests.Response, *secrets: str) -> str:
    """The human part of an error body (JSON ``message``/``error``/``detail``), redacted and short."""
    text = ""
    payload = _json_body(response)
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


def error_for_status(response: requests.Response, key: ApiKey | None, attempts: int = 1,
                     note: str = "") -> APIStatusError:
    """The one place an HTTP error status becomes a message for people (``note``: why not retried)."""
    status = response.status_code
    said = server_message(response, key.value if key else "")
    quoted = f' The API said: "{said}"' if said else ""
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    source = key.source if key else "the configured key"
    if status == 401:
        return AuthenticationError(
            f"The AI/ML API refused the key (401) read from {source}. Check that it is "
            f"current at https://aimlapi.com/app/keys, then set it again.{quoted}", status, said)
    if status == 402:
        return PermissionDeniedError(
            f"The AI/ML API says the account has no credits left (402). Top up, then run again.{quoted}", status, said)
    if status == 403:
        return PermissionDeniedError(
            f"The AI/ML API refused access (403): the key may not use this model or the "
            f"account lacks permission.{quoted}", status, said)
    if status == 404:
        return NotFoundError(
            f"The AI/ML API answered 404 at {shown_url(response.url, key.value if key else '')}: check AIML_API_BASE "
            f"(it should end in /v1).{quoted}", status, said)
    if status in (400, 422):
        return BadRequestError(f"The AI/ML API refused the request ({status}).{quoted}", status, said)
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


def _connection_error(exc: Exception, url: str, key: ApiKey | None) -> APIConnectionError:
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


def _was_sent(exc: Exception) -> bool:
    """Whether a failed POST may have reached the server.

    A connect error or connect timeout never sent the body. A connection that
    was dropped before any response counts as not processed, per the retry
    policy; a read timeout does not, since the server may still be working.
    """
    return isinstance(exc, (requests.exceptions.ReadTimeout, requests.exceptions.ChunkedEncodingError,
                            requests.exceptions.ContentDecodingError))


def _never_connected(exc: Exception) -> bool:
    """Whether the POST failed before a connection to the API existed, so nothing was sent."""
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError,
                        requests.exceptions.SSLError)):
        return True
    return any(isinstance(c, NewConnectionError) for c in _causes(exc))


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


class _BearerAuth(requests.auth.AuthBase):
    """Adds ``Authorization: Bearer <key>`` to the generation POST only, never to picture downloads.

    Kept in an object whose repr hides the key, so no local variable or
    attribute anywhere in a traceback holds the header in clear.
    """

    def __init__(self, key: ApiKey) -> None:
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._key.value}"
        return request

    def __repr__(self) -> str:
        return f"_BearerAuth(key from {self._key.source})"


@dataclass(frozen=True)
class _PostFailure:
    """A POST that got no usable HTTP answer; holds our error, never the requests exception.

    ``ambiguous``: the API may have processed (and billed) it; only its usage logs can tell.
    """

    error: Flux2Error
    retryable: bool
    reason: str
    ambiguous: bool = False


# Sent again at most this often after the usage logs showed a failed row, each time for a new row.
MAX_LOG_RESENDS = 2


def _with_request_id(error: Flux2Error, request_id: str, note: str, may_have_billed: bool) -> Flux2Error:
    """``error`` (same class) with the request id and what the usage logs said appended.

    ``may_have_billed``: the logs could not tell (the budget keeps counting its estimate);
    False when they showed the last attempt failed, so nothing was billed.
    """
    message = (f"{error} Request id {request_id} (X-Client-Request-Id; find it as client_request_id in "
               f"your usage logs): {note}.")
    if isinstance(error, APIStatusError):
        made: Flux2Error = type(error)(message, error.status_code, error.server_message)
    else:
        made = type(error)(message)
    made.may_have_billed = may_have_billed
    made.request_id = request_id  # type: ignore[attr-defined]
    return made


def _billed_error(error: Flux2Error, request_id: str, row: Any) -> BilledWithoutAnswerError:
    credits = None if row.credits != row.credits else row.credits  # NaN: the row gave no cost
    usd = None if row.usd != row.usd else row.usd
    cost = (f"{credits:,.0f} credits" if credits is not None else "an amount the logs did not give") + (
        f" (${usd:.6f})".rstrip("0") if usd is not None else "")
    first = str(error).split(". ")[0]
    return BilledWithoutAnswerError(
        f"{first}. The API's usage logs show request {row.client_request_id or request_id} "
        f"(inference {row.inference_id or '?'}) "
        f"SUCCEEDED at {row.created or 'an unrecorded time'} and was billed {cost}, but its answer with the "
        "pictures never arrived. It was not sent again, since that would bill a second time; a re-run bills "
        "anew and does not refund this one. Raise FLUX2_LORA_READ_TIMEOUT if answers often take this long.",
        row.client_request_id or request_id, credits, usd)


class ApiClient:
    """Talks to the AI/ML API with one reused session; safe to share between threads."""

    def __init__(
        self,
        api_key: ApiKey | str,
        base_url: str,
        *,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        download_deadline: float = DOWNLOAD_DEADLINE,
        ca_bundle: str | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.key = api_key if isinstance(api_key, ApiKey) else ApiKey(api_key, "the key given to ApiClient")
        check_url_scheme(base_url, "the base URL")
        self.base_url = base_url.rstrip("/")
        settings = current_settings().check(CONNECT_TIMEOUT_ENV, READ_TIMEOUT_ENV)
        self.connect_timeout = connect_timeout or settings.connect_timeout
        self.read_timeout = read_timeout or settings.read_timeout
        self.retry = retry or RetryPolicy()
        self.max_download_bytes = max_download_bytes
        self.download_deadline = download_deadline
        self.max_answer_bytes = max_answer_bytes
        self._auth = _BearerAuth(self.key)
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

    def __repr__(self) -> str:
        return f"ApiClient(base_url={self.base_url!r}, key from {self.key.source})"

    def shown_url(self, url: str) -> str:
        """``url`` as outputs show it, full length: without the key (a server may echo it) or a password."""
        return shown_url(url, self.key.value, limit=1 << 16)

    def close(self) -> None:
        self.session.close()

    # -- generation -------------------------------------------------------

    def generate(self, body: dict[str, Any], cancel: threading.Event | None = None,
                 request_id: str | None = None, *, may_send: Callable[[], bool] | None = None,
                 log_wait_seconds: float | None = None, on_attempt: Callable[[int], None] | None = None,
                 first_attempt: int = 1, on_cleared: Callable[[int], None] | None = None) -> GenerationResponse:
        """POST one generation request, retrying only what cannot have been billed.

        Attempt *n* carries ``X-Client-Request-Id: <request_id>.<n>`` (``request_id``, or a new
        one): one id per attempt, so each usage-log row maps to exactly one attempt. After an
        ambiguous failure the API's usage logs decide: a ``succeeded`` row of any attempt means
        it was billed (``BilledWithoutAnswerError``); the ``failed`` row of this very attempt
        means nothing was billed and the request is sent again; no row in time keeps the error.

        Right before each attempt is sent, ``cancel`` and ``may_send`` (False: the run that
        wants it was cancelled) are checked in this thread, then ``on_attempt(n)`` (the money
        component notes the attempt on disk; whatever it raises stops the send). The usage-log
        wait is ``log_wait_seconds`` (default: env FLUX2_LORA_LOG_WAIT, read before sending).
        ``first_attempt``: the number of the first attempt (a request taken up again continues its count);
        ``on_cleared(n)``: attempt n ended surely unbilled and will be sent again after a wait.

        The request first waits for one of the process's request slots
        (``request_slots``: env FLUX2_LORA_MAX_IN_FLIGHT) and holds it through its
        retries, the usage-log wait included; ``cancel`` ends that wait too, before anything is sent.

        Errors are raised outside any ``except`` block, so their ``__context__`` is
        empty: a requests exception (which holds the request and its headers)
        never travels along with them.
        """
        request_id = request_id or new_request_id()
        if not is_valid_request_id(attempt_request_id(request_id, 99)):
            raise ValueError(f"request id {request_id!r} is not 1-125 characters of A-Z a-z 0-9 . _ : -")
        wait = log_wait() if log_wait_seconds is None else log_wait_seconds
        with request_slots().slot(cancel):
            return self._generate(body, cancel, request_id, may_send, wait, on_attempt, first_attempt, on_cleared)

    def _generate(self, body: dict[str, Any], cancel: threading.Event | None, request_id: str,
                  may_send: Callable[[], bool] | None, wait: float,
                  on_attempt: Callable[[int], None] | None, first_attempt: int = 1,
                  on_cleared: Callable[[int], None] | None = None) -> GenerationResponse:
        url = f"{self.base_url}/images/generations"
        attempts = first_attempt - 1  # a request sent again after a Cancel never reuses an attempt's id
        retry_number = 0
        resent = 0
        first_sent = time.time()
        while True:
            attempts += 1
            if (cancel is not None and cancel.is_set()) or (may_send is not None and not may_send()):
                raise Cancelled("Cancelled before sending.")
            if on_attempt is not None:
                on_attempt(attempts)
            attempt_id = attempt_request_id(request_id, attempts)
            started = time.monotonic()
            outcome = self._post_once(url, body, attempt_id)
            ambiguous_error: Flux2Error | None = None
            if isinstance(outcome, _PostFailure) and outcome.ambiguous:
                ambiguous_error = outcome.error
            elif isinstance(outcome, _PostFailure):
                if not outcome.retryable or retry_number >= self.retry.max_retries:
                    raise outcome.error
                pause = self.retry.backoff(retry_number)
                retry_number += 1
                if on_cleared is not None:
                    on_cleared(attempts)  # surely not billed: said before the wait, a restart may come
                log.info("connection to %s failed (%s); retry %d in %.1f s",
                         urlsplit(url).hostname, outcome.reason, attempts, pause)
                sleep_or_cancel(pause, cancel)
                continue
            else:
                ambiguous_error = self._late_server_error(outcome, started, attempts)
            if ambiguous_error is not None:
                try:
                    verdict = wait_for_verdict(self, request_id, attempt_id, first_sent, wait=wait, cancel=cancel)
                except Cancelled:
                    # Not a plain Cancelled: this request was sent and may have been billed.
                    verdict = None
                if verdict is None:
                    raise _with_request_id(ambiguous_error, attempt_id, "Cancel ended the wait for the usage logs "
                                           "before they told whether it was billed", may_have_billed=True)
                if verdict.row is not None and verdict.row.status == "succeeded":
                    raise _billed_error(ambiguous_error, request_id, verdict.row)
                if verdict.row is None or resent >= MAX_LOG_RESENDS:
                    note = verdict.note if verdict.row is None else (
                        f"the usage logs show it failed again; not sent a {resent + 2}th time")
                    raise _with_request_id(ambiguous_error, attempt_id, note, may_have_billed=verdict.row is None)
                resent += 1
                log.info("usage logs show attempt %s failed (not billed); sending it again", attempt_id)
                continue
            response = outcome
            log.debug("POST %s -> %d in %.2f s; sent headers %s", url, response.status_code,
                      time.monotonic() - started, redacted_headers(response.request.headers))
            if response.status_code == 200:
                parsed = self._parse_generation(response, attempt_id, resent)
                if isinstance(parsed, APIResponseError):
                    raise parsed  # raised here, so no frame of the traceback holds the body
                return parsed
            note = ""
            if response.status_code in RETRY_STATUSES and retry_number < self.retry.max_retries:
                pause = self._wait_for(response, retry_number)
                if pause is not None:
                    if on_cleared is not None:
                        on_cleared(attempts)
                    log.info("API answered %d; retry %d in %.1f s", response.status_code, attempts, pause)
                    retry_number += 1
                    sleep_or_cancel(pause, cancel)
                    continue
                note = (f" It asked to retry after {self._asked_wait(response):.0f} s, longer than the "
                        f"{self.retry.max_retry_after:.0f} s this pack waits, so it was not retried.")
            if 300 <= response.status_code < 400:
                raise APIStatusError(
                    f"The AI/ML API redirected the request ({response.status_code}) to "
                    f"{shown_url(response.headers.get('Location', '?'), self.key.value)}; set AIML_API_BASE to the "
                    "final address.",
                    response.status_code)
            raise error_for_status(response, self.key, attempts, note)

    def _late_server_error(self, response: requests.Response, started: float, attempts: int) -> Flux2Error | None:
        """The error for a 500/502/504 that came so late the API may have processed the request, else None."""
        took = time.monotonic() - started
        if response.status_code not in RETRY_STATUSES or response.status_code in REFUSED_STATUSES:
            return None
        if took <= self.retry.retry_window:
            return None
        note = (f" It came {took:.0f} s after sending, so the API may have processed and billed the "
                "request; it was not sent again.")
        return error_for_status(response, self.key, attempts, note)

    def _post_once(self, url: str, body: dict[str, Any], request_id: str) -> requests.Response | _PostFailure:
        """One POST: the response, or what went wrong (the requests exception stays in here).

        The read timeout bounds the whole answer, from sending to its last byte, not only each
        wait for data: a server trickling its answer is cut off at the same time as a silent one.
        """
        started = time.monotonic()
        timed_out = _PostFailure(APITimeoutError(
            f"The AI/ML API did not answer in full within {self.read_timeout:g} s. The request was "
            "NOT sent again because it may still be processed and billed; check your usage "
            "at https://aimlapi.com/app before running again, or raise FLUX2_LORA_READ_TIMEOUT."
        ), retryable=False, reason="ReadTimeout", ambiguous=True)
        deadline = Deadline(after_send=self.read_timeout)
        try:
            with deadline:
                response = self.session.post(url, json=body, auth=self._auth, allow_redirects=False, stream=True,
                                             headers={REQUEST_ID_HEADER: request_id},
                                             timeout=(self.connect_timeout, self.read_timeout))
                too_big = _load_capped_answer(response, self.max_answer_bytes)
            if deadline.expired and not _framed(response):
                # Cut off at the deadline: without a length or chunked framing, what was read may look
                # complete but is not. (A framed answer that got here was read in full: urllib3 checks.)
                response.close()
                return timed_out
            if too_big:
                return _PostFailure(APIResponseError(too_big), retryable=False, reason="answer too large")
            return response
        except requests.exceptions.ReadTimeout:
            return timed_out
        except requests.exceptions.RequestException as exc:
            if deadline.expired:
                return timed_out
            error = _connection_error(exc, url, self.key)
            if _was_sent(exc):
                error = APIConnectionError(f"{error} The answer broke off midway; the request may have been "
                                           "processed and billed, so it was not sent again.")
            elapsed = time.monotonic() - started
            dropped_late = not _never_connected(exc) and elapsed > self.retry.retry_window
            if dropped_late:
                error = APIConnectionError(
                    f"{error} The connection dropped {elapsed:.0f} s after the request was sent; the API may "
                    "have processed and billed it, so it was not sent again. Check your usage before re-running.")
            # A failed certificate check will not pass a second later: no retry.
            retryable = not (_was_sent(exc) or dropped_late or isinstance(exc, requests.exceptions.SSLError))
            return _PostFailure(error, retryable=retryable, reason=type(exc).__name__,
                                ambiguous=_was_sent(exc) or dropped_late)
        except (ValueError, UnicodeError):
            # http.client refuses a header value with a line break or non-Latin-1 character; its
            # message would quote the key, so none of it is kept.
            return _PostFailure(ConfigError(
                f"The API key from {self.key.source} contains characters a key cannot have (spaces, line "
                "breaks or non-ASCII). Set it again, holding only the key."), retryable=False, reason="bad key")

    def _asked_wait(self, response: requests.Response) -> float:
        return parse_retry_after(response.headers.get("Retry-After")) or 0.0

    def _wait_for(self, response: requests.Response, retry_number: int) -> float | None:
        """Seconds to wait before retrying, or None if the server asks for too long."""
        asked = parse_retry_after(response.headers.get("Retry-After"))
        if asked is None:
            return self.retry.backoff(retry_number)
        if asked > self.retry.max_retry_after:
            log.info("API asked to retry after %.0f s, more than the %.0f s allowed", asked,
                     self.retry.max_retry_after)
            return None
        return asked

    def _parse_generation(self, response: requests.Response, request_id: str | None = None,
                          resent: int = 0) -> GenerationResponse | APIResponseError:
        """The pictures of a 200 answer, or the error to raise (returned: the body, which may
        echo anything, stays in this frame and is gone once it returns)."""
        raw = response.content
        if not raw.strip():
            return APIResponseError("The AI/ML API answered 200 with an empty body. The request may have been "
                                    "billed; check your usage before running again.")
        payload = _json_body(response)
        if payload is _NOT_JSON:
            snippet = redact(raw[:120].decode("utf-8", "replace"), self.key.value)
            return APIResponseError(f"The AI/ML API answered 200 with a body that is not JSON: {snippet!r}. "
                                    "A proxy may be in the way; check AIML_API_BASE.")
        if not isinstance(payload, dict):
            return APIResponseError("The AI/ML API answered 200 with JSON that is not an object.")
        data = payload.get("data")
        if not isinstance(data, list) or not data:
            said = server_message(response, self.key.value)
            return APIResponseError(f"The AI/ML API answered 200 without any pictures. {said}".strip())
        images = []
        for i, item in enumerate(data):
            url = item.get("url") if isinstance(item, dict) else None
            b64 = item.get("b64_json") if isinstance(item, dict) else None
            if not (isinstance(url, str) and url) and not (isinstance(b64, str) and b64):
                return APIResponseError(f"Picture {i + 1} of the API's answer has neither a url nor b64_json.")
            images.append(ImageRef(url=url or None, b64_json=b64 or None))
        # The cost headers win over meta.usage; meta.usage is checked (and a bad amount logged) by _credits.
        cost = call_cost(response.headers, payload, self.key.value)
        credits = cost.header_credits if cost.header_credits is not None else _credits(payload)
        return GenerationResponse(images=images, credits_used=credits, request_id=request_id,
                                  inference_id=cost.inference_id, usd_spent=cost.usd_spent, resent=resent)

    # -- pictures ----------------------------------------------------------

    def fetch_image(self, ref: ImageRef, cancel: threading.Event | None = None) -> bytes:
        """The compressed bytes of one picture: decoded base64 or a streamed, capped download."""
        if ref.b64_json:
            return self._decode_b64(ref.b64_json)
        assert ref.url is not None
        return self.download(ref.url, cancel)

    def _decode_b64(self, text: str) -> bytes:
        """Base64 as standard decoders take it: line breaks and spaces anywhere, ``=`` padding optional.

        Anything else outside the alphabet is refused. The size is checked before decoding.
        """
        if text.startswith("data:"):
            text = text.partition(",")[2]
        too_big = DownloadError(f"An inline picture is larger than the {self.max_download_bytes >> 20} MiB cap.")
        if len(text) * 3 // 4 > self.max_download_bytes * 1.05 + 1024:  # before copying: whitespace adds ~3 %
            raise too_big
        text = text.translate(_B64_WHITESPACE)
        if len(text) * 3 // 4 > self.max_download_bytes:
            raise too_big
        if not text.endswith("="):
            text += "=" * (-len(text) % 4)  # the padding some encoders leave out
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise DownloadError("An inline picture (b64_json) is not valid base64.") from None

    def download(self, url: str, cancel: threading.Event | None = None) -> bytes:
        """GET a picture, following safe redirects, retrying what a repeat GET can fix.

        Everything, retries and waits included, ends within ``download_deadline`` seconds.
        """
        deadline = time.monotonic() + self.download_deadline
        shown = shown_url(url, self.key.value)
        attempts = 0
        while True:
            attempts += 1
            try:
                return self._download_once(url, cancel, deadline)
            except _RetryableDownload as exc:
                reason, retry_after = str(exc), exc.retry_after
            # Raised out here, not in the except block, so no requests exception is chained.
            if attempts > self.retry.max_retries or time.monotonic() >= deadline:
                raise DownloadError(f"Could not download the picture {shown} after {attempts} attempts: {reason}.")
            wait = retry_after if retry_after is not None else self.retry.backoff(attempts - 1)
            wait = min(wait, self.retry.max_retry_after, max(0.0, deadline - time.monotonic()))
            log.info("download failed (%s); retry %d in %.1f s", reason, attempts, wait)
            sleep_or_cancel(wait, cancel)

    def _download_once(self, url: str, cancel: threading.Event | None, deadline: float) -> bytes:
        # The watchdog cuts the connection at the deadline, whatever phase it is in (connecting, headers,
        # a body trickling a byte at a time), so the deadline holds to the fraction of a second.
        guard = Deadline(at=deadline)
        failure: _RetryableDownload | None = None
        try:
            with guard:
                data = self._download_redirects(url, cancel, deadline)
        except _RetryableDownload as exc:
            failure = exc
        # Raised out here, not in the except block, so no requests exception is chained.
        if guard.expired:
            raise self._too_slow()  # cut off: even bytes that look complete are not
        if failure is not None:
            raise failure
        return data

    def _too_slow(self) -> DownloadError:
        return DownloadError(f"The picture took more than {self.download_deadline:g} s to download; abandoned.")

    def _download_redirects(self, url: str, cancel: threading.Event | None, deadline: float) -> bytes:
        for _ in range(_MAX_REDIRECTS + 1):
            refused = _refused_picture_url(url, self.key.value)
            if refused:
                raise DownloadError(refused)
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._too_slow()
            try:
                response = self.session.get(url, stream=True, allow_redirects=False,
                                            timeout=(min(self.connect_timeout, left), min(60.0, left)))
            except requests.exceptions.RequestException as exc:
                raise _RetryableDownload(type(exc).__name__) from None
            with response:
                log.debug("GET %s -> %d; sent headers %s", shown_url(url, self.key.value), response.status_code,
                          redacted_headers(response.request.headers))
                if response.is_redirect:
                    location = response.headers.get("Location", "")
                    # Checked as sent too: joining could hide what makes parsers disagree.
                    refused = _refused_picture_url(location, self.key.value) if "://" in location else None
                    if refused:
                        raise DownloadError(refused.replace("the picture URL", "a redirect to", 1))
                    url = urljoin(url, location)
                    continue
                status = response.status_code
                if status in DOWNLOAD_RETRY_STATUSES:
                    raise _RetryableDownload(f"status {status}", parse_retry_after(response.headers.get("Retry-After")))
                if status != 200:
                    raise DownloadError(f"The picture URL {shown_url(url, self.key.value)} answered status {status}.")
                return self._read_capped(response, cancel, deadline)
        raise DownloadError(f"The picture URL redirected more than {_MAX_REDIRECTS} times.")

    def _read_capped(self, response: requests.Response, cancel: threading.Event | None, deadline: float) -> bytes:
        """The body, read piece by piece: abandoned past the cap, the deadline or a cancel."""
        cap = self.max_download_bytes
        declared = response.headers.get("Content-Length")
        expected = int(declared) if declared and declared.isdigit() else None
        if expected is not None and expected > cap:
            raise DownloadError(f"The picture is {expected >> 20} MiB, above the {cap >> 20} MiB cap; not downloaded.")
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in _pieces(response):
                size += len(chunk)
                if size > cap:
                    raise DownloadError(f"The picture is larger than the {cap >> 20} MiB cap; download abandoned.")
                chunks.append(chunk)
                if cancel is not None and cancel.is_set():
                    raise Cancelled("Cancelled during a download.")
                if time.monotonic() > deadline:
                    raise self._too_slow()
        except (requests.exceptions.RequestException, Urllib3Error, OSError) as exc:
            raise _RetryableDownload(f"connection broke after {size} bytes ({type(exc).__name__})") from None
        if expected is not None and size != expected and not response.headers.get("Content-Encoding"):
            raise _RetryableDownload(f"got {size} of {expected} bytes")
        return b"".join(chunks)


def _load_capped_answer(response: requests.Response, cap: int) -> str | None:
    """Read the generation answer into ``response.content``, or say why it was too large to read.

    The answer is streamed so that a broken proxy or hostile server cannot fill
    memory: past ``cap`` bytes it is abandoned (base64 pictures fit well within the default).
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > cap:
        response.close()
        return (f"The AI/ML API's answer is {int(declared):,} bytes, above the {cap:,} this pack reads; "
                "not read. The request may have been billed.")
    data = bytearray()
    for chunk in response.iter_content(_CHUNK):
        data += chunk
        if len(data) > cap:
            response.close()
            return (f"The AI/ML API's answer is larger than the {cap:,} bytes this pack reads; "
                    "abandoned. The request may have been billed.")
    # requests keeps a streamed body here once read; every later .content/.json() uses it.
    response._content = bytes(data)
    return None


def _framed(response: requests.Response) -> bool:
    """Whether the body's end is marked (Content-Length or chunked), so a cut-off body cannot pass as whole."""
    return "Content-Length" in response.headers or "chunked" in response.headers.get("Transfer-Encoding", "").lower()


def _pieces(response: requests.Response) -> Any:
    """The body in pieces of whatever has arrived (at most one chunk), so a trickle cannot stall the checks."""
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:  # urllib3 1.x
        return response.iter_content(_CHUNK)
    return iter(lambda: read1(_CHUNK, decode_content=True), b"")


def _refused_picture_url(url: str, *secrets: str) -> str | None:
    """Why a picture URL is not fetched (not https, http off loopback, read differently by parsers), or None."""
    try:
        check_url_scheme(url, "the picture URL", *secrets)
    except ConfigError as exc:
        return str(exc)
    return None


class _RetryableDownload(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def _credits(payload: dict[str, Any]) -> float | None:
    """``meta.usage.credits_used`` (or the older ``tokens_used``), if the API reported a valid amount.

    Only a finite number of 0 or more counts (a numeric string too). Anything else is logged
    and returned as None, unknown: never 0, never a refund, never a NaN in the totals.
    """
    meta = payload.get("meta")
    usage = meta.get("usage") if isinstance(meta, dict) else None
    if not isinstance(usage, dict):
        return None
    for name in ("credits_used", "tokens_used"):
        if name in usage and usage[name] is not None:
            amount = parse_credits(usage[name])
            if amount is None:
                # Text is described, not quoted: a server echoing anything (the key too) must not reach the log.
                value = usage[name]
                said = f"text of {len(value)} characters" if isinstance(value, str) else f"{value!r:.40}"
                log.warning("the API reported meta.usage.%s as %s, not a number of credits of 0 or more; "
                            "counted as unknown", name, said)
            return amount
    return None


def parse_credits(value: Any) -> float | None:
    """``value`` as a finite amount of credits, 0 or more, or None (a numeric string is parsed; bools are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        amount = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):  # not a number; an integer too large for a float
        return None
    return amount if math.isfinite(amount) and amount >= 0 else None


class LazyClient:
    """The shared client for ``base_url``, made (and the key looked up) only once something must be sent.

    A run answered wholly from the result cache sends nothing, so it needs no key.
    """

    def __init__(self, base_url: str, find_key: Callable[[], ApiKey]) -> None:
        self.base_url = base_url
        self._find_key = find_key

    def get(self) -> ApiClient:
        return shared_client(self._find_key(), self.base_url)

    def __repr__(self) -> str:
        return f"LazyClient(base_url={self.base_url!r})"


def shared_client(api_key: ApiKey, base_url: str) -> ApiClient:
    """One client (and so one connection pool) per base URL and key, reused across runs."""
    # The ApiKey itself (whose repr hides the value) is the lookup, so no local holds the key in clear.
    # The CA bundle is part of it too, so a changed REQUESTS_CA_BUNDLE/SSL_CERT_FILE takes effect.
    ca_bundle = resolve_ca_bundle()
    return runtime().part(("client", base_url, api_key, ca_bundle),
                          lambda: ApiClient(api_key, base_url, ca_bundle=ca_bundle))
