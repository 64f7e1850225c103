"""The key never appears in outputs, info, ui, errors, tracebacks, exception chains or logs."""

from __future__ import annotations

import http.client
import logging
import threading
import traceback

import pytest
import requests
from conftest import REQUEST_BODY, ROOT, TEST_KEY, closed_port, generate

SECRET_PARTS = (TEST_KEY, TEST_KEY[8:24], TEST_KEY[-16:])  # not even a part of it


@pytest.fixture
def debug_logs(caplog):
    """Every logger at DEBUG, urllib3's and requests' included."""
    caplog.set_level(logging.DEBUG)
    for name in ("", "flux2_lora", "urllib3", "requests"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _assert_no_key(text: str) -> None:
    for part in SECRET_PARTS:
        assert part not in text


def _chain(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and every exception reachable through __cause__ and __context__."""
    found: list[BaseException] = []
    todo = [exc]
    while todo:
        item = todo.pop()
        if item is not None and all(item is not seen for seen in found):
            found.append(item)
            todo += [item.__cause__, item.__context__]
    return found


def _pack_frame_locals(exc: BaseException) -> str:
    """The reprs of every local variable in the pack's own frames of the traceback.

    What a crash reporter or a debugger shows (traceback with locals); the test's
    own frames are left out, since they hold the test's faults.
    """
    shown = []
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        path = frame.f_code.co_filename
        if path.startswith(str(ROOT)) and not path.startswith(str(ROOT / "tests")):
            shown += [f"{name}={value!r}" for name, value in dict(frame.f_locals).items()]
    assert shown, "no frame of the pack in the traceback"
    return "\n".join(shown)


def _assert_error_carries_no_key(exc: BaseException) -> None:
    """Message, repr, traceback (with local variables too) and the whole exception chain."""
    _assert_no_key(str(exc) + repr(exc))
    _assert_no_key("".join(traceback.format_exception(exc)))
    _assert_no_key(_pack_frame_locals(exc))
    for linked in _chain(exc):
        # requests' exceptions hold the PreparedRequest, headers and all: none may travel along.
        assert not isinstance(linked, requests.RequestException), f"{type(linked).__name__} is chained"
        assert getattr(linked, "request", None) is None
        _assert_no_key(str(linked) + repr(linked) + repr(getattr(linked, "doc", "")))


def test_key_absent_from_a_full_generation(pack, standin, debug_logs, capfd, tmp_path):
    out = generate(pack, num_images=5, loras=[{"path": "owner/repo", "scale": 1.0}])
    again = generate(pack, num_images=5, loras=[{"path": "owner/repo", "scale": 1.0}])  # from the result cache
    _assert_no_key(repr(again))
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert written, "the result cache wrote nothing under the test's folder"
    for path in written:  # result cache, manifests, config: nothing on disk holds the key
        _assert_no_key(path.read_bytes().decode("latin-1"))
    images, info = out["result"]
    _assert_no_key(info)
    _assert_no_key(repr(out["ui"]))
    _assert_no_key(repr(out))
    _assert_no_key(debug_logs.text)
    _assert_no_key(" ".join(repr(r.args) + r.getMessage() for r in debug_logs.records))
    stdout, stderr = capfd.readouterr()
    _assert_no_key(stdout + stderr)
    names = {r.name for r in debug_logs.records}
    assert "flux2_lora" in names and "urllib3.connectionpool" in names  # the loggers really were at DEBUG
    assert http.client.HTTPConnection.debuglevel == 0  # the pack never turns on raw header printing


def test_debug_log_shows_request_headers_with_authorization_redacted(pack, standin, debug_logs):
    generate(pack)
    posts = [r.getMessage() for r in debug_logs.records if r.getMessage().startswith("POST ")]
    gets = [r.getMessage() for r in debug_logs.records if r.getMessage().startswith("GET ")]
    assert len(posts) == 1 and "'Authorization': 'Bearer ***'" in posts[0]
    assert "User-Agent" in posts[0]
    # Picture downloads never carry the key, so a CDN never sees it.
    assert len(gets) == 1 and "Authorization" not in gets[0]


def test_redacted_headers_hides_every_credential(api):
    from api_client.errors import redact, redacted_headers

    shown = redacted_headers({"Authorization": f"Bearer {TEST_KEY}", "proxy-authorization": "Basic YWxpY2U6cHc=",
                              "Cookie": "session=abc", "X-Api-Key": TEST_KEY, "Accept": "*/*"})
    assert shown == {"Authorization": "Bearer ***", "proxy-authorization": "Basic ***", "Cookie": "***",
                     "X-Api-Key": "***", "Accept": "*/*"}
    assert redact("via http://alice:pw123@proxy:3128 and https://h/p?api_key=abc") == \
        "via http://***@proxy:3128 and https://h/p?api_key=***"


@pytest.mark.parametrize(("kind", "fault"), [
    # The API's answer, echoing the key in every way it could.
    ("post", {"status": 401, "message": f"invalid key {TEST_KEY}"}),
    ("post", {"status": 422, "message": f"Authorization: Bearer {TEST_KEY} is bad"}),
    ("post", {"status": 503, "message": f"echo {TEST_KEY}", "times": 9, "retry_after": "0"}),
    ("post", {"status": 429, "message": f"slow down {TEST_KEY}", "retry_after": "3600"}),
    ("post", {"body": f"<html>{TEST_KEY}</html>", "status": 200}),
    ("post", {"body": f'{{"data": [], "message": "{TEST_KEY}"}}', "status": 200}),
    ("post", {"body": f'{{"broken json {TEST_KEY}', "status": 200}),
    # Picture downloads and decoding.
    ("file", {"status": 403}), ("file", {"truncate": True, "times": 9}), ("file", {"truncate_declared": True}),
    ("file", {"bomb": True}), ("file", {"not_image": True}), ("file", {"redirect": "file:///etc/passwd"}),
    ("file", {"oversize_chunked": 80_000_000}),
])
def test_key_absent_from_errors_even_when_the_server_echoes_it(pack, api, standin, debug_logs, kind, fault):
    (standin.queue_post_faults if kind == "post" else standin.queue_file_faults)([fault])
    with pytest.raises(api.Flux2Error) as caught:
        generate(pack)
    _assert_error_carries_no_key(caught.value)
    _assert_no_key(debug_logs.text)


def test_key_absent_from_connection_errors_and_their_chain(api, standin, debug_logs):
    fast = api.RetryPolicy(base_delay=0.01, max_delay=0.02)
    key = api.ApiKey(TEST_KEY, "test")
    refused = api.ApiClient(key, f"http://127.0.0.1:{closed_port()}/v1", retry=fast)
    with pytest.raises(api.APIConnectionError) as caught:
        refused.generate(REQUEST_BODY)
    _assert_error_carries_no_key(caught.value)

    direct = api.ApiClient(key, standin.base_url, retry=fast)
    standin.queue_post_faults([{"drop": True, "times": 9}])
    with pytest.raises(api.APIConnectionError) as caught:
        direct.generate(REQUEST_BODY)
    _assert_error_carries_no_key(caught.value)
    standin.reset()  # drop the faults left over

    slow = api.ApiClient(key, standin.base_url, retry=fast, read_timeout=0.3)
    standin.queue_post_faults([{"delay": 2.0}])
    with pytest.raises(api.APITimeoutError) as caught:
        slow.generate(REQUEST_BODY)
    _assert_error_carries_no_key(caught.value)

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(api.Cancelled) as caught:
        slow.generate(REQUEST_BODY, cancel)
    _assert_error_carries_no_key(caught.value)
    _assert_no_key(debug_logs.text)
    for client in (refused, direct, slow):
        client.close()


def test_client_and_key_reprs_hide_the_key(api, standin):
    key = api.resolve_api_key()
    client = api.ApiClient(key, standin.base_url)
    _assert_no_key(repr(key) + str(key) + repr(client) + repr(vars(client)) + repr(client.session.auth))
    _assert_no_key(repr(client.session.headers))
    client.close()


# -- a server that puts the key into URLs: picture URLs, their errors, redirects, log lines -------------------

def _assert_message_and_chain_carry_no_key(exc: BaseException) -> None:
    """As _assert_error_carries_no_key, but for a URL the server chose: the pack must hold it to fetch it,
    so the frames' local variables may; what is shown (message, traceback text, chain) may not."""
    _assert_no_key(str(exc) + repr(exc))
    _assert_no_key("".join(traceback.format_exception(exc)))
    for linked in _chain(exc):
        assert not isinstance(linked, requests.RequestException), f"{type(linked).__name__} is chained"
        _assert_no_key(str(linked) + repr(linked))


def _picture_url(api, standin) -> str:
    """The URL of a real picture on the stand-in (made by one direct request)."""
    client = api.ApiClient(api.ApiKey(TEST_KEY, "test"), standin.base_url)
    url = client.generate(REQUEST_BODY).images[0].url
    client.close()
    return url


def test_key_echoed_in_a_picture_url_is_redacted_from_info_and_logs(pack, api, standin, debug_logs):
    url = f"{_picture_url(api, standin)}?sig={TEST_KEY}"  # the stand-in ignores the query
    standin.queue_post_faults([{"url": url}])
    out = generate(pack)
    images, info = out["result"]
    assert images.shape == (1, 512, 512, 3) and standin.file_get_count == 1
    _assert_no_key(info)
    assert '"image_urls": [\n    "http://127.0.0.1:' in info and "?sig=***" in info
    _assert_no_key(repr(out))
    _assert_no_key(debug_logs.text)
    _assert_no_key(" ".join(r.getMessage() for r in debug_logs.records))


@pytest.mark.parametrize("where", ["path", "query", "user"])
def test_key_echoed_in_a_failing_picture_url_is_redacted_from_the_download_error(pack, api, standin, debug_logs,
                                                                                 where):
    root = standin.root_url
    url = {"path": f"{root}/files/{TEST_KEY}.png", "query": f"{root}/files/missing.png?k={TEST_KEY}",
           "user": f"http://{TEST_KEY}@127.0.0.1:{standin.port}/files/x.png"}[where]
    standin.queue_post_faults([{"url": url}])
    with pytest.raises(api.DownloadError) as caught:
        generate(pack)
    _assert_message_and_chain_carry_no_key(caught.value)
    _assert_no_key(debug_logs.text)


def test_key_echoed_in_a_redirect_of_the_generation_request_is_redacted(pack, api, standin, debug_logs):
    standin.queue_post_faults([{"status": 307, "location": f"https://elsewhere.example/v1?key={TEST_KEY}&x=1",
                                "message": "moved"}])
    with pytest.raises(api.APIStatusError, match="redirected the request") as caught:
        generate(pack)
    assert "elsewhere.example" in str(caught.value)
    _assert_message_and_chain_carry_no_key(caught.value)
    _assert_no_key(debug_logs.text)
