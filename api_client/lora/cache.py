"""The verdicts of earlier checks, kept on disk per LoRA path, so a second run reads nothing again.

Apart from the result cache (``FLUX2_LORA_CACHE=0`` does not turn it off): one small
JSON file, written whole by an atomic rename. An entry is used without asking the
host for a day; after that the check asks the host whether the file changed (its
ETag), and reads the header again only if it did. Only what the file's own bytes
showed is kept: a 404, a refused login or a host that did not answer is asked again
next run. A damaged file counts as empty; nothing here ever fails a run.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..runtime import runtime, settings_for

log = logging.getLogger("flux2_lora")

FILE_NAME = "lora_checks.json"
FRESH_SECONDS = 24 * 3600.0
MAX_ENTRIES = 1000
_MAX_FILE_BYTES = 4 * 1024 * 1024
_LAYOUT = 1


class _FileLocks:
    """One lock per verdict file for the process (a part of the runtime): concurrent runs each open their own
    cache."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.locks: dict[str, threading.Lock] = {}

    def of(self, path: Path) -> threading.Lock:
        with self.lock:
            return self.locks.setdefault(str(path.resolve()), threading.Lock())


def default_check_folder(folder: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """``folder`` (ComfyUI's ``user/flux2_lora``) when known, else ``$XDG_CACHE_HOME/flux2-lora-checks``."""
    if folder is not None:
        return Path(folder)
    return settings_for(environ).cache_home / "flux2-lora-checks"


class VerdictCache:
    """Verdicts by key (the path, with the Hugging Face endpoint for names); safe across threads."""

    def __init__(self, folder: Path | str, fresh_seconds: float = FRESH_SECONDS) -> None:
        self.path = Path(folder) / FILE_NAME
        self.fresh_seconds = fresh_seconds
        self._lock = runtime().part("lora cache locks", _FileLocks).of(self.path)

    def __repr__(self) -> str:
        return f"VerdictCache({str(self.path)!r})"

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            if self.path.stat().st_size > _MAX_FILE_BYTES:
                return {}
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("Flux2 LoRA: the LoRA check's cache %s is unreadable (%s); checking again", self.path,
                        type(exc).__name__)
            return {}
        if not isinstance(data, dict) or data.get("layout") != _LAYOUT or not isinstance(data.get("entries"), dict):
            return {}
        return {k: v for k, v in data["entries"].items() if isinstance(v, dict)}

    def get(self, key: str) -> tuple[dict[str, Any] | None, bool]:
        """(the entry or None, whether it is fresh enough to use without asking the host)."""
        with self._lock:
            entry = self._load().get(key)
        if entry is None:
            return None, False
        age = time.time() - float(entry.get("checked_at", 0) or 0)
        return entry, 0 <= age < self.fresh_seconds

    def put(self, key: str, entry: Mapping[str, Any]) -> None:
        """Keep ``entry`` for ``key`` (stamped now); the oldest entries go past ``MAX_ENTRIES``."""
        with self._lock:
            entries = self._load()
            entries[key] = {**entry, "checked_at": time.time()}
            if len(entries) > MAX_ENTRIES:
                ordered = sorted(entries.items(), key=lambda item: float(item[1].get("checked_at", 0) or 0))
                entries = dict(ordered[-MAX_ENTRIES:])
            self._save(entries)

    def _save(self, entries: dict[str, dict[str, Any]]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(prefix=".lora_checks-", suffix=".tmp", dir=self.path.parent)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump({"layout": _LAYOUT, "entries": entries}, out, indent=1, sort_keys=True)
            os.replace(temp, self.path)
        except OSError as exc:
            log.warning("Flux2 LoRA: could not save the LoRA check's cache %s (%s)", self.path, exc.strerror)
