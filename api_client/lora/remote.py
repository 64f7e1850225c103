"""Reading a LoRA's safetensors header over HTTP: Range GETs with hard caps, and Hugging Face names.

Anonymous on purpose: the session has no API key, no Hugging Face token, no netrc
login and keeps no cookies, so a LoRA host learns nothing of the user's accounts,
and what it will not show an anonymous reader is what the service (which fetches
LoRAs without the user's token) cannot fetch either. URLs follow the pack's rules
(https; plain http only for loopback hosts), for every redirect too. At most
``HEADER_CAP`` + 8 bytes are read per file, whatever the host sends.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, urljoin

import requests

from ..errors import ConfigError
from ..http.deadline import DeadlineAdapter
from ..runtime import runtime, settings_for
from ..settings import HF_ENDPOINT_ENV, check_url_scheme, resolve_ca_bundle
from .header import FIRST_READ, HEADER_CAP, HeaderTooLong, NotSafetensors, header_length, sniff

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # what diffusers loads first from a repository
MAX_REDIRECTS = 5
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
_LISTING_CAP = 4 * 1024 * 1024
_CHUNK = 64 * 1024
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_USER_AGENT = "ComfyUI-Flux2-LoRA/1.0 (LoRA header check)"
# diffusers leaves these out when it picks a repository's weights file.
_NOT_WEIGHTS = ("scheduler", "optimizer", "checkpoint")


class CheckStop(Exception):
    """The check of one adapter ends here with ``verdict`` (refused, or unknown); ``reason`` is for people."""

    def __init__(self, verdict: str, reason: str, cacheable: bool = False) -> None:
        super().__init__(reason)
        self.verdict = verdict
        self.reason = reason
        self.cacheable = cacheable


class StopReading(Exception):
    """The run was cancelled or its deadline passed: stop at once."""


# Verdicts decided here (see rule.py for the ones a header gives).
NOT_FOUND = "not-found"
NO_ACCESS = "no-access"
NOT_SAFETENSORS = "not-safetensors"
UNKNOWN = "unknown"


@dataclass
class FileHead:
    """The first bytes of a file, enough for its header, and what the host said about the file."""

    data: bytes
    total: int | None  # the file's size, if the host said
    etag: str | None
    url: str  # where the bytes came from, after redirects
    not_modified: bool = False
    bytes_read: int = 0


class _NoAuth(requests.auth.AuthBase):
    """Sends no Authorization header; set as the session's auth, it also keeps requests from reading ~/.netrc."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        return request


