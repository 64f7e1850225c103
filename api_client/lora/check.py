"""Checking the LoRAs of one run before anything is sent: ``check_loras``.

Each adapter's safetensors header is read over HTTP (remote.py), judged by the
decision rule (rule.py) and the verdict kept on disk (cache.py). The adapters of a
run are checked at the same time, under one deadline, and the wait stops at once on
Cancel. Refused verdicts become one ``LoraRefusedError`` naming every refused
adapter, what was found and what to do; ``unknown`` is sent with a warning.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from ..errors import Cancelled, InputError, shown_url
from ..http.deadline import Deadline
from ..runtime import runtime
from .cache import VerdictCache, default_check_folder
from .header import NotSafetensors, header_length, parse_header
from .remote import (
    NO_ACCESS,
    NOT_FOUND,
    NOT_SAFETENSORS,
    CheckStop,
    Reader,
    StopReading,
    hf_endpoint,
    hf_file_url,
    hf_parts,
    list_repo,
    pick_weights,
    read_head,
    shared_session,
)
from .rule import NOT_A_LORA, OK, OTHER_MODEL, UNKNOWN, classify
from .switch import SWITCH_ENV, check_enabled

log = logging.getLogger("flux2_lora")

OFF = "off"  # the check is turned off: nothing was asked
REFUSED = frozenset({OTHER_MODEL, NOT_A_LORA, NOT_SAFETENSORS, NOT_FOUND, NO_ACCESS})
DEADLINE_SECONDS = 20.0
_POLL = 0.05
_WORKERS = 6
_CACHEABLE = frozenset({OK, UNKNOWN, OTHER_MODEL, NOT_A_LORA, NOT_SAFETENSORS})

_TO_DO = {
    OTHER_MODEL: "Use a version of this LoRA trained for FLUX.2 [dev], or remove the adapter.",
    NOT_A_LORA: "Give the LoRA file itself (a .safetensors holding lora_A/lora_B or lora_down/lora_up weights), "
                "not a model.",
    NOT_SAFETENSORS: "Give the direct link to a .safetensors file (on Hugging Face: owner/repo/file.safetensors or "
                     "https://huggingface.co/owner/repo/resolve/main/file.safetensors).",
    NOT_FOUND: "Check the path's spelling (Hugging Face: owner/repo or owner/repo/file.safetensors).",
    NO_ACCESS: "Use a public copy of the file (the API cannot log in anywhere).",
}


class LoraRefusedError(InputError):
    """A run refused before sending because a LoRA would not work with FLUX.2 [dev] (nothing billed)."""

    def __init__(self, message: str, checks: Sequence[LoraCheck]) -> None:
        super().__init__(message)
        self.checks = list(checks)


@dataclass(frozen=True)
class LoraCheck:
    """The check of one adapter; ``to_info()`` is its entry in the node's info output."""

    path: str
    verdict: str
    model: str | None = None
    format: str | None = None
    rank: int | None = None
    bytes: int | None = None
    reason: str = ""
    file: str | None = None  # the repository file checked, for a Hugging Face owner/repo
    note: str = ""  # e.g. which of several files was checked
    cached: bool = False

    @property
    def refused(self) -> bool:
        return self.verdict in REFUSED

    def to_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"path": self.path, "verdict": self.verdict, "model": self.model,
                                "format": self.format, "rank": self.rank, "bytes": self.bytes}
        if self.file:
            info["file"] = self.file
        if self.verdict != OK and self.reason:
            info["reason"] = self.reason
        if self.note:
            info["note"] = self.note
        return info

    def line(self) -> str:
        """The Adapter node's line: what the file is, or why it will be refused."""
        if self.verdict == OK:
            parts = ["FLUX.2 [dev] LoRA"]
            if self.rank:
                parts.append(f"rank {self.rank}")
            if self.bytes:
                parts.append(_size(self.bytes))
            if self.format:
                parts.append(self.format)
            if self.file and self.note:
                parts.append(self.file)
            return " · ".join(parts) + (f" ({self.note})" if self.note else "")
        if self.verdict == OFF:
            return f"LoRA not checked: {self.reason}"
        if self.verdict == UNKNOWN:
            return f"Not recognised, will be sent anyway: {self.reason}."
        return f"Will be refused: {self.reason}. {_TO_DO.get(self.verdict, '')}".strip()

    def short_line(self) -> str:
        """The Adapter node's line, short enough for the node's width (``line()`` has the details)."""
        if self.verdict in (OK, OFF):
            return self.line() if self.verdict == OK else "LoRA check off"
        if self.verdict == UNKNOWN:
            return "Not recognised: will be sent anyway"
        if self.verdict == OTHER_MODEL:
            return f"Will be refused: a LoRA for {self.model or 'another model'}"
        if self.verdict == NOT_A_LORA:
            return "Will be refused: a checkpoint, not a LoRA" if self.format == "checkpoint" else \
                "Will be refused: not a LoRA"
        if self.verdict == NOT_SAFETENSORS:
            return "Will be refused: an HTML page, not the file" if "HTML page" in self.reason else \
                "Will be refused: not a safetensors file"
        if self.verdict == NOT_FOUND:
            return "Will be refused: not found"
        return "Will be refused: gated, needs a login" if "gated" in self.reason else \
            "Will be refused: private, or needs a login"

    def warning(self) -> str:
        return f"LoRA {shown_url(self.path)!r} not recognised as FLUX.2 [dev] (sent anyway): {self.reason}"


