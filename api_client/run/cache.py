"""A persistent cache of generated pictures, so the same request is never paid for twice.

An entry holds one request's pictures exactly as the API delivered them (PNG,
JPEG or WebP bytes) and a small manifest. Its key is the SHA-256 of the
canonical JSON of the API base URL and the request body: model, prompt, seed,
size, LoRAs and every other setting. The API key is never part of it, so the
cache folder holds no secret; the base URL is, so pictures from the local
stand-in server never answer a request meant for the real API.

Layout: ``<folder>/v1/<key>/manifest.json`` beside ``0.png``, ``1.png``, ... An
entry is written into a private temporary folder and appears by one rename, so
readers only ever see complete entries, also across processes sharing the
folder. Readers check the manifest and every file's size and SHA-256: anything
damaged counts as a miss, is removed and gets written again. The manifest's
modification time is the entry's last use; after each write the least recently
used entries are removed until the folder is within its size limit.

Nothing here ever fails a generation: a cache that cannot be read or written
is a miss and a logged warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..images.decode import sniff_format
from ..runtime import current_settings, runtime
from ..settings import (
    CACHE_NAMES,
    DEFAULT_CACHE_MAX_BYTES,
    Settings,
    parse_size,  # noqa: F401 - re-exported: the cache size is read here
)

log = logging.getLogger("flux2_lora")

DEFAULT_MAX_BYTES = DEFAULT_CACHE_MAX_BYTES
LAYOUT = "v1"
MANIFEST = "manifest.json"
_MANIFEST_MAX_BYTES = 64 * 1024
_STALE_TEMP_SECONDS = 3600.0
_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
_FILE_NAME = re.compile(r"^[0-9]{1,2}\.(png|jpg|webp|bin)$")
_KEY = re.compile(r"^[0-9a-f]{64}$")


def cache_key(base_url: str, body: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of the base URL and the request body; never the API key."""
    material = {"api": base_url.rstrip("/"), "request": body}
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def default_cache_folder(settings: Settings | None = None) -> Path:
    """The per-user cache folder outside ComfyUI: ``$XDG_CACHE_HOME/flux2-lora`` (``~/.cache/...``)."""
    return (settings or current_settings()).cache_home / "flux2-lora"


def open_result_cache(default_folder: Path | None = None,
                      environ: Mapping[str, str] | None = None) -> ResultCache | None:
    """The cache as configured by the environment, or None when it is switched off.

    Folder: env ``FLUX2_LORA_CACHE_DIR``, else ``default_folder`` (ComfyUI's user
    folder, passed in by the nodes), else the per-user cache folder. Size limit:
    env ``FLUX2_LORA_CACHE_MAX_BYTES`` (default 2 GiB). ``FLUX2_LORA_CACHE=0``
    (or false/no/off) switches the cache off. ``environ``: read these instead of the process's settings.
    """
    settings = current_settings() if environ is None else Settings.read(environ)
    if not settings.cache_on:
        return None
    settings.check(*CACHE_NAMES)
    return ResultCache(settings.cache_dir or default_folder or default_cache_folder(settings), settings.cache_max_bytes)


@dataclass(frozen=True)
class CachedResult:
    """One request's pictures from the cache, as compressed bytes in batch order."""

    pictures: list[bytes]
    credits_used: float | None


class _Saves:
    """Saving happens on one background thread, after the node has its pictures: the files, checksums
    and eviction scan then cost the user no wall time. The thread is not a daemon, so Python finishes
    queued saves before the process exits. One per process (a part of the runtime)."""

    def __init__(self) -> None:
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="flux2-lora-cache")  # its thread starts with a save
        self.lock = threading.Lock()
        self.pending: dict[Path, Future] = {}


def _saves() -> _Saves:
    return runtime().part("cache saves", _Saves)


def _save_in_background(entry: Path, save: Any) -> Future:
    saves = _saves()
    with saves.lock:
        future = saves.writer.submit(save)
        saves.pending[entry] = future
    future.add_done_callback(lambda done: _forget(saves, entry, done))
    return future


def _forget(saves: _Saves, entry: Path, done: Future) -> None:
    with saves.lock:
        if saves.pending.get(entry) is done:
            del saves.pending[entry]


def wait_for_pending_saves(entry: Path | None = None, timeout: float | None = 60.0) -> None:
    """Wait until background saves (of ``entry``, or all of them) are on disk."""
    saves = _saves()
    with saves.lock:
        futures = [f for path, f in saves.pending.items() if entry is None or path == entry]
    wait(futures, timeout=timeout)


