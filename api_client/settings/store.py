"""The settings made in ComfyUI, kept by the pack in ``<user>/flux2_lora/settings.json``.

The credit budget, its period, the budget in USD, its scope, the balance floor and the
LoRA check switch: posted by the frontend, kept on disk the moment they are set, and in
force from start-up, before any page connects. The LoRA switch was kept in a file of its
own (``lora_check_setting.json``) before: that file is still read while ``settings.json``
holds no switch, and removed once the switch is set again.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .values import STORED_KEYS, check_stored

try:
    import fcntl
except ImportError:  # Windows: the lock below holds within this process only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("flux2_lora")

SETTINGS_FILE = "settings.json"
LEGACY_SWITCH_FILE = "lora_check_setting.json"
# One lock per settings file in this process: a setting is read, changed and written under it.
_file_locks: dict[Path, threading.Lock] = {}
_file_locks_lock = threading.Lock()


@contextmanager
def _changing(path: Path) -> Iterator[None]:
    """Hold ``path`` for one read-change-write: against this process's threads and (where the system
    has ``flock``) other processes, so two settings set at once (the budget and the LoRA switch) are both kept."""
    with _file_locks_lock:
        lock = _file_locks.setdefault(path.resolve(), threading.Lock())
    with lock:
        handle = None
        if fcntl is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                handle = open(path.parent / f".{path.name}.lock", "a")
                fcntl.flock(handle, fcntl.LOCK_EX)
            except OSError:
                if handle is not None:
                    handle.close()
                handle = None  # a folder that cannot be written: the save will say so
        try:
            yield
        finally:
            if handle is not None:
                handle.close()  # releases the flock


def settings_path(user_dir: Path) -> Path:
    """Where the settings made in ComfyUI are kept: ``<user>/flux2_lora/settings.json``."""
    return Path(user_dir) / "flux2_lora" / SETTINGS_FILE


class SettingsStore:
    """The settings made in ComfyUI, kept in a small JSON file so they hold from start-up."""

    KEYS = STORED_KEYS

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any]:
        """The kept settings ({} without a file); ``ConfigError`` for a file that cannot be read as kept."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = None
        except OSError as exc:
            raise ConfigError(f"The Flux2 LoRA settings file {self.path} cannot be read ({exc.strerror or exc}); "
                              "fix its permissions or delete it and set the budget and floor again.") from None
        data: Any = {}
        if text is not None:
            try:
                data = json.loads(text)
            except ValueError:
                data = None
        if not isinstance(data, dict):
            raise ConfigError(f"The Flux2 LoRA settings file {self.path} is damaged (not a JSON object); delete it "
                              "and set the budget and floor again in ComfyUI's settings.")
        kept = {key: data.get(key) for key in self.KEYS}
        if "check_loras" not in data:
            kept["check_loras"] = self.legacy_switch()
        return kept if text is not None or kept["check_loras"] is not None else {}

    def legacy_switch(self) -> str | None:
        """The LoRA switch from the file it had before (``lora_check_setting.json``), or None."""
        path = self.path.parent / LEGACY_SWITCH_FILE
        try:
            value = json.loads(path.read_text(encoding="utf-8")).get("check_loras")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("Flux2 LoRA: the LoRA check setting %s is unreadable (%s); using the environment", path,
                        type(exc).__name__)
            return None
        return value if value in ("on", "off") else None

    def save(self, values: Mapping[str, Any]) -> None:
        """Write ``values`` at once (a temporary file replaced in one step: never half written)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, delete=False, suffix=".tmp",
                                             encoding="utf-8") as fh:
                json.dump({key: values.get(key) for key in self.KEYS}, fh)
            os.replace(fh.name, self.path)
        except OSError as exc:
            log.warning("Flux2 LoRA settings not kept in %s (%s): they hold until ComfyUI restarts.", self.path,
                        exc.strerror or exc)
            raise
        (self.path.parent / LEGACY_SWITCH_FILE).unlink(missing_ok=True)  # the switch is in this file now

    def set(self, key: str, value: Any, *, keep_damaged: bool = False) -> None:
        """Keep one setting: the file is read again and only ``key`` changed in it, so a setting another
        process kept meanwhile is not lost. A damaged file is replaced whole (setting a money setting again
        is how the user ends the refusal it causes), unless ``keep_damaged``: then its ``ConfigError`` is
        raised and the file, with the refusal of paid runs it causes, stays. ``OSError`` if not written."""
        with _changing(self.path):
            try:
                kept = self.load()
            except ConfigError:
                if keep_damaged:
                    raise
                kept = {}
            kept[key] = value
            self.save(kept)


class StoredSettings:
    """The stored settings in force in this process (checked), and the problem with their file if any.

    Thread-safe: its own short lock guards the values; the file is read and written outside it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Held through a setting's write and read-back, and through any read of the file and its applying:
        # a read applied late never undoes a setting set meanwhile. Taken before ``_lock``, never inside it.
        self._changing = threading.RLock()
        self._values: dict[str, Any] = {key: None for key in STORED_KEYS}
        self._store: SettingsStore | None = None
        self._problem: ConfigError | None = None

    def use_file(self, path: Path) -> None:
        """Keep the settings in ``path`` and apply what is kept there (once per file)."""
        with self._lock:
            if self._store is not None and self._store.path == Path(path):
                return
            self._store = SettingsStore(Path(path))
        self.reload()

    def reload(self) -> None:
        """Take every setting kept on disk (another process may have set one); a bad file is kept as the problem."""
        with self._changing:
            with self._lock:
                store = self._store
            if store is None:
                return
            try:
                kept, problem = store.load(), None
            except ConfigError as exc:
                kept, problem = {}, exc
            values: dict[str, Any] = {}
            for key in STORED_KEYS:
                try:
                    values[key] = check_stored(key, kept.get(key))
                except ConfigError as exc:
                    values[key] = None
                    problem = ConfigError(f"The Flux2 LoRA settings file {store.path} holds a bad value: {exc} "
                                          "Set it again in ComfyUI's settings.")
            with self._lock:
                self._values.update(values)
                self._problem = problem

    def set(self, key: str, value: Any) -> None:
        """Set one setting (checked: ``ConfigError`` names it) and keep it on disk."""
        value = check_stored(key, value)
        with self._changing:
            with self._lock:
                store = self._store
            if store is not None:
                try:
                    store.set(key, value)
                except OSError:
                    pass  # warned; in force here until a restart
                self.reload()
            with self._lock:
                self._values[key] = value  # in force here even if the file could not be written

    def get(self, key: str) -> Any:
        with self._lock:
            return self._values[key]

    def values(self) -> dict[str, Any]:
        """Every stored setting in force; the file's problem (``ConfigError``) if it has one, read again first."""
        with self._lock:
            problem = self._problem
        if problem is not None:
            self.reload()  # fixed or deleted meanwhile, as the error advised?
        with self._lock:
            if self._problem is not None:
                raise self._problem
            return dict(self._values)


__all__ = ["LEGACY_SWITCH_FILE", "SETTINGS_FILE", "SettingsStore", "StoredSettings", "settings_path"]