def _size(total: int) -> str:
    return f"{total / 1e6:,.0f} MB" if total >= 1_000_000 else f"{total / 1e3:,.0f} kB"


def _cache_key(path: str, endpoint: str | None) -> str:
    return path if "://" in path else f"hf:{endpoint}/{path}"


def _from_entry(path: str, entry: Mapping[str, Any]) -> LoraCheck:
    fields = {k: entry.get(k) for k in ("verdict", "model", "format", "rank", "bytes", "reason", "file", "note")}
    fields["reason"] = fields["reason"] or ""
    fields["note"] = fields["note"] or ""
    return LoraCheck(path=path, cached=True, **fields)


def _entry(result: LoraCheck, etag: str | None) -> dict[str, Any]:
    entry = {k: v for k, v in asdict(result).items() if k not in ("path", "cached")}
    entry["etag"] = etag
    return entry


def check_one(path: str, reader: Reader, endpoint: str | None, cache: VerdictCache | None) -> LoraCheck:
    """Check one adapter (a https URL or a Hugging Face name); CheckStop is turned into its verdict here."""
    key = _cache_key(path, endpoint)
    entry, fresh = cache.get(key) if cache is not None else (None, False)
    if entry is not None and fresh:
        return _from_entry(path, entry)
    file: str | None = None
    note = ""
    try:
        if "://" in path:
            url = path
        else:
            repo, file = hf_parts(path)
            if file is None:
                files = list_repo(reader, str(endpoint), repo)
                file, candidates = pick_weights(files)
                if file is None:
                    found = f" (it has {', '.join(files[:4])}{', ...' if len(files) > 4 else ''})" if files else ""
                    raise CheckStop(NOT_SAFETENSORS, f"the repository {repo!r} holds no .safetensors file{found}")
                if len(candidates) > 1:
                    note = (f"{len(candidates)} .safetensors files in {repo}; checked {file}, the one the API loads "
                            f"first; write {repo}/<file> to choose another")
            elif "." not in file.rsplit("/", 1)[-1]:
                raise CheckStop(UNKNOWN, f"{file!r} is not a file name, so it was not checked")
            url = hf_file_url(str(endpoint), repo, file)
        same_file = entry is not None and entry.get("file") == file
        head = read_head(reader, url, entry.get("etag") if same_file and entry else None)
        if head.not_modified and entry is not None:
            if cache is not None:
                cache.put(key, entry)  # unchanged: good for another day
            return _from_entry(path, entry)
        try:
            length = header_length(head.data, head.total)
            header = parse_header(head.data, length, head.total)
        except NotSafetensors as exc:
            raise CheckStop(NOT_SAFETENSORS, f"it is not a valid safetensors file: {exc}", cacheable=True) from None
        finding = classify(header.tensors, header.metadata)
        result = LoraCheck(path, finding.verdict, finding.model, finding.format, finding.rank, head.total,
                           finding.reason, file, note)
        if cache is not None and result.verdict in _CACHEABLE:
            cache.put(key, _entry(result, head.etag))
        return result
    except CheckStop as stop:
        result = LoraCheck(path, stop.verdict, reason=stop.reason, file=file, note=note)
        if cache is not None and stop.cacheable:
            cache.put(key, _entry(result, None))
        return result


def _pool() -> ThreadPoolExecutor:
    return runtime().pool("lora-check", _WORKERS)