class ResultCache:
    """Pictures of past requests on disk, keyed by ``cache_key``; safe to share between threads and processes."""

    def __init__(self, folder: Path | str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = Path(folder)
        self.root = self.folder / LAYOUT
        self.max_bytes = max_bytes

    def __repr__(self) -> str:
        return f"ResultCache({str(self.folder)!r}, max_bytes={self.max_bytes})"

    def _entry(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError("a cache key is 64 lowercase hex digits")
        return self.root / key

    # -- reading -----------------------------------------------------------

    def load(self, key: str, count: int | None = None) -> CachedResult | None:
        """The entry for ``key`` if it is complete and undamaged (and holds ``count`` pictures); else None.

        A hit marks the entry as just used. A damaged entry is removed, so the
        next store writes it afresh.
        """
        entry = self._entry(key)
        wait_for_pending_saves(entry)  # a save this process queued a moment ago is a hit, not a miss
        try:
            result = _read_entry(entry, count)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("The result cache at %s cannot be read (%s); generating instead.", self.folder, exc)
            return None
        except _Damaged as exc:
            log.info("Cache entry %s is damaged (%s); treated as a miss and written again.", key[:12], exc)
            _discard(entry)
            return None
        try:
            os.utime(entry / MANIFEST)
        except OSError:
            pass  # a read-only cache still serves hits
        return result

    # -- writing -----------------------------------------------------------

    def store(self, key: str, pictures: Sequence[bytes], credits_used: float | None = None) -> bool:
        """Save one request's pictures atomically; True if the entry is in the cache afterwards.

        Two writers of the same key both finish without error; the first complete
        entry stays. Entries larger than the whole cache are not stored.
        """
        entry = self._entry(key)
        if not pictures or sum(len(p) for p in pictures) > self.max_bytes:
            return False
        temp: Path | None = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            temp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=self.root))
            _write_entry(temp, pictures, credits_used)
            if not _publish(temp, entry, len(pictures)):
                return False
        except OSError as exc:
            log.warning("Could not save pictures to the result cache at %s: %s", self.folder, exc)
            return False
        finally:
            if temp is not None:  # gone after a successful rename; left over when another writer was first
                shutil.rmtree(temp, ignore_errors=True)
        self.evict(keep=key)
        return True

    def store_later(self, key: str, pictures: Sequence[bytes], credits_used: float | None = None) -> Future:
        """``store`` on the background thread (done when the future is); ``load`` of the same key waits for it."""
        pictures = list(pictures)
        return _save_in_background(self._entry(key), lambda: self.store(key, pictures, credits_used))

    # -- size limit ----------------------------------------------------------

    def evict(self, keep: str | None = None) -> int:
        """Remove least recently used entries until the cache is within ``max_bytes``; returns bytes left."""
        entries: list[tuple[float, str, int]] = []
        total = 0
        try:
            items = list(os.scandir(self.root))
        except OSError:
            return 0
        now = time.time()
        for item in items:
            if item.name.startswith("."):
                _remove_leftover(item, now)
                continue
            measured = _measure(item)
            if measured is not None:
                total += measured[1]
                entries.append((measured[0], item.name, measured[1]))
        for _, name, size in sorted(entries):
            if total <= self.max_bytes:
                break
            if name != keep and _discard(self.root / name):
                total -= size
        return total


class _Damaged(Exception):
    pass


def _read_entry(entry: Path, count: int | None) -> CachedResult:
    with open(entry / MANIFEST, "rb") as handle:
        raw = handle.read(_MANIFEST_MAX_BYTES + 1)
    if len(raw) > _MANIFEST_MAX_BYTES:
        raise _Damaged("manifest too large")
    try:
        manifest = json.loads(raw)
        files = manifest["files"]
        credits = manifest.get("credits_used")
        checks = [(f["name"], int(f["bytes"]), str(f["sha256"])) for f in files]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise _Damaged("unreadable manifest") from None
    if manifest.get("layout") != LAYOUT or not checks or (count is not None and len(checks) != count):
        raise _Damaged("unexpected manifest")
    pictures = []
    for name, size, digest in checks:
        if not isinstance(name, str) or not _FILE_NAME.match(name):
            raise _Damaged("bad file name in manifest")
        try:
            with open(entry / name, "rb") as handle:
                data = handle.read(size + 1)
        except FileNotFoundError:
            if not (entry / MANIFEST).exists():
                raise  # evicted or replaced while being read: a plain miss
            raise _Damaged(f"{name} is missing") from None
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            raise _Damaged(f"{name} does not match its checksum")
        pictures.append(data)
    credits_used = float(credits) if isinstance(credits, (int, float)) and not isinstance(credits, bool) else None
    return CachedResult(pictures, credits_used)


def _write_entry(folder: Path, pictures: Sequence[bytes], credits_used: float | None) -> None:
    files = []
    for i, data in enumerate(pictures):
        name = f"{i}.{_EXTENSIONS.get(sniff_format(data) or '', 'bin')}"
        (folder / name).write_bytes(data)
        files.append({"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {"layout": LAYOUT, "created": time.time(), "count": len(files),
                "credits_used": credits_used, "files": files}
    # Written last: a folder without a manifest is never a valid entry.
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")


def _publish(temp: Path, entry: Path, count: int) -> bool:
    """Rename the finished ``temp`` folder into place, replacing a damaged entry if one is in the way."""
    for _ in range(2):
        try:
            os.rename(temp, entry)
            return True
        except OSError:
            if not entry.exists():
                continue
        try:
            _read_entry(entry, count)
            return True  # another writer was first; its entry is as good as ours
        except (OSError, _Damaged):
            _discard(entry)
    return False


def _discard(path: Path) -> bool:
    """Take ``path`` out of the cache by one rename, then delete it; False if someone else already did."""
    trash = path.parent / f".trash-{uuid.uuid4().hex}"
    try:
        os.rename(path, trash)
    except OSError:
        return False
    shutil.rmtree(trash, ignore_errors=True)
    return True


def _measure(item: os.DirEntry) -> tuple[float, int] | None:
    """(last use, bytes) of an entry; an entry without a manifest counts as least recently used."""
    try:
        if not item.is_dir(follow_symlinks=False):
            return None
        size = 0
        last_used = 0.0
        for child in os.scandir(item.path):
            info = child.stat(follow_symlinks=False)
            size += info.st_size
            if child.name == MANIFEST:
                last_used = info.st_mtime
        return last_used, size
    except OSError:
        return None


def _remove_leftover(item: os.DirEntry, now: float) -> None:
    """Delete trash and temporary folders a crashed writer left behind (never a writer's current one)."""
    try:
        stale = now - item.stat(follow_symlinks=False).st_mtime > _STALE_TEMP_SECONDS
    except OSError:
        return
    if item.name.startswith(".trash-") or (item.name.startswith(".tmp-") and stale):
        shutil.rmtree(item.path, ignore_errors=True)
