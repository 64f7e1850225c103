"""A request the API may have processed is never sent again, and every billed answer is counted."""

from __future__ import annotations

import sys
import time

import pytest
from conftest import PACK_NAME, TEST_KEY, generate


@pytest.fixture
def windowed(windowed_client):
    """A client whose 'soon after sending' window is 1 s, so late failures can be tested quickly."""
    return windowed_client(10)


BODY = {"model": "blackforestlabs/flux-2-lora", "prompt": "a cat", "seed": 1, "num_images": 1,
        "image_size": "square"}


def test_connection_dropped_soon_after_sending_is_retried(windowed, standin):
    standin.queue_post_faults([{"drop": True}])
    assert len(windowed.generate(BODY).images) == 1
    assert standin.post_count == 2


def test_connection_dropped_late_is_not_sent_again(windowed, api, standin):
    standin.queue_post_faults([{"delay": 1.5, "drop": True}])
    with pytest.raises(api.APIConnectionError, match="may have processed and billed it, so it was not sent again"):
        windowed.generate(BODY)
    time.sleep(0.2)
    assert standin.post_count == 1


@pytest.mark.parametrize("status", [500, 502, 504])
def test_late_gateway_errors_are_not_sent_again(windowed, api, standin, status):
    # Without a usage-log row nothing tells whether it was billed (with a failed row it is sent again:
    # tests/api_client/api/test_tracing.py).
    standin.queue_post_faults([{"status": status, "delay": 1.5, "log": "none"}])
    with pytest.raises(api.ServerError, match="it was not sent again"):
        windowed.generate(BODY)
    assert standin.post_count == 1


@pytest.mark.parametrize("status", [429, 503])
def test_late_refusals_are_still_retried(windowed, standin, status):
    standin.queue_post_faults([{"status": status, "delay": 1.5, "retry_after": "0"}])
    assert len(windowed.generate(BODY).images) == 1
    assert standin.post_count == 2


def test_oversized_answer_is_abandoned_and_not_retried(api, standin):
    client = api.ApiClient(TEST_KEY, standin.base_url, max_answer_bytes=1000)
    standin.response_mode = "b64"
    with pytest.raises(api.APIResponseError, match="larger than the 1,000 bytes|above the 1,000"):
        client.generate(BODY)
    assert standin.post_count == 1
    client.close()


@pytest.mark.parametrize("bad_key", ["sk-abc\ndef-0123456789", "sk-abc def-0123456789", "sk-abcé-0123456789"])
def test_malformed_key_is_refused_without_showing_it(pack, api, standin, monkeypatch, bad_key):
    monkeypatch.setenv("AIML_API_KEY", bad_key)
    with pytest.raises(api.ConfigError) as caught:
        generate(pack)
    assert "environment variable AIML_API_KEY" in str(caught.value)
    assert "abc" not in str(caught.value) and caught.value.__context__ is None
    assert standin.post_count == 0


def test_billed_answer_is_counted_even_when_another_request_fails(pack, api, standin):
    # Two requests: whichever arrives first answers after 1 s; the other is refused at once.
    standin.queue_post_faults([{"delay": 1.0}, {"status": 422, "message": "bad"}])
    with pytest.raises(api.BadRequestError):
        generate(pack, num_images=8)
    budget = sys.modules[f"{PACK_NAME}.api_client.money.budget"].credit_budget()
    deadline = time.monotonic() + 5
    while budget.spent == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert budget.spent > 0