def _lora_path(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        return str(item["path"])
    return str(item.path)


def check_loras(loras: Sequence[Any], *, cancel: threading.Event | None = None,
                check_cancel: Callable[[], None] | None = None, deadline_seconds: float = DEADLINE_SECONDS,
                cache: VerdictCache | bool | None = True, folder: Path | None = None,
                session: requests.Session | None = None, environ: Mapping[str, str] | None = None,
                enabled: bool | None = None) -> list[LoraCheck]:
    """Check every adapter of ``loras`` (Lora objects, {"path"} dicts or paths) at the same time, in order.

    Returns one LoraCheck per adapter; never raises for what a host answers (see
    ``refuse_if_needed``). Stops waiting at once when ``cancel`` is set or
    ``check_cancel`` raises (that error, or Cancelled, goes on). Adapters without
    an answer by the deadline are ``unknown``. ``folder`` holds the setting and the
    verdict cache (``<ComfyUI user folder>/flux2_lora``; None outside ComfyUI: the
    environment decides and verdicts go to the per-user cache folder); ``cache=False`` keeps nothing.
    """
    paths = [_lora_path(item) for item in loras]
    if not paths:
        return []
    if enabled is None:
        enabled, source = check_enabled(folder, environ)
    else:
        source = "the caller"
    if not enabled:
        return [LoraCheck(path, OFF, reason=f"the check is off (from {source})") for path in paths]
    endpoint = hf_endpoint(environ) if any("://" not in p for p in paths) else None
    verdicts = VerdictCache(default_check_folder(folder, environ)) if cache is True else (cache or None)
    stop = threading.Event()
    deadline = time.monotonic() + deadline_seconds
    chosen = session or shared_session()

    def work(path: str) -> LoraCheck | None:
        reader = Reader(chosen, deadline, stop)
        try:
            with Deadline(at=deadline):
                return check_one(path, reader, endpoint, verdicts)
        except StopReading:
            if stop.is_set():
                return None
            return LoraCheck(path, UNKNOWN, reason=f"no answer within {deadline_seconds:g} s")

    unique = list(dict.fromkeys(paths))
    futures: dict[str, Future] = {path: _pool().submit(work, path) for path in unique}
    results: dict[str, LoraCheck] = {}
    try:
        pending = set(futures.values())
        while pending:
            if cancel is not None and cancel.is_set():
                raise Cancelled("Cancelled while checking the LoRAs.")
            if check_cancel is not None:
                check_cancel()
            left = deadline - time.monotonic()
            if left <= -1.0:  # the workers' own deadline fired a second ago: stop waiting for them
                break
            _, pending = wait(pending, timeout=min(_POLL, max(left + 1.0, 0.0)), return_when=FIRST_COMPLETED)
    finally:
        if any(not f.done() for f in futures.values()):
            stop.set()
    for path, future in futures.items():
        result = future.result() if future.done() and not future.cancelled() and not future.exception() else None
        if future.done() and future.exception() is not None:
            log.warning("Flux2 LoRA: the check of %r failed: %s", shown_url(path), type(future.exception()).__name__)
            result = LoraCheck(path, UNKNOWN, reason=f"the check failed ({type(future.exception()).__name__})")
        results[path] = result or LoraCheck(path, UNKNOWN, reason=f"no answer within {deadline_seconds:g} s")
    return [results[path] for path in paths]


def refusal_message(checks: Sequence[LoraCheck]) -> str | None:
    """The error for the refused adapters of a run (None if none is refused)."""
    refused = [(i, c) for i, c in enumerate(checks, 1) if c.refused]
    if not refused:
        return None
    lines = [f"Not sent, nothing billed: {len(refused)} of {len(checks)} LoRA{'s' if len(checks) > 1 else ''} "
             "cannot work with FLUX.2 [dev]."]
    for i, check in refused:
        checked = f" (checked {check.file})" if check.file and "://" not in check.path and check.note else ""
        lines.append(f"- loras[{i}] {shown_url(check.path)!r}{checked}: {check.reason}. "
                     f"{_TO_DO.get(check.verdict, '')}".strip())
    lines.append(f"If you are sure, turn the check off (Settings → Flux2 LoRA → Check LoRAs, or {SWITCH_ENV}=0).")
    return "\n".join(lines)


def refuse_if_needed(checks: Sequence[LoraCheck]) -> None:
    """Raise LoraRefusedError when any adapter is refused."""
    message = refusal_message(checks)
    if message:
        raise LoraRefusedError(message, checks)
