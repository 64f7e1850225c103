"""The spending ledger: a budget per day, month or all time that survives restarts and is shared by processes.

Money: a billed request is recorded once (never twice), a damaged or locked ledger is a
clear error while a ledger budget needs it and a logged warning otherwise, never a silent
block or a silent pass.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from importlib import import_module

import pytest
from conftest import PACK_NAME, ROOT, RUN_ONCE, TEST_KEY, generate

from api_client.standin import StandInServer


def _ledger_path():
    return os.environ["FLUX2_LORA_LEDGER"]


def _wait_for_rows(count, seconds=10.0):
    """The ledger's rows once it holds ``count`` (credits are recorded as each answer completes)."""
    deadline = time.monotonic() + seconds
    rows = []
    while time.monotonic() < deadline:
        if os.path.exists(_ledger_path()):
            with sqlite3.connect(f"file:{_ledger_path()}?mode=ro", uri=True) as conn:
                try:
                    rows = conn.execute("SELECT credits, usd, request_id, inference_id FROM spend").fetchall()
                except sqlite3.OperationalError:
                    rows = []
        if len(rows) >= count:
            return rows
        time.sleep(0.05)
    return rows


def test_a_budget_per_day_still_holds_after_restarts(standin, tmp_path):
    """Each run is a new Python process loading the pack as ComfyUI does: a restart between runs."""
    env = {**os.environ, "FLUX2_LORA_CREDIT_BUDGET": "250000", "FLUX2_LORA_BUDGET_PERIOD": "day"}
    outputs = []
    for seed in (1, 2, 3):
        done = subprocess.run([sys.executable, "-c", RUN_ONCE, str(ROOT), str(seed)], env=env, capture_output=True,
                              text=True, timeout=120, check=False)
        outputs.append(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:])
    assert outputs[0] == "OK" and outputs[1] == "OK"  # 120,000 then 240,000 credits spent today (a hard cap)
    assert outputs[2].startswith("ERROR BudgetExceededError Credit budget reached: 240,000 credits spent today")
    assert "not sent and nothing was billed" in outputs[2] and _ledger_path() in outputs[2]
    assert standin.post_count == 2


def test_the_per_process_count_forgets_on_restart_but_the_ledger_remembers(budget_mod, tmp_path):
    first = budget_mod.CreditBudget()
    first.use_ledger(tmp_path / "l.sqlite3")
    first.add(120_000, request_id="flux2-a")
    restarted = budget_mod.CreditBudget()
    restarted.use_ledger(tmp_path / "l.sqlite3")
    assert restarted.spent == 0 and restarted.spent_in("process") == 0
    assert restarted.spent_in("day") == restarted.spent_in("month") == restarted.spent_in("all") == 120_000


def test_periods_count_from_local_midnight_and_the_first_of_the_month(ledger_mod, tmp_path):
    ledger = ledger_mod.SpendingLedger(tmp_path / "l.sqlite3")
    now = time.time()
    day_start = ledger_mod.period_start("day", now)
    month_start = ledger_mod.period_start("month", now)
    ledger.record(1, at=day_start + 1)
    ledger.record(10, at=day_start - 1)      # yesterday
    ledger.record(100, at=month_start - 1)   # last month
    assert ledger.total(ledger_mod.period_start("day")) == 1
    assert ledger.total(ledger_mod.period_start("month")) == (1 if day_start - 1 < month_start else 11)
    assert ledger.total(None) == 111


def test_a_request_id_is_recorded_once(ledger_mod, tmp_path):
    ledger = ledger_mod.SpendingLedger(tmp_path / "l.sqlite3")
    assert ledger.record(120_000, 0.06, "flux2-x", "inf-1") is True
    assert ledger.record(120_000, 0.06, "flux2-x", "inf-1") is False
    assert ledger.total() == 120_000


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from api_client.money.ledger import SpendingLedger
    ledger = SpendingLedger(sys.argv[2])
    for i in range(50):
        ledger.record(10, request_id=f"{sys.argv[3]}-{i}")
