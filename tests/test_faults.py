"""What happens when the service misbehaves: outcome, number of POSTs, and time taken."""

from __future__ import annotations

import socket
import time

import pytest
from conftest import TEST_KEY, generate

BODY = {"model": "blackforestlabs/flux-2-lora", "prompt": "a cat", "seed": 1, "num_images": 1,
        "image_size": "square"}


@pytest.fixture
def client(api, standin):
    fast = api.RetryPolicy(max_retries=3, base_delay=0.02, max_delay=0.1, max_retry_after=5)
    client = api.ApiClient(api.ApiKey(TEST_KEY, "environment variable AIML_API_KEY"), standin.base_url,
                           retry=fast, read_timeout=5)
    yield client
    client.close()


def _timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_429_honours_retry_after(client, standin):
    standin.queue_post_faults([{"status": 429, "retry_after": "1", "message": "slow down"}])
    response, elapsed = _timed(lambda: client.generate(BODY))
    assert len(response.images) == 1 and standin.post_count == 2
    assert 1.0 <= elapsed < 3.0


def test_429_without_retry_after_backs_off_and_succeeds(client, standin):
    standin.queue_post_faults([{"status": 429, "times": 2}])
    response, elapsed = _timed(lambda: client.generate(BODY))
    assert standin.post_count == 3 and elapsed < 2.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_burst_then_success(client, standin, status):
    standin.queue_post_faults([{"status": status, "times": 2}])
    response, elapsed = _timed(lambda: client.generate(BODY))
    assert response.credits_used and standin.post_count == 3 and elapsed < 2.0


def test_persistent_503_gives_up_in_bounded_time(client, api, standin):
    standin.queue_post_faults([{"status": 503, "message": "overloaded", "times": 10}])
    with pytest.raises(api.ServerError) as caught:
        _timed(lambda: client.generate(BODY))
    assert standin.post_count == 4
    assert "503" in str(caught.value) and "after 4 attempts" in str(caught.value) and "overloaded" in str(caught.value)


def test_retry_after_longer_than_allowed_is_not_waited_for(client, api, standin):
    standin.queue_post_faults([{"status": 429, "retry_after": "3600", "times": 5}])
    with pytest.raises(api.RateLimitError):
        _, elapsed = _timed(lambda: client.generate(BODY))
    assert standin.post_count == 1


@pytest.mark.parametrize(("status", "error", "fragments"), [
    (401, "AuthenticationError", ["401", "environment variable AIML_API_KEY", "bad key given"]),
    (402, "PermissionDeniedError", ["402", "credits", "bad key given"]),
    (403, "PermissionDeniedError", ["403", "permission", "bad key given"]),
    (404, "NotFoundError", ["404", "AIML_API_BASE", "bad key given"]),
    (422, "BadRequestError", ["422", "bad key given"]),
    (400, "BadRequestError", ["400", "bad key given"]),
])
def test_client_errors_are_not_retried_and_carry_the_server_text(client, api, standin, status, error, fragments):
    standin.queue_post_faults([{"status": status, "message": "bad key given"}])
    with pytest.raises(getattr(api, error)) as caught:
        client.generate(BODY)
    assert standin.post_count == 1
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert caught.value.status_code == status


def test_real_401_from_a_wrong_key_names_where_the_key_came_from(pack, api, standin, monkeypatch):
    monkeypatch.setenv("AIML_API_KEY", "sk-wrong-key-123456789")
    with pytest.raises(api.AuthenticationError) as caught:
        generate(pack)
    assert "environment variable AIML_API_KEY" in str(caught.value)
    assert "sk-wrong-key-123456789" not in str(caught.value)
    assert standin.post_count == 1


def test_schema_violation_from_server_is_shown(client, api, standin):
    with pytest.raises(api.BadRequestError, match="num_images"):
        client.generate({**BODY, "num_images": 5})


def test_dropped_connection_before_response_is_retried(client, standin):
    standin.queue_post_faults([{"drop": True}])
    response, elapsed = _timed(lambda: client.generate(BODY))
    assert len(response.images) == 1 and standin.post_count == 2 and elapsed < 2.0


def test_read_timeout_never_sends_the_post_again(api, standin):
    slow = api.ApiClient(TEST_KEY, standin.base_url, read_timeout=0.5,
                         retry=api.RetryPolicy(base_delay=0.01, max_delay=0.02))
    standin.queue_post_faults([{"delay": 3.0}])
    with pytest.raises(api.APITimeoutError, match="NOT sent again") as caught:
        _, elapsed = _timed(lambda: slow.generate(BODY))
    assert "billed" in str(caught.value)
    time.sleep(0.1)
    assert standin.post_count == 1
    slow.close()


