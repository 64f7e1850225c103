"""The README's promises about money, each pinned where issue 18 found it broken.

Every test drives the pack from the outside, as ComfyUI does: node calls (plain, or the
coroutine ComfyUI 0.3.45+ awaits), real HTTP to the stand-in, its counters, its request
history and its usage-log rows, and, where the defect needs one, a real process killed
with SIGKILL. None of them looks at the money code's internals, which issue 18 rewrites.

Prices at the stand-in: one 512x512 (``square``) picture costs 120,000 credits ($0.06); a
request of 2 pictures 240,000. The stand-in's account holds $100 unless a test says otherwise.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import PACK_NAME, ROOT, TEST_KEY, generate, generate_inputs
from fake_comfy import FakeComfy

from api_client.standin import StandInServer

PICTURE = 120_000  # credits for one 512x512 picture at the stand-in
REQUEST_ID_PREFIX = "flux2-"  # what every id of the pack starts with, whatever the request


# -- helpers ----------------------------------------------------------------------------

def outcome_of(call: Callable[[], Any]) -> Any:
    """The call's result, or the exception it raised."""
    try:
        return call()
    except BaseException as exc:  # handed back to be asserted on
        return exc


def run_at_once(calls: list[Callable[[], Any]], timeout: float = 120.0) -> list[Any]:
    """Run the calls on threads started together; each one's result or exception, in order."""
    outcomes: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def one(k: int) -> None:
        start.wait()
        outcomes[k] = outcome_of(calls[k])

    threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a node run did not end"
    return outcomes


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "the condition") -> None:
    """Poll ``condition`` (generously: the machine is shared and slow), failing after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.02)


def settle(server: Any, grace: float = 1.5, timeout: float = 60.0) -> None:
    """Wait until the stand-in answers no POST any more, then a while longer (for anything sent late)."""
    wait_until(lambda: server.posts_in_progress == 0, timeout, "the stand-in finishing its POSTs")
    time.sleep(grace)
    wait_until(lambda: server.posts_in_progress == 0, timeout, "the stand-in finishing its POSTs")


def error_text(outcome: Any) -> str:
    assert isinstance(outcome, BaseException), f"expected the run to be refused, it returned {describe(outcome)}"
    return f"{type(outcome).__name__}: {outcome}"


def describe(outcome: Any) -> str:
    if isinstance(outcome, BaseException):
        return f"{type(outcome).__name__}: {outcome}"
    if isinstance(outcome, dict) and "result" in outcome:
        info = json.loads(outcome["result"][1])
        return f"pictures, info {json.dumps({k: v for k, v in info.items() if 'note' in k or 'credits' in k})}"
    return repr(outcome)


def is_budget_refusal(outcome: Any) -> bool:
    return isinstance(outcome, BaseException) and "budget" in str(outcome).lower()


def is_floor_refusal(outcome: Any) -> bool:
    return isinstance(outcome, BaseException) and "floor" in str(outcome).lower()


def per_day_budget(monkeypatch: Any, credits: int) -> None:
    monkeypatch.setenv("FLUX2_LORA_CREDIT_BUDGET", str(credits))
    monkeypatch.setenv("FLUX2_LORA_BUDGET_PERIOD", "day")


def common_prefix(texts: list[str]) -> str:
    """The characters every text starts with."""
    first = min(texts, default="")
    last = max(texts, default="")
    n = 0
    while n < len(first) and first[n] == last[n]:
        n += 1
    return first[:n]


# -- 1. one usage-log row, one attempt; nothing re-sent while an attempt may run -------------

def test_a_failed_row_of_an_earlier_attempt_never_resends_an_attempt_that_may_still_run(pack, standin,
                                                                                       monkeypatch):
    # A stand-in of its own: the node's shared client for it is made with this read timeout.
    with StandInServer(key=TEST_KEY, strict=True).start() as server:
        monkeypatch.setenv("AIML_API_BASE", server.base_url)
        monkeypatch.setenv("FLUX2_LORA_READ_TIMEOUT", "1")
        monkeypatch.setenv("FLUX2_LORA_LOG_WAIT", "1")
        server.queue_post_faults([
            {"drop": True, "log": "failed"},       # attempt 1: dropped at once (retried); the API logged it failed
            {"delay": 6, "log": "succeeded"},      # attempt 2: still working when the read timeout hits
        ])
        outcome = outcome_of(lambda: generate(pack, seed=101))
        settle(server)  # attempt 2 ends at the stand-in; anything sent after it is counted below
        sent = server.post_count
        ids = server.post_request_ids
        rows = [row.to_json() for row in server.accounts.visible_rows()]
        assert not server.warnings, server.warnings

    assert sent == 2, (f"{sent} POSTs for one picture: a failed usage-log row of attempt 1 was taken for "
                       f"attempt 2, which was still running, and the request was sent again ({describe(outcome)})")
    assert all(ids) and len(set(ids)) == 2, f"each attempt needs an X-Client-Request-Id of its own: {ids}"
    shared = common_prefix(ids)
    assert len(shared) >= len(REQUEST_ID_PREFIX) + 6, f"the attempts' ids should share the request's prefix: {ids}"
    # Every usage-log row maps to exactly one attempt.
    assert sorted(row["client_request_id"] for row in rows) == sorted(ids), rows
    text = error_text(outcome).lower()
    assert "billed" in text and "not billed" not in text, text


# -- 2. a hold survives the process that made it -----------------------------------------

_KILLED_RUN = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from demo import load_pack_like_comfyui
    pack = load_pack_like_comfyui(sys.argv[2])
    cls = pack.NODE_CLASS_MAPPINGS["Flux2LoraGenerate"]
    print("running", flush=True)
    getattr(cls(), cls.FUNCTION)(**json.loads(sys.argv[3]))
    print("finished", flush=True)
""")


