"""What the API reports as ``credits_used`` is checked: only finite numbers of 0 or more count.

Anything else (text, a negative number, NaN, infinity, a bool) is logged and counted as
unknown: it never counts as free, never gives budget back, and never turns the totals,
the node's ui message, the info JSON or GET /flux2_lora/budget into something that is not JSON.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from importlib import import_module

import pytest
from conftest import PACK_NAME, aiohttp_app, generate, run_client

PRICE = 120_000  # what the stand-in bills for one 512x512 picture


@pytest.fixture
def budget(pack):
    return sys.modules[f"{PACK_NAME}.api_client.money.budget"]


@pytest.fixture
def budget_server(comfy_routes, budget):
    routes = sys.modules[f"{PACK_NAME}.nodes.routes.budget"]
    assert routes.register_budget_routes() is True
    yield aiohttp_app(comfy_routes)


def _budget_over_http(app) -> str:
    async def steps(client):
        response = await client.get("/flux2_lora/budget")
        assert response.status == 200
        return await response.text()

    return run_client(app, steps)


@pytest.mark.parametrize("reported", ["lots", -5, -0.5, float("nan"), float("inf"), True, [1], {"n": 1}, "", "nan",
                                      10 ** 400, "-inf"])
def test_credits_used_that_is_not_a_finite_amount_is_counted_as_unknown_never_as_free(
        pack, standin, budget, budget_server, caplog, reported):
    caplog.set_level(logging.WARNING, logger="flux2_lora")
    standin.queue_post_faults([{"usage": {"credits_used": reported}}])
    out = generate(pack, seed=1)
    info = json.loads(out["result"][1])
    assert info["credits_used"] is None  # unknown: not 0, not the value given
    assert "did not report a valid cost" in info["credits_note"]
    assert "credits_used" in caplog.text and "unknown" in caplog.text
    json.dumps(out["ui"], allow_nan=False)  # strict JSON: no NaN, no Infinity
    json.loads(out["result"][1], parse_constant=lambda name: pytest.fail(f"{name} in the info JSON"))
    # (Compared with >=: a request an earlier test left in flight may still land in the process's total.)
    spent = budget.credit_budget().spent
    assert math.isfinite(spent) and spent >= 0 and budget.credit_budget().unreported >= 1
    # The next run still counts, and the budget route still answers with valid JSON.
    generate(pack, seed=2)
    assert budget.credit_budget().spent >= spent + PRICE
    status = json.loads(_budget_over_http(budget_server), parse_constant=lambda name: pytest.fail(name))
    assert status["spent"] >= PRICE and "paid request did not report a valid cost" in status["message"]


@pytest.mark.parametrize(("reported", "counted"), [("120000", 120_000), (" 2.5 ", 2.5), (0, 0.0), ("0", 0.0)])
def test_credits_used_as_a_numeric_string_or_zero_is_counted(pack, standin, budget, reported, counted):
    standin.queue_post_faults([{"usage": {"credits_used": reported}}])
    info = json.loads(generate(pack, seed=1)["result"][1])
    assert info["credits_used"] == counted and "credits_note" not in info
    assert budget.credit_budget().spent == counted and budget.credit_budget().unreported == 0


def test_one_unknown_cost_in_a_split_batch_makes_the_total_unknown_but_keeps_the_others(pack, standin, budget):
    standin.queue_post_faults([{"usage": {"credits_used": 4 * PRICE}}, {"usage": {"credits_used": float("nan")}}])
    info = json.loads(generate(pack, num_images=8)["result"][1])
    assert info["credits_used"] is None and info["credits_reported"] == 4 * PRICE
    assert "1 of 2 requests" in info["credits_note"]
    assert budget.credit_budget().spent == 4 * PRICE


def test_budget_total_ignores_values_that_are_not_finite_amounts(budget):
    tracker = budget.CreditBudget()
    for value in (float("nan"), -1000.0, float("inf"), None):
        tracker.add(value)
    tracker.add(5)
    assert tracker.spent == 5 and tracker.unreported == 4
    json.dumps(import_module(f"{PACK_NAME}.api_client.panel.budget").budget_status(tracker, {}), allow_nan=False)
