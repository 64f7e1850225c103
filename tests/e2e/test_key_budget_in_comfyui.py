"""Issue 21 in a real ComfyUI: one budget in USD for every machine on the key, and a retiring model.

Another machine on the same key is played by a generation POST sent straight to the stand-in
process (the key's spending as ``GET /v2/usage`` reports it); the ComfyUI under test has its own
state folder. One 1024x768 picture costs 120,000 credits ($0.06) at the stand-in.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from .harness import status_messages
from .test_money_restart import refused_before_sending
from .workflows import text_to_image_prompt

pytestmark = pytest.mark.e2e

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def spend_on_another_machine(standin: Any, key: str) -> None:
    """One $0.06 generation billed to the key, sent by someone else (not this ComfyUI)."""
    body = json.dumps({"model": "blackforestlabs/flux-2-lora", "prompt": "another machine",
                       "image_size": "landscape_4_3"}).encode()
    request = urllib.request.Request(f"{standin.base_url}/images/generations", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    with _OPENER.open(request, timeout=60) as answer:
        assert answer.status == 200


def test_a_key_wide_budget_sees_the_other_machines_spending(comfy_factory, standin):
    comfy = comfy_factory("key-budget", env={"FLUX2_LORA_BUDGET_USD": "$0.10", "FLUX2_LORA_BUDGET_SCOPE": "key",
                                             "FLUX2_LORA_BUDGET_PERIOD": "day"})
    spend_on_another_machine(standin, comfy.key)
    assert standin.post_count == 1
    # $0.06 spent by the key elsewhere + this run's $0.06 would be $0.12, over $0.10: not sent.
    entry = comfy.post_prompt(text_to_image_prompt(), expect_success=False)
    refused_before_sending(entry, standin, 1, "budget in usd", "the other machine's spending was not counted")
    assert "the API says the key spent $0.06 today" in status_messages(entry)
    status = comfy.get("/flux2_lora/budget").json()
    assert status["scope"] == "key" and status["budget_usd"] == pytest.approx(0.10)
    assert status["usd_line"] == "Key today: $0.06 of $0.10 (all machines) · this machine: $0.00"
    # A higher budget set from ComfyUI's settings: sent.
    answer = comfy.post("/flux2_lora/budget", {"budget_usd": "$0.20"})
    assert answer.status == 200, answer.text
    try:
        done = comfy.post_prompt(text_to_image_prompt())
        assert standin.post_count == 2, status_messages(done)
    finally:
        comfy.post("/flux2_lora/budget", {"budget_usd": None})


def test_a_retiring_model_is_sent_with_a_notice_and_a_withdrawn_one_is_not(comfy_factory, standin):
    comfy = comfy_factory("model-lifecycle")
    entry = {"id": "blackforestlabs/flux-2-lora-v0", "aliases": ["blackforestlabs/flux-2-lora"],
             "status": "deprecated", "deprecated_at": "2026-11-01", "shutdown_at": "2027-01-31",
             "replaced_by": "blackforestlabs/flux-2-lora-v2", "reason": "consolidated"}
    standin._admin("POST", "config", {"deprecations": [entry]})
    done = comfy.post_prompt(text_to_image_prompt())
    assert standin.post_count == 1, status_messages(done)
    outputs = json.dumps(done.get("outputs", {}))
    assert "shuts down on 2027-01-31" in outputs, outputs[:2000]
    # Withdrawn: the feed on disk is a day old only tomorrow, so the file is removed to ask again.
    (comfy.user_dir / "flux2_lora" / "deprecations.json").unlink()
    standin._admin("POST", "config", {"deprecations": [{**entry, "status": "withdrawn"}]})
    refused = comfy.post_prompt(text_to_image_prompt(), expect_success=False)  # a new seed: neither cache knows it
    refused_before_sending(refused, standin, 1, "withdrawn", "a withdrawn model was sent")
    assert "blackforestlabs/flux-2-lora-v2" in status_messages(refused)