def test_a_run_in_flight_when_its_process_is_killed_still_counts_against_a_per_day_budget(pack, standin, monkeypatch,
                                                                                         tmp_path):
    per_day_budget(monkeypatch, 2 * PICTURE + 10_000)
    generate(pack, seed=201)  # 120,000 credits today, in the ledger; the price is known now
    # Run 1: another process sharing the ledger, killed while its POST is in flight.
    standin.queue_post_faults([{"delay": 6}])
    log_path = tmp_path / "killed-run.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, str(ROOT), PACK_NAME,
                                    json.dumps(generate_inputs(seed=202))],
                                   cwd=tmp_path, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: standin.post_count == 2 or process.poll() is not None, 180,
                   "run 1's POST reaching the stand-in")
        assert process.poll() is None, f"run 1's process ended early:\n{log_path.read_text()[-3000:]}"
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        # Run 2, after the restart: 120,000 spent + 120,000 held by run 1 + its own 120,000 > 250,000.
        outcome = outcome_of(lambda: generate(pack, seed=203))
        sent = standin.post_count
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        settle(standin, grace=0)
    assert sent == 2, (f"run 2 was sent ({describe(outcome)}): the hold of run 1, whose POST was in flight when its "
                       "process was killed, was lost with that process")
    assert is_budget_refusal(outcome), describe(outcome)


# -- 3. the budget is a hard cap ----------------------------------------------------------------

def test_two_runs_at_once_never_both_go_when_only_one_fits_the_budget(pack, standin, monkeypatch):
    per_day_budget(monkeypatch, 130_000)
    standin.latency = 2.0
    outcomes = run_at_once([lambda: generate(pack, seed=301), lambda: generate(pack, seed=302)])
    settle(standin, grace=0.5)
    assert standin.post_count == 1, (f"{standin.post_count} POSTs of 120,000 credits under a budget of 130,000: "
                                     f"{[describe(o) for o in outcomes]}")
    assert sorted(is_budget_refusal(o) for o in outcomes) == [False, True], [describe(o) for o in outcomes]
    assert any(isinstance(o, dict) for o in outcomes), [describe(o) for o in outcomes]


def test_a_cancelled_run_still_holds_its_credits_so_queueing_it_again_is_refused(pack, standin, comfy, monkeypatch):
    per_day_budget(monkeypatch, 2 * PICTURE + 10_000)
    generate(pack, seed=311)  # 120,000 spent today; the price is known now
    standin.queue_post_faults([{"delay": 4}])
    first: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: first.update(outcome=outcome_of(lambda: generate(pack, seed=312))))
    thread.start()
    wait_until(lambda: standin.post_count == 2, 60, "run 1's POST reaching the stand-in")
    comfy.interrupted = True  # Cancel while its POST is in flight
    thread.join(60)
    assert type(first["outcome"]).__name__ == "InterruptProcessingException", describe(first["outcome"])
    # Queued again (a new seed, as control_after_generate gives): run 1 may still be billed.
    again = outcome_of(lambda: generate(pack, seed=313))
    sent = standin.post_count
    settle(standin, grace=0)
    assert sent == 2, f"the run queued again after Cancel was sent ({describe(again)}) while the first still ran"
    assert is_budget_refusal(again), describe(again)


def test_a_run_whose_own_estimate_exceeds_what_is_left_is_refused_before_sending(pack, standin, monkeypatch):
    per_day_budget(monkeypatch, PICTURE + 80_000)
    generate(pack, seed=321)  # 120,000 spent today, 80,000 left; the price is known now
    outcome = outcome_of(lambda: generate(pack, seed=322))  # 120,000 more would make 240,000 > 200,000
    assert standin.post_count == 1, f"a run of 120,000 credits was sent with 80,000 left: {describe(outcome)}"
    assert is_budget_refusal(outcome), describe(outcome)
    assert "nothing was billed" in str(outcome)


