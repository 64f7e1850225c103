"""The pack's error hierarchy, modelled on the official OpenAI-style SDKs.

Every message is written for the person looking at ComfyUI: what went wrong,
with which input or URL, and what to do. No message ever contains the API key;
`redact` is applied to any text that comes from outside before it is shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping


class Flux2Error(Exception):
    """Base class of every error the pack raises on purpose.

    ``may_have_billed``: the failed request may still have been processed and billed (a
    read timeout, an answer that broke off, a late gateway error), so the credit budget
    keeps counting its estimated cost instead of releasing it.
    """

    may_have_billed: bool = False


class InputError(Flux2Error, ValueError):
    """An input was refused before any request was sent (nothing was billed)."""


class ConfigError(Flux2Error):
    """The key or base URL is missing or unusable."""


class APIConnectionError(Flux2Error):
    """The API could not be reached (DNS, TLS, proxy, refused or dropped connection)."""


class APITimeoutError(APIConnectionError):
    """The API accepted the request but gave no answer in time.

    The request may still be processed and billed, so it is not sent again.
    """

    may_have_billed = True


class BilledWithoutAnswerError(APIConnectionError):
    """The API's usage logs say the request succeeded and was billed, but its answer never arrived.

    It is not sent again (that would bill again); ``credits_billed`` and ``usd_billed``
    are what the logs say it cost (None where they did not say).
    """

    def __init__(self, message: str, request_id: str, credits_billed: float | None,
                 usd_billed: float | None) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.credits_billed = credits_billed
        self.usd_billed = usd_billed


class APIStatusError(Flux2Error):
    """The API answered with an error status."""

    def __init__(self, message: str, status_code: int, server_message: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.server_message = server_message


class BadRequestError(APIStatusError):
    """400/422: the API refused the request's content."""


class AuthenticationError(APIStatusError):
    """401: the key was refused."""


class PermissionDeniedError(APIStatusError):
    """402/403: no credits left, or the key may not use this model."""


class NotFoundError(APIStatusError):
    """404: wrong base URL or model not available."""


class RateLimitError(APIStatusError):
    """429 after all retries."""


class ServerError(APIStatusError):
    """5xx after all retries."""


class APIResponseError(Flux2Error):
    """The API answered 200 with a body the pack cannot use (so it was billed)."""

    may_have_billed = True


class DownloadError(Flux2Error):
    """A generated picture could not be downloaded."""


class ImageDecodeError(Flux2Error):
    """Downloaded bytes are not a picture the pack can decode safely."""


class BudgetExceededError(Flux2Error):
    """The credit budget set for this process has been used up."""


class Cancelled(Flux2Error):
    """The run was cancelled (used when ComfyUI's own interrupt exception is unavailable)."""


# What follows "Bearer ", "api_key=" and the like is taken for a credential, except what is plainly
# not one: "***" (already redacted) and a placeholder in angle brackets ("<key>", "<YOUR_API_KEY>"),
# so a server's instructions such as "send 'Authorization: Bearer <key>'" are quoted as written.
_NOT_A_SECRET = r"(?!\*\*\*|<[A-Za-z _-]{1,40}>)"
_BEARER = re.compile(r"(?i)(bearer\s+)" + _NOT_A_SECRET + r"[^\s\"',;]+")
# After "Authorization:" an auth scheme word ("Bearer", "Basic") is kept and the credential after it
# redacted; the word itself is never taken for the credential.
_KEYLIKE = re.compile(r"(?i)((?:api[_-]?key|authorization|token)[\"']?\s*[:=]\s*[\"']?"
                      r"(?:(?:bearer|basic|token)\s+)?)(?!(?:bearer|basic|token)(?:\s|$|[\"']))" + _NOT_A_SECRET
                      + r"[^\s\"',;&]+")
# The user:password@ part of a URL, such as a proxy's (HTTPS_PROXY=http://user:pw@proxy:3128).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@\"']+@")
# Headers whose values are credentials; logged as "Bearer ***" or "***".
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})


def redact(text: str, *secrets: str | None) -> str:
    """Remove known secrets, bearer tokens and URL passwords from ``text``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _BEARER.sub(r"\1***", text)
    text = _USERINFO.sub(r"\1***@", text)
    return _KEYLIKE.sub(r"\1***", text)


def shown_url(url: str, *secrets: str | None, limit: int = 200) -> str:
    """``url`` safe to quote in a message: without its user name and password or a known secret, shortened.

    Everything up to the last ``@`` before the query goes, however the URL is malformed,
    so no parser quirk can leave a password in (``http:``, ``ftp:``, no host, a ``/`` in
    the password). At worst a path with an ``@`` is shown shorter than it is.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    end = min((i for i in (rest.find(c) for c in "?#") if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, end)
    if at >= 0:
        rest = "***" + rest[at:]
    text = redact(f"{scheme}{sep}{rest}", *secrets)
    return text if len(text) <= limit else text[:limit] + "..."


def redacted_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` safe for a debug log: credential values become ``Bearer ***`` (scheme kept) or ``***``."""
    shown = {}
    for name, value in headers.items():
        if name.lower() in SECRET_HEADERS:
            scheme, space, _ = str(value).partition(" ")
            shown[name] = f"{scheme} ***" if space and name.lower().endswith("authorization") else "***"
        else:
            shown[name] = redact(str(value))
    return shown
