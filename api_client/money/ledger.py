"""The spending ledger: every billed request and every request in flight, kept on disk.

A small SQLite file (the standard library's ``sqlite3``) in ComfyUI's user folder
(``<user>/flux2_lora/spending.sqlite3``; env ``FLUX2_LORA_LEDGER`` names another file;
outside ComfyUI ``$XDG_DATA_HOME/flux2-lora/spending.sqlite3``). Several ComfyUI
processes on one machine share it safely: write-ahead logging lets readers and one
writer work at once, every write is one short transaction, and a writer that finds the
file busy waits up to ``BUSY_TIMEOUT`` seconds. A request id is recorded once, so a
billed request can never be counted twice.

Two tables: ``spend`` (what was billed) and ``holds`` (requests admitted and not settled
yet, each at its estimated cost). A hold is written before its POST is sent and replaced
by its cost, in one transaction, when the answer (or the usage logs) says what it cost;
so a process that dies mid-request leaves its hold counting, and the next process asks
the usage logs about it (``recovery.py``). ``admit`` checks the budget and writes the holds
in one exclusive transaction, so two processes can never both take the last credits.

The schema is made on every open (it costs nothing when it is there), so a file replaced
while ComfyUI runs, as the error message advises, works at once. A write that fails is
kept in memory, counted in every total, and written with the next write that succeeds.

A damaged or locked file never blocks a generation silently: ``LedgerError`` says which
file, what is wrong and what to do. The money component turns it into a clear error only
while a per-day/month/all-time budget needs the ledger, else a logged warning.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..errors import Flux2Error
from ..runtime import settings_for
from ..settings import LEDGER_ENV

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
CREATE TABLE IF NOT EXISTS holds (
    request_id TEXT PRIMARY KEY,
    at REAL NOT NULL,
    credits REAL,
    usd REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    cleared INTEGER NOT NULL DEFAULT 0,
    host TEXT,
    pid INTEGER,
    owner TEXT
);
"""
# Who holds a hold: this host, this process id, and a token telling this process from one that
# had the same id before a restart.
HOST = socket.gethostname()[:200]
PROCESS_TOKEN = f"{os.getpid()}-{os.urandom(8).hex()}"


# A hold is the request's; its end may come under one attempt's id, "<request id>.<n>".
_DROP_HOLD = ("DELETE FROM holds WHERE request_id = ? OR substr(?, 1, length(request_id) + 1) = "
              "request_id || '.'")


class LedgerError(Flux2Error):
    """The spending ledger cannot be read or written (damaged, locked, not writable)."""


