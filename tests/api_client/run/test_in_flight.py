"""Requests in flight: billed answers always reach the cache, identical requests are sent once,
and work a run no longer wants never delays the next run."""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import PACK_NAME, TEST_KEY, InterruptProcessingException, generate, generate_inputs

from api_client.standin import encode_picture, render_picture


def _info(out):
    return json.loads(out["result"][1])


def _cache_entries() -> int:
    root = Path(os.environ["FLUX2_LORA_CACHE_DIR"]) / "v1"
    return len(list(root.glob("*/manifest.json"))) if root.is_dir() else 0


def _wait_for_entries(count: int, timeout: float = 10.0) -> None:
    """Wait (generously) until the result cache holds ``count`` complete entries."""
    deadline = time.monotonic() + timeout
    while _cache_entries() < count and time.monotonic() < deadline:
        time.sleep(0.05)


def _cancel_once_sent(standin, comfy, posts: int, after: float = 0.3) -> threading.Event:
    """Press Cancel ``after`` seconds after the stand-in has received ``posts`` POSTs; set the event to stop."""
    ended = threading.Event()

    def watch() -> None:
        while standin.post_count < posts and not ended.wait(0.01):
            pass
        if not ended.wait(after):
            comfy.interrupted = True

    threading.Thread(target=watch, daemon=True).start()
    return ended


class _Sizes:
    """A sink that only notes which pictures arrived."""

    def __init__(self) -> None:
        self.written: dict[int, tuple[int, int]] = {}

    def write(self, index, picture) -> None:
        self.written[index] = (picture.width, picture.height)


def _requests(api, **overrides):
    inputs = generate_inputs(**overrides)
    inputs.pop("use_cache", None)
    return api.build_requests(**inputs)


# -- item 2: every billed answer ends in the cache -------------------------------------------------------------


@pytest.mark.parametrize("mode", ["url", "b64"])
def test_answer_billed_after_cancel_is_cached_so_the_rerun_is_free(pack, api, standin, comfy, mode):
    standin.configure(latency=1.0, response_mode=mode)
    ended = _cancel_once_sent(standin, comfy, 1)
    with pytest.raises(InterruptProcessingException):
        generate(pack, num_images=2)
    ended.set()
    _wait_for_entries(1)                  # the answer arrives after the run ended and is saved anyway
    standin.latency = 0.0
    again = generate(pack, num_images=2)
    assert _info(again)["cache"] == "hit" and _info(again)["credits_used"] == 0
    assert standin.post_count == 1
    expected = torch.from_numpy(render_picture(7, 1, 512, 512, "a red fox in snow")).float() / 255
    assert torch.equal(again["result"][0][1], expected)


def test_billed_answer_is_cached_when_another_request_of_its_batch_fails(pack, api, standin):
    # Two requests: whichever arrives first answers after 1 s; the other is refused at once and ends the batch.
    standin.queue_post_faults([{"delay": 1.0}, {"status": 400, "message": "refused"}])
    with pytest.raises(api.BadRequestError):
        generate(pack, num_images=8)
    _wait_for_entries(1)
    again = generate(pack, num_images=8)  # the billed one comes from the cache; only the refused one is sent
    assert _info(again)["cache"] == "partial" and standin.post_count == 3


# -- item 3: one request per cache key in flight -------------------------------------------------------------


