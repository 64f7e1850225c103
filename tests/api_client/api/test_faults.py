"""What happens when the service misbehaves: outcome, number of POSTs and GETs, and time taken.

Two tables: FAULT_MATRIX runs each fault through the client (a fast retry policy,
so the suite stays quick) and NODE_MATRIX runs a subset through the real node with
its default policy (Retry-After: 0 keeps those fast). Each row pins the outcome,
the POSTs and picture GETs the stand-in saw, and a generous bound on elapsed time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import REQUEST_BODY, TEST_KEY, generate

from api_client.standin import StandInServer

OK = "ok"


@dataclass(frozen=True)
class Fault:
    """One row: faults to queue, then what must happen."""

    name: str
    post: list[dict[str, Any]] = field(default_factory=list)
    file: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = OK  # OK or the name of the error class raised
    fragments: tuple[str, ...] = ()  # all must appear in the error message
    posts: int = 1
    gets: int | None = 1  # picture GETs; None: not pinned
    max_seconds: float = 5.0
    min_seconds: float = 0.0
    client: dict[str, Any] = field(default_factory=dict)  # ApiClient options for this row


def _status_row(status: int, error: str, *fragments: str) -> Fault:
    return Fault(f"{status}_not_retried", post=[{"status": status, "message": "the server's own words"}],
                 outcome=error, fragments=(str(status), "the server's own words", *fragments), gets=0)


FAULT_MATRIX = [
    # 429: Retry-After honoured exactly, or backoff without it; a too-long one is not waited for.
    Fault("429_retry_after_1s", post=[{"status": 429, "retry_after": "1"}], posts=2, min_seconds=1.0),
    Fault("429_retry_after_http_date", post=[{"status": 429, "retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"}],
          posts=2),
    Fault("429_without_retry_after", post=[{"status": 429, "times": 2}], posts=3),
    Fault("429_persisting", post=[{"status": 429, "message": "slow down", "times": 10}], outcome="RateLimitError",
          fragments=("429", "after 4 attempts", "slow down"), posts=4, gets=0),
    Fault("429_retry_after_too_long", post=[{"status": 429, "retry_after": "3600", "times": 5}],
          outcome="RateLimitError", fragments=("429", "3600 s", "not retried"), posts=1, gets=0),
    # 5xx bursts, then success; a persisting 503 gives up in bounded time.
    *(Fault(f"{s}_burst_then_success", post=[{"status": s, "times": 2}], posts=3) for s in (500, 502, 503, 504)),
    Fault("503_persisting", post=[{"status": 503, "message": "overloaded", "times": 10}], outcome="ServerError",
          fragments=("503", "after 4 attempts", "overloaded"), posts=4, gets=0),
    Fault("503_empty_body_persisting", post=[{"status": 503, "body": "", "times": 10}], outcome="ServerError",
          fragments=("503", "after 4 attempts"), posts=4, gets=0),
    # Client errors: never retried, the server's text is shown.
    _status_row(400, "BadRequestError"),
    _status_row(401, "AuthenticationError", "environment variable AIML_API_KEY"),
    _status_row(402, "PermissionDeniedError", "credits"),
    _status_row(403, "PermissionDeniedError", "permission"),
    _status_row(404, "NotFoundError", "AIML_API_BASE"),
    _status_row(422, "BadRequestError"),
    # Connection dropped before any answer: not processed, so sent again.
    Fault("dropped_once", post=[{"drop": True}], posts=2),
    Fault("dropped_always", post=[{"drop": True, "times": 10}], outcome="APIConnectionError",
          fragments=("Cannot reach the AI/ML API", "dropped"), posts=4, gets=0),
    # Read timeout: may be processing and billing, so never sent twice.
    Fault("read_timeout", post=[{"delay": 3.0}], outcome="APITimeoutError", fragments=("NOT sent again", "billed"),
          gets=0, min_seconds=1.0, client={"read_timeout": 1.0}),
    # Malformed 200 answers: clear errors, no retry (the request was billed).
    Fault("html_body_200", post=[{"body": "<html><body>Bad gateway</body></html>", "content_type": "text/html"}],
          outcome="APIResponseError", fragments=("not JSON", "Bad gateway"), gets=0),
    Fault("html_body_502", post=[{"status": 502, "body": "<!DOCTYPE html><html>" + "x" * 5000, "times": 9,
                                  "content_type": "text/html"}],
          outcome="ServerError", fragments=("502", "HTML page"), posts=4, gets=0),
    Fault("empty_body_200", post=[{"body": ""}], outcome="APIResponseError", fragments=("empty body",), gets=0),
    Fault("broken_json_200", post=[{"body": "{\"data\": ["}], outcome="APIResponseError", fragments=("not JSON",),
          gets=0),
    Fault("item_without_url_or_b64", post=[{"data": [{}]}], outcome="APIResponseError",
          fragments=("neither a url nor b64_json",), gets=0),
    Fault("item_with_null_url_and_b64", post=[{"data": [{"url": None, "b64_json": None}]}],
          outcome="APIResponseError", fragments=("neither a url nor b64_json",), gets=0),
    Fault("no_items", post=[{"data": []}], outcome="APIResponseError", fragments=("without any pictures",), gets=0),
    # Picture downloads: GET is safe to repeat.
    Fault("image_404_then_success", file=[{"status": 404}], gets=2),
    Fault("image_500_then_success", file=[{"status": 500}], gets=2),
    Fault("image_503_persisting", file=[{"status": 503, "times": 10}], outcome="DownloadError",
          fragments=("after 4 attempts", "status 503"), gets=4),
    Fault("image_403_not_retried", file=[{"status": 403}], outcome="DownloadError", fragments=("status 403",), gets=1),
    Fault("image_cut_midway_then_success", file=[{"truncate": True}], gets=2),
    Fault("image_truncated_file", file=[{"truncate_declared": True}], outcome="ImageDecodeError",
          fragments=("damaged or truncated",)),
    Fault("image_wrong_content_type", file=[{"content_type": "text/html"}]),
    Fault("image_slow_download", file=[{"slow": 400_000}], max_seconds=10),
    Fault("image_too_slow_for_the_deadline", file=[{"slow": 5_000}], outcome="DownloadError",
          fragments=("took more than 1 s",), client={"download_deadline": 1.0}),
]


@pytest.fixture
def make_client(api, standin):
    made = []

    def make(**options):
        options = {"retry": api.RetryPolicy(max_retries=3, base_delay=0.02, max_delay=0.1, max_retry_after=5),
                   "read_timeout": 5, **options}
        client = api.ApiClient(api.ApiKey(TEST_KEY, "environment variable AIML_API_KEY"), standin.base_url,
                               **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def _check(api, row: Fault, run, standin) -> None:
    standin.queue_post_faults(row.post)
    standin.queue_file_faults(row.file)
    started = time.monotonic()
    try:
        run()
        outcome, message = OK, ""
    except api.Flux2Error as exc:
        outcome, message = type(exc).__name__, str(exc)
    elapsed = time.monotonic() - started
    assert outcome == row.outcome, message
    for fragment in row.fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"
    assert row.min_seconds <= elapsed < row.max_seconds, f"took {elapsed:.2f} s"
    time.sleep(0.05)  # nothing may arrive late (a resent POST would show here)
    assert standin.post_count == row.posts
    if row.gets is not None:
        assert standin.file_get_count == row.gets


@pytest.mark.parametrize("row", FAULT_MATRIX, ids=[row.name for row in FAULT_MATRIX])
def test_fault_matrix_through_the_client(api, standin, make_client, row):
    client = make_client(**row.client)

    def run():
        response = client.generate(REQUEST_BODY)
        pixels = api.decode_image(client.fetch_image(response.images[0]))
        assert pixels.shape == (512, 512, 3)

    _check(api, row, run, standin)


NODE_MATRIX = [
    Fault("429_then_success", post=[{"status": 429, "retry_after": "0"}], posts=2),
    Fault("503_persisting", post=[{"status": 503, "retry_after": "0", "message": "overloaded", "times": 10}],
          outcome="ServerError", fragments=("503", "after 4 attempts", "overloaded"), posts=4, gets=0),
    Fault("401", post=[{"status": 401, "message": "invalid key"}], outcome="AuthenticationError",
          fragments=("401", "environment variable AIML_API_KEY", "invalid key"), gets=0),
    Fault("422", post=[{"status": 422, "message": "prompt flagged"}], outcome="BadRequestError",
          fragments=("422", "prompt flagged"), gets=0),
    Fault("dropped_once", post=[{"drop": True}], posts=2),
    Fault("html_body_200", post=[{"body": "<html>oops</html>", "content_type": "text/html"}],
          outcome="APIResponseError", fragments=("not JSON",), gets=0),
    Fault("item_without_url_or_b64", post=[{"data": [{}]}], outcome="APIResponseError",
          fragments=("neither a url nor b64_json",), gets=0),
    Fault("image_404_then_success", file=[{"status": 404}], gets=2),
    Fault("image_truncated_file", file=[{"truncate_declared": True}], outcome="ImageDecodeError",
          fragments=("damaged or truncated",)),
    Fault("image_wrong_content_type", file=[{"content_type": "application/octet-stream"}]),
    Fault("image_slow_download", file=[{"slow": 400_000}], max_seconds=10),
]


@pytest.mark.parametrize("row", NODE_MATRIX, ids=[row.name for row in NODE_MATRIX])
def test_fault_matrix_through_the_node(pack, api, standin, row):
    def run():
        images, _ = generate(pack)["result"]
        assert tuple(images.shape) == (1, 512, 512, 3)

    _check(api, row, run, standin)


def test_read_timeout_through_the_node_never_sends_the_post_again(pack, api, standin, monkeypatch):
    # A server of its own: the node's shared client for it is made with this read timeout.
    with StandInServer(key=TEST_KEY).start() as server:
        monkeypatch.setenv("AIML_API_BASE", server.base_url)
        monkeypatch.setenv("FLUX2_LORA_READ_TIMEOUT", "0.5")
        _check(api, Fault("read_timeout", post=[{"delay": 3.0}], outcome="APITimeoutError",
                          fragments=("0.5 s", "NOT sent again"), gets=0, min_seconds=0.5), lambda: generate(pack),
               server)


def test_batch_with_one_failing_request_fails_as_a_whole_and_stops_waiting(pack, api, standin):
    standin.queue_post_faults([{"status": 402, "message": "no credits"}])
    started = time.monotonic()
    with pytest.raises(api.PermissionDeniedError, match="no credits"):
        generate(pack, num_images=8)  # two requests at once; the one answering 402 ends the run
    assert time.monotonic() - started < 5
    time.sleep(0.05)
    assert 1 <= standin.post_count <= 2  # the second may be cancelled before it goes out; never resent


def test_real_401_from_a_wrong_key_names_where_the_key_came_from(pack, api, standin, monkeypatch):
    monkeypatch.setenv("AIML_API_KEY", "sk-wrong-key-123456789")
    with pytest.raises(api.AuthenticationError) as caught:
        generate(pack)
    assert "environment variable AIML_API_KEY" in str(caught.value)
    assert "sk-wrong-key-123456789" not in str(caught.value)
    assert standin.post_count == 1


def test_schema_violation_from_server_is_shown(make_client, api, standin):
    with pytest.raises(api.BadRequestError, match="num_images"):
        make_client().generate({**REQUEST_BODY, "num_images": 5})
    assert standin.post_count == 1


def test_html_error_page_is_summarised_not_dumped(make_client, api, standin):
    standin.queue_post_faults([{"status": 502, "body": "<!DOCTYPE html><html>" + "x" * 5000, "times": 9,
                                "content_type": "text/html"}])
    with pytest.raises(api.ServerError, match="HTML page") as caught:
        make_client().generate(REQUEST_BODY)
    assert len(str(caught.value)) < 600


def test_older_tokens_used_field_is_read(make_client, standin):
    standin.queue_post_faults([{"usage": {"tokens_used": 5}}])
    assert make_client().generate(REQUEST_BODY).credits_used == 5.0


def test_cancel_during_a_retry_wait_stops_at_once(make_client, api, standin):
    import threading

    client = make_client(retry=api.RetryPolicy(max_retries=3, max_retry_after=60))
    standin.queue_post_faults([{"status": 429, "retry_after": "30"}])
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(api.Cancelled):
        client.generate(REQUEST_BODY, cancel)
    assert time.monotonic() - started < 3
    assert standin.post_count == 1


def _run_in_thread(call, wait: float):
    """(finished, the error raised or None) of ``call`` run on a thread given ``wait`` seconds."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except Exception as exc:
            errors.append(exc)

    import threading

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(wait)
    return not thread.is_alive(), (errors[0] if errors else None)


