"""A model that retires without surprises: the API's deprecations feed (model-deprecations.md).

``GET {API root}/v1/models/deprecations`` needs no key and lists models that are retiring
(``deprecated``), were folded into another (``superseded``) or are gone (``withdrawn``:
their requests answer 404). The pack reads it before a run sends anything and matches its
model against every entry's ``id`` **and** ``aliases`` together, as the docs insist:

- ``deprecated`` / ``superseded``: the run is sent; the info output carries ``model_notice``
  (the status, the shutdown date if any, the replacement), and the node shows it;
- ``withdrawn``: the run is refused before anything is sent (``ModelWithdrawnError``),
  naming the replacement.

The feed is kept on disk (``<user>/flux2_lora/deprecations.json``, else
``$XDG_CACHE_HOME/flux2-lora/deprecations.json``) with its ``ETag`` and asked again at most
once a day (``If-None-Match``: a ``304`` keeps what is on disk); after a failed ask, not again
for ``RETRY_SECONDS``. A feed that cannot be had never stops a run: the last copy on disk is
used, or none.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import Flux2Error
from ..http.transport import Transport
from ..runtime import kept_file_path, runtime
from .service import ServiceUnavailable, service_get

log = logging.getLogger("flux2_lora")

DEPRECATIONS_PATH = "/v1/models/deprecations"
DEPRECATIONS_FILE = "deprecations.json"
REFRESH_SECONDS = 24 * 3600
RETRY_SECONDS = 300
STATUSES = ("deprecated", "superseded", "withdrawn")


class ModelWithdrawnError(Flux2Error):
    """The model was withdrawn by the API (its requests answer 404): the run is not sent."""


@dataclass(frozen=True)
class ModelNotice:
    """One feed entry that names the pack's model."""

    model: str
    entry_id: str
    status: str
    deprecated_at: str | None
    shutdown_at: str | None
    replaced_by: str | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "status": self.status, "shutdown_at": self.shutdown_at,
                "replaced_by": self.replaced_by, "deprecated_at": self.deprecated_at, "reason": self.reason,
                "text": self.text()}

    def text(self) -> str:
        """One line for the node and the info output."""
        instead = f"; the API names {self.replaced_by} as its replacement" if self.replaced_by else ""
        if self.status == "withdrawn":
            return f"Model {self.model} was withdrawn by the AI/ML API (its requests answer 404){instead}."
        if self.status == "superseded":
            target = self.replaced_by or "another model"
            return f"Model {self.model} is superseded: it now runs as {target}; switch when convenient."
        when = f" on {self.shutdown_at}" if self.shutdown_at else " (no shutdown date announced yet)"
        return f"Model {self.model} is deprecated and shuts down{when}{instead}."


