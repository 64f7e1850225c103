"""The process-wide state of the pack: one ``Runtime``, created once (``runtime()``).

What it holds (each part made on first use by the module that owns its kind, which asks
``runtime().part(name, make)``; ``reset_runtime()`` starts afresh, as a restart would):

- ``settings``: the current ``Settings`` (``current_settings()``), read from the environment
  and the stored settings again only when one of them changed (a tuple comparison);
- ``"money"``: the money component (``money.core.process_money``), which keeps the settings
  made in ComfyUI (its ``StoredSettings``);
- ``"request slots"``: the cap on generation requests in flight (``http.request_slots``);
- ``"in-flight"``: the requests in flight by cache key, joined by identical runs (``run.inflight``);
- ``"cache saves"``: the result cache's background writer and its pending saves (``run.cache``);
- ``("pool", name)``: the thread pools (``pool(name, threads)``: the batch, the LoRA check, the
  node bodies, the cache writer), each a ``ThreadPoolExecutor`` whose threads start with its first task;
- ``"lora session"``: the anonymous session for LoRA hosts (``lora.remote``), and
  ``"lora cache locks"``: one lock per verdict file (``lora.cache``);
- ``("client", base URL, key, CA bundle)``: the shared HTTP clients, one connection pool each
  (``api.client.shared_client``); ``("price book", path)`` (``money.pricing``) and
  ``("deprecations feed", path)`` (``api.lifecycle``): one per file.
- ``"deadline watchdog"``: the one thread that ends exchanges at their deadline or Cancel
  (``http.deadline``); ``"prices"``: the rates learned from billed answers and the price list
  (``money.estimate``); ``("route worker", name)``: the threads of the pack's routes in ComfyUI's
  server (``nodes/routes/common.py``).

Left outside it on purpose: thread-local scopes (``http.cancel``'s Cancel scope, ``http.deadline``'s
current deadline), which are per thread, not per process; ``http.deadline``'s owners lock, which
guards the link between urllib3's connections and the deadline using each (it must stay one lock
across a ``reset_runtime`` while connections are open); and the filter that redacts keys from
urllib3's log (``http.transport``), which belongs to ``logging``'s own process-wide state.

Its place: just above ``settings`` (it imports nothing else of the pack), so every layer
can ask it for its parts without an import circle; it knows the parts by name only, and
the module owning each kind makes it.

Lock discipline:

1. ``Runtime._lock`` guards only the table of parts and the settings cache. It is taken
   last and held for a dictionary look-up: never while a part is made (``make`` runs
   outside it; if two threads make the same part at once, the first one stored wins and
   the other is dropped, so ``make`` must have no side effects beyond the new object),
   never while settings are parsed, never while calling into a part.
2. Each part has its own lock for its own state (``Money``: ``_admission`` before ``_lock``;
   the request slots' condition; the in-flight registry's lock, taken before a shared
   request's own lock; the cache's pending-saves lock; each pool's start-up lock). A part's
   lock is never held while taking another part's lock, except the in-flight registry's,
   which may read the result cache (files, no lock of another part).
3. No lock is held while waiting on the network: a POST, a GET, the usage-log polls and
   the balance read happen with no lock held, except ``Money._admission``, which serialises
   a run's balance read with its holds (and is waited for with Cancel).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .settings import ENV_NAMES, Settings, environment

T = TypeVar("T")
# Settings read for this many different sets of stored settings are kept (each process has one or two).
_SETTINGS_KEPT = 8


class Runtime:
    """The process-wide state; see the module docstring for its parts and the lock discipline."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._parts: dict[Hashable, Any] = {}
        self._environ = environ  # None: the process environment, read each time settings are asked for
        self._settings: dict[tuple, Settings] = {}

    def part(self, name: Hashable, make: Callable[[], T]) -> T:
        """The part called ``name``, made by ``make()`` the first time it is asked for."""
        with self._lock:
            found = self._parts.get(name)
        if found is not None:
            return found
        made = make()
        with self._lock:
            return self._parts.setdefault(name, made)

    def pool(self, name: str, threads: int) -> ThreadPoolExecutor:
        """The thread pool called ``name`` (``threads`` workers, named ``flux2-<name>``), made on first use.

        Making one starts no thread (a pool starts its threads with its first tasks), so a pool made
        twice by a race and dropped costs nothing.
        """
        return self.part(("pool", name), lambda: ThreadPoolExecutor(threads, thread_name_prefix=f"flux2-{name}"))

    def replace(self, name: Hashable, value: T) -> T:
        """Put ``value`` in place of the part called ``name`` (tests: what a restart does to it)."""
        with self._lock:
            self._parts[name] = value
        return value

    def settings(self, stored: Mapping[str, Any] | None = None) -> Settings:
        """The settings in force with ``stored`` (the settings made in ComfyUI); read again only on a change."""
        env = environment() if self._environ is None else self._environ
        stored_items = tuple(sorted((stored or {}).items()))
        key = (stored_items, tuple(env.get(name) for name in ENV_NAMES))
        with self._lock:
            found = self._settings.get(key)
        if found is not None:
            return found
        fresh = Settings.read(env, dict(stored_items))
        with self._lock:
            if len(self._settings) >= _SETTINGS_KEPT:
                self._settings.clear()
            self._settings[key] = fresh
        return fresh


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    """The process's runtime (made on first use)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime()
        return _runtime


def reset_runtime(environ: Mapping[str, str] | None = None) -> Runtime:
    """A fresh runtime for this process (tests: what a restart does); ``environ`` instead of the process environment."""
    global _runtime
    with _runtime_lock:
        _runtime = Runtime(environ)
        return _runtime


def current_settings(stored: Mapping[str, Any] | None = None) -> Settings:
    """The settings in force now (the environment and ``stored``, the settings made in ComfyUI)."""
    return runtime().settings(stored)


def settings_for(environ: Mapping[str, str] | None = None, stored: Mapping[str, Any] | None = None) -> Settings:
    """The settings from ``environ`` (read now) if given, else the ones in force (``current_settings``)."""
    return current_settings(stored) if environ is None else Settings.read(environ, stored)


def kept_file_path(name: str, user_dir: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """A file the pack keeps between runs (a feed, the prices): in ComfyUI's user folder, else the per-user
    cache folder (from ``environ`` if given, else the settings in force)."""
    if user_dir is not None:
        return Path(user_dir) / "flux2_lora" / name
    return settings_for(environ).cache_home / "flux2-lora" / name


__all__ = ["Runtime", "current_settings", "kept_file_path", "reset_runtime", "runtime", "settings_for"]