# -- 5. the balance floor counts this process's runs in flight --------------------------------

def test_runs_at_once_never_take_the_balance_below_the_floor(pack, standin, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_BALANCE_FLOOR", "0.90")
    standin.configure(balance=1.00)  # room above the floor for one $0.06 picture, not two
    standin.latency = 5.0            # all three runs check the floor while the first is in flight
    outcomes = run_at_once([lambda k=k: generate(pack, seed=501 + k) for k in range(3)])
    settle(standin, grace=0.5)
    shown = [describe(o) for o in outcomes]
    assert standin.accounts.balance >= 0.90, (f"the balance fell to ${standin.accounts.balance:.2f}, below the "
                                              f"floor of $0.90, after {standin.post_count} POSTs: {shown}")
    assert standin.post_count == 1, shown
    assert sorted(is_floor_refusal(o) for o in outcomes) == [False, True, True], shown


# -- 6. Cancel during the floor's balance check never sends -----------------------------------

class BillingGate:
    """Holds every GET /v2/billing at the stand-in while closed: a slow balance check, under test control."""

    def __init__(self, server: Any, monkeypatch: Any) -> None:
        self.arrived = 0
        self._opened = threading.Event()
        self._lock = threading.Lock()
        answer = server.accounts.billing_answer

        def held(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.arrived += 1
            self._opened.wait(60)
            return answer(*args, **kwargs)

        monkeypatch.setattr(server.accounts, "billing_answer", held)

    def close(self) -> None:
        with self._lock:
            self.arrived = 0
        self._opened.clear()

    def open(self) -> None:
        self._opened.set()


def _coroutine_generate(pack: Any) -> tuple[type, Callable[..., Any]]:
    """Generate's class and its node function as ComfyUI 0.3.45+ calls it (a coroutine it awaits)."""
    node_call = sys.modules[f"{PACK_NAME}.nodes.node_call"]
    cls = pack.NODE_CLASS_MAPPINGS["Flux2LoraGenerate"]
    return cls, node_call.node_function(getattr(cls, f"{cls.FUNCTION}_blocking"), coroutine=True)


def _in_own_loop(main: Callable[[], Any]) -> Any:
    """``asyncio.run(main())`` on a thread of its own, as ComfyUI's prompt worker runs a prompt."""
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(result=outcome_of(lambda: asyncio.run(main()))))
    thread.start()
    thread.join(120)
    if isinstance(box.get("result"), BaseException):
        raise box["result"]
    return box["result"]


NODES, ROUNDS = 13, 6


def test_cancel_during_the_balance_check_never_sends(pack, standin, comfy, monkeypatch):
    # Coroutine nodes, as ComfyUI 0.3.45+ runs them: the node reports "interrupted" at once, while
    # its worker thread is still waiting for the balance. (Plain nodes, one at a time, rarely lose this race.)
    monkeypatch.setenv("FLUX2_LORA_BALANCE_FLOOR", "0.50")
    gate = BillingGate(standin, monkeypatch)
    cls, function = _coroutine_generate(pack)
    asked: list[int] = []
    outcomes: list[Any] = []

    async def main(round_: int) -> list[Any]:
        tasks = [asyncio.ensure_future(function(cls(), **generate_inputs(seed=600 + 100 * round_ + k),
                                                unique_id=str(k)))
                 for k in range(NODES)]
        # Every node is asking the balance (or, should the pack ask it once at a time, the first one has
        # for a while).
        first_seen = None
        while gate.arrived < NODES:
            if gate.arrived and first_seen is None:
                first_seen = time.monotonic()
            if first_seen is not None and time.monotonic() - first_seen > 1.0:
                break
            await asyncio.sleep(0.02)
        asked.append(gate.arrived)
        comfy.interrupted = True
        await asyncio.wait(tasks, timeout=10)  # the nodes report "interrupted"...
        gate.open()                            # ...then the balance answers come
        return await asyncio.gather(*tasks, return_exceptions=True)

    # Threads take turns often, as on a busy machine, so the race between a node's worker noticing
    # Cancel and its request being sent is really run, not always won by whichever thread holds the GIL.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for round_ in range(ROUNDS):
            gate.close()
            outcomes += _in_own_loop(lambda round_=round_: main(round_))
            comfy.interrupted = False
    finally:
        gate.open()
        sys.setswitchinterval(switch)
    comfy.interrupted = False
    time.sleep(2.0)
    settle(standin)
    assert all(type(o).__name__ == "InterruptProcessingException" for o in outcomes), [describe(o) for o in outcomes]
    assert standin.post_count == 0, (f"{standin.post_count} of {NODES * ROUNDS} nodes cancelled during their balance "
                                     f"check (GET /v2/billing waiting at Cancel: {asked}) sent their POST anyway")


def test_cancel_during_the_balance_check_never_sends_from_a_busy_plain_node(pack, standin, monkeypatch):
    # A plain node (ComfyUI before 0.3.45, one at a time) on a busy machine: ComfyUI's progress hook,
    # which raises its interrupt exception once Cancel is pressed, takes a while to get to it.
    fake = FakeComfy()

    class BusyProgressBar:
        def __init__(self, total: int, node_id: str | None = None) -> None:
            self.total = total

        def update_absolute(self, value: int, total: int | None = None, preview: Any = None) -> None:
            if fake.processing_interrupted():
                time.sleep(0.5)
            fake.throw_if_interrupted()

    fake.modules["comfy.utils"].ProgressBar = BusyProgressBar
    fake.install(monkeypatch)
    monkeypatch.setenv("FLUX2_LORA_BALANCE_FLOOR", "0.50")
    gate = BillingGate(standin, monkeypatch)
    outcomes = []
    for k in range(3):
        gate.close()
        box: dict[str, Any] = {}
        thread = threading.Thread(target=lambda k=k, box=box: box.update(outcome=outcome_of(
            lambda: generate(pack, seed=690 + k, unique_id=str(k)))))
        thread.start()
        wait_until(lambda: gate.arrived >= 1, 60, "the balance check")
        fake.interrupt()   # Cancel while the node waits for the balance
        time.sleep(0.2)
        gate.open()
        thread.join(60)
        outcomes.append(box.get("outcome"))
        fake.interrupt(False)
    time.sleep(1.0)
    settle(standin)
    assert standin.post_count == 0, (f"{standin.post_count} of 3 nodes cancelled during their balance check sent "
                                     f"their POST anyway: {[describe(o) for o in outcomes]}")
    assert all(isinstance(o, BaseException) for o in outcomes), [describe(o) for o in outcomes]


# -- 7. a bad setting is refused before anything is sent -----------------------------------------

@pytest.mark.parametrize(("name", "value", "form"), [
    ("FLUX2_LORA_LOG_WAIT", "60s", "seconds"),
    ("FLUX2_LORA_READ_TIMEOUT", "abc", "seconds"),
    ("FLUX2_LORA_CONNECT_TIMEOUT", "soon", "seconds"),
    ("FLUX2_LORA_BALANCE_FLOOR", "x", "USD"),
    ("FLUX2_LORA_CREDIT_BUDGET", "lots", "credits"),
    ("FLUX2_LORA_BUDGET_PERIOD", "week", "day"),
    ("FLUX2_LORA_MAX_IN_FLIGHT", "many", "whole number"),
    ("FLUX2_LORA_CACHE_MAX_BYTES", "huge", "bytes"),
])
def test_a_bad_setting_refuses_the_run_before_sending_naming_it(pack, standin, monkeypatch, name, value, form):
    generate(pack, seed=700)  # a run with good settings first: the pack is set up, its client made
    monkeypatch.setenv(name, value)
    outcome = outcome_of(lambda: generate(pack, seed=701))
    monkeypatch.delenv(name)
    settle(standin, grace=0)
    assert standin.post_count == 1, f"the run was sent with {name}={value!r}: {describe(outcome)}"
    text = error_text(outcome)
    assert name in text and value in text and form in text, text


# -- 11. a ledger file replaced while the process runs ------------------------------------------

def _empty_file(path: Path) -> None:
    path.write_bytes(b"")


def _sqlite_without_the_table(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()


@pytest.mark.parametrize("replacement", [_empty_file, _sqlite_without_the_table], ids=["empty", "other-sqlite"])
def test_a_replaced_ledger_file_keeps_counting_without_a_restart(pack, standin, monkeypatch, replacement):
    per_day_budget(monkeypatch, 400_000)
    ledger = Path(os.environ["FLUX2_LORA_LEDGER"])
    generate(pack, seed=1101)  # 120,000: the ledger file exists now
    assert ledger.exists()
    # The user follows the error's advice: the old file goes, a new one takes its place.
    for path in (ledger, ledger.with_name(ledger.name + "-wal"), ledger.with_name(ledger.name + "-shm")):
        path.unlink(missing_ok=True)
    replacement(ledger)

    second = outcome_of(lambda: generate(pack, seed=1102, num_images=2))  # 240,000
    assert isinstance(second, dict), f"the first paid run after the ledger was replaced failed: {describe(second)}"
    assert standin.post_count == 2
    # Its 240,000 credits are in today's total: with them, 240,000 more cross 400,000 (without, they would not).
    third = outcome_of(lambda: generate(pack, seed=1103, num_images=2))
    assert standin.post_count == 2, f"the cost of the run after the replacement was lost: {describe(third)}"
    assert is_budget_refusal(third) and "no such table" not in str(third), describe(third)
