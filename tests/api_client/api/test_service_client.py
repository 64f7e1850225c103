"""The one service client (api_client/api/service.py): every read-only GET to the API, against the stand-in.

Issue 18, defects 8, 9, 10 and 12:

- 8: a hostile answer (a 400-digit number, 200 KB of nested brackets) is "unreadable" or an
  unknown amount, never a bare Python error and never "free";
- 9: every service GET has a hard deadline and ends at once on Cancel; the logs' permanent
  answers end the wait at once; the pack's routes never wait on the API on ComfyUI's own executor;
- 10: a key echoed by the API is redacted from everything the service client returns
  (and from the generation answer's inference id) before anything stores or shows it;
- 12: the stand-in keeps a bounded history of the service GETs' headers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import PACK_NAME, REQUEST_BODY, TEST_KEY, aiohttp_app, generate, generate_inputs, run_client
from fake_comfy import FakeComfy, InterruptProcessingException, run_in_own_loop

HUGE = 10**400  # 401 digits: no float holds it
MODEL = "blackforestlabs/flux-2-lora"


@pytest.fixture
def client(windowed_client, monkeypatch):
    """A client that gives up reading a generation answer after 0.5 s (an ambiguous failure)."""
    monkeypatch.setenv("FLUX2_LORA_LOG_WAIT", "6")
    return windowed_client(0.5)


@pytest.fixture
def comfy(monkeypatch) -> FakeComfy:
    return FakeComfy().install(monkeypatch)


@pytest.fixture
def money_server(comfy_routes, standin):
    routes = sys.modules[f"{PACK_NAME}.nodes.routes.money"]
    assert routes.register_money_routes() is True
    return aiohttp_app(comfy_routes)


def _wait_until(condition: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _drain(standin: Any) -> None:
    """Let the stand-in finish the POSTs a test left (their rows land in this test)."""
    _wait_until(lambda: standin.posts_in_progress == 0 and standin.accounts.gets_in_progress == 0)


def _no_key(text: str) -> None:
    """Neither the key nor a recognisable piece of it is in ``text``."""
    assert TEST_KEY not in text and TEST_KEY[-16:] not in text, text


# -- 8. hostile answers: unknown, never free, never a crash ---------------------------------------

def test_a_400_digit_credits_in_a_log_row_is_an_unknown_cost_not_an_overflow(client, api, standin):
    standin.queue_post_faults([{"delay": 1.5, "log": "succeeded"}])
    standin.queue_service_faults([{"endpoint": "logs", "row": {"cost": {"credits": HUGE, "usd": HUGE}},
                                   "times": 50}])
    with pytest.raises(api.BilledWithoutAnswerError) as caught:
        client.generate(REQUEST_BODY)
    error = caught.value
    # Billed, amount unknown: never 0 (free), and the request id is named.
    assert error.credits_billed is None and error.usd_billed is None
    assert "an amount the logs did not give" in str(error) and standin.post_request_ids[0] in str(error)
    assert standin.post_count == 1


def test_200_kb_of_nested_brackets_from_the_logs_is_unreadable_not_a_recursion_error(client, api, standin):
    standin.queue_post_faults([{"delay": 1.5, "log": "none"}])
    standin.queue_service_faults([{"endpoint": "logs", "body": "[" * 200_000, "times": 50}])
    with pytest.raises(api.APITimeoutError, match="could not tell") as caught:
        client.generate(REQUEST_BODY)
    assert caught.value.may_have_billed and standin.post_request_ids[0] in str(caught.value)
    assert "unreadable" in str(caught.value)
    assert standin.post_count == 1


@pytest.mark.parametrize("body", ["[" * 200_000, '{"a":' * 100_000, '{"current_balance": 1e999}',
                                  '{"current_balance": NaN}', '{"current_balance": -Infinity}',
                                  '{"current_balance": ' + "9" * 5000 + "}"])
def test_the_service_client_reads_every_hostile_answer_as_unreadable(api, balance, service, standin, body):
    standin.queue_service_faults([{"endpoint": "billing", "body": body}])
    made = api.ApiClient(TEST_KEY, standin.base_url)
    with pytest.raises(service.ServiceUnavailable) as caught:
        balance.fetch_balance(made)
    assert "/v2/billing" in caught.value.reason


def test_a_400_digit_balance_lets_the_run_go_on_with_a_logged_warning(pack, standin, monkeypatch, caplog):
    monkeypatch.setenv("FLUX2_LORA_BALANCE_FLOOR", "0.5")
    standin.queue_service_faults([{"endpoint": "billing", "answer": {"current_balance": HUGE}, "times": 5}])
    with caplog.at_level(logging.WARNING, logger="flux2_lora"):
        images = generate(pack)["result"][0]
    assert images.shape[0] == 1 and standin.post_count == 1
    assert "balance unavailable" in caplog.text and "current_balance" in caplog.text


def test_a_400_digit_price_is_no_price_on_the_route_and_the_run_goes_on(money_server, pack, standin):
    unit = {"name": "megapixel", "price": HUGE, "per": 1}
    standin.queue_service_faults([{"endpoint": "models", "item": {"pricing": {"units": [unit]}}, "times": 5}])

    async def steps(client):
        answer = await client.get("/flux2_lora/price", params={"num_images": "1", "preset": "square"})
        return answer.status, await answer.json()

    status, answer = run_client(money_server, steps)
    assert status == 200 and answer["usd"] is None and answer["text"].startswith("Price unknown")
    assert generate(pack)["result"][0].shape[0] == 1


# -- 9. deadlines, Cancel, permanent answers, the routes' own executor -----------------------------

def test_cancel_ends_a_service_get_at_once_with_cancelled(api, service, standin):
    standin.queue_service_faults([{"endpoint": "billing", "trickle": 0.5}])
    made = api.ApiClient(TEST_KEY, standin.base_url)
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(api.Cancelled):
        service.service_get(made, "/v2/billing", cancel=cancel)
    # The trickle takes ~20 s; Cancel (and the hang-up the stand-in sees) comes right after 0.5 s.
    assert time.monotonic() - started < 5
    assert _wait_until(lambda: standin.accounts.gets_in_progress == 0)


def test_a_service_get_is_cut_at_its_deadline_however_it_trickles(api, service, standin):
    standin.queue_service_faults([{"endpoint": "billing", "trickle": 0.5}])
    made = api.ApiClient(TEST_KEY, standin.base_url)
    started = time.monotonic()
    with pytest.raises(service.ServiceUnavailable, match="did not answer in full") as caught:
        service.service_get(made, "/v2/billing", deadline=time.monotonic() + 1.0)
    assert not caught.value.permanent and time.monotonic() - started < 5
    assert _wait_until(lambda: standin.accounts.gets_in_progress == 0)


def test_a_service_get_has_a_hard_deadline_by_default(api, service, standin, monkeypatch):
    monkeypatch.setattr(service, "SERVICE_TIMEOUT", 1.0)
    standin.queue_service_faults([{"endpoint": "billing", "trickle": 0.3}])
    made = api.ApiClient(TEST_KEY, standin.base_url, connect_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(service.ServiceUnavailable, match="did not answer in full"):
        service.service_get(made, "/v2/billing")
    assert time.monotonic() - started < 8  # connect + service timeout (2 s), not the ~15 s trickle


def test_cancel_of_a_node_cuts_its_trickling_balance_check_and_sends_nothing(pack, standin, comfy, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_BALANCE_FLOOR", "0.5")
    standin.queue_service_faults([{"endpoint": "billing", "trickle": 0.5}])  # ~22 s for the whole answer
    node_call = sys.modules[f"{PACK_NAME}.nodes.node_call"]
    cls = pack.NODE_CLASS_MAPPINGS["Flux2LoraGenerate"]
    function = node_call.node_function(getattr(cls, f"{cls.FUNCTION}_blocking"), coroutine=True)

    async def main() -> None:
        task = asyncio.ensure_future(function(cls(), **generate_inputs(), unique_id="9"))
        for _ in range(500):
            if standin.accounts.get_counts["billing"] and standin.accounts.gets_in_progress:
                break
            await asyncio.sleep(0.02)
        comfy.interrupt()
        with pytest.raises(InterruptProcessingException):
            await task

    run_in_own_loop(main)
    # The node's worker thread does not stay on the trickling GET: it is cut, and nothing is sent.
    assert _wait_until(lambda: standin.accounts.gets_in_progress == 0, 8), "the balance GET kept trickling"
    time.sleep(0.5)
    assert standin.post_count == 0


def test_the_log_wait_bounds_a_trickling_logs_answer(client, api, standin, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_LOG_WAIT", "3")
    standin.queue_post_faults([{"delay": 1.5, "log": "none"}])
    standin.queue_service_faults([{"endpoint": "logs", "trickle": 1.0, "times": 50}])  # ~85 s per page
    started = time.monotonic()
    with pytest.raises(api.APITimeoutError, match="could not tell") as caught:
        client.generate(REQUEST_BODY)
    # 0.5 s read timeout + 3 s log wait; generous margin, far below one trickled page.
    assert time.monotonic() - started < 12
    assert caught.value.may_have_billed and standin.post_request_ids[0] in str(caught.value)
    assert standin.post_count == 1
    _drain(standin)


@pytest.mark.parametrize("status", [501, 405, 410, 302])
def test_a_permanent_answer_from_the_logs_ends_the_wait_at_once(client, api, standin, monkeypatch, status):
    monkeypatch.setenv("FLUX2_LORA_LOG_WAIT", "8")
    standin.queue_post_faults([{"delay": 1.5, "log": "none"}])
    standin.queue_service_faults([{"endpoint": "logs", "status": status, "times": 50}])
    with pytest.raises(api.APITimeoutError, match=f"answered status {status}") as caught:
        client.generate(REQUEST_BODY)
    error = caught.value
    assert error.may_have_billed and standin.post_request_ids[0] in str(error) and "billed" in str(error)
    assert standin.accounts.get_counts["logs"] == 1  # asked once, not polled for the whole wait
    assert standin.post_count == 1
    _drain(standin)


def test_slow_balance_calls_never_stop_the_price_route(money_server, standin):
    # More slow calls than the event loop's default executor has threads (min(32, CPUs + 4)).
    calls = max(7, min(32, (os.cpu_count() or 1) + 4) + 1)
    standin.queue_service_faults([{"endpoint": "billing", "delay": 6, "times": calls}])

    async def steps(client):
        slow = [asyncio.ensure_future(client.get("/flux2_lora/balance")) for _ in range(calls)]
        for _ in range(500):
            if standin.accounts.get_counts["billing"]:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # every slow call has reached its handler by now
        price = await client.get("/flux2_lora/price", params={"num_images": "1", "preset": "square"})
        price_answer = price.status, await price.json()
        balance_done_first = any(task.done() for task in slow)
        answers = [await (await task).json() for task in slow]
        return price_answer, balance_done_first, answers

    (status, price), balance_done_first, answers = run_client(money_server, steps)
    assert status == 200 and price["usd"] is not None
    assert not balance_done_first, "the price route waited for the slow balance calls"
    assert all(answer["balance"] == 100.0 for answer in answers)


def test_a_route_whose_threads_are_all_waiting_answers_busy_at_once(money_server, standin):
    # The catalogue answers after 4 s: one price call asks, the others wait for its answer.
    standin.queue_service_faults([{"endpoint": "models", "delay": 4}])
    routes = sys.modules[f"{PACK_NAME}.nodes.routes.money"]
    room = routes._price_worker()._room  # its threads plus the calls it lets wait

    async def steps(client):
        params = {"num_images": "1", "preset": "square"}
        waiting = [asyncio.ensure_future(client.get("/flux2_lora/price", params=params)) for _ in range(room)]
        for _ in range(500):
            if standin.accounts.get_counts["models"]:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        extra = await client.get("/flux2_lora/price", params=params)
        extra_answer = extra.status, await extra.json(), any(task.done() for task in waiting)
        answers = [(await task).status for task in waiting]
        return extra_answer, answers

    (status, busy, waited_first), answers = run_client(money_server, steps)
    assert status == 503 and "try again in a moment" in busy["error"] and not waited_first
    assert answers == [200] * room and standin.accounts.get_counts["models"] == 1


# -- 10. one redaction for everything the service client returns ----------------------------------

def test_an_echoed_key_never_reaches_the_balance_route(money_server, standin):
    standin.queue_service_faults([
        {"endpoint": "billing", "body": f"<html>denied for {TEST_KEY}</html>", "content_type": "text/html"},
        {"endpoint": "billing", "status": 500, "message": f"bad key {TEST_KEY}",
         "headers": {"X-Echo": TEST_KEY}},
        {"endpoint": "billing", "answer": {"currency": TEST_KEY}},
    ])

    async def steps(client):
        return [await (await client.get("/flux2_lora/balance")).json() for _ in range(3)]

    garbage, error, echoed = run_client(money_server, steps)
    assert "Balance unavailable" in garbage["message"] and "not JSON" in garbage["message"]
    assert echoed["balance"] == 100.0 and echoed["currency"] == "***"
    for answer in (garbage, error, echoed):
        _no_key(json.dumps(answer))


def test_an_echoed_key_never_reaches_the_price_note(money_server, standin):
    standin.queue_service_faults([
        {"endpoint": "models", "item": {"pricing": {"currency": TEST_KEY}}},
    ])

    async def steps(client):
        answer = await client.get("/flux2_lora/price", params={"num_images": "1", "preset": "square"})
        return await answer.json()

    answer = run_client(money_server, steps)
    assert answer["usd"] is None and "the price is in ***" in answer["note"]
    _no_key(json.dumps(answer))


def test_an_echoed_key_never_reaches_a_price_note_from_an_unreadable_catalogue(money_server, standin):
    standin.queue_service_faults([{"endpoint": "models", "body": f"{TEST_KEY} is not allowed here"}])

    async def steps(client):
        answer = await client.get("/flux2_lora/price", params={"num_images": "1", "preset": "square"})
        return await answer.json()

    answer = run_client(money_server, steps)
    assert "the model catalogue could not be read" in answer["note"]
    _no_key(json.dumps(answer))


def test_an_echoed_key_never_reaches_a_log_warning(client, api, standin, caplog):
    standin.queue_post_faults([{"delay": 1.5, "log": "none"}])
    standin.queue_service_faults([{"endpoint": "logs", "body": f"Bearer-less echo {TEST_KEY}", "times": 50}])
    with caplog.at_level(logging.DEBUG), pytest.raises(api.APITimeoutError) as caught:
        client.generate(REQUEST_BODY)
    assert "usage logs unavailable" in caplog.text
    _no_key(caplog.text)
    _no_key(str(caught.value))


def test_an_echoed_key_in_a_log_row_never_reaches_the_billed_error(client, api, standin):
    standin.queue_post_faults([{"delay": 1.5, "log": "succeeded"}])
    standin.queue_service_faults([{"endpoint": "logs", "row": {"inference_id": TEST_KEY, "created": TEST_KEY},
                                   "times": 50}])
    with pytest.raises(api.BilledWithoutAnswerError) as caught:
        client.generate(REQUEST_BODY)
    assert "inference ***" in str(caught.value)
    _no_key(str(caught.value))


def test_an_echoed_key_never_reaches_the_info_output_or_the_ledger(pack, standin):
    standin.queue_post_faults([{"inference_header": TEST_KEY}])
    info_text = generate(pack)["result"][1]
    info = json.loads(info_text)
    assert info["inference_ids"] == ["***"]
    _no_key(info_text)
    ledger = Path(os.environ["FLUX2_LORA_LEDGER"])
    written = [path for path in ledger.parent.iterdir() if path.is_file()]
    assert written
    for path in written:
        _no_key(path.read_bytes().decode("latin-1"))


def test_an_echoed_key_in_an_etag_never_reaches_the_price_file(api, pricing, standin, tmp_path):
    standin.queue_service_faults([{"endpoint": "models", "headers": {"ETag": f'W/"{TEST_KEY}"'}}])
    book = pricing.PriceBook(tmp_path / "pricing.json")
    assert book.pricing(MODEL, api.ApiClient(TEST_KEY, standin.base_url))["kind"] == "fixed"
    _no_key((tmp_path / "pricing.json").read_text(encoding="utf-8"))


def test_every_string_and_header_of_a_service_answer_is_redacted(api, service, standin):
    standin.queue_service_faults([{"endpoint": "logs", "answer": {TEST_KEY: [{"deep": f"x{TEST_KEY}y"}]},
                                   "row": {"model": f"token={TEST_KEY}"}, "headers": {"X-Echo": TEST_KEY}}])
    standin.accounts.record("succeeded", MODEL, 5, "flux2-abc", "inf1", time.time())
    made = api.ApiClient(TEST_KEY, standin.base_url)
    answer = service.service_get(made, "/v2/logs", [("period", "1h")])
    _no_key(json.dumps(answer.payload))
    _no_key(json.dumps(answer.headers))
    assert answer.payload["***"] == [{"deep": "x***y"}] and answer.headers["x-echo"] == "***"


# -- 12. the stand-in's history is bounded ---------------------------------------------------------

def test_the_standin_keeps_a_bounded_history_of_service_get_headers(standin):
    import requests

    accounts_module = sys.modules[type(standin.accounts).__module__]
    bound = accounts_module.HEADER_HISTORY
    with requests.Session() as session:
        for n in range(bound + 300):
            session.get(f"{standin.root_url}/v1/models", headers={"X-Number": str(n)}, timeout=10)
    assert standin.accounts.get_counts["models"] == bound + 300
    assert len(standin.accounts.seen_headers) == bound
    assert standin.accounts.seen_headers[-1]["x-number"] == str(bound + 299)


def test_every_service_fault_key_is_documented():
    from api_client.standin import faults

    doc = (Path(__file__).resolve().parents[3] / "api_client" / "standin" / "FAULTS.md").read_text(encoding="utf-8")
    section = doc[doc.index("(`service`)"):doc.index("### Example")]
    for key in faults.SERVICE_KEYS:
        assert f"| `{key}` |" in section, f"service fault {key!r} is not documented in FAULTS.md"
    assert '"service": [<fault>, ...]' in doc
