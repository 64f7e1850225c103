"""The key never appears in outputs, info, ui, errors, tracebacks or logs."""

from __future__ import annotations

import logging
import traceback

import pytest
from conftest import TEST_KEY, generate


@pytest.fixture
def debug_logs(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("flux2_lora", "urllib3", "requests"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    return caplog


def _assert_no_key(text: str) -> None:
    assert TEST_KEY not in text
    assert TEST_KEY[8:24] not in text  # not even a part of it


def test_key_absent_from_a_full_generation(pack, standin, debug_logs):
    out = generate(pack, num_images=5, loras=[{"path": "owner/repo", "scale": 1.0}])
    images, info = out["result"]
    _assert_no_key(info)
    _assert_no_key(repr(out["ui"]))
    _assert_no_key(debug_logs.text)
    assert "flux2_lora" in {r.name for r in debug_logs.records}


@pytest.mark.parametrize("fault", [
    {"status": 401, "message": f"invalid key {TEST_KEY}"},
    {"status": 422, "message": f"Authorization: Bearer {TEST_KEY} is bad"},
    {"status": 503, "message": f"echo {TEST_KEY}", "times": 9, "retry_after": "0"},
    {"body": f"<html>{TEST_KEY}</html>", "status": 200},
])
def test_key_absent_from_errors_and_tracebacks_even_when_the_server_echoes_it(pack, api, standin, debug_logs, fault):
    standin.queue_post_faults([fault])
    with pytest.raises(api.Flux2Error) as caught:
        generate(pack)
    _assert_no_key(str(caught.value))
    _assert_no_key("".join(traceback.format_exception(caught.value)))
    _assert_no_key(debug_logs.text)


def test_client_and_key_reprs_hide_the_key(api, standin):
    key = api.resolve_api_key()
    client = api.ApiClient(key, standin.base_url)
    _assert_no_key(repr(key) + str(key) + repr(client))
    client.close()
