"""The HTTP client for POST {base}/images/generations: one request's life, top to bottom.

``ApiClient.generate`` waits for a request slot, then loops: send one attempt
(``_post_once``), and unless it was answered with pictures, ask the one rule
(``http.retry.may_resend``) whether it may go again without paying twice: resend after a
wait, ask the usage logs first (``usage_logs``), or give up with the error
(``http.error_mapping``). The answer is read by ``answer``, its pictures fetched by
``pictures``; the session, key and timeouts are the ``http.transport.Transport``'s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import requests

from ..errors import (
    APIConnectionError,
    APIResponseError,
    APITimeoutError,
    Cancelled,
    ConfigError,
    Flux2Error,
    redacted_headers,
)
from ..http.cancel import sleep_or_cancel
from ..http.deadline import Deadline
from ..http.error_mapping import connection_error, error_for_status, reach_of
from ..http.request_slots import request_slots
from ..http.retry import Action, Decision, Outcome, Reach, RetryPolicy, may_resend, parse_retry_after
from ..http.transport import Transport, framed, load_capped_answer
from ..runtime import runtime
from ..settings import ApiKey, resolve_ca_bundle
from .answer import GenerationResponse, ImageRef, parse_generation
from .pictures import DEFAULT_MAX_DOWNLOAD_BYTES, DOWNLOAD_DEADLINE, PictureLimits, decode_b64, download
from .tracing import REQUEST_ID_HEADER, is_valid_request_id, new_request_id
from .usage_logs import ask_verdict, attempt_request_id, log_wait, verdict_error, verdict_of

log = logging.getLogger("flux2_lora")

# The generation answer: room for 4 base64 pictures at the download cap.
MAX_ANSWER_BYTES = 6 * DEFAULT_MAX_DOWNLOAD_BYTES


@dataclass(frozen=True)
class _PostFailure:
    """A POST that got no usable HTTP answer; holds our error, never the requests exception.

    ``reach``: how far it may have got; ``fixable``: whether another try can help at all.
    """

    error: Flux2Error
    reason: str
    reach: Reach = Reach.NEVER
    fixable: bool = True


class ApiClient(Transport):
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
        super().__init__(api_key, base_url, connect_timeout=connect_timeout, read_timeout=read_timeout,
                         ca_bundle=ca_bundle)
        self.retry = retry or RetryPolicy()
        self.max_download_bytes = max_download_bytes
        self.download_deadline = download_deadline
        self.max_answer_bytes = max_answer_bytes

    def __repr__(self) -> str:
        return f"ApiClient(base_url={self.base_url!r}, key from {self.key.source})"

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

        Before each attempt is sent, ``on_attempt(n)`` (the money component notes the attempt on
        disk; whatever it raises stops the send), then, as the last thing before the POST,
        ``cancel`` and ``may_send`` (False: the run that wants it was cancelled) are checked in
        this thread; an attempt noted but stopped there is reported by ``on_cleared(n)``. The usage-log
        wait is ``log_wait_seconds`` (default: env FLUX2_LORA_LOG_WAIT, read before sending).
        ``first_attempt``: the number of the first attempt (a request taken up again continues its count);
        ``on_cleared(n)``: attempt n ended surely unbilled (refused, or never sent).

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
        retries = resent = 0
        first_sent = time.time()
        while True:
            attempts += 1
            if on_attempt is not None:
                on_attempt(attempts)  # noted (in the ledger) before the last look at Cancel, never after it
            # The last thing before the POST: a Cancel that came while the attempt was being noted sends nothing.
            if (cancel is not None and cancel.is_set()) or (may_send is not None and not may_send()):
                if on_attempt is not None and on_cleared is not None:
                    on_cleared(attempts)  # noted, never sent: it cannot have billed
                raise Cancelled("Cancelled before sending.")
            attempt_id = attempt_request_id(request_id, attempts)
            started = time.monotonic()
            sent = self._post_once(url, body, attempt_id)
            if isinstance(sent, requests.Response) and sent.status_code == 200:
                parsed = parse_generation(sent, self.key, attempt_id, resent)
                if isinstance(parsed, APIResponseError):
                    raise parsed  # raised here, so no frame of the traceback holds the body
                return parsed
            outcome = _outcome(sent, time.monotonic() - started, retries, resent)
            decision = may_resend(outcome, self.retry)
            error = self._error(sent, attempts, decision)
            if decision.action is Action.ASK_LOGS:
                found = ask_verdict(self, request_id, attempt_id, first_sent, wait=wait, cancel=cancel)
                decision = may_resend(replace(outcome, verdict=verdict_of(found)), self.retry)
                if decision.action is Action.GIVE_UP:
                    raise verdict_error(error, request_id, attempt_id, found, resent)
            if decision.action is Action.GIVE_UP:
                raise error
            if decision.by_logs:
                resent += 1
                log.info("usage logs show attempt %s failed (not billed); sending it again", attempt_id)
                continue
            retries += 1
            if on_cleared is not None:
                on_cleared(attempts)  # surely not billed: said before the wait, a restart may come
            log.info("%s; retry %d in %.1f s", _what_failed(sent, url), attempts, decision.wait)
            sleep_or_cancel(decision.wait, cancel)

    def _error(self, sent: requests.Response | _PostFailure, attempts: int, decision: Decision) -> Flux2Error:
        """The error to raise if the attempt is not sent again (``decision.note`` says why not)."""
        if isinstance(sent, _PostFailure):
            return APIConnectionError(f"{sent.error}{decision.note}") if decision.note else sent.error
        return error_for_status(sent, self.key, attempts, decision.note)

    def _post_once(self, url: str, body: dict[str, Any], request_id: str) -> requests.Response | _PostFailure:
        """One POST: the response, or what went wrong (the requests exception stays in here).

        The read timeout bounds the whole answer, from sending to its last byte, not only each
        wait for data: a server trickling its answer is cut off at the same time as a silent one.
        """
        timed_out = _PostFailure(APITimeoutError(
            f"The AI/ML API did not answer in full within {self.read_timeout:g} s. The request was "
            "NOT sent again because it may still be processed and billed; check your usage "
            "at https://aimlapi.com/app before running again, or raise FLUX2_LORA_READ_TIMEOUT."
        ), reason="ReadTimeout", reach=Reach.RECEIVED)
        started = time.monotonic()
        deadline = Deadline(after_send=self.read_timeout)
        try:
            with deadline:
                response = self.session.post(url, json=body, auth=self._auth, allow_redirects=False, stream=True,
                                             headers={REQUEST_ID_HEADER: request_id},
                                             timeout=(self.connect_timeout, self.read_timeout))
                too_big = load_capped_answer(response, self.max_answer_bytes)
            if deadline.expired and not framed(response):
                # Cut off at the deadline: without a length or chunked framing, what was read may look
                # complete but is not. (A framed answer that got here was read in full: urllib3 checks.)
                response.close()
                return timed_out
            if too_big:
                return _PostFailure(APIResponseError(too_big), reason="answer too large", fixable=False)
            log.debug("POST %s -> %d in %.2f s; sent headers %s", url, response.status_code,
                      time.monotonic() - started, redacted_headers(response.request.headers))
            return response
        except requests.exceptions.ReadTimeout:
            return timed_out
        except requests.exceptions.RequestException as exc:
            if deadline.expired:
                return timed_out
            error = connection_error(exc, url, self.key)
            reach = reach_of(exc)
            if reach is Reach.RECEIVED:
                error = APIConnectionError(f"{error} The answer broke off midway; the request may have been "
                                           "processed and billed, so it was not sent again.")
            # A failed certificate check will not pass a second later: no retry.
            return _PostFailure(error, reason=type(exc).__name__, reach=reach,
                                fixable=not isinstance(exc, requests.exceptions.SSLError))
        except (ValueError, UnicodeError):
            # http.client refuses a header value with a line break or non-Latin-1 character; its
            # message would quote the key, so none of it is kept.
            return _PostFailure(ConfigError(
                f"The API key from {self.key.source} contains characters a key cannot have (spaces, line "
                "breaks or non-ASCII). Set it again, holding only the key."), reason="bad key", fixable=False)

    # -- pictures ----------------------------------------------------------

    def fetch_image(self, ref: ImageRef, cancel: threading.Event | None = None) -> bytes:
        """The compressed bytes of one picture: decoded base64 or a streamed, capped download."""
        if ref.b64_json:
            return decode_b64(ref.b64_json, self.max_download_bytes)
        assert ref.url is not None
        return self.download(ref.url, cancel)

    def download(self, url: str, cancel: threading.Event | None = None) -> bytes:
        """GET a picture, following safe redirects, retrying what a repeat GET can fix, within ``download_deadline``."""
        return download(self, url, PictureLimits(self.max_download_bytes, self.download_deadline, self.retry), cancel)


def _outcome(sent: requests.Response | _PostFailure, elapsed: float, retries: int, resent: int) -> Outcome:
    """What the retry rule needs to know of one attempt."""
    if isinstance(sent, _PostFailure):
        return Outcome(reach=sent.reach, fixable=sent.fixable, elapsed=elapsed, retries=retries, log_resends=resent)
    return Outcome(status=sent.status_code, elapsed=elapsed, retries=retries, log_resends=resent,
                   retry_after=parse_retry_after(sent.headers.get("Retry-After")))


def _what_failed(sent: requests.Response | _PostFailure, url: str) -> str:
    if isinstance(sent, _PostFailure):
        return f"connection to {urlsplit(url).hostname} failed ({sent.reason})"
    return f"API answered {sent.status_code}"


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
