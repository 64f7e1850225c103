"""The per-process credit budget: credits added up, requests refused before sending once it is reached."""

from __future__ import annotations

import json
import sys
import threading

import pytest
from conftest import PACK_NAME, generate


@pytest.fixture
def budget(pack):
    return sys.modules[f"{PACK_NAME}.api_client.budget"]


def _info(out):
    return json.loads(out["result"][1])


def test_budget_refuses_before_sending_once_reached(pack, api, standin, budget, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_CREDIT_BUDGET", "200000")
    generate(pack, seed=1)                           # 120000 spent, below the budget
    generate(pack, seed=2)                           # allowed; 240000 spent, budget reached
    assert budget.credit_budget().spent == 240000
    with pytest.raises(api.BudgetExceededError) as caught:
        generate(pack, seed=3, num_images=6)
    assert standin.post_count == 2
    message = str(caught.value)
    assert "spent 240,000 credits of its budget of 200,000 credits" in message
    assert "environment variable FLUX2_LORA_CREDIT_BUDGET" in message
    assert "this node's 2 requests were not sent and nothing was billed" in message


def test_cached_results_still_run_when_the_budget_is_used_up(pack, standin, budget, monkeypatch):
    generate(pack, seed=1)
    monkeypatch.setenv("FLUX2_LORA_CREDIT_BUDGET", "0")
    out = generate(pack, seed=1)
    assert _info(out)["cache"] == "hit" and standin.post_count == 1
    assert out["ui"]["flux2_budget"] == [{"spent": 120000, "budget": 0}]


def test_partly_cached_run_is_refused_whole_when_the_budget_is_used_up(pack, api, standin, monkeypatch):
    generate(pack, num_images=4)
    monkeypatch.setenv("FLUX2_LORA_CREDIT_BUDGET", "1")
    with pytest.raises(api.BudgetExceededError, match=r"this node's request was not sent"):
        generate(pack, num_images=8)
    assert standin.post_count == 1


def test_credits_reported_by_the_api_are_added_up_and_shown(pack, standin, budget):
    standin.queue_post_faults([{"usage": {"credits_used": 2.5}}, {"usage": {"credits_used": 4}}])
    generate(pack, seed=1)
    out = generate(pack, seed=2)
    assert out["ui"]["flux2_budget"] == [{"spent": 6.5, "budget": None}]
    budget.set_credit_budget(10)
    assert generate(pack, seed=3)["ui"]["flux2_budget"] == [{"spent": 6.5 + 120000, "budget": 10}]


def test_cached_and_uncached_batches_count_only_what_was_billed(pack, standin, budget):
    generate(pack, num_images=4)
    generate(pack, num_images=8)                     # the first request is cached, the second billed
    assert budget.credit_budget().spent == 8 * 120000


def test_setting_overrides_env_and_none_returns_to_env(pack, api, standin, budget, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_CREDIT_BUDGET", "0")
    budget.set_credit_budget(1_000_000)
    generate(pack, seed=1)
    assert budget.credit_budget().limit() == (1_000_000, "the Flux2 LoRA credit budget setting")
    budget.set_credit_budget(None)
    with pytest.raises(api.BudgetExceededError, match=r"budget of 0 credits \(from environment variable"):
        generate(pack, seed=2)
    assert standin.post_count == 1


@pytest.mark.parametrize("raw", ["ten", "-5", "nan", "inf"])
def test_bad_budget_is_a_clear_error_before_sending(pack, api, standin, monkeypatch, raw):
    monkeypatch.setenv("FLUX2_LORA_CREDIT_BUDGET", raw)
    with pytest.raises(api.ConfigError, match=rf"FLUX2_LORA_CREDIT_BUDGET must be a number of credits.*{raw!r}"):
        generate(pack)
    assert standin.post_count == 0


@pytest.mark.parametrize("raw", ["", " ", "none", "OFF"])
def test_empty_or_off_budget_means_no_limit(pack, standin, monkeypatch, raw):
    monkeypatch.setenv("FLUX2_LORA_CREDIT_BUDGET", raw)
    generate(pack, seed=1)
    assert generate(pack, seed=2)["ui"]["flux2_budget"][0]["budget"] is None


def test_adding_from_many_threads_loses_nothing(budget):
    tracker = budget.CreditBudget()

    def add() -> None:
        for _ in range(1000):
            tracker.add(0.5)

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tracker.spent == 4000