def test_identical_runs_at_the_same_time_send_one_request(pack, standin):
    standin.latency = 1.0
    outputs: list = []
    threads = [threading.Thread(target=lambda: outputs.append(generate(pack, num_images=2))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(outputs) == 3 and standin.post_count == 1
    assert all(torch.equal(out["result"][0], outputs[0]["result"][0]) for out in outputs)
    assert sorted(_info(out)["credits_used"] for out in outputs) == [0, 0, 240000]


def test_rerun_right_after_cancel_waits_for_the_request_still_in_flight(pack, standin, comfy):
    standin.latency = 1.0
    ended = _cancel_once_sent(standin, comfy, 1)
    with pytest.raises(InterruptProcessingException):
        generate(pack)
    ended.set()
    again = generate(pack)                # the same inputs while the first request is still in flight
    assert standin.post_count == 1 and _info(again)["credits_used"] == 0
    assert tuple(again["result"][0].shape) == (1, 512, 512, 3)


def test_waiting_for_an_identical_request_can_be_cancelled(pack, api, standin, tmp_path):
    standin.latency = 2.0
    client = api.shared_client(api.ApiKey(TEST_KEY, "test"), standin.base_url)
    cache = api.ResultCache(tmp_path / "shared")
    first = threading.Thread(target=lambda: api.run_batch(client, _requests(api), _Sizes(), cache=cache))
    first.start()
    while standin.post_count < 1:
        time.sleep(0.01)
    started = time.monotonic()

    def cancel_soon() -> None:
        if time.monotonic() - started > 0.3:
            raise api.Cancelled("cancelled")

    with pytest.raises(api.Cancelled):
        api.run_batch(client, _requests(api), _Sizes(), cache=cache, check_cancel=cancel_soon)
    assert time.monotonic() - started < 1.5
    first.join(10)
    assert standin.post_count == 1


def test_failure_of_a_shared_request_reaches_every_run_waiting_for_it(pack, api, standin):
    standin.queue_post_faults([{"status": 422, "message": "prompt flagged", "delay": 0.5}])
    errors: list = []

    def run() -> None:
        try:
            generate(pack)
        except api.Flux2Error as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [type(e).__name__ for e in errors] == ["BadRequestError"] * 2 and standin.post_count == 1


def test_run_waiting_for_an_identical_request_is_free_even_at_the_budget(pack, api, standin):
    budget = sys.modules[f"{PACK_NAME}.api_client.money.budget"]
    generate(pack, seed=1)                 # 120,000 spent, the price known
    budget.set_credit_budget(250_000)
    standin.latency = 1.0
    first = threading.Thread(target=lambda: generate(pack, seed=2))  # 240,000 with it: within the budget
    first.start()
    deadline = time.monotonic() + 10
    while standin.post_count < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert standin.post_count == 2
    same = generate(pack, seed=2)          # waits for the first one's answer; nothing new to pay
    assert _info(same)["credits_used"] == 0
    with pytest.raises(api.BudgetExceededError):
        generate(pack, seed=3)             # 120,000 spent + 120,000 held + 120,000 would exceed it
    first.join(10)
    assert standin.post_count == 2


def test_cache_off_sends_even_when_an_identical_request_is_in_flight(pack, standin):
    standin.latency = 0.5
    threads = [threading.Thread(target=lambda: generate(pack, use_cache=False)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert standin.post_count == 2


# -- item 7: work a run no longer wants never starves the next run --------------------------------------------


def test_cancelled_runs_do_not_delay_the_next_run(api, standin):
    # The case: 17 cancelled 16-picture runs (68 requests) whose answers take 6 s, then a plain run.
    tiny = base64.b64encode(encode_picture(render_picture(1, 0, 512, 512), "png")).decode()
    standin.queue_post_faults([{"data": [{"b64_json": tiny}], "delay": 6.0, "times": 68}])
    client = api.shared_client(api.ApiKey(TEST_KEY, "test"), standin.base_url)
    for run in range(17):
        started = time.monotonic()

        def cancel_once_sent(run: int = run, started: float = started) -> None:
            if standin.post_count >= 4 * (run + 1) or time.monotonic() - started > 5.0:
                raise api.Cancelled("cancelled")

        with pytest.raises(api.Cancelled):
            api.run_batch(client, _requests(api, seed=1000 + 16 * run, num_images=16), _Sizes(),
                          check_cancel=cancel_once_sent)
    assert standin.post_count == 68
    plain = threading.Thread(target=lambda: api.run_batch(client, _requests(api, seed=1), _Sizes()))
    started = time.monotonic()
    plain.start()
    while standin.post_count < 69 and time.monotonic() - started < 2.5:
        time.sleep(0.01)
    # Sent at once, not after the cancelled requests have freed threads (6 s after they were sent).
    assert standin.post_count == 69, f"the next run's request waited {time.monotonic() - started:.1f} s"
    plain.join(10)
