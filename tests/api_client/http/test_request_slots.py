"""The process-wide cap on generation requests in flight (api_client/http/request_slots.py)."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import PACK_NAME


@pytest.fixture
def slots_module(pack):
    import importlib

    return importlib.import_module(f"{PACK_NAME}.api_client.http.request_slots")


def _waiter(slots, order, name, cancel=None, hold=0.0):
    def run():
        try:
            with slots.slot(cancel):
                order.append(name)
                time.sleep(hold)
        except Exception as exc:
            order.append(type(exc).__name__)
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_at_most_the_limit_hold_a_slot_and_the_others_go_in_order(slots_module):
    slots = slots_module.RequestSlots(2)
    first, second = slots.acquire(), slots.acquire()
    order: list[str] = []
    threads = []
    for name in "abc":
        threads.append(_waiter(slots, order, name))
        time.sleep(0.1)  # each has joined the queue before the next
    assert order == [] and slots.waiting == 3 and slots.in_flight == 2
    slots.release(first)
    slots.release(second)
    for thread in threads:
        thread.join(5)
    assert order == ["a", "b", "c"] and slots.in_flight == 0


def test_cancel_ends_a_wait_without_taking_a_slot(slots_module, api):
    slots = slots_module.RequestSlots(1)
    held = slots.acquire()
    cancel = threading.Event()
    order: list[str] = []
    thread = _waiter(slots, order, "late", cancel)
    time.sleep(0.1)
    cancel.set()
    thread.join(2)
    assert order == ["Cancelled"] and slots.waiting == 0 and slots.in_flight == 1
    slots.release(held)


def test_a_cancelled_request_gives_up_its_slot_after_the_grace(slots_module):
    slots = slots_module.RequestSlots(1)
    cancel = threading.Event()
    slots.acquire(cancel)  # a POST whose run was cancelled, still waiting for its answer
    cancel.set()
    assert slots.in_flight == 1  # the other requests of that prompt see their Cancel first
    order: list[str] = []
    started = time.monotonic()
    _waiter(slots, order, "next run").join(5)
    assert order == ["next run"]
    assert time.monotonic() - started >= slots_module.CANCELLED_GRACE * 0.9
    assert slots.in_flight == 0


@pytest.mark.parametrize("raw, expected", [("", 8), (" 3 ", 3), ("1", 1)])
def test_the_cap_comes_from_its_environment_variable(slots_module, raw, expected):
    assert slots_module.parse_max_in_flight(raw) == expected


@pytest.mark.parametrize("raw", ["0", "-2", "four", "2.5"])
def test_a_bad_cap_names_the_variable_the_value_and_the_default(slots_module, api, raw):
    with pytest.raises(api.ConfigError, match=rf"FLUX2_LORA_MAX_IN_FLIGHT must be .*1 or more; got '{raw}'.*8"):
        slots_module.parse_max_in_flight(raw)