def anonymous_session() -> requests.Session:
    """A session for LoRA hosts: no key, no token, no netrc login, no cookies; deadlines enforced."""
    session = requests.Session()
    session.auth = _NoAuth()
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    session.verify = resolve_ca_bundle()
    adapter = DeadlineAdapter(pool_connections=8, pool_maxsize=16, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers.update({"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"})
    return session


def shared_session() -> requests.Session:
    """The process's one anonymous session (a part of the runtime, made on first use)."""
    return runtime().part("lora session", anonymous_session)


def hf_endpoint(environ: Mapping[str, str] | None = None) -> str:
    """``HF_ENDPOINT`` (huggingface_hub's variable) or https://huggingface.co, checked like every URL of the pack."""
    return settings_for(environ).check(HF_ENDPOINT_ENV).hf_endpoint


class Reader:
    """Reads for one adapter: its deadline and its stop signal (Cancel), checked between every step."""

    def __init__(self, session: requests.Session, deadline: float, stop: threading.Event) -> None:
        self.session = session
        self.deadline = deadline
        self.stop = stop
        self.bytes_read = 0

    def _stopped(self) -> bool:
        return self.stop.is_set() or time.monotonic() >= self.deadline

    def _timeouts(self) -> tuple[float, float]:
        left = self.deadline - time.monotonic()
        if left <= 0 or self.stop.is_set():
            raise StopReading()
        return min(CONNECT_TIMEOUT, left), min(READ_TIMEOUT, left)

    def get(self, url: str, headers: Mapping[str, str], what: str) -> requests.Response:
        """GET ``url`` following redirects under the pack's URL rules; the answer is streamed (read it capped)."""
        for _ in range(MAX_REDIRECTS + 1):
            try:
                check_url_scheme(url, what)
            except ConfigError as exc:
                raise CheckStop(UNKNOWN, f"{exc} The check could not follow it.") from None
            try:
                response = self.session.get(url, headers=dict(headers), stream=True, allow_redirects=False,
                                            timeout=self._timeouts())
            except requests.exceptions.RequestException as exc:
                if self._stopped():
                    raise StopReading() from None
                raise CheckStop(UNKNOWN, f"could not reach {_host(url)} ({_why(exc)}); it may be a passing "
                                "network problem") from None
            if not response.is_redirect:
                return response
            location = response.headers.get("Location", "")
            response.close()
            if not location:
                raise CheckStop(UNKNOWN, f"{_host(url)} answered a redirect without a Location")
            url = urljoin(url, location)
            what = "a redirect of the LoRA URL to"
        raise CheckStop(UNKNOWN, f"the LoRA URL redirects more than {MAX_REDIRECTS} times")

    @contextmanager
    def body(self, response: requests.Response, chunk_size: int) -> Iterator[Iterator[bytes]]:
        """The answer's body in chunks, closed after: stops on Cancel and at the deadline, a broken connection
        is UNKNOWN. The caller counts what it keeps in ``bytes_read``."""

        def chunks() -> Iterator[bytes]:
            for chunk in response.iter_content(chunk_size):
                if self._stopped():
                    raise StopReading()
                yield chunk

        try:
            yield chunks()
        except (requests.exceptions.RequestException, OSError) as exc:
            if self._stopped():
                raise StopReading() from None
            raise CheckStop(UNKNOWN, f"the connection broke while reading ({_why(exc)})") from None
        finally:
            response.close()

    def read(self, response: requests.Response, limit: int) -> bytes:
        """At most ``limit`` bytes of the body; stops on Cancel and at the deadline."""
        chunks: list[bytes] = []
        size = 0
        with self.body(response, min(_CHUNK, max(1, limit))) as body:
            for chunk in body:
                take = chunk[: limit - size]
                chunks.append(take)
                size += len(take)
                self.bytes_read += len(take)
                if size >= limit:
                    break
        return b"".join(chunks)


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or "the host"


def _why(exc: BaseException) -> str:
    text = type(exc).__name__
    if "timeout" in text.lower():
        return "no answer in time"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection refused or failed"
    return text


def status_stop(response: requests.Response, what: str) -> CheckStop:
    """The verdict for an answer that is not the file: refused for 401/403/404, unknown for the rest."""
    status = response.status_code
    code = response.headers.get("X-Error-Code", "")
    if code == "GatedRepo":
        return CheckStop(NO_ACCESS, f"{what} is in a gated Hugging Face repository (its owner must grant access); "
                                    "the API fetches LoRAs without your token, so it cannot download it either")
    if code == "RepoNotFound" or (status == 401 and "huggingface" in response.headers.get("X-Powered-By", "")):
        return CheckStop(NO_ACCESS, f"no public Hugging Face repository holds {what}: it does not exist or is "
                                    "private, and the API, which fetches without your token, cannot read it either")
    if status in (401, 403):
        return CheckStop(NO_ACCESS, f"the host refused to send {what} without a login or token (status {status}); "
                                    "the API fetches LoRAs anonymously, so it cannot download it either")
    if status in (404, 410):
        extra = " in that repository" if code == "EntryNotFound" else ""
        return CheckStop(NOT_FOUND, f"{what} was not found{extra} (status {status})")
    if status in (408, 425, 429) or status >= 500:
        return CheckStop(UNKNOWN, f"the host answered status {status} for {what}; it may be a passing problem")
    return CheckStop(UNKNOWN, f"the host answered status {status} for {what}")


def _content_range(value: str, asked_end: int) -> tuple[int, int, int | None]:
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        raise CheckStop(UNKNOWN, f"its host answered the Range request with Content-Range {value[:60]!r}, which "
                                 "is not a byte range")
    start, end, total = int(match.group(1)), int(match.group(2)), match.group(3)
    size = None if total == "*" else int(total)
    if start != 0 or end < start or end > asked_end or (size is not None and end >= size):
        raise CheckStop(UNKNOWN, f"its host answered the Range request for bytes 0-{asked_end} with Content-Range "
                                 f"{value[:60]!r}, which does not match")
    return start, end, size


def read_head(reader: Reader, url: str, etag: str | None = None) -> FileHead:
    """The file's first 8 + N bytes (its header), in one Range GET or two; ``etag`` asks "changed since?"."""
    first_end = FIRST_READ - 1
    headers = {"Range": f"bytes=0-{first_end}"}
    if etag:
        headers["If-None-Match"] = etag
    response = reader.get(url, headers, "the LoRA URL")
    status = response.status_code
    final_url = response.url or url
    if status == 304:
        response.close()
        return FileHead(b"", None, etag, final_url, not_modified=True)
    if status == 416:
        response.close()
        raise CheckStop(NOT_SAFETENSORS, "the file is empty", cacheable=True)
    if status not in (200, 206):
        stop = status_stop(response, "the file")
        response.close()
        raise stop
    file_etag = response.headers.get("ETag")
    content_type = response.headers.get("Content-Type", "")
    if status == 206:
        _, end, total = _content_range(response.headers.get("Content-Range", ""), first_end)
        data = reader.read(response, end + 1)
        if len(data) != end + 1:
            raise CheckStop(UNKNOWN, f"its host sent {len(data):,} bytes where its Content-Range announced {end + 1:,}")
    else:
        # The host ignored the Range: from the whole file's stream, read only what the header needs.
        declared = response.headers.get("Content-Length", "")
        total = int(declared) if declared.isdigit() else None
        data = _read_head_of_stream(reader, response, total, content_type)
        return FileHead(data, total, file_etag, final_url, bytes_read=reader.bytes_read)
    length = _length(data, total, content_type)
    if 8 + length > len(data):
        data = data + _second_range(reader, final_url, len(data), 8 + length - 1, total, file_etag)
    return FileHead(data, total, file_etag, final_url, bytes_read=reader.bytes_read)


def _length(data: bytes, total: int | None, content_type: str) -> int:
    try:
        return header_length(data, total)
    except NotSafetensors as exc:
        looks = sniff(data, content_type)
        reason = f"it is {looks}, not a safetensors file" if looks else f"it is not a safetensors file ({exc})"
        raise CheckStop(NOT_SAFETENSORS, reason, cacheable=True) from None
    except HeaderTooLong as exc:
        raise CheckStop(UNKNOWN, f"not checked: {exc}", cacheable=True) from None


def _read_head_of_stream(reader: Reader, response: requests.Response, total: int | None,
                         content_type: str) -> bytes:
    """The first 8 + N bytes of a whole-file answer (200), then the connection is closed."""
    data = b""
    wanted: int | None = None
    with reader.body(response, _CHUNK) as body:
        for chunk in body:
            data += chunk
            reader.bytes_read += len(chunk)
            if wanted is None and len(data) >= 8:
                wanted = 8 + _length(data, total, content_type)
            if wanted is not None and len(data) >= wanted:
                return data[:wanted]
    if wanted is None:
        _length(data, len(data), content_type)  # too short: says what it is
    raise CheckStop(NOT_SAFETENSORS, f"the file ends after {len(data):,} bytes, inside its own header",
                    cacheable=True)


def _second_range(reader: Reader, url: str, start: int, end: int, total: int | None, etag: str | None) -> bytes:
    """Bytes ``start``..``end`` of the same file (a header longer than the first read)."""
    headers = {"Range": f"bytes={start}-{end}"}
    if etag:
        headers["If-Range"] = etag
    response = reader.get(url, headers, "the LoRA URL")
    if response.status_code != 206:
        stop = (status_stop(response, "the rest of the header") if response.status_code >= 400 else
                CheckStop(UNKNOWN, "the file changed between two reads, or its host stopped honouring Range"))
        response.close()
        raise stop
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    second_total = None if not match or match.group(3) == "*" else int(match.group(3))
    if (not match or int(match.group(1)) != start or int(match.group(2)) != end
            or (total is not None and second_total is not None and second_total != total)):
        response.close()
        raise CheckStop(UNKNOWN, f"its host answered the Range request for bytes {start}-{end} with Content-Range "
                                 f"{response.headers.get('Content-Range', '')[:60]!r}, which does not match")
    other_etag = response.headers.get("ETag")
    if etag and other_etag and other_etag != etag:
        response.close()
        raise CheckStop(UNKNOWN, "the file changed between two reads")
    data = reader.read(response, end - start + 1)
    if len(data) != end - start + 1:
        raise CheckStop(UNKNOWN, f"its host sent {len(data):,} of the {end - start + 1:,} bytes asked")
    return data


def hf_parts(path: str) -> tuple[str, str | None]:
    """("owner/repo", "file/in/repo" or None) of a Hugging Face name."""
    parts = path.split("/")
    return "/".join(parts[:2]), ("/".join(parts[2:]) or None)


def pick_weights(files: list[str]) -> tuple[str | None, list[str]]:
    """The file the service would load from a repository, as diffusers picks it, and every candidate."""
    candidates = [f for f in files if f.endswith(".safetensors") and not any(w in f for w in _NOT_WEIGHTS)]
    preferred = [f for f in candidates if f.endswith(LORA_WEIGHT_NAME)]
    chosen = (preferred or candidates or [None])[0]
    return chosen, candidates


def hf_file_url(endpoint: str, repo: str, file: str) -> str:
    """Where a repository's file is read: ``{endpoint}/{owner}/{repo}/resolve/main/{file}``."""
    return f"{endpoint}/{repo}/resolve/main/{quote(file)}"


def list_repo(reader: Reader, endpoint: str, repo: str) -> list[str]:
    """The files of a public model repository (``GET {endpoint}/api/models/{owner}/{repo}``), anonymously."""
    response = reader.get(f"{endpoint}/api/models/{repo}", {"Accept": "application/json"},
                          "the Hugging Face endpoint")
    if response.status_code != 200:
        if response.status_code in (401, 403, 404):
            response.close()
            gated = response.headers.get("X-Error-Code") == "GatedRepo"
            if gated:
                raise status_stop(response, f"the repository {repo!r}")
            raise CheckStop(NO_ACCESS if response.status_code != 404 else NOT_FOUND,
                            f"no public Hugging Face repository {repo!r}: it does not exist or is private, and the "
                            "API, which fetches LoRAs without your token, cannot read it either")
        stop = status_stop(response, f"the listing of {repo!r}")
        response.close()
        raise stop
    body = reader.read(response, _LISTING_CAP + 1)
    try:
        info = json.loads(body.decode("utf-8")) if len(body) <= _LISTING_CAP else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("siblings"), list):
        raise CheckStop(UNKNOWN, f"the Hugging Face listing of {repo!r} could not be read")
    if info.get("gated") not in (None, False, "false"):
        raise CheckStop(NO_ACCESS, f"{repo!r} is a gated Hugging Face repository (its owner must grant access); the "
                                   "API fetches LoRAs without your token, so it cannot download it either")
    if info.get("private") is True:
        raise CheckStop(NO_ACCESS, f"{repo!r} is a private Hugging Face repository; the API cannot read it")
    files = []
    for sibling in info["siblings"][:10_000]:
        name = sibling.get("rfilename") if isinstance(sibling, dict) else None
        if isinstance(name, str):
            files.append(name)
    return files


__all__ = ["HEADER_CAP", "CheckStop", "FileHead", "Reader", "StopReading", "anonymous_session", "hf_endpoint",
           "hf_file_url", "hf_parts", "list_repo", "pick_weights", "read_head", "shared_session"]