def test_unreachable_host_is_a_connection_error_not_an_api_error(api):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    client = api.ApiClient(TEST_KEY, f"http://127.0.0.1:{port}/v1", retry=api.RetryPolicy(base_delay=0.01,
                                                                                           max_delay=0.02))
    with pytest.raises(api.APIConnectionError, match="Cannot reach the AI/ML API at 127.0.0.1") as caught:
        client.generate(BODY)
    assert not isinstance(caught.value, api.APIStatusError)


@pytest.mark.parametrize(("fault", "fragment"), [
    ({"body": "<html><body>Bad gateway</body></html>", "content_type": "text/html", "status": 200}, "not JSON"),
    ({"body": "", "status": 200}, "empty body"),
    ({"body": "{\"data\": [", "status": 200}, "not JSON"),
    ({"data": [{}]}, "neither a url nor b64_json"),
    ({"data": [{"url": None, "b64_json": None}]}, "neither a url nor b64_json"),
    ({"data": []}, "without any pictures"),
])
def test_malformed_bodies_are_clear_errors_without_a_retry(client, api, standin, fault, fragment):
    standin.queue_post_faults([fault])
    with pytest.raises(api.APIResponseError, match=fragment):
        client.generate(BODY)
    assert standin.post_count == 1


def test_html_error_page_with_5xx_is_summarised(client, api, standin):
    standin.queue_post_faults([{"status": 502, "body": "<!DOCTYPE html><html>" + "x" * 5000, "times": 9,
                                "content_type": "text/html"}])
    with pytest.raises(api.ServerError, match="HTML page") as caught:
        client.generate(BODY)
    assert len(str(caught.value)) < 600


def test_older_tokens_used_field_is_read(client, standin):
    standin.queue_post_faults([{"usage": {"tokens_used": 5}}])
    assert client.generate(BODY).credits_used == 5.0


def _download_first(client, standin):
    ref = client.generate(BODY).images[0]
    return client.fetch_image(ref)


@pytest.mark.parametrize("status", [404, 500])
def test_image_url_error_then_success(client, standin, status):
    standin.queue_file_faults([{"status": status}])
    data, elapsed = _timed(lambda: _download_first(client, standin))
    assert data.startswith(b"\x89PNG") and standin.file_get_count == 2 and standin.post_count == 1


def test_image_url_failing_for_good_is_a_download_error(client, api, standin):
    standin.queue_file_faults([{"status": 500, "times": 10}])
    with pytest.raises(api.DownloadError, match="after 4 attempts"):
        _download_first(client, standin)
    assert standin.post_count == 1


@pytest.mark.parametrize("fault", [{"truncate": True}])
def test_connection_cut_mid_download_is_retried(client, standin, fault):
    standin.queue_file_faults([fault])
    data = _download_first(client, standin)
    assert data.startswith(b"\x89PNG") and standin.file_get_count == 2


def test_truncated_image_file_is_a_decode_error(pack, api, standin):
    standin.queue_file_faults([{"truncate_declared": True}])
    with pytest.raises(api.ImageDecodeError, match="damaged or truncated"):
        generate(pack)


def test_wrong_content_type_with_real_picture_is_accepted(pack, standin):
    standin.queue_file_faults([{"content_type": "text/html"}])
    images, _ = generate(pack)["result"]
    assert images.shape == (1, 512, 512, 3)


def test_slow_download_still_completes(pack, standin):
    standin.queue_file_faults([{"slow": 400_000}])
    images, _ = generate(pack)["result"]
    assert images.shape == (1, 512, 512, 3)


@pytest.mark.parametrize("fault", [{"oversize": 200_000_000}, {"oversize_chunked": 200_000_000}])
def test_oversized_download_is_abandoned_early(api, standin, fault):
    client = api.ApiClient(TEST_KEY, standin.base_url, max_download_bytes=2 * 1024 * 1024)
    standin.queue_file_faults([fault])
    ref = client.generate(BODY).images[0]
    started = time.monotonic()
    with pytest.raises(api.DownloadError, match="cap"):
        client.fetch_image(ref)
    assert time.monotonic() - started < 5
    client.close()


@pytest.mark.parametrize(("fault", "error", "fragment"), [
    ({"bomb": True}, "ImageDecodeError", "pixel"),
    ({"not_image": True}, "ImageDecodeError", "not a PNG, JPEG or WebP"),
    ({"redirect": "file:///etc/passwd"}, "DownloadError", "only https"),
    ({"redirect": "http://example.com/x.png"}, "DownloadError", "only https"),
])
def test_hostile_downloads_are_refused(pack, api, standin, fault, error, fragment):
    standin.queue_file_faults([fault])
    with pytest.raises(getattr(api, error), match=fragment):
        generate(pack)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "http://example.com/a.png", "ftp://x/y.png", "gopher://z"])
def test_hostile_image_urls_in_the_answer_are_refused(pack, api, standin, url):
    standin.queue_post_faults([{"url": url}])
    with pytest.raises(api.DownloadError, match="only https"):
        generate(pack)
    assert standin.file_get_count == 0
