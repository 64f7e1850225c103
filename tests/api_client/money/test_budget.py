"""The per-process credit budget: credits added up, requests refused before sending once it is reached."""

from __future__ import annotations

import json
import sys
import threading
import time
from importlib import import_module

import pytest
from conftest import PACK_NAME, TEST_KEY, InterruptProcessingException, aiohttp_app, generate, run_client

from api_client.standin import StandInServer


@pytest.fixture
def budget(pack):
    return sys.modules[f"{PACK_NAME}.api_client.money.budget"]


def budget_panel():
    """The budget route's answers (api_client/panel/budget.py)."""
    return import_module(f"{PACK_NAME}.api_client.panel.budget")


def _info(out):
    return json.loads(out["result"][1])


def test_budget_refuses_before_sending_once_reached(pack, api, standin, budget, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_CREDIT_BUDGET", "250000")
    generate(pack, seed=1)                           # 120000 spent, below the budget
    generate(pack, seed=2)                           # 240000 spent: within the budget, so allowed
    assert budget.credit_budget().spent == 240000
    with pytest.raises(api.BudgetExceededError) as caught:
        generate(pack, seed=3, num_images=6)         # 240000 + 720000 would exceed it: a hard cap
    assert standin.post_count == 2
    message = str(caught.value)
    assert "spent 240,000 credits of its budget of 250,000 credits" in message
    assert "this run's estimated 720,000 credits would take it to 960,000 credits" in message
    assert "environment variable FLUX2_LORA_CREDIT_BUDGET" in message
    assert "this node's 2 requests were not sent and nothing was billed" in message


def test_a_run_whose_own_estimate_would_cross_the_budget_is_refused_before_sending(pack, api, standin, budget,
                                                                                   monkeypatch):
    # Issue 18, defect 3: budget 130,000, a picture 120,000: the second run would make 240,000.
    generate(pack, seed=1)                           # the price is known now: 120,000 a picture
    monkeypatch.setenv("FLUX2_LORA_CREDIT_BUDGET", "250000")
    with pytest.raises(api.BudgetExceededError, match="would take it to 360,000 credits"):
        generate(pack, seed=2, num_images=2)
    assert standin.post_count == 1 and budget.credit_budget().held == 0


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
    budget.set_credit_budget(20)                     # 6.5 spent + 4 (the highest price seen) fits
    assert generate(pack, seed=3)["ui"]["flux2_budget"] == [{"spent": 6.5 + 120000, "budget": 20}]


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


def _run_in_threads(pack, seeds):
    """Generate once per seed, all at the same time; the outcome of each (output or exception)."""
    outcomes: dict[int, object] = {}

    def run(seed: int) -> None:
        try:
            outcomes[seed] = generate(pack, seed=seed)
        except Exception as exc:
            outcomes[seed] = exc

    threads = [threading.Thread(target=run, args=(seed,)) for seed in seeds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


def test_requests_in_flight_count_against_the_budget_of_concurrent_runs(pack, api, standin, budget):
    generate(pack, seed=1)                           # 120,000 spent; the price per picture is now known
    budget.set_credit_budget(250_000)
    standin.latency = 1.0
    outcomes = _run_in_threads(pack, [2, 3, 4])
    # A hard cap: 120,000 spent + 120,000 fits in 250,000; a second one in flight would make 360,000.
    refused = [seed for seed, out in outcomes.items() if isinstance(out, api.BudgetExceededError)]
    assert len(refused) == 2 and standin.post_count == 2
    assert any("more are held by requests still waiting for their answers" in str(outcomes[seed]) for seed in refused)
    assert budget.credit_budget().spent == 240_000 and budget.credit_budget().held == 0


def test_cancel_and_requeue_cannot_overshoot_the_budget(pack, api, standin, budget, comfy):
    # The case: budget 130,000, a picture costs 120,000, a run cancelled and queued again five times.
    budget.set_credit_budget(130_000)
    standin.latency = 2.0
    outcomes = []
    for seed in range(1, 6):
        ended = threading.Event()
        sent_before = standin.post_count

        def cancel_once_sent(ended: threading.Event = ended, sent_before: int = sent_before) -> None:
            while standin.post_count == sent_before and not ended.wait(0.01):
                pass
            if not ended.wait(0.3):
                comfy.interrupted = True

        threading.Thread(target=cancel_once_sent).start()
        try:
            generate(pack, seed=seed)
        except (InterruptProcessingException, api.BudgetExceededError) as exc:
            outcomes.append(type(exc).__name__)
        ended.set()
        comfy.interrupted = False
    # The first (of a price not known yet) is cancelled in flight; the second waits for its answer, which
    # makes the price known: 120,000 + 120,000 would exceed 130,000, so it and every later one are refused.
    assert standin.post_count == 1
    assert outcomes[1:] == ["BudgetExceededError"] * 4
    deadline = time.monotonic() + 5
    while budget.credit_budget().held and time.monotonic() < deadline:
        time.sleep(0.05)
    assert budget.credit_budget().spent == 120_000


def test_request_that_surely_was_not_billed_gives_its_hold_back(pack, api, standin, budget):
    generate(pack, seed=1)
    budget.set_credit_budget(250_000)
    standin.queue_post_faults([{"status": 422, "message": "bad"}])
    with pytest.raises(api.BadRequestError):
        generate(pack, seed=2)
    assert budget.credit_budget().held == 0 and budget.credit_budget().spent == 120_000
    generate(pack, seed=3)                           # still below the budget: sent
    assert standin.post_count == 3


def test_request_that_may_have_been_billed_counts_its_estimate(pack, api, standin, budget, monkeypatch):
    generate(pack, seed=1)
    # A server of its own: the node's shared client for it is made with this read timeout.
    with StandInServer(key=TEST_KEY, latency=2.0).start() as server:
        monkeypatch.setenv("AIML_API_BASE", server.base_url)
        monkeypatch.setenv("FLUX2_LORA_READ_TIMEOUT", "0.5")
        with pytest.raises(api.APITimeoutError):
            generate(pack, seed=2)
    assert budget.credit_budget().spent == 240_000 and budget.credit_budget().held == 0


def test_answer_without_a_valid_cost_counts_its_estimate_never_as_free(pack, standin, budget):
    generate(pack, seed=1)                           # the price is known now: 120,000 a picture
    standin.queue_post_faults([{"usage": {"credits_used": "lots"}}])
    generate(pack, seed=2)
    tracker = budget.credit_budget()
    assert tracker.spent == 240_000 and tracker.unreported == 1 and tracker.held == 0


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


# --- the budget route behind the frontend setting: GET and POST /flux2_lora/budget ---

ENV_BUDGET = {"FLUX2_LORA_CREDIT_BUDGET": "500000"}


def post_budget(budget, tracker, data, content_type="application/json", environ=None):
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return budget_panel().budget_post_answer(body, content_type, tracker, ENV_BUDGET if environ is None else environ)


def test_setting_route_sets_the_budget_and_says_where_it_comes_from(budget):
    tracker = budget.CreditBudget()
    tracker.add(240_000)
    status, answer = budget_panel().budget_get_answer(tracker, ENV_BUDGET)
    assert status == 200 and tracker.setting is None  # GET changes nothing
    assert answer["budget"] == 500_000 and answer["left"] == 260_000 and answer["spent"] == 240_000
    assert answer["source"] == "environment variable FLUX2_LORA_CREDIT_BUDGET"
    status, answer = post_budget(budget, tracker, {"budget": 1_000_000})
    assert status == 200 and answer["changed"] and answer["setting"] == 1_000_000
    assert (answer["budget"], answer["left"]) == (1_000_000, 760_000)
    assert answer["source"] == "the Flux2 LoRA credit budget setting"
    assert answer["message"] == ("Budget 1,000,000 credits (from the Flux2 LoRA credit budget setting): "
                                 "240,000 credits spent, 760,000 credits left.")
    assert post_budget(budget, tracker, {"budget": 1_000_000})[1]["changed"] is False
    status, answer = post_budget(budget, tracker, {"budget": None})  # an empty setting: the environment decides
    assert status == 200 and answer["budget"] == 500_000 and answer["setting"] is None


def test_setting_route_reports_no_budget_a_reached_one_and_a_bad_env_value(budget):
    tracker = budget.CreditBudget()
    tracker.add(120_000)
    answer = budget_panel().budget_status(tracker, {})
    assert (answer["budget"], answer["left"], answer["source"]) == (None, None, None)
    assert "No credit budget" in answer["message"] and "FLUX2_LORA_CREDIT_BUDGET" in answer["message"]
    assert post_budget(budget, tracker, {"budget": 100_000})[1]["message"].endswith(
        "120,000 credits spent, reached: further requests are refused until it is raised or ComfyUI restarts.")
    tracker.set_limit(None)
    answer = budget_panel().budget_status(tracker, {"FLUX2_LORA_CREDIT_BUDGET": "ten"})
    assert answer["budget"] is None and "FLUX2_LORA_CREDIT_BUDGET must be a number" in answer["message"]


@pytest.mark.parametrize(("data", "content_type", "status", "says"), [
    (b"500000", "text/plain", 415, "application/json"),
    (b"{", "application/json", 400, "not valid JSON"),
    ([500000], "application/json", 400, "JSON object"),
    ({}, "application/json", 400, 'no "budget"'),
    ({"budget": 5, "spent": 0}, "application/json", 400, "Unknown field"),
    ({"budget": "500000"}, "application/json", 400, "got str"),
    ({"budget": True}, "application/json", 400, "got bool"),
    ({"budget": -5}, "application/json", 400, "0 or more"),
    (b'{"budget": NaN}', "application/json", 400, "0 or more"),
    (b'{"budget": Infinity}', "application/json", 400, "0 or more"),
    (json.dumps({"budget": 1, "pad": "x" * 5000}).encode(), "application/json", 413, "larger than"),
])
def test_setting_route_refuses_bad_input_and_keeps_the_budget(budget, data, content_type, status, says):
    tracker = budget.CreditBudget()
    tracker.set_limit(700)
    got, answer = post_budget(budget, tracker, data, content_type)
    assert got == status and says in answer["error"]
    assert tracker.setting == 700 and answer["budget"] == 700


@pytest.fixture
def budget_server(comfy_routes, budget):
    routes = sys.modules[f"{PACK_NAME}.nodes.routes.budget"]
    assert routes.register_budget_routes() is True
    assert routes.register_budget_routes() is True  # a second import adds nothing
    budget.set_credit_budget(None)
    yield aiohttp_app(comfy_routes)
    budget.set_credit_budget(None)


def test_budget_route_sets_the_process_budget_over_http(budget_server, budget, monkeypatch):
    monkeypatch.delenv("FLUX2_LORA_CREDIT_BUDGET", raising=False)

    async def steps(client):
        answers = [await client.get("/flux2_lora/budget"), await client.post("/flux2_lora/budget", json={"budget": 0}),
                   await client.put("/flux2_lora/budget", json={"budget": 9}),
                   await client.post("/flux2_lora/budget", data="budget=9")]
        return [(r.status, r.headers.get("Cache-Control"), await r.text()) for r in answers]

    (s1, cache, first), (s2, _, second), (s3, _, _), (s4, _, fourth) = run_client(budget_server, steps)
    assert (s1, s2, s3, s4) == (200, 200, 405, 415) and cache == "no-store"
    assert json.loads(first)["budget"] is None and json.loads(second)["budget"] == 0
    assert "application/json" in json.loads(fourth)["error"]
    assert budget.credit_budget().limit() == (0, "the Flux2 LoRA credit budget setting")


def test_budget_route_is_not_registered_outside_comfyui(pack, monkeypatch):
    monkeypatch.delitem(sys.modules, "server", raising=False)
    assert sys.modules[f"{PACK_NAME}.nodes.routes.budget"].register_budget_routes() is False
