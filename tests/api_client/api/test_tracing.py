"""Traced requests and no paid result lost, against the stand-in over real HTTP.

Every POST carries a valid X-Client-Request-Id (one per request, the same on its
retries); the answer's x-inference-id and cost headers reach the info JSON. After an
ambiguous failure the API's usage logs (GET /v2/logs) decide: a failed row sends the
request once more, a succeeded row is an error saying it was billed, no row keeps the
"may have been billed" error naming the id. Money: nothing is ever sent twice on a guess.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time

import pytest
from conftest import PACK_NAME, REQUEST_BODY, TEST_KEY, generate

from api_client.standin import StandInServer

VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@pytest.fixture(autouse=True)
def _log_wait(standin, monkeypatch):
    # Rows are written when the stand-in's late answer is decided, up to ~1.5 s after sending.
    monkeypatch.setenv("FLUX2_LORA_LOG_WAIT", "6")


@pytest.fixture
def client(windowed_client):
    """A client that gives up reading after 0.5 s, and counts a failure late after 1 s."""
    return windowed_client(0.5)


@pytest.fixture
def slow_node(standin, monkeypatch):
    """A stand-in of its own, so the node's shared client for it is made with a 0.5 s read timeout."""
    with StandInServer(key=TEST_KEY).start() as server:
        monkeypatch.setenv("AIML_API_BASE", server.base_url)
        monkeypatch.setenv("FLUX2_LORA_READ_TIMEOUT", "0.5")
        yield server


def _rows(standin):
    return [r.to_json() for r in standin.accounts.visible_rows()]


def _budget():
    return sys.modules[f"{PACK_NAME}.api_client.money.budget"].credit_budget()


# -- 1. traced requests ---------------------------------------------------------------------------

def test_every_post_carries_a_valid_distinct_request_id_listed_in_info_with_inference_ids(pack, standin):
    images, info_text = generate(pack, num_images=16)["result"]
    info = json.loads(info_text)
    sent = standin.post_request_ids
    assert len(sent) == 4 and len(set(sent)) == 4
    assert all(VALID_ID.match(rid) and len(rid) <= 128 for rid in sent)
    assert sorted(info["request_ids"]) == sorted(sent)
    rows = {row["client_request_id"]: row for row in _rows(standin)}
    assert set(rows) == set(sent)
    # Request k's inference id is the one its answer carried, the id the API bills it under.
    for rid, inference in zip(info["request_ids"], info["inference_ids"], strict=True):
        assert rows[rid]["inference_id"] == inference
    assert info["usd_spent"] == pytest.approx(sum(row["cost"]["usd"] for row in rows.values()))
    assert info["credits_used"] == sum(row["cost"]["credits"] for row in rows.values())


def test_each_attempt_of_a_request_carries_its_own_id_sharing_the_request_prefix(api, standin):
    # One X-Client-Request-Id per attempt: every usage-log row maps to exactly one attempt.
    standin.queue_post_faults([{"status": 429, "retry_after": "0"}, {"status": 503, "retry_after": "0"}])
    made = api.ApiClient(TEST_KEY, standin.base_url)
    response = made.generate(REQUEST_BODY, request_id="flux2-abc")
    assert standin.post_count == 3
    assert standin.post_request_ids == ["flux2-abc.1", "flux2-abc.2", "flux2-abc.3"]
    assert response.request_id == "flux2-abc.3"


def test_the_credits_header_wins_over_meta_usage(api, standin):
    standin.queue_post_faults([{"usage": {"credits_used": 5}, "credits_header": "777", "usd_header": "0.0003885"}])
    response = api.ApiClient(TEST_KEY, standin.base_url).generate(REQUEST_BODY)
    assert response.credits_used == 777 and response.usd_spent == pytest.approx(0.0003885)


def test_without_cost_headers_meta_usage_is_read(api, standin):
    standin.queue_post_faults([{"cost_headers": False}])
    response = api.ApiClient(TEST_KEY, standin.base_url).generate(REQUEST_BODY)
    assert response.credits_used == 120000 and response.usd_spent is None
    assert response.inference_id is not None


@pytest.mark.parametrize("value", ["lots", "-5", "nan", ""])
def test_a_garbage_cost_header_falls_back_to_meta_usage(api, standin, value):
    standin.queue_post_faults([{"credits_header": value, "usd_header": value}])
    response = api.ApiClient(TEST_KEY, standin.base_url).generate(REQUEST_BODY)
    assert response.credits_used == 120000 and response.usd_spent is None