def _text(value: Any, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def match(model: str, entries: Any) -> ModelNotice | None:
    """The entry naming ``model`` by its ``id`` or any of its ``aliases`` (never ``id`` alone), or None.

    A name matches exactly (case aside), and an entry listing the model's short name
    (``flux-2-lora`` for ``blackforestlabs/flux-2-lora``) names it too; an entry of an unknown
    status is ignored.
    """
    wanted = {model.lower(), model.lower().split("/")[-1]}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("status") not in STATUSES:
            continue
        aliases = entry.get("aliases")
        names = {str(n).lower() for n in [entry.get("id"), *(aliases if isinstance(aliases, list) else [])]
                 if isinstance(n, str) and n}
        if wanted & names:
            return ModelNotice(model, str(entry.get("id")), entry["status"], _text(entry.get("deprecated_at")),
                               _text(entry.get("shutdown_at")), _text(entry.get("replaced_by")),
                               _text(entry.get("reason")))
    return None


# The feed's file, ``default_deprecations_path(user_dir, environ)``: in ComfyUI's user folder, else the cache folder.
default_deprecations_path = partial(kept_file_path, DEPRECATIONS_FILE)


class DeprecationFeed:
    """The deprecations feed on disk, asked at most daily (with its ETag); thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._ask_lock = threading.Lock()
        self._failed_at = -float("inf")
        self.problem = ""

    def _load(self) -> dict[str, Any]:
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # no file yet, or a damaged one: asked again
        return state if isinstance(state, dict) else {}

    def _save(self, state: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, delete=False, suffix=".tmp",
                                             encoding="utf-8") as fh:
                json.dump(state, fh)
            os.replace(fh.name, self.path)
        except OSError as exc:
            log.warning("deprecations feed not kept in %s: %s", self.path, exc.strerror or exc)

    def entries(self, client: Transport | None, now: float | None = None, cancel: Any = None) -> list[Any]:
        """The feed's entries: from disk if asked within a day, else asked; [] when none can be had."""
        now = time.time() if now is None else now
        state = self._load()
        fetched = state.get("fetched_at")
        fresh = isinstance(fetched, (int, float)) and 0 <= now - fetched < REFRESH_SECONDS
        with self._lock:
            recently_failed = now - self._failed_at < RETRY_SECONDS
        if fresh or client is None or recently_failed:
            return state.get("data") if isinstance(state.get("data"), list) else []
        with self._ask_lock:  # one ask at a time; the others then read what it found
            state = self._load()
            fetched = state.get("fetched_at")
            if isinstance(fetched, (int, float)) and 0 <= now - fetched < REFRESH_SECONDS:
                return state.get("data") if isinstance(state.get("data"), list) else []
            return self._ask(client, state, now, cancel)

    def _ask(self, client: Transport, state: dict[str, Any], now: float, cancel: Any) -> list[Any]:
        old = state.get("data") if isinstance(state.get("data"), list) else None
        etag = state.get("etag") if isinstance(state.get("etag"), str) and old is not None else None
        try:
            answer = service_get(client, DEPRECATIONS_PATH, None, {"If-None-Match": etag} if etag else {},
                                 accept_not_modified=etag is not None, cancel=cancel, send_key=False)
            if answer.status == 304:
                data = old or []
            else:
                data = answer.payload.get("data") if isinstance(answer.payload, dict) else None
                if not isinstance(data, list):
                    raise ServiceUnavailable(f"{DEPRECATIONS_PATH} answered JSON without a list of entries",
                                             permanent=True)
                tag = answer.headers.get("etag")
                etag = tag if isinstance(tag, str) and 0 < len(tag) <= 200 and tag.isprintable() else None
        except ServiceUnavailable as exc:
            with self._lock:
                self._failed_at = now
                self.problem = exc.reason
            log.warning("model deprecations feed unavailable (the run goes on): %s", exc.reason)
            return old or []
        self._save({"data": data, "etag": etag, "fetched_at": now})
        with self._lock:
            self.problem = ""
        return data

    def notice(self, model: str, client: Transport | None, cancel: Any = None) -> ModelNotice | None:
        """What the feed says of ``model`` (by id and aliases), or None; never raises for a feed problem."""
        try:
            return match(model, self.entries(client, cancel=cancel))
        except ServiceUnavailable:
            return None


def deprecation_feed(path: Path) -> DeprecationFeed:
    """One feed per file in this process (a part of the runtime)."""
    return runtime().part(("deprecations feed", Path(path)), lambda: DeprecationFeed(Path(path)))


def check_models(feed: DeprecationFeed, client: Transport | None, models: list[str],
                 cancel: Any = None) -> list[ModelNotice]:
    """The notices for the models a run is about to send; ``ModelWithdrawnError`` for a withdrawn one."""
    notices: list[ModelNotice] = []
    for model in dict.fromkeys(models):
        notice = feed.notice(model, client, cancel)
        if notice is None:
            continue
        if notice.status == "withdrawn":
            instead = (f"Switch to {notice.replaced_by}" if notice.replaced_by else "Switch to another model")
            raise ModelWithdrawnError(
                f"Model {model} was withdrawn by the AI/ML API on {notice.shutdown_at or 'an unannounced date'} "
                f"(its deprecations feed, entry {notice.entry_id}): its requests answer 404, so this node's requests "
                f"were not sent and nothing was billed. {instead}, or update the Flux2 LoRA pack.")
        notices.append(notice)
    return notices
