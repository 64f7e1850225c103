"""Money promises that need a real ComfyUI process stopped and started again (issue 18).

- Settings made in ComfyUI (the pack's budget and balance-floor routes, as the Settings dialog
  sends them) are in force from start-up, before any page connects.
- A request in flight when ComfyUI is killed keeps its hold on a per-day budget after the restart.
- Generate nodes of one prompt running at once never take the balance below the floor.

Each test has a ComfyUI of its own (``comfy_factory``) when it changes settings or kills the
process, so a setting kept on disk cannot reach the other tests. The stand-in's account holds $100;
one 1024x768 picture costs 120,000 credits ($0.06).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import pytest

from .harness import ComfyUIProcess, status_messages
from .workflows import text_to_image_prompt

pytestmark = pytest.mark.e2e

PICTURE = 120_000


def wait_until_idle(standin: Any, timeout: float = 60.0) -> None:
    """Until the stand-in answers no generation POST any more (a killed run's POST runs to its end)."""
    deadline = time.monotonic() + timeout
    while standin.stats()["posts_in_progress"]:
        assert time.monotonic() < deadline, "the stand-in kept a POST in progress"
        time.sleep(0.1)


def kill_hard(comfy: ComfyUIProcess) -> None:
    """SIGKILL ComfyUI, as a crash or a power cut would stop it: no clean-up of any kind."""
    process = comfy._process
    assert process is not None and process.poll() is None, "ComfyUI is not running"
    process.kill()
    process.wait(30)
    comfy._process = None


def refused_after(start: Callable[[], Any], comfy: ComfyUIProcess, standin: Any, sent_before: int, word: str,
                  why: str) -> None:
    """``start()`` ComfyUI again; then a text-to-image prompt is refused before it is sent, naming ``word``."""
    start()
    refused_before_sending(comfy.post_prompt(text_to_image_prompt(), expect_success=False), standin, sent_before,
                           word, why)


def refused_before_sending(entry: dict[str, Any], standin: Any, sent_before: int, word: str, why: str) -> None:
    messages = status_messages(entry)
    sent = standin.post_count - sent_before
    assert sent == 0, f"the run was sent ({sent} POST; {messages}): {why}"
    assert entry["status"]["status_str"] == "error", messages
    assert word in messages.lower(), messages
    assert "nothing was billed" in messages, messages


@pytest.fixture(scope="module")
def settings_comfy(comfy_factory):
    """A ComfyUI whose money settings these tests change (and restart)."""
    return comfy_factory("money-settings")


def test_a_budget_set_in_comfyui_holds_from_start_up_before_any_page_loads(settings_comfy, standin):
    comfy = settings_comfy
    answer = comfy.post("/flux2_lora/budget", {"budget": 0, "period": "day"})
    assert answer.status == 200, answer.text
    try:
        # No page is loaded after the restart: nothing pushes the setting again.
        refused_after(comfy.restart, comfy, standin, 0, "budget",
                      "the budget of 0 per day set in ComfyUI was lost when ComfyUI restarted")
    finally:
        comfy.post("/flux2_lora/budget", {"budget": None, "period": None})


def test_a_balance_floor_set_in_comfyui_holds_from_start_up_before_any_page_loads(settings_comfy, standin):
    comfy = settings_comfy
    answer = comfy.post("/flux2_lora/balance", {"floor": 99.97})  # $100 - $0.06 would leave $99.94
    assert answer.status == 200, answer.text
    try:
        refused_after(comfy.restart, comfy, standin, 0, "floor",
                      "the balance floor of $99.97 set in ComfyUI was lost when ComfyUI restarted")
    finally:
        comfy.post("/flux2_lora/balance", {"floor": None})


def test_a_request_in_flight_when_comfyui_is_killed_still_counts_after_the_restart(comfy_factory, standin):
    comfy = comfy_factory("money-killed", env={"FLUX2_LORA_CREDIT_BUDGET": str(2 * PICTURE + 10_000),
                                               "FLUX2_LORA_BUDGET_PERIOD": "day"})
    first = comfy.post_prompt(text_to_image_prompt())  # 120,000 spent today; the price is known now
    assert standin.post_count == 1, status_messages(first)
    standin.queue_faults(post=[{"delay": 15}])
    comfy.queue_prompt(text_to_image_prompt())  # run 1: 120,000 more, in flight...
    standin.wait_for_posts(2, timeout=60)
    kill_hard(comfy)                            # ...when ComfyUI dies
    try:
        # 120,000 spent + 120,000 held by run 1 + 120,000 for run 2 > 250,000.
        refused_after(comfy.start, comfy, standin, 2, "budget",
                      "the hold of the run in flight when ComfyUI was killed was lost with the process")
    finally:
        wait_until_idle(standin)


def _three_generate_nodes() -> dict[str, Any]:
    """One prompt with three Generate nodes (own seeds) and a Save Image each: ComfyUI runs them at once."""
    prompt = text_to_image_prompt()
    for k, (gen, save) in enumerate((("3", "4"), ("13", "14"), ("23", "24"))):
        if gen != "3":
            prompt[gen] = copy.deepcopy(prompt["3"])
            prompt[save] = copy.deepcopy(prompt["4"])
            prompt[save]["inputs"]["images"] = [gen, 0]
        prompt[gen]["inputs"]["seed"] = int(time.time()) % 1_000_000 * 10 + k + 1
    return prompt


def test_generate_nodes_of_one_prompt_never_take_the_balance_below_the_floor(comfy_factory, standin):
    comfy = comfy_factory("money-floor", env={"FLUX2_LORA_BALANCE_FLOOR": "0.90"})
    standin._admin("POST", "config", {"balance": 1.00, "latency": 4})  # room for one $0.06 picture, not two
    try:
        entry = comfy.post_prompt(_three_generate_nodes(), expect_success=False)
        wait_until_idle(standin)
        time.sleep(1.0)
        stats = standin.stats()
        assert stats["balance"] >= 0.90, (f"the balance fell to ${stats['balance']:.2f}, below the floor of $0.90, "
                                          f"after {stats['post_count']} POSTs: {status_messages(entry)}")
        # One node fits above the floor. ComfyUI ends the prompt at the first node's error and cancels
        # the others, so the admitted node's POST goes only if it left before that Cancel: one POST at
        # the most, never after the Cancel (test_faults: a Cancel while the attempt is noted sends nothing).
        assert stats["post_count"] <= 1, status_messages(entry)
        assert "floor" in status_messages(entry).lower()
    finally:
        wait_until_idle(standin)