def test_neither_header_nor_meta_usage_leaves_the_cost_unknown(api, standin):
    standin.queue_post_faults([{"usage": None, "inference_header": False}])
    response = api.ApiClient(TEST_KEY, standin.base_url).generate(REQUEST_BODY)
    assert response.credits_used is None and response.usd_spent is None and response.inference_id is None


def test_request_ids_follow_the_documented_alphabet_and_length(api):
    from importlib import import_module

    tracing = import_module(f"{PACK_NAME}.api_client.api.tracing")
    ids = {tracing.new_request_id() for _ in range(200)}
    assert len(ids) == 200 and all(VALID_ID.match(i) for i in ids)
    assert not tracing.is_valid_request_id("a" * 129) and not tracing.is_valid_request_id("bad id")
    assert not tracing.is_valid_request_id("") and tracing.is_valid_request_id("a" * 128)


# -- 2. no paid result lost -----------------------------------------------------------------------

def test_read_timeout_with_a_failed_log_row_is_sent_once_more_and_returns_the_pictures(client, standin):
    # The first answer comes too late; the API recorded it as failed (nothing billed).
    standin.queue_post_faults([{"delay": 1.5, "log": "failed"}])
    response = client.generate(REQUEST_BODY)
    assert len(response.images) == 1 and response.resent == 1
    first, second = standin.post_request_ids
    assert standin.post_count == 2 and first.endswith(".1") and second == first[:-1] + "2"
    time.sleep(1.2)  # the late first answer's handler has finished too: still two POSTs
    assert standin.post_count == 2


def test_read_timeout_with_a_failed_row_through_the_node_returns_pictures_and_says_so(pack, slow_node):
    standin = slow_node
    standin.queue_post_faults([{"delay": 1.5, "status": 500}])
    images, info_text = generate(pack, use_cache=False)["result"]
    info = json.loads(info_text)
    assert images.shape[0] == 1 and standin.post_count == 2
    assert "usage logs" in info["resent_note"] and info["request_ids"] == [standin.post_request_ids[1]]


def test_read_timeout_with_a_succeeded_log_row_is_a_billed_error_and_never_sent_again(pack, api, slow_node):
    standin = slow_node
    standin.queue_post_faults([{"delay": 1.5}])  # processed and billed; the answer came too late
    with pytest.raises(api.BilledWithoutAnswerError) as caught:
        generate(pack, use_cache=False)
    message = str(caught.value)
    rid = standin.post_request_ids[0]
    assert rid in message and "SUCCEEDED" in message and "120,000 credits" in message and "$0.06" in message
    assert "not sent again" in message and "does not refund" in message
    assert _rows(standin)[0]["created"][:16] in message  # the time it was billed
    time.sleep(1.2)
    assert standin.post_count == 1
    # The budget counts what the records say was billed.
    assert _budget().spent == 120000


