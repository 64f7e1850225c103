"""Balance, balance floor and the price before running, against the stand-in over real HTTP.

Money: a floor that would be crossed refuses the run before anything is sent; a balance
or price that cannot be had never fails a generation; prices are read as documented
(kind first, price with per) and kept on disk with their ETag, asked at most daily.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import pytest
from conftest import PACK_NAME, TEST_KEY, aiohttp_app, generate, run_client


def _info(out):
    return json.loads(out["result"][1])


# -- balance floor --------------------------------------------------------------------------------

def test_a_balance_floor_refuses_a_run_before_sending(pack, api, standin, balance, monkeypatch):
    standin.configure(balance=0.10)
    monkeypatch.setenv("FLUX2_LORA_BALANCE_FLOOR", "0.05")
    with pytest.raises(balance.BalanceFloorError) as caught:
        generate(pack, image_size="square_hd")  # one 1024x1024 picture: $0.06 by the price list
    message = str(caught.value)
    assert "balance is $0.10" in message and "estimated $0.06" in message and "would leave $0.04" in message
    assert "floor of $0.05 (from environment variable FLUX2_LORA_BALANCE_FLOOR)" in message
    assert "not sent and nothing was billed" in message
    assert standin.post_count == 0 and standin.accounts.balance == 0.10


def test_a_run_that_stays_above_the_floor_runs_and_the_balance_moves(pack, standin, monkeypatch, balance_panel):
    standin.configure(balance=1.0)
    monkeypatch.setenv("FLUX2_LORA_BALANCE_FLOOR", "0.5")
    assert generate(pack, num_images=2)["result"][0].shape[0] == 2
    assert standin.post_count == 1 and standin.accounts.get_counts["billing"] == 1
    assert standin.accounts.balance == pytest.approx(1.0 - 0.12)
    assert balance_panel.balance_floor().last.usd == 1.0  # the balance asked before sending


def test_the_floor_counts_every_request_of_a_split_batch(pack, standin, balance, monkeypatch):
    standin.configure(balance=1.0)
    monkeypatch.setenv("FLUX2_LORA_BALANCE_FLOOR", "0.1")
    with pytest.raises(balance.BalanceFloorError, match="4 requests were not sent"):
        generate(pack, num_images=16, image_size="square_hd")  # 16 x $0.06 = $0.96 > $0.90 allowed
    assert standin.post_count == 0


def test_without_a_floor_the_balance_is_not_asked(pack, standin):
    generate(pack)
    assert standin.accounts.get_counts["billing"] == 0


@pytest.mark.parametrize("mode", ["missing", "garbage", "wrong_shape", "error"])
def test_a_balance_that_cannot_be_had_never_fails_the_generation(pack, standin, monkeypatch, caplog, mode):
    standin.configure(endpoints={"billing": mode})
    monkeypatch.setenv("FLUX2_LORA_BALANCE_FLOOR", "99")
    with caplog.at_level(logging.WARNING, logger="flux2_lora"):
        images, _ = generate(pack)["result"]
    assert images.shape[0] == 1 and standin.post_count == 1
    assert any("balance floor of $99.00 was not checked" in r.getMessage() for r in caplog.records)


def test_a_floor_with_no_price_refuses_only_at_the_floor(pack, standin, balance, monkeypatch):
    standin.configure(endpoints={"models": "missing"}, balance=0.5)
    monkeypatch.setenv("FLUX2_LORA_BALANCE_FLOOR", "0.4")
    generate(pack, seed=1)  # price unknown, balance above the floor: sent
    standin.configure(balance=0.4)
    with pytest.raises(balance.BalanceFloorError, match="cannot be estimated"):
        generate(pack, seed=2)
    assert standin.post_count == 1


def test_a_bad_floor_is_a_clear_error_before_sending(pack, api, standin, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_BALANCE_FLOOR", "lots")
    with pytest.raises(api.ConfigError, match="FLUX2_LORA_BALANCE_FLOOR must be an amount in USD"):
        generate(pack)
    assert standin.post_count == 0


def test_the_floor_setting_overrides_the_environment(balance, balance_panel):
    floor = balance_panel.BalanceFloor()
    status, answer = balance_panel.balance_post_answer(b'{"floor": 2.5}', "application/json", floor,
                                                 {"FLUX2_LORA_BALANCE_FLOOR": "1"})
    assert status == 200 and answer["floor"] == 2.5 and answer["floor_source"] == "the Flux2 LoRA balance floor setting"
    status, answer = balance_panel.balance_post_answer(b'{"floor": null}', "application/json", floor,
                                                 {"FLUX2_LORA_BALANCE_FLOOR": "1"})
    assert answer["floor"] == 1 and "environment variable" in answer["floor_source"]
    status, answer = balance_panel.balance_post_answer(b'{"floor": -1}', "application/json", floor, {})
    assert status == 400 and "0 or more" in answer["error"]


@pytest.fixture
def money_server(comfy_routes, standin):
    routes = sys.modules[f"{PACK_NAME}.nodes.routes.money"]
    assert routes.register_money_routes() is True
    return aiohttp_app(comfy_routes)


def test_balance_route_asks_the_api_with_the_key_and_shows_the_balance(money_server, standin):
    standin.configure(balance=12.345)

    async def steps(client):
        first = await client.get("/flux2_lora/balance")
        posted = await client.post("/flux2_lora/balance", json={"floor": 5})
        return first.status, await first.json(), posted.status, await posted.json()

    status, answer, posted_status, posted = run_client(money_server, steps)
    assert status == 200 and answer["balance"] == 12.345 and answer["currency"] == "USD"
    assert answer["message"] == "Balance $12.35; no balance floor."
    assert posted_status == 200 and posted["floor"] == 5
    assert [h.get("authorization") for h in standin.accounts.seen_headers] == [f"Bearer {TEST_KEY}"]


def test_balance_route_says_when_the_balance_is_unavailable(money_server, standin):
    standin.configure(endpoints={"billing": "missing"})

    async def steps(client):
        return await (await client.get("/flux2_lora/balance")).json()

    answer = run_client(money_server, steps)
    assert answer["balance"] is None and "Balance unavailable (/v2/billing answered status 404)" in answer["message"]


# -- price before running -------------------------------------------------------------------------

def test_price_route_quotes_in_usd_then_in_credits_once_a_run_showed_the_rate(money_server, comfy_routes, pack,
                                                                              standin):
    async def price(client):
        answer = await client.get("/flux2_lora/price", params={"model": "generate", "num_images": "6",
                                                               "preset": "square_hd"})
        return await answer.json()

    before = run_client(money_server, price)
    assert before["usd"] == pytest.approx(0.36) and before["credits"] is None
    assert before["text"] == "Price: ~$0.36 for 6 pictures 1024x1024"
    assert "once a run has shown the credits-per-USD rate" in before["note"]
    generate(pack)  # its cost headers show 120,000 credits = $0.06
    after = run_client(aiohttp_app(comfy_routes), price)  # a new app: one per event loop
    assert after["credits"] == pytest.approx(720_000)
    assert after["text"] == "Price: ~$0.36 (720,000 credits) for 6 pictures 1024x1024"


def test_price_route_reads_custom_sizes_and_the_api_default(money_server, standin):
    async def steps(client):
        custom = await client.get("/flux2_lora/price", params={"num_images": "1", "width": "2048", "height": "2048"})
        default = await client.get("/flux2_lora/price", params={"model": "edit"})
        bad = await client.get("/flux2_lora/price", params={"num_images": "17"})
        return await custom.json(), await default.json(), bad.status, await bad.json()

    custom, default, bad_status, bad = run_client(money_server, steps)
    assert custom["usd"] == pytest.approx(0.24) and (custom["width"], custom["height"]) == (2048, 2048)
    assert default["usd"] == pytest.approx(0.06) and (default["width"], default["height"]) == (1024, 768)
    assert bad_status == 400 and "num_images must be from 1 to 16" in bad["error"]


@pytest.mark.parametrize(("mode", "says"), [
    ("missing", "the model catalogue could not be read (/v1/models answered status 404)"),
    ("garbage", "answered something that is not JSON"),
    ("wrong_shape", "without a list of models"),
    ("variable", "cannot be quoted ahead of the request (kind: variable)"),
    ("no_pricing", "the model catalogue gives no price for this model"),
])
def test_no_price_says_so_and_the_generation_still_runs(pack, standin, mode, says):
    standin.configure(endpoints={"models": mode})
    out = generate(pack)
    info = _info(out)
    assert out["result"][0].shape[0] == 1
    assert info["price_estimate"]["usd"] is None and info["price_estimate"]["note"].startswith("Price unknown")
    assert says in info["price_estimate"]["note"]


def test_info_json_shows_the_estimate_next_to_what_was_charged(pack, standin):
    generate(pack, seed=1)  # shows the credits-per-USD rate
    info = _info(generate(pack, seed=2, num_images=5, image_size="square_hd"))
    assert info["price_estimate"]["usd"] == pytest.approx(info["usd_spent"]) == pytest.approx(0.30)
    assert info["price_estimate"]["credits"] == pytest.approx(info["credits_used"]) == 600_000


def test_the_catalogue_is_kept_on_disk_with_its_etag_and_asked_at_most_daily(pack, pricing, standin, tmp_path,
                                                                             api):
    book = pricing.PriceBook(tmp_path / "pricing.json")
    client = api.ApiClient(TEST_KEY, standin.base_url)
    model = "blackforestlabs/flux-2-lora"
    first = book.pricing(model, client)
    assert first["kind"] == "fixed" and standin.accounts.get_counts["models"] == 1
    assert book.pricing(model, client) == first and standin.accounts.get_counts["models"] == 1
    stored = json.loads((tmp_path / "pricing.json").read_text())
    etag = stored["models"][model]["etag"]
    assert etag.startswith('W/"')
    # A fresh process reads the file, and asks again only after a day, with If-None-Match (304).
    again = pricing.PriceBook(tmp_path / "pricing.json")
    assert again.pricing(model, client) == first and standin.accounts.get_counts["models"] == 1
    assert again.pricing(model, client, now=time.time() + 86_401) == first
    assert standin.accounts.get_counts["models"] == 2
    assert standin.accounts.seen_headers[-1].get("if-none-match") == etag
    assert json.loads((tmp_path / "pricing.json").read_text())["models"][model]["fetched_at"] > time.time()


def test_prices_are_read_as_the_docs_say(pricing):
    fixed = {"kind": "fixed", "currency": "USD", "units": [{"name": "megapixel", "price": 60, "per": 1000}]}
    assert pricing.quote_usd(fixed, 2, 1024, 1024)[0] == pytest.approx(0.12)       # price for per units
    assert pricing.quote_usd(fixed, 1, 1100, 1024)[0] == pytest.approx(0.12)       # started megapixels
    per_image = {"kind": "fixed", "units": [{"name": "image", "price": 0.05, "per": 1}]}
    assert pricing.quote_usd(per_image, 3, 512, 512)[0] == pytest.approx(0.15)
    variants = {"kind": "variants", "dimensions": ["image_size"], "variants": [
        {"when": {"image_size": "square_hd"}, "price": 0.07, "unit": "image", "per": 1},
        {"when": {"image_size": "square"}, "price": 0.02, "unit": "image", "per": 1}]}
    assert pricing.quote_usd(variants, 2, 512, 512, "square")[0] == pytest.approx(0.04)
    assert pricing.quote_usd(variants, 1, 640, 512, {"width": 640, "height": 512}) == (
        None, "no price variant matches this size")
    tokens = {"kind": "fixed", "units": [{"name": "token", "measure": "output", "price": 3.25, "per": 1000000}]}
    assert pricing.quote_usd(tokens, 1, 512, 512)[0] is None
    assert pricing.quote_usd({"kind": "fixed", "currency": "EUR", "units": []}, 1, 512, 512)[0] is None


def test_the_budget_estimates_from_the_price_list_before_its_first_billed_answer(pack, standin):
    estimate = sys.modules[f"{PACK_NAME}.api_client.money.estimate"]
    generate(pack, seed=1)  # puts the price and the credits-per-USD rate on disk
    estimate.forget_prices()  # as after a restart: nothing learned from answers yet
    body = {"model": "blackforestlabs/flux-2-lora", "num_images": 4, "image_size": "square_hd"}
    assert estimate.estimate_credits(body) == pytest.approx(480_000)