def default_ledger_path(user_dir: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """Where the ledger lives: env ``FLUX2_LORA_LEDGER``, else ComfyUI's user folder, else the XDG data folder."""
    settings = settings_for(environ)
    if settings.ledger is not None:
        return settings.ledger
    if user_dir is not None:
        return Path(user_dir) / "flux2_lora" / LEDGER_NAME
    return settings.data_home / "flux2-lora" / LEDGER_NAME


def period_start(period: str, now: float | None = None) -> float | None:
    """The Unix time a budget period began: local midnight (``day``), the 1st of the month, None for ``all``."""
    moment = datetime.fromtimestamp(time.time() if now is None else now)
    if period == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    if period == "month":
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
    return None


@dataclass(frozen=True)
class HoldRow:
    """One request in flight as the ledger keeps it (``credits``/``usd``: its estimate, None if unknown)."""

    request_id: str
    at: float
    credits: float | None
    usd: float | None
    attempts: int
    cleared: int  # attempts known to have ended unbilled (refused, or never connected)
    host: str | None
    pid: int | None
    owner: str | None

    def orphaned(self) -> bool:
        """Left by a process of this host that is gone: nobody will settle it but the usage logs."""
        if self.owner == PROCESS_TOKEN or self.host != HOST or self.pid is None:
            return False
        if self.pid == os.getpid():
            return True  # this pid, another token: an earlier process that had our id
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False  # alive, another user's
        return False


@dataclass(frozen=True)
class Committed:
    """What a budget check sees in one transaction: credits and USD spent and held since the period began.

    ``recent_usd``: USD spent since ``recent_since`` (what a key-wide figure may not show yet).
    USD of rows billed without a USD amount count 0 here; holds count at their estimate.
    """

    spent: float
    held: float
    spent_usd: float = 0.0
    held_usd: float = 0.0
    recent_usd: float = 0.0


@dataclass(frozen=True)
class _SpendRow:
    at: float
    credits: float
    usd: float | None
    request_id: str | None
    inference_id: str | None


class SpendingLedger:
    """One ledger file; thread-safe (a connection per call) and shared safely by processes."""

    def __init__(self, path: Path, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._pending: list[_SpendRow] = []  # billed requests not written yet (the file failed)
        self._pending_drops: set[str] = set()  # holds to end that the file could not take yet

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            # On every open: a file replaced or emptied meanwhile gets its tables back at once.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SCHEMA)
            if "cleared" not in {row[1] for row in conn.execute("PRAGMA table_info(holds)")}:
                conn.execute("ALTER TABLE holds ADD COLUMN cleared INTEGER NOT NULL DEFAULT 0")  # an older file
        except BaseException:
            conn.close()
            raise
        return conn

    def _write(self, doing: str, work: Callable[[sqlite3.Connection], object]) -> object:
        """Run ``work`` in one exclusive transaction, after writing what earlier failures left pending."""
        try:
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    with self._lock:
                        pending = list(self._pending)
                        drops = set(self._pending_drops)
                    for row in pending:
                        self._insert_spend(conn, row)
                    for request_id in drops:
                        conn.execute(_DROP_HOLD, (request_id, request_id))
                    result = work(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                with self._lock:
                    self._pending = [row for row in self._pending if row not in pending]
                    self._pending_drops -= drops
                return result
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            raise self._fail(exc, doing) from None

    @staticmethod
    def _insert_spend(conn: sqlite3.Connection, row: _SpendRow) -> bool:
        cursor = conn.execute(
            "INSERT OR IGNORE INTO spend (at, credits, usd, request_id, inference_id, pid) VALUES (?, ?, ?, ?, ?, ?)",
            (row.at, row.credits, row.usd, row.request_id, row.inference_id, os.getpid()))
        if row.request_id is not None:
            conn.execute(_DROP_HOLD, (row.request_id, row.request_id))
        return cursor.rowcount == 1

    def record(self, credits: float, usd: float | None = None, request_id: str | None = None,
               inference_id: str | None = None, at: float | None = None) -> bool:
        """Write one billed request (and end its hold); False if ``request_id`` was recorded before.

        If the file cannot be written, the row is kept in memory (counted by ``total``) and
        written with the next write that succeeds; the ``LedgerError`` still says what is wrong.
        """
        row = _SpendRow(time.time() if at is None else at, float(credits), usd, request_id, inference_id)
        try:
            return bool(self._write("written", lambda conn: self._insert_spend(conn, row)))
        except LedgerError:
            with self._lock:
                if all(p.request_id is None or p.request_id != row.request_id for p in self._pending):
                    self._pending.append(row)
            raise

    def _read(self, query: str, args: Sequence[object]) -> list[tuple]:
        try:
            conn = self._connect()
            try:
                return conn.execute(query, args).fetchall()
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            raise self._fail(exc, "read") from None

    def _pending_total(self, since: float | None, usd: bool = False) -> float:
        with self._lock:
            return sum((row.usd or 0.0) if usd else row.credits for row in self._pending
                       if since is None or row.at >= since)

    def total_usd(self, since: float | None = None) -> float:
        """USD billed since ``since`` (rows without a USD amount count 0); 0 when there is no ledger yet."""
        if not self.path.exists():
            return self._pending_total(since, usd=True)
        row = self._read("SELECT COALESCE(SUM(usd), 0) FROM spend WHERE ? IS NULL OR at >= ?", (since, since))
        return float(row[0][0]) + self._pending_total(since, usd=True)

    def committed_usd(self, since: float | None = None) -> tuple[float, float]:
        """(USD billed since ``since``, USD held by every request still in flight at its estimate)."""
        held = 0.0
        if self.path.exists():
            held = float(self._read("SELECT COALESCE(SUM(usd), 0) FROM holds", ())[0][0])
        return self.total_usd(since), held

    def total(self, since: float | None = None) -> float:
        """Credits billed since the Unix time ``since`` (None: all time); 0 when there is no ledger yet."""
        if not self.path.exists():
            return self._pending_total(since)
        row = self._read("SELECT COALESCE(SUM(credits), 0) FROM spend WHERE ? IS NULL OR at >= ?", (since, since))
        return float(row[0][0]) + self._pending_total(since)

    def committed(self, since: float | None = None) -> tuple[float, float]:
        """(credits billed since ``since``, credits held by every request still in flight at its estimate).

        Every open hold counts, whenever it was admitted: its cost is recorded when it settles,
        so one admitted before midnight is billed in the new day.
        """
        held = 0.0
        if self.path.exists():
            held = float(self._read("SELECT COALESCE(SUM(credits), 0) FROM holds", ())[0][0])
        return self.total(since), held

    def admit(self, holds: Sequence[tuple[str, float | None, float | None]], since: float | None,
              check: Callable[[Committed], None], recent_since: float | None = None) -> None:
        """Write ``holds`` ((request id, credits, usd) estimates) after ``check(committed)`` let them in.

        One exclusive transaction: no other process can admit between the check and the writes.
        Whatever ``check`` raises (the budget's refusal) leaves the ledger as it was.
        """
        now = time.time()

        def work(conn: sqlite3.Connection) -> None:
            spent, spent_usd = conn.execute(
                "SELECT COALESCE(SUM(credits), 0), COALESCE(SUM(usd), 0) FROM spend WHERE ? IS NULL OR at >= ?",
                (since, since)).fetchone()
            # Every open hold counts, whenever it began (as on main since the money review: a hold
            # from before midnight may still be billed today).
            held, held_usd = conn.execute(
                "SELECT COALESCE(SUM(credits), 0), COALESCE(SUM(usd), 0) FROM holds").fetchone()
            recent = 0.0
            if recent_since is not None:
                recent = conn.execute("SELECT COALESCE(SUM(usd), 0) FROM spend WHERE at >= ?",
                                      (recent_since,)).fetchone()[0]
            # Rows pending from earlier failures were written just now.
            check(Committed(float(spent), float(held), float(spent_usd), float(held_usd), float(recent)))
            conn.executemany(
                "INSERT OR REPLACE INTO holds (request_id, at, credits, usd, attempts, host, pid, owner) "
                "VALUES (?, ?, ?, ?, 0, ?, ?, ?)",
                [(rid, now, credits, usd, HOST, os.getpid(), PROCESS_TOKEN) for rid, credits, usd in holds])

        self._write("written", work)

    def note_attempt(self, request_id: str, attempt: int) -> None:
        """Say that attempt ``attempt`` of a held request is about to be sent (before it is)."""
        self._write("written", lambda conn: conn.execute(
            "UPDATE holds SET attempts = MAX(attempts, ?) WHERE request_id = ?", (attempt, request_id)))

    def note_cleared(self, request_id: str, attempt: int) -> None:
        """Say that attempt ``attempt`` of a held request ended surely unbilled (before it is sent again)."""
        self._write("written", lambda conn: conn.execute(
            "UPDATE holds SET cleared = MAX(cleared, ?) WHERE request_id = ?", (attempt, request_id)))

    def drop_hold(self, request_id: str) -> None:
        """End a hold without cost: the request (``request_id``, or one attempt's ``<id>.<n>``) was not billed.

        If the file cannot take it, the hold keeps counting until the next write that succeeds ends it.
        """
        try:
            self._write("written", lambda conn: conn.execute(_DROP_HOLD, (request_id, request_id)))
        except LedgerError:
            with self._lock:
                self._pending_drops.add(request_id)
            raise

    def holds(self) -> list[HoldRow]:
        """Every hold still open, oldest first."""
        if not self.path.exists():
            return []
        rows = self._read("SELECT request_id, at, credits, usd, attempts, cleared, host, pid, owner FROM holds "
                          "ORDER BY at", ())
        return [HoldRow(*row) for row in rows]