def test_a_row_that_appears_late_is_waited_for(client, standin, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_LOG_WAIT", "8")
    standin.queue_post_faults([{"delay": 1.0, "log": "failed", "log_delay": 2.0}])
    response = client.generate(REQUEST_BODY)
    assert response.resent == 1 and standin.post_count == 2


def test_no_row_in_time_keeps_the_may_have_been_billed_error_naming_the_id(client, api, standin):
    standin.queue_post_faults([{"delay": 1.5, "log": "none"}])
    started = time.monotonic()
    with pytest.raises(api.APITimeoutError) as caught:
        client.generate(REQUEST_BODY)
    message = str(caught.value)
    assert standin.post_request_ids[0] in message and "no row" in message and "may still be processed" in message
    assert time.monotonic() - started < 10
    assert standin.post_count == 1


def test_late_drop_with_a_failed_row_is_sent_again(client, standin):
    client.read_timeout = 10
    standin.queue_post_faults([{"delay": 1.5, "drop": True, "log": "failed"}])
    assert client.generate(REQUEST_BODY).resent == 1
    assert standin.post_count == 2


def test_late_drop_with_a_succeeded_row_is_billed_and_not_sent_again(client, api, standin):
    client.read_timeout = 10
    standin.queue_post_faults([{"delay": 1.5, "drop": True, "log": "succeeded"}])
    with pytest.raises(api.BilledWithoutAnswerError, match="120,000 credits"):
        client.generate(REQUEST_BODY)
    assert standin.post_count == 1


@pytest.mark.parametrize("mode", ["missing", "garbage", "wrong_shape"])
def test_logs_endpoint_missing_or_garbage_gives_the_old_error_at_once_and_sends_nothing_more(client, api, standin,
                                                                                            monkeypatch, mode):
    monkeypatch.setenv("FLUX2_LORA_LOG_WAIT", "30")
    standin.configure(endpoints={"logs": mode})
    standin.queue_post_faults([{"delay": 1.5, "log": "failed"}])
    started = time.monotonic()
    with pytest.raises(api.APITimeoutError, match="could not tell") as caught:
        client.generate(REQUEST_BODY)
    assert standin.post_request_ids[0] in str(caught.value)
    assert time.monotonic() - started < 10  # a missing endpoint is not polled for 30 s
    assert standin.post_count == 1


def test_logs_server_errors_are_polled_until_the_deadline(client, api, standin):
    standin.configure(endpoints={"logs": "error"})
    standin.queue_post_faults([{"delay": 1.5, "log": "failed"}])
    with pytest.raises(api.APITimeoutError, match="could not tell within"):
        client.generate(REQUEST_BODY)
    assert standin.accounts.get_counts["logs"] >= 2 and standin.post_count == 1


def test_cancel_ends_the_wait_for_the_logs(client, api, standin, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_LOG_WAIT", "60")
    standin.queue_post_faults([{"delay": 1.5, "log": "none"}])
    cancel = threading.Event()
    outcome = {}

    def run():
        try:
            client.generate(REQUEST_BODY, cancel)
        except Exception as exc:  # the test inspects it
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(1.5)  # the read timed out; the logs are being polled
    cancel.set()
    worker.join(5)
    # Not a plain Cancelled: the request was sent, so the budget keeps counting it as maybe billed.
    error = outcome["error"]
    assert not worker.is_alive() and isinstance(error, api.APITimeoutError) and error.may_have_billed
    assert "Cancel ended the wait for the usage logs" in str(error) and standin.post_request_ids[0] in str(error)
    assert standin.post_count == 1


def test_a_failed_row_left_by_an_earlier_error_answer_never_triggers_a_second_post(client, api, standin):
    # Attempt 1 is refused (429: a failed row, nothing billed) and retried; attempt 2 times out and
    # leaves no row. The one failed row may be attempt 1's, so attempt 2 is NOT sent again.
    standin.queue_post_faults([{"status": 429, "retry_after": "0"}, {"delay": 1.5, "log": "none"}])
    with pytest.raises(api.APITimeoutError, match="no row"):
        client.generate(REQUEST_BODY)
    assert standin.post_count == 2


def test_each_failed_row_sends_at_most_once_and_resends_are_capped(client, api, standin):
    standin.queue_post_faults([{"delay": 1.5, "status": 500, "times": 3}])
    with pytest.raises(api.Flux2Error, match="failed again; not sent a 4th time"):
        client.generate(REQUEST_BODY)
    time.sleep(1.2)
    prefix = standin.post_request_ids[0].rsplit(".", 1)[0]
    assert standin.post_count == 3 and standin.post_request_ids == [f"{prefix}.{n}" for n in (1, 2, 3)]


def test_the_logs_are_asked_on_the_api_host_with_the_key(client, standin):
    standin.queue_post_faults([{"delay": 1.5, "log": "failed"}])
    client.generate(REQUEST_BODY)
    assert standin.accounts.get_counts["logs"] >= 1
    assert all(h.get("authorization") == f"Bearer {TEST_KEY}" for h in standin.accounts.seen_headers)


def test_standin_logs_endpoint_checks_its_query_as_documented(standin):
    import requests

    url = f"{standin.root_url}/v2/logs"
    auth = {"Authorization": f"Bearer {TEST_KEY}"}
    assert requests.get(url, headers=auth, timeout=5).status_code == 400  # neither period nor start+end
    assert requests.get(url, params={"period": "1d", "start": "2026-01-01T00:00:00Z"}, headers=auth,
                        timeout=5).status_code == 400
    assert requests.get(url, params={"period": "1d", "status": "succeeded,failed"}, headers=auth,
                        timeout=5).status_code == 400
    assert requests.get(url, params={"period": "1d", "limit": "101"}, headers=auth, timeout=5).status_code == 400
    assert requests.get(url, params={"period": "1d"}, timeout=5).status_code == 401
    page = requests.get(url, params={"period": "1d"}, headers=auth, timeout=5).json()
    assert page == {"data": [], "pagination": {"limit": 50, "offset": 0, "total": 0, "has_more": False}}


def test_an_answer_trickling_past_the_read_timeout_with_a_succeeded_row_is_a_billed_error(client, api, standin):
    client.read_timeout = 1.0
    standin.queue_post_faults([{"trickle": 0.2}])  # a 200 the API billed, arriving one byte at a time
    with pytest.raises(api.BilledWithoutAnswerError, match="120,000 credits"):
        client.generate(REQUEST_BODY)
    assert standin.post_count == 1
