"""The spending ledger: every billed request, kept on disk so a budget survives restarts.

A small SQLite file (the standard library's ``sqlite3``) in ComfyUI's user folder
(``<user>/flux2_lora/spending.sqlite3``; env ``FLUX2_LORA_LEDGER`` names another file;
outside ComfyUI ``$XDG_DATA_HOME/flux2-lora/spending.sqlite3``). Several ComfyUI
processes on one machine share it safely: write-ahead logging lets readers and one
writer work at once, every write is one short transaction, and a writer that finds the
file busy waits up to ``BUSY_TIMEOUT`` seconds. A request id is recorded once, so a
billed request can never be counted twice.

A damaged or locked file never blocks a generation silently: ``LedgerError`` says which
file, what is wrong and what to do. The budget (``budget.py``) turns it into a clear
error only while a per-day/month/all-time budget needs the ledger, else a logged warning.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from .errors import Flux2Error

LEDGER_ENV = "FLUX2_LORA_LEDGER"
LEDGER_NAME = "spending.sqlite3"
BUSY_TIMEOUT = 5.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    credits REAL NOT NULL,
    usd REAL,
    request_id TEXT UNIQUE,
    inference_id TEXT,
    pid INTEGER
);
CREATE INDEX IF NOT EXISTS spend_at ON spend (at);
"""


class LedgerError(Flux2Error):
    """The spending ledger cannot be read or written (damaged, locked, not writable)."""


def default_ledger_path(user_dir: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """Where the ledger lives: env ``FLUX2_LORA_LEDGER``, else ComfyUI's user folder, else the XDG data folder."""
    env = os.environ if environ is None else environ
    named = env.get(LEDGER_ENV, "").strip()
    if named:
        return Path(named).expanduser()
    if user_dir is not None:
        return Path(user_dir) / "flux2_lora" / LEDGER_NAME
    data_home = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "flux2-lora" / LEDGER_NAME


def period_start(period: str, now: float | None = None) -> float | None:
    """The Unix time a budget period began: local midnight (``day``), the 1st of the month, None for ``all``."""
    moment = datetime.fromtimestamp(time.time() if now is None else now)
    if period == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    if period == "month":
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
    return None


class SpendingLedger:
    """One ledger file; thread-safe (a connection per call) and shared safely by processes."""

    def __init__(self, path: Path, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SpendingLedger({str(self.path)!r})"

    def _what_to_do(self) -> str:
        return (f"Move or delete {self.path} to start a new ledger (the per-day/month/all-time budget then counts "
                f"from zero), point {LEDGER_ENV} at another file, or set the budget period to 'process'.")

    def _fail(self, exc: Exception, doing: str) -> LedgerError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            why = f"it stayed locked by another process for more than {self.busy_timeout:g} s"
            hint = "Try again in a moment; if it stays locked, restart the other ComfyUI processes."
        elif isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            why = f"it is damaged or not a ledger ({text})"
            hint = self._what_to_do()
        else:
            why = f"{text}"
            hint = self._what_to_do()
        return LedgerError(f"The Flux2 LoRA spending ledger {self.path} could not be {doing}: {why}. {hint}")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            with self._lock:
                if not self._ready:
                    conn.execute("PRAGMA journal_mode = WAL")
                    conn.executescript(_SCHEMA)
                    self._ready = True
        except BaseException:
            conn.close()
            raise
        return conn

    def record(self, credits: float, usd: float | None = None, request_id: str | None = None,
               inference_id: str | None = None, at: float | None = None) -> bool:
        """Write one billed request; False if ``request_id`` was recorded before (never counted twice)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connect()
            try:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO spend (at, credits, usd, request_id, inference_id, pid) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (time.time() if at is None else at, float(credits), usd, request_id, inference_id, os.getpid()))
                return cursor.rowcount == 1
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            raise self._fail(exc, "written") from None

    def total(self, since: float | None = None) -> float:
        """Credits recorded since the Unix time ``since`` (None: all time); 0 when there is no ledger yet."""
        if not self.path.exists():
            return 0.0
        try:
            conn = self._connect()
            try:
                row = conn.execute("SELECT COALESCE(SUM(credits), 0) FROM spend WHERE ? IS NULL OR at >= ?",
                                   (since, since)).fetchone()
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            raise self._fail(exc, "read") from None
        return float(row[0])