def test_answer_trickling_forever_is_cut_off_at_the_read_timeout(make_client, api, standin):
    # 200, chunked, one byte every 0.2 s: each wait for data is short, so only a bound on the whole answer ends it.
    client = make_client(read_timeout=1.5)
    # No usage-log row: nothing tells whether it was billed (with a succeeded row: test_tracing.py).
    standin.queue_post_faults([{"trickle": 0.2, "log": "none"}])
    started = time.monotonic()
    finished, error = _run_in_thread(lambda: client.generate(REQUEST_BODY), 10)
    assert finished, "still reading a trickling answer after 10 s"
    assert time.monotonic() - started < 4
    assert isinstance(error, api.APITimeoutError) and "in full within 1.5 s" in str(error)
    assert "NOT sent again" in str(error) and error.may_have_billed
    assert standin.post_count == 1


def test_trickling_answer_through_the_node_ends_at_the_read_timeout(pack, api, standin, monkeypatch):
    # The case, with a server of its own so the node's client is made with this read timeout.
    with StandInServer(key=TEST_KEY).start() as server:
        monkeypatch.setenv("AIML_API_BASE", server.base_url)
        monkeypatch.setenv("FLUX2_LORA_READ_TIMEOUT", "2")
        server.queue_post_faults([{"trickle": 0.5, "log": "none"}])
        finished, error = _run_in_thread(lambda: generate(pack), 12)
        assert finished, "the node still waits for a trickling answer after 12 s"
        assert isinstance(error, api.APITimeoutError) and server.post_count == 1


