"""Fetching the pictures of an answer: inline base64 decoded, URLs downloaded with redirects and caps.

A download follows at most ``MAX_REDIRECTS`` redirects, each checked as a picture URL (https,
or http on loopback only; never the key, which only the generation POST carries), retries what
a repeat GET can fix, and ends, retries and waits included, within its deadline: the
deadline's watchdog cuts the connection whatever phase it is in, and at once on Cancel.
The body is read piece by piece and abandoned past the size cap, the deadline or a Cancel.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin

import requests
from urllib3.exceptions import HTTPError as Urllib3Error

from ..errors import Cancelled, ConfigError, DownloadError, redacted_headers, shown_url
from ..http.cancel import sleep_or_cancel
from ..http.deadline import Deadline
from ..http.retry import DOWNLOAD_RETRY_STATUSES, RetryPolicy, parse_retry_after
from ..http.transport import Transport, pieces
from ..settings import check_url_scheme

log = logging.getLogger("flux2_lora")

DEFAULT_MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
DOWNLOAD_DEADLINE = 300.0
MAX_REDIRECTS = 5
# MIME wraps base64 in lines of 76 characters (RFC 2045); tools add a final newline.
_B64_WHITESPACE = str.maketrans("", "", " \t\r\n\f\v")


@dataclass(frozen=True)
class PictureLimits:
    """How far a picture fetch may go: ``max_bytes`` per picture, ``seconds`` per download, the retries."""

    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES
    seconds: float = DOWNLOAD_DEADLINE
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def decode_b64(text: str, max_bytes: int) -> bytes:
    """Base64 as standard decoders take it: line breaks and spaces anywhere, ``=`` padding optional.

    Anything else outside the alphabet is refused. The size is checked before decoding.
    """
    if text.startswith("data:"):
        text = text.partition(",")[2]
    too_big = DownloadError(f"An inline picture is larger than the {max_bytes >> 20} MiB cap.")
    if len(text) * 3 // 4 > max_bytes * 1.05 + 1024:  # before copying: whitespace adds ~3 %
        raise too_big
    text = text.translate(_B64_WHITESPACE)
    if len(text) * 3 // 4 > max_bytes:
        raise too_big
    if not text.endswith("="):
        text += "=" * (-len(text) % 4)  # the padding some encoders leave out
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DownloadError("An inline picture (b64_json) is not valid base64.") from None


class _RetryableDownload(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def download(transport: Transport, url: str, limits: PictureLimits,
             cancel: threading.Event | None = None) -> bytes:
    """GET a picture, following safe redirects, retrying what a repeat GET can fix.

    Everything, retries and waits included, ends within ``limits.seconds`` seconds.
    """
    retry = limits.retry
    deadline = time.monotonic() + limits.seconds
    shown = shown_url(url, transport.key.value)
    attempts = 0
    while True:
        attempts += 1
        try:
            return _download_once(transport, url, limits, cancel, deadline)
        except _RetryableDownload as exc:
            reason, retry_after = str(exc), exc.retry_after
        # Raised out here, not in the except block, so no requests exception is chained.
        if attempts > retry.max_retries or time.monotonic() >= deadline:
            raise DownloadError(f"Could not download the picture {shown} after {attempts} attempts: {reason}.")
        wait = retry_after if retry_after is not None else retry.backoff(attempts - 1)
        wait = min(wait, retry.max_retry_after, max(0.0, deadline - time.monotonic()))
        log.info("download failed (%s); retry %d in %.1f s", reason, attempts, wait)
        sleep_or_cancel(wait, cancel)


def _too_slow(limits: PictureLimits) -> DownloadError:
    return DownloadError(f"The picture took more than {limits.seconds:g} s to download; abandoned.")


def _download_once(transport: Transport, url: str, limits: PictureLimits, cancel: threading.Event | None,
                   deadline: float) -> bytes:
    # The watchdog cuts the connection at the deadline or on Cancel, whatever phase it is in (connecting,
    # headers, a body trickling a byte at a time), so both hold to the fraction of a second.
    guard = Deadline(at=deadline, cancel=cancel)
    failure: _RetryableDownload | None = None
    try:
        with guard:
            data = _follow_redirects(transport, url, limits, cancel, deadline)
    except _RetryableDownload as exc:
        failure = exc
    # Raised out here, not in the except block, so no requests exception is chained.
    if cancel is not None and cancel.is_set():
        raise Cancelled("Cancelled during a download.")
    if guard.expired:
        raise _too_slow(limits)  # cut off: even bytes that look complete are not
    if failure is not None:
        raise failure
    return data


def _follow_redirects(transport: Transport, url: str, limits: PictureLimits, cancel: threading.Event | None,
                      deadline: float) -> bytes:
    # No local holds the key: this frame is in the traceback of every download error.
    for _ in range(MAX_REDIRECTS + 1):
        refused = _refused_picture_url(url, transport.key.value)
        if refused:
            raise DownloadError(refused)
        left = deadline - time.monotonic()
        if left <= 0:
            raise _too_slow(limits)
        try:
            response = transport.session.get(url, stream=True, allow_redirects=False,
                                             timeout=(min(transport.connect_timeout, left), min(60.0, left)))
        except requests.exceptions.RequestException as exc:
            raise _RetryableDownload(type(exc).__name__) from None
        with response:
            log.debug("GET %s -> %d; sent headers %s", shown_url(url, transport.key.value), response.status_code,
                      redacted_headers(response.request.headers))
            if response.is_redirect:
                location = response.headers.get("Location", "")
                # Checked as sent too: joining could hide what makes parsers disagree.
                refused = _refused_picture_url(location, transport.key.value) if "://" in location else None
                if refused:
                    raise DownloadError(refused.replace("the picture URL", "a redirect to", 1))
                url = urljoin(url, location)
                continue
            status = response.status_code
            if status in DOWNLOAD_RETRY_STATUSES:
                raise _RetryableDownload(f"status {status}", parse_retry_after(response.headers.get("Retry-After")))
            if status != 200:
                raise DownloadError(f"The picture URL {shown_url(url, transport.key.value)} answered status {status}.")
            return _read_capped(response, limits, cancel, deadline)
    raise DownloadError(f"The picture URL redirected more than {MAX_REDIRECTS} times.")


def _read_capped(response: requests.Response, limits: PictureLimits, cancel: threading.Event | None,
                 deadline: float) -> bytes:
    """The body, read piece by piece: abandoned past the cap, the deadline or a cancel."""
    cap = limits.max_bytes
    declared = response.headers.get("Content-Length")
    expected = int(declared) if declared and declared.isdigit() else None
    if expected is not None and expected > cap:
        raise DownloadError(f"The picture is {expected >> 20} MiB, above the {cap >> 20} MiB cap; not downloaded.")
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in pieces(response):
            size += len(chunk)
            if size > cap:
                raise DownloadError(f"The picture is larger than the {cap >> 20} MiB cap; download abandoned.")
            chunks.append(chunk)
            if cancel is not None and cancel.is_set():
                raise Cancelled("Cancelled during a download.")
            if time.monotonic() > deadline:
                raise _too_slow(limits)
    except (requests.exceptions.RequestException, Urllib3Error, OSError) as exc:
        raise _RetryableDownload(f"connection broke after {size} bytes ({type(exc).__name__})") from None
    if expected is not None and size != expected and not response.headers.get("Content-Encoding"):
        raise _RetryableDownload(f"got {size} of {expected} bytes")
    return b"".join(chunks)


def _refused_picture_url(url: str, *secrets: str) -> str | None:
    """Why a picture URL is not fetched (not https, http off loopback, read differently by parsers), or None."""
    try:
        check_url_scheme(url, "the picture URL", *secrets)
    except ConfigError as exc:
        return str(exc)
    return None