""")


def test_several_processes_write_the_ledger_at_once_and_lose_nothing(tmp_path):
    path = tmp_path / "shared.sqlite3"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), str(path), f"p{n}"]) for n in range(4)]
    assert all(w.wait(60) == 0 for w in writers)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*), SUM(credits) FROM spend").fetchone() == (200, 2000)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_runs_are_recorded_with_request_and_inference_ids(pack, standin):
    info = json.loads(generate(pack, num_images=6)["result"][1])
    rows = _wait_for_rows(2)
    assert sorted(r[2] for r in rows) == sorted(info["request_ids"])
    assert sorted(r[3] for r in rows) == sorted(info["inference_ids"])
    assert sum(r[0] for r in rows) == info["credits_used"] and sum(r[1] for r in rows) == pytest.approx(0.36)


def test_a_billed_request_whose_answer_was_lost_is_recorded_from_the_logs(pack, api, standin, monkeypatch):
    with StandInServer(key=TEST_KEY).start() as server:
        monkeypatch.setenv("AIML_API_BASE", server.base_url)
        monkeypatch.setenv("FLUX2_LORA_READ_TIMEOUT", "0.5")
        monkeypatch.setenv("FLUX2_LORA_LOG_WAIT", "6")
        server.queue_post_faults([{"delay": 1.5}])
        with pytest.raises(api.BilledWithoutAnswerError):
            generate(pack, use_cache=False)
        rid = server.post_request_ids[0]
    assert [(r[0], r[2]) for r in _wait_for_rows(1)] == [(120000.0, rid)]


def test_a_damaged_ledger_is_a_clear_error_while_a_day_budget_needs_it(pack, api, standin, monkeypatch, ledger_mod):
    path = _ledger_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"this is not a database, it was overwritten" * 100)
    monkeypatch.setenv("FLUX2_LORA_CREDIT_BUDGET", "1000000")
    monkeypatch.setenv("FLUX2_LORA_BUDGET_PERIOD", "day")
    with pytest.raises(ledger_mod.LedgerError) as caught:
        generate(pack)
    message = str(caught.value)
    assert path in message and "damaged" in message and "Move or delete" in message and "'process'" in message
    assert standin.post_count == 0


def test_a_damaged_ledger_without_a_ledger_budget_only_warns(pack, standin, monkeypatch, caplog):
    path = _ledger_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"garbage" * 1000)
    monkeypatch.setenv("FLUX2_LORA_CREDIT_BUDGET", "1000000")  # per process: the ledger is not needed
    with caplog.at_level(logging.WARNING, logger="flux2_lora"):
        images, _ = generate(pack)["result"]
    assert images.shape[0] == 1
    assert any("spending ledger" in r.getMessage() and "counted by this process only" in r.getMessage()
               for r in caplog.records)


def test_a_locked_ledger_is_a_logged_warning_when_recording_and_still_counted(budget_mod, tmp_path,
                                                                                       caplog, ledger_mod):
    tracker = budget_mod.CreditBudget()
    path = tmp_path / "locked.sqlite3"
    tracker.use_ledger(path)
    tracker.add(5, request_id="flux2-before")
    tracker.ledger.busy_timeout = 0.2
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with caplog.at_level(logging.WARNING, logger="flux2_lora"):
            tracker.add(7, request_id="flux2-during")  # billed: still counted by this process
        assert any("locked" in r.getMessage() for r in caplog.records)
        assert tracker.spent == 12
        # Write-ahead logging: reading (the budget check) still works while another process writes.
        tracker.set_limit(100)
        tracker.set_period("day")
        assert tracker.spent_in("day") == 12
        # A day budget writes each hold before sending: while the file stays locked, nothing is sent.
        with pytest.raises(ledger_mod.LedgerError, match="locked"):
            tracker.admit([1.0])
        assert tracker.held == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # Unlocked again: the ledger's 5 plus the 7 it could not take (written with the next write).
    assert tracker.spent_in("day") == 12
    tracker.set_limit(10)
    refused = import_module(f"{PACK_NAME}.api_client.errors").BudgetExceededError
    with pytest.raises(refused, match="12 credits spent today"):
        tracker.admit([1.0])
    tracker.set_limit(100)
    tracker.release(tracker.admit([1.0])[0])
    assert tracker.spent_in("day") == 12 and tracker.ledger.total() == 12


def test_budget_route_sets_and_reports_the_period(budget_mod, tmp_path, budget_panel):
    tracker = budget_mod.CreditBudget()
    tracker.use_ledger(tmp_path / "l.sqlite3")
    tracker.add(300_000, request_id="flux2-old")
    body = json.dumps({"budget": 500_000, "period": "day"}).encode()
    status, answer = budget_panel.budget_post_answer(body, "application/json", tracker, {})
    assert status == 200 and answer["period"] == "day" and answer["period_setting"] == "day"
    assert answer["message"] == ("Budget 500,000 credits per day (from the Flux2 LoRA credit budget setting): "
                                 "300,000 credits spent today, 200,000 credits left.")
    status, answer = budget_panel.budget_post_answer(b'{"period": "week"}', "application/json", tracker, {})
    assert status == 400 and "process, day, month, all" in answer["error"]
    assert tracker.period({}) == ("day", "the Flux2 LoRA budget period setting")
    assert budget_panel.budget_status(tracker, {"FLUX2_LORA_BUDGET_PERIOD": "month"})["period"] == "day"
    tracker.set_period(None)
    assert tracker.period({"FLUX2_LORA_BUDGET_PERIOD": "month"}) == ("month",
                                                                     "environment variable FLUX2_LORA_BUDGET_PERIOD")


def test_a_bad_period_in_the_environment_is_a_clear_error_before_sending(pack, api, standin, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_CREDIT_BUDGET", "1000")
    monkeypatch.setenv("FLUX2_LORA_BUDGET_PERIOD", "weekly")
    with pytest.raises(api.ConfigError, match="FLUX2_LORA_BUDGET_PERIOD must be one of process, day, month, all"):
        generate(pack)
    assert standin.post_count == 0