def test_download_deadline_is_hard_however_slowly_bytes_trickle(make_client, api, standin):
    # One byte every 2.5 s: each read returns before its timeout, so only a hard cut ends it at 3 s.
    client = make_client(download_deadline=3.0)
    response = client.generate(REQUEST_BODY)
    standin.queue_file_faults([{"trickle": 2.5}])
    started = time.monotonic()
    with pytest.raises(api.DownloadError, match="took more than 3 s"):
        client.fetch_image(response.images[0])
    assert time.monotonic() - started < 4.0


def test_cancel_ends_a_stalled_download_at_once(make_client, api, standin):
    # One byte every 5 s: no read returns in between, so only the watchdog's cut on Cancel ends it early.
    client = make_client(download_deadline=30.0)
    response = client.generate(REQUEST_BODY)
    standin.queue_file_faults([{"trickle": 5.0}])
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(api.Cancelled):
        client.fetch_image(response.images[0], cancel)
    assert time.monotonic() - started < 4.0  # generous: the next byte alone would come at 5 s


def test_a_cancel_that_comes_while_the_attempt_is_noted_sends_nothing(make_client, api, standin):
    # The money component notes each attempt on disk before it is sent (a slow SQLite write on a busy
    # machine); a Cancel that comes meanwhile must still stop the POST, and the noted attempt is cleared.
    client = make_client()
    cancel = threading.Event()
    noted, cleared = [], []

    def note(attempt):
        noted.append(attempt)
        cancel.set()  # Cancel arrives while the attempt is being written down

    with pytest.raises(api.Cancelled):
        client.generate(REQUEST_BODY, cancel, on_attempt=note, on_cleared=cleared.append)
    assert standin.stats()["post_count"] == 0
    assert noted == [1] and cleared == [1]


def test_a_run_cancelled_while_its_attempt_is_noted_sends_nothing(make_client, api, standin):
    # The same through may_send, the shared request's "does a run still want it" (read, not cleared).
    client = make_client()
    wanted = [True]

    def note(attempt):
        wanted[0] = False  # the only run that wanted it is cancelled now

    with pytest.raises(api.Cancelled):
        client.generate(REQUEST_BODY, may_send=lambda: wanted[0], on_attempt=note, on_cleared=lambda n: None)
    assert standin.stats()["post_count"] == 0
