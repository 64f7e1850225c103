"""The stand-in's model deprecations feed: ``GET /v1/models/deprecations`` (model-deprecations.md).

The entries are scriptable (``POST /_standin/config {"deprecations": [...]}``); by default the
docs' example, none of the pack's models. ``status``/``since`` filters fail open, a weak ``ETag``
over ``data`` answers ``304``, no key is needed. A generation POST for a ``withdrawn`` model (by
id or alias) answers ``404`` (see ``withdrawn``).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from .answers import Answer, iso_time, json_answer, merged

DEFAULT_DEPRECATIONS = (
    {"id": "openai/gpt-5.3-chat", "aliases": ["gpt-5.3-chat"], "status": "withdrawn", "deprecated_at": "2026-08-10",
     "shutdown_at": "2026-08-10", "replaced_by": "openai/gpt-5.3-codex", "reason": "provider_delisted"},
)
DEPRECATION_STATUSES = ("deprecated", "superseded", "withdrawn")
_DEPRECATION_FIELDS = ("id", "aliases", "status", "deprecated_at", "shutdown_at", "replaced_by", "reason")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def check_deprecations(entries: Any) -> list[dict[str, Any]]:
    """Entries for the deprecations feed, each with the docs' seven fields (ValueError if malformed)."""
    if not isinstance(entries, list):
        raise ValueError("deprecations must be a list of entries")
    checked = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise ValueError("each deprecation entry must be an object with an 'id' string")
        unknown = set(entry) - set(_DEPRECATION_FIELDS)
        if unknown:
            raise ValueError(f"unknown deprecation entry keys {sorted(unknown)}; known: {_DEPRECATION_FIELDS}")
        if entry.get("status") not in DEPRECATION_STATUSES:
            raise ValueError(f"deprecation status must be one of {DEPRECATION_STATUSES}; got {entry.get('status')!r}")
        aliases = entry.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise ValueError("deprecation 'aliases' must be a list of strings")
        for name in ("deprecated_at", "shutdown_at"):
            if entry.get(name) is not None and not (isinstance(entry[name], str) and _DATE.match(entry[name])):
                raise ValueError(f"deprecation {name!r} must be YYYY-MM-DD or null")
        checked.append({"id": entry["id"], "aliases": list(aliases), "status": entry["status"],
                        "deprecated_at": entry.get("deprecated_at"),
                        "shutdown_at": None if entry["status"] == "superseded" else entry.get("shutdown_at"),
                        "replaced_by": entry.get("replaced_by"), "reason": entry.get("reason")})
    return checked


class DeprecationsFeed:
    """The feed's entries and its answers; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Back to the default entries."""
        with self._lock:
            self._entries: list[dict[str, Any]] = [dict(e) for e in DEFAULT_DEPRECATIONS]

    def replace(self, entries: list[dict[str, Any]]) -> None:
        """Serve ``entries`` from now on (already checked by ``check_deprecations``)."""
        with self._lock:
            self._entries = entries

    def entries(self) -> list[dict[str, Any]]:
        """A copy of the entries served now."""
        with self._lock:
            return [dict(e) for e in self._entries]

    def withdrawn(self, model: Any) -> dict[str, Any] | None:
        """The withdrawn entry naming ``model`` by id or alias, or None (its generation POST answers 404)."""
        for entry in self.entries():
            if entry["status"] == "withdrawn" and model in (entry["id"], *entry["aliases"]):
                return entry
        return None

    def answer(self, query: str, headers: dict[str, str], fault: dict[str, Any]) -> Answer:
        """GET /v1/models/deprecations (no key needed): filters fail open, weak ETag over ``data``, 304."""
        params = parse_qs(query, keep_blank_values=True)
        wanted = {part.strip().lower() for value in params.get("status", []) for part in value.split(",")}
        wanted &= set(DEPRECATION_STATUSES)  # unknown values are ignored; none left: no filter
        since = params.get("since", [""])[0]
        since = since if _DATE.match(since) else ""  # a malformed value is ignored
        data = [e for e in self.entries() if (not wanted or e["status"] in wanted)
                and (not since or any(d and d >= since for d in (e["deprecated_at"], e["shutdown_at"])))]
        data_bytes = json.dumps(data, sort_keys=True).encode("utf-8")
        etag = f'W/"{hashlib.sha1(data_bytes).hexdigest()[:27]}"'
        cache = {"ETag": etag, "Cache-Control": "public, max-age=300"}
        if headers.get("if-none-match") == etag:
            return Answer(304, b"", "application/json", cache)
        answer = json_answer(200, merged({"object": "list", "generated_at": iso_time(time.time()), "data": data},
                                         fault.get("answer")))
        answer.headers.update(cache)
        return answer
