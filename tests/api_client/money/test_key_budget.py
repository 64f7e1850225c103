"""Issue 21: a budget in dollars, and one budget for every machine on the key (GET /v2/usage).

Prices at the stand-in: one 512x512 (``square``) picture costs 120,000 credits = $0.06.
Machines are separate Python processes of the pack, each with its own state folder (ledger,
price file, settings), sharing one key and one stand-in (served by this test process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests
from conftest import ROOT, RUN_ONCE, TEST_KEY, generate, outcome

PRICE = 0.06  # USD of one square picture at the stand-in


# -- everything a user types is checked when set ------------------------------------------------

@pytest.mark.parametrize("raw", ["-1", "abc", "inf", "nan", "-$5", "5$"])
def test_a_bad_usd_budget_is_refused_before_anything_is_sent(pack, standin, monkeypatch, errors, raw):
    monkeypatch.setenv("FLUX2_LORA_BUDGET_USD", raw)
    result = outcome(lambda: generate(pack, use_cache=False))
    assert isinstance(result, errors.ConfigError)
    text = str(result)
    assert "FLUX2_LORA_BUDGET_USD" in text and repr(raw) in text and "amount in USD, 0 or more" in text
    assert standin.post_count == 0


@pytest.mark.parametrize(("raw", "value"), [("$5", 5.0), ("5", 5.0), (" $4.50 ", 4.5), ("1,000", 1000.0),
                                            ("", None), ("off", None)])
def test_a_usd_budget_accepts_the_dollar_sign(money_mod, raw, value):
    settings = money_mod.Money().settings({"FLUX2_LORA_BUDGET_USD": raw})
    assert settings.budget_usd == value


def test_a_scope_not_allowed_is_refused(money_mod, errors):
    with pytest.raises(errors.ConfigError) as refused:
        money_mod.Money().settings({"FLUX2_LORA_BUDGET_SCOPE": "everyone"})
    assert "FLUX2_LORA_BUDGET_SCOPE" in str(refused.value) and "'everyone'" in str(refused.value)


@pytest.mark.parametrize("period", ["process", "all", ""])
def test_scope_key_with_period_process_or_all_is_refused_at_start_up(money_mod, errors, period):
    env = {"FLUX2_LORA_BUDGET_SCOPE": "key", "FLUX2_LORA_BUDGET_USD": "5", "FLUX2_LORA_BUDGET_PERIOD": period}
    with pytest.raises(errors.ConfigError) as refused:
        money_mod.Money().settings(env)
    text = str(refused.value)
    assert "scope of key" in text and "must be day or month" in text and "FLUX2_LORA_BUDGET_PERIOD" in text


def test_scope_key_with_only_a_credit_budget_is_refused(money_mod, errors):
    env = {"FLUX2_LORA_BUDGET_SCOPE": "key", "FLUX2_LORA_CREDIT_BUDGET": "500000", "FLUX2_LORA_BUDGET_PERIOD": "day"}
    with pytest.raises(errors.ConfigError) as refused:
        money_mod.Money().settings(env)
    assert "FLUX2_LORA_BUDGET_USD" in str(refused.value)


def test_the_settings_route_checks_what_is_typed_and_keeps_it(budget_mod, money_mod, budget_panel, tmp_path):
    money = money_mod.Money()
    money.use_user_dir(tmp_path)
    post = budget_panel.budget_post_answer
    for bad in (b'{"budget_usd": "-1"}', b'{"budget_usd": "abc"}', b'{"budget_usd": "inf"}', b'{"scope": "all"}'):
        status, answer = post(bad, "application/json", money, {})
        assert status == 400 and answer["error"], bad
    status, answer = post(b'{"budget_usd": "$5"}', "application/json", money, {})
    assert status == 200 and answer["budget_usd"] == 5.0 and answer["usd_line"] == "This ComfyUI: $0.00 of $5.00"
    # scope key while the period is process: refused as typed, nothing changed
    status, answer = post(b'{"scope": "key"}', "application/json", money, {})
    assert status == 400 and "must be day or month" in answer["error"] and money.scope_setting is None
    assert post(b'{"period": "day"}', "application/json", money, {})[0] == 200
    status, answer = post(b'{"scope": "key"}', "application/json", money, {})
    assert status == 200 and answer["scope"] == "key"
    assert answer["usd_line"].startswith("Key today: not asked yet") and "(all machines)" in answer["usd_line"]
    kept = json.loads((tmp_path / "flux2_lora" / "settings.json").read_text())
    assert kept["budget_usd"] == 5.0 and kept["budget_scope"] == "key" and kept["budget_period"] == "day"
    restarted = money_mod.Money()
    restarted.use_user_dir(tmp_path)
    settings = restarted.settings({})
    assert (settings.budget_usd, settings.scope, settings.period) == (5.0, "key", "day")


# -- a hard cap in dollars and in credits ---------------------------------------------------------

def test_a_usd_budget_per_day_is_a_hard_cap_and_lets_the_exact_amount_through(pack, standin, monkeypatch, errors):
    monkeypatch.setenv("FLUX2_LORA_BUDGET_USD", "$0.18")
    monkeypatch.setenv("FLUX2_LORA_BUDGET_PERIOD", "day")
    for seed in (1, 2, 3):
        generate(pack, seed=seed, use_cache=False)  # $0.06, $0.12, $0.18: the price is right, none crosses
    refused = outcome(lambda: generate(pack, seed=4, use_cache=False))
    assert isinstance(refused, errors.BudgetExceededError)
    text = str(refused)
    assert text.startswith("Budget in USD reached: $0.18 spent today") and "budget of $0.18 per day" in text
    assert "would take it to $0.24" in text and "not sent and nothing was billed" in text
    assert standin.post_count == 3


def test_the_usd_and_the_credit_budget_are_each_a_hard_cap(pack, standin, monkeypatch, errors):
    monkeypatch.setenv("FLUX2_LORA_BUDGET_USD", "0.10")
    monkeypatch.setenv("FLUX2_LORA_CREDIT_BUDGET", "1000000")
    generate(pack, seed=1, use_cache=False)
    refused = outcome(lambda: generate(pack, seed=2, use_cache=False))
    assert isinstance(refused, errors.BudgetExceededError) and "Budget in USD reached" in str(refused)
    assert standin.post_count == 1
    monkeypatch.setenv("FLUX2_LORA_BUDGET_USD", "1")
    monkeypatch.setenv("FLUX2_LORA_CREDIT_BUDGET", "250000")
    generate(pack, seed=3, use_cache=False)  # 240,000 credits
    refused = outcome(lambda: generate(pack, seed=4, use_cache=False))
    assert isinstance(refused, errors.BudgetExceededError) and "Credit budget reached" in str(refused)
    assert standin.post_count == 2


def test_the_node_shows_the_usd_budget(pack, standin, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_BUDGET_USD", "5")
    monkeypatch.setenv("FLUX2_LORA_BUDGET_PERIOD", "day")
    out = generate(pack, use_cache=False)
    shown = out["ui"]["flux2_budget"][0]
    assert shown["budget_usd"] == 5.0 and shown["scope"] == "machine"
    assert shown["usd_line"] == "This machine today: $0.06 of $5.00"


# -- scope key, in this process -------------------------------------------------------------------

@pytest.fixture
def key_scope(standin, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_BUDGET_SCOPE", "key")
    monkeypatch.setenv("FLUX2_LORA_BUDGET_PERIOD", "day")
    return standin


def test_scope_key_asks_the_usage_at_most_once_per_interval_for_every_run(pack, key_scope, monkeypatch, usage_mod,
                                                                           budget_mod):
    monkeypatch.setattr(usage_mod, "USAGE_INTERVAL", 3600.0)  # no timing in the test: one figure for all runs
    monkeypatch.setenv("FLUX2_LORA_BUDGET_USD", "$0.13")
    generate(pack, seed=1, use_cache=False)
    generate(pack, seed=2, use_cache=False)  # the figure (0) + this machine's $0.06 since + $0.06 = $0.12
    refused = outcome(lambda: generate(pack, seed=3, use_cache=False))
    assert "Budget in USD reached" in str(refused) and key_scope.post_count == 2
    assert key_scope.stats()["service_get_counts"]["usage"] == 1
    shown = budget_mod.credit_budget().snapshot()
    assert shown["usd_line"] == "Key today: $0.12 of $0.13 (all machines) · this machine: $0.12"


def test_the_usage_is_asked_with_the_period_start_in_utc(pack, key_scope, monkeypatch, budget_mod, ledger_mod):
    monkeypatch.setenv("FLUX2_LORA_BUDGET_USD", "5")
    generate(pack, use_cache=False)
    seen = [h for h in key_scope.accounts.seen_headers if "authorization" in h]
    assert seen  # the usage is read with the key
    figure = budget_mod.credit_budget().last_key_usage
    assert figure is not None and figure.start == ledger_mod.period_start("day")


@pytest.mark.parametrize("mode", ["missing", "garbage", "wrong_shape", "error"])
def test_an_unreadable_usage_refuses_paid_runs_never_free(pack, key_scope, monkeypatch, usage_mod, mode):
    monkeypatch.setenv("FLUX2_LORA_BUDGET_USD", "5")
    key_scope.configure(endpoints={"usage": mode})
    refused = outcome(lambda: generate(pack, use_cache=False))
    assert isinstance(refused, usage_mod.UsageUnavailableError)
    text = str(refused)
    assert "GET /v2/usage" in text and "never taken as free" in text and "FLUX2_LORA_BUDGET_SCOPE" in text
    assert TEST_KEY not in text and key_scope.post_count == 0


def test_a_usage_figure_with_no_spend_refuses(pack, key_scope, monkeypatch, usage_mod):
    monkeypatch.setenv("FLUX2_LORA_BUDGET_USD", "5")
    key_scope.queue_service_faults([{"endpoint": "usage", "answer": {"spend": "lots"}}])
    assert isinstance(outcome(lambda: generate(pack, use_cache=False)), usage_mod.UsageUnavailableError)
    assert key_scope.post_count == 0


def test_scope_machine_never_asks_the_usage(pack, standin, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_BUDGET_USD", "5")
    monkeypatch.setenv("FLUX2_LORA_BUDGET_PERIOD", "day")
    standin.configure(endpoints={"usage": "error"})
    generate(pack, use_cache=False)
    assert standin.post_count == 1 and standin.stats()["service_get_counts"]["usage"] == 0


# -- three machines, one key, one stand-in ---------------------------------------------------------

def machine(tmp_path, name: str, budget: str, **extra: str) -> dict[str, str]:
    """The environment of one machine: its own state folders, the shared key and stand-in."""
    home = tmp_path / name
    env = {**os.environ, "FLUX2_LORA_BUDGET_USD": budget, "FLUX2_LORA_BUDGET_SCOPE": "key",
           "FLUX2_LORA_BUDGET_PERIOD": "day", "FLUX2_LORA_LEDGER": str(home / "spending.sqlite3"),
           "XDG_CACHE_HOME": str(home / "cache"), "XDG_CONFIG_HOME": str(home / "config"),
           "XDG_DATA_HOME": str(home / "data"), "FLUX2_LORA_CACHE_DIR": str(home / "results")}
    env.update(extra)
    return env


def run_on(env: dict[str, str], seed: int) -> str:
    done = subprocess.run([sys.executable, "-c", RUN_ONCE, str(ROOT), str(seed)], env=env, capture_output=True,
                          text=True, timeout=180, check=False)
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-800:]


def test_one_budget_for_every_machine_on_the_key(standin, tmp_path):
    a = machine(tmp_path, "a", "0.10")
    assert run_on(a, 1) == "OK"  # $0.06 of $0.10
    second = run_on(a, 2)  # $0.06 + $0.06 would be $0.12
    assert second.startswith("ERROR BudgetExceededError Budget in USD reached"), second
    assert standin.post_count == 1
    # B starts afterwards with the same budget and nothing spent on it: the API's figure shows A's spending.
    refused = run_on(machine(tmp_path, "b", "$0.10"), 3)
    assert refused.startswith("ERROR BudgetExceededError Budget in USD reached: the API says the key spent "
                              "$0.06 today"), refused
    assert "this machine alone $0.00" in refused and "a key of its own" in refused
    assert standin.post_count == 1
    # C has a higher budget: sent.
    assert run_on(machine(tmp_path, "c", "0.20"), 4) == "OK"
    assert standin.post_count == 2


def test_the_usage_lag_never_lets_this_machines_own_spending_through(standin, tmp_path):
    # The API's figure shows a request only 300 s after its answer (as its usage logs may).
    standin.queue_post_faults([{"log_delay": 300}])
    a = machine(tmp_path, "a", "0.10", FLUX2_LORA_LOG_WAIT="600")
    assert run_on(a, 1) == "OK"
    usage = requests.get(f"{standin.root_url}/v2/usage", params={"period": "1d"},
                         headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=30).json()
    assert usage["spend"] == 0  # the figure does not show it yet
    refused = run_on(a, 2)  # restarted: the ledger still has it, newer than the figure can be trusted to include
    assert refused.startswith("ERROR BudgetExceededError Budget in USD reached: the API says the key spent $0.00"), \
        refused
    assert "plus $0.06 this machine spent that the API's figure may not show yet" in refused
    assert standin.post_count == 1
