"""Tests for the local AI/ML API stand-in server (api_client.standin)."""

from __future__ import annotations

import base64
import io
import signal
import subprocess
import sys
import threading
import time
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from api_client.standin import StandInServer, credits_for, encode_picture, render_picture  # noqa: E402
from api_client.standin.files import FileStore  # noqa: E402

KEY = "sk-standin-test-0123456789abcdef"
T2I = "blackforestlabs/flux-2-lora"
EDIT = "blackforestlabs/flux-2-lora-edit"


@pytest.fixture(scope="module")
def server():
    with StandInServer(key=KEY).start() as srv:
        yield srv


@pytest.fixture
def srv(server):
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def http():
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {KEY}"
        yield session


def body(**overrides: Any) -> dict[str, Any]:
    """A small valid text-to-image body."""
    out: dict[str, Any] = {"model": T2I, "prompt": "a red fox", "seed": 7, "image_size": "square"}
    out.update(overrides)
    return out


def post(http: requests.Session, srv: StandInServer, payload: Any, **kw: Any) -> requests.Response:
    return http.post(f"{srv.base_url}/images/generations", json=payload, timeout=10, **kw)


def picture(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def first_url(http: requests.Session, srv: StandInServer, **overrides: Any) -> str:
    r = post(http, srv, body(**overrides))
    assert r.status_code == 200, r.text
    return r.json()["data"][0]["url"]


# -- pictures -----------------------------------------------------------------

def test_render_picture_is_deterministic_and_input_sensitive():
    a = render_picture(1, 0, 512, 384, "fox")
    assert a.shape == (384, 512, 3) and a.dtype == np.uint8 and a.flags.c_contiguous
    assert np.array_equal(a, render_picture(1, 0, 512, 384, "fox"))
    assert np.array_equal(render_picture(1, 0, 64, 64), render_picture(1, 0, 64, 64, "", []))
    others = [
        render_picture(2, 0, 512, 384, "fox"),
        render_picture(1, 1, 512, 384, "fox"),
        render_picture(1, 0, 512, 384, "cat"),
        render_picture(1, 0, 512, 384, "fox", [{"path": "o/r", "scale": 1.0}]),
    ]
    for other in others:
        assert (other != a).mean() > 0.5
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 100  # structured, not flat


def test_encode_picture_formats_round_trip():
    a = render_picture(3, 0, 96, 64)
    assert encode_picture(a, "png").startswith(b"\x89PNG")
    assert np.array_equal(picture(encode_picture(a, "png")), a)
    assert np.array_equal(picture(encode_picture(a, "webp")), a)
    jpeg = encode_picture(a, "jpeg")
    assert jpeg.startswith(b"\xff\xd8") and picture(jpeg).shape == a.shape
    with pytest.raises(ValueError):
        encode_picture(a, "gif")


def test_credit_formula():
    assert credits_for([(1024, 1024)]) == 120000
    assert credits_for([(1024, 768), (512, 512)]) == 240000
    assert credits_for([(2048, 2048)]) == 480000


def test_file_store_evicts_oldest():
    store = FileStore(max_files=2)
    names = [store.put(bytes([i]), "png") for i in range(3)]
    assert store.get(names[0]) is None and store.get(names[2]) == b"\x02" and len(store) == 2


# -- auth and validation ------------------------------------------------------

def test_auth_required(srv, http):
    url = f"{srv.base_url}/images/generations"
    r = requests.post(url, json=body(), timeout=5)
    assert r.status_code == 401 and r.json()["statusCode"] == 401
    r = requests.post(url, json=body(), headers={"Authorization": "Bearer sk-wrong-secret-value"}, timeout=5)
    assert r.status_code == 401 and "sk-wrong-secret-value" not in r.text
    r = requests.post(url, json=body(), headers={"Authorization": KEY}, timeout=5)  # no "Bearer "
    assert r.status_code == 401
    assert srv.post_count == 3 and len(srv.post_bodies) == 3


def test_standin_keeps_a_bounded_history_of_request_bodies(srv):
    url = f"{srv.base_url}/images/generations"
    for seed in range(1, 101):  # unauthorized: answered at once, still counted and kept
        requests.post(url, json=body(seed=seed), timeout=5)
    assert srv.post_count == 100
    kept = [b["seed"] for b in srv.post_bodies]
    assert 4 <= len(kept) <= 64 and kept == list(range(101 - len(kept), 101))  # the most recent, in order
    big = "x" * (8 << 20)
    for seed in range(12):  # an Edit run's body carries megabytes of pictures: 96 MiB in all
        requests.post(url, json=body(seed=seed, prompt=big), timeout=30)
    kept = srv.post_bodies
    assert sum(len(b["prompt"]) for b in kept) <= 64 << 20 and kept[-1]["seed"] == 11
    assert srv.post_count == 112


@pytest.mark.parametrize(("overrides", "message"), [
    ({"output_format": "gif"}, 'output_format: "gif" is not one of'),
    ({"num_images": 5}, "num_images: 5 is above the maximum 4"),
    ({"num_images": 0}, "num_images: 0 is below the minimum 1"),
    ({"guidance_scale": 21}, "guidance_scale: 21 is above the maximum 20"),
    ({"image_size": {"width": 700, "height": 512}}, "image_size.width: 700 is not a multiple of 32"),
    ({"image_size": {"width": 512, "height": 4096}}, "image_size.height: 4096 is above the maximum 2048"),
    ({"image_size": "huge"}, "image_size:"),
    ({"loras": [{"path": f"o/r{i}"} for i in range(4)]}, "loras: has 4 items, the maximum is 3"),
    ({"loras": [{"scale": 1.0}]}, "loras[0].path: is required"),
    ({"loras": [{"path": "o/r", "scale": 5}]}, "loras[0].scale: 5 is above the maximum 4"),
    ({"num_images": True}, "num_images: expected number, got boolean"),
    ({"enable_safety_checker": 1}, "enable_safety_checker: expected boolean"),
    ({"seed": 1.5}, "seed: expected integer"),
    ({"seed": 0}, "seed: 0 is below the minimum 1"),
    ({"prompt": "x" * 4001}, "prompt: is 4001 characters long"),
    ({"model": "blackforestlabs/flux-9"}, "model: unknown model"),
])
def test_schema_rejections_name_the_field(srv, http, overrides, message):
    r = post(http, srv, body(**overrides))
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["statusCode"] == 422 and err["error"] == "Unprocessable Entity"
    assert message in err["message"]


def test_missing_prompt_and_edit_url_rules(srv, http):
    payload = body()
    del payload["prompt"]
    assert "prompt: is required" in post(http, srv, payload).json()["message"]
    edit = {"model": EDIT, "prompt": "x"}
    cases = [
        ([], "image_urls: has 0 items, the minimum is 1"),
        (["ftp://host/a.png"], "image_urls[0]: must be an http(s) URL or a data:image/"),
        (["data:text/plain;base64,AAAA"], "image_urls[0]: must be"),
        (["https://example.com/a.png"], "image_urls[0]: stand-in cannot fetch remote URLs"),
        (["data:image/png;base64,bm90IGFuIGltYWdl"], "image_urls[0]: not a decodable image"),
        (["data:image/png;base64,AAAA"] * 4, "image_urls: has 4 items, the maximum is 3"),
    ]
    for urls, message in cases:
        r = post(http, srv, {**edit, "image_urls": urls})
        assert r.status_code == 422 and message in r.json()["message"], (urls, r.text)


def test_bad_bodies_are_400(srv, http):
    url = f"{srv.base_url}/images/generations"
    assert http.post(url, data=b"{not json", timeout=5).status_code == 400
    assert http.post(url, json=[1, 2], timeout=5).status_code == 400
    assert http.post(url, data=b'{"seed": NaN}', timeout=5).status_code == 400
    assert srv.post_bodies == [None, [1, 2], None]


# -- generation -----------------------------------------------------------------

@pytest.mark.parametrize(("mode", "fmt"), [("url", "png"), ("b64", "webp"), ("url", "webp"), ("b64", "png")])
def test_generation_is_pixel_exact(srv, http, mode, fmt):
    srv.response_mode = mode
    loras = [{"path": "owner/style", "scale": 0.8}]
    size = {"width": 576, "height": 512}
    r = post(http, srv, body(num_images=2, output_format=fmt, image_size=size, seed=11, loras=loras))
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["data"]) == 2 and out["meta"]["usage"]["credits_used"] == credits_for([(576, 512)] * 2)
    for i, item in enumerate(out["data"]):
        if mode == "url":
            assert item["url"].startswith(f"{srv.root_url}/files/") and item["url"].endswith(f".{fmt}")
            got = http.get(item["url"], timeout=5)
            assert got.headers["Content-Type"] == f"image/{fmt}"
            data = got.content
        else:
            assert item["url"] is None
            data = base64.b64decode(item["b64_json"])
        assert np.array_equal(picture(data), render_picture(11, i, 576, 512, "a red fox", loras))
    assert srv.post_bodies == [body(num_images=2, output_format=fmt, image_size=size, seed=11, loras=loras)]


def test_jpeg_and_defaults(srv, http):
    r = post(http, srv, {"model": T2I, "prompt": "defaults"})
    assert r.status_code == 200
    seed = int(r.headers["X-Standin-Seed"])  # a random seed was chosen
    data = http.get(r.json()["data"][0]["url"], timeout=5).content
    assert data.startswith(b"\x89PNG")
    assert np.array_equal(picture(data), render_picture(seed, 0, 1024, 768, "defaults"))
    r = post(http, srv, body(output_format="jpeg", image_size="portrait_16_9"))
    got = http.get(r.json()["data"][0]["url"], timeout=5)
    assert got.headers["Content-Type"] == "image/jpeg" and picture(got.content).shape == (1024, 576, 3)


def test_edit_echoes_inputs_pixel_exactly(srv, http):
    a = render_picture(5, 0, 64, 48)
    b = np.asarray(Image.fromarray(render_picture(6, 0, 40, 30)).convert("L"))  # grey input becomes RGB
    uris = [f"data:image/png;base64,{base64.b64encode(encode_picture(a, 'png')).decode()}"]
    buf = io.BytesIO()
    Image.fromarray(b).save(buf, "PNG")
    uris.append(f"data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}")
    srv.response_mode = "b64"
    r = post(http, srv, {"model": EDIT, "prompt": "edit", "image_urls": uris, "num_images": 3})
    assert r.status_code == 200, r.text
    outs = [picture(base64.b64decode(d["b64_json"])) for d in r.json()["data"]]
    assert np.array_equal(outs[0], a) and np.array_equal(outs[2], a)
    assert np.array_equal(outs[1], np.stack([b] * 3, axis=-1))
    assert len(srv.received_images) == 2 and np.array_equal(srv.received_images[0], a)
    # A URL of this server's own file is resolved from memory.
    srv.response_mode = "url"
    own = first_url(http, srv)
    r = post(http, srv, {"model": EDIT, "prompt": "edit", "image_urls": [own]})
    got = picture(http.get(r.json()["data"][0]["url"], timeout=5).content)
    assert np.array_equal(got, render_picture(7, 0, 512, 512, "a red fox"))


def test_keep_alive_connection_is_reused(srv):
    conn = HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        for _ in range(3):
            conn.request("GET", "/_standin/stats")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.getheader("Content-Length")
            resp.read()
        conn.request("GET", "/files/nope.png")
        assert conn.getresponse().status == 404
    finally:
        conn.close()


def test_concurrent_posts_run_in_parallel(srv):
    srv.latency = 0.5
    results: list[int] = []

    def one() -> None:
        r = requests.post(f"{srv.base_url}/images/generations", json=body(),
                          headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
        results.append(r.status_code)

    threads = [threading.Thread(target=one) for _ in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert results == [200] * 4 and 0.5 <= elapsed < 1.5


# -- POST faults ------------------------------------------------------------------

def test_status_fault_comes_before_auth(srv):
    srv.queue_post_faults([{"status": 429, "retry_after": "2", "message": "Rate limit"}])
    r = requests.post(f"{srv.base_url}/images/generations", json={}, timeout=5)  # no key, empty body
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert r.json() == {"statusCode": 429, "message": "Rate limit", "error": "Too Many Requests"}
    assert requests.post(f"{srv.base_url}/images/generations", json={}, timeout=5).status_code == 401


def test_status_faults_with_times(srv, http):
    srv.queue_post_faults([{"status": 503, "times": 2}, {"status": 402, "message": "no credits"}])
    codes = [post(http, srv, body()).status_code for _ in range(4)]
    assert codes == [503, 503, 402, 200] and srv.post_count == 4


def test_drop_fault(srv, http):
    srv.queue_post_faults([{"drop": True}])
    with pytest.raises(requests.ConnectionError):
        post(http, srv, body())
    assert post(http, srv, body()).status_code == 200 and srv.post_count == 2


def test_delay_fault(srv, http):
    srv.queue_post_faults([{"delay": 0.4}])
    started = time.monotonic()
    assert post(http, srv, body()).status_code == 200
    assert time.monotonic() - started >= 0.4
    srv.queue_post_faults([{"delay": 3.0}])
    with pytest.raises(requests.ReadTimeout):
        http.post(f"{srv.base_url}/images/generations", json=body(), timeout=(5, 0.3))


@pytest.mark.parametrize(("fault", "status", "ctype", "text"), [
    ({"body": "<html>Bad gateway</html>", "content_type": "text/html", "status": 200}, 200, "text/html",
     "<html>Bad gateway</html>"),
    ({"body": ""}, 200, "application/json", ""),
    ({"body": '{"data": [', "status": 200}, 200, "application/json", '{"data": ['),
    ({"body": "<html>x</html>", "status": 502, "content_type": "text/html"}, 502, "text/html", "<html>x</html>"),
])
def test_raw_body_faults(srv, http, fault, status, ctype, text):
    srv.queue_post_faults([fault])
    r = post(http, srv, body())
    assert (r.status_code, r.headers["Content-Type"], r.text) == (status, ctype, text)
    assert r.headers["Content-Length"] == str(len(text))


def test_data_and_usage_faults(srv, http):
    srv.queue_post_faults([{"data": [{}]}, {"usage": {"tokens_used": 5}}])
    out = post(http, srv, body()).json()
    assert out["data"] == [{}] and "credits_used" in out["meta"]["usage"]
    out = post(http, srv, body()).json()
    assert out["meta"]["usage"] == {"tokens_used": 5} and len(out["data"]) == 1


def test_size_faults(srv, http):
    srv.response_mode = "b64"
    srv.queue_post_faults([{"size": [576, 512]}, {"sizes": [[512, 512], [640, 512]]}])
    (item,) = post(http, srv, body()).json()["data"]
    assert np.array_equal(picture(base64.b64decode(item["b64_json"])), render_picture(7, 0, 576, 512, "a red fox"))
    items = post(http, srv, body(num_images=3)).json()["data"]
    shapes = [picture(base64.b64decode(d["b64_json"])).shape[:2] for d in items]
    assert shapes == [(512, 512), (512, 640), (512, 512)]


@pytest.mark.parametrize("mode", ["url", "b64"])
def test_url_fault(srv, http, mode):
    srv.response_mode = mode
    srv.queue_post_faults([{"url": "file:///etc/passwd"}])
    items = post(http, srv, body(num_images=2)).json()["data"]
    assert [d["url"] for d in items] == ["file:///etc/passwd"] * 2


def test_faults_consumed_by_invalid_requests(srv, http):
    srv.queue_post_faults([{"size": [512, 512]}])
    assert post(http, srv, body(num_images=9)).status_code == 422
    srv.response_mode = "b64"
    item = post(http, srv, body(image_size="square_hd")).json()["data"][0]
    assert picture(base64.b64decode(item["b64_json"])).shape == (1024, 1024, 3)


@pytest.mark.parametrize("fault", [
    {"stauts": 500}, {"status": "500"}, {"drop": False}, {"times": 0}, {"size": [0, 5]},
    {"drop": True, "status": 500}, {"data": [], "size": [512, 512]}, {"message": "no status"},
])
def test_bad_post_faults_are_refused_at_queue_time(srv, fault):
    with pytest.raises(ValueError):
        srv.queue_post_faults([fault])


def test_bad_file_faults_are_refused_at_queue_time(srv):
    for fault in ({"truncat": True}, {"exif_rotate": 9}, {"status": 404, "redirect": "x"}, "oops"):
        with pytest.raises(ValueError):
            srv.queue_file_faults([fault])
    assert srv.stats()["pending_file_faults"] == 0


# -- file faults --------------------------------------------------------------------

@pytest.mark.parametrize("status", [404, 500])
def test_file_status_fault_then_success(srv, http, status):
    url = first_url(http, srv)
    srv.queue_file_faults([{"status": status, "times": 2}])
    assert [requests.get(url, timeout=5).status_code for _ in range(3)] == [status, status, 200]
    assert srv.file_get_count == 3


def test_file_truncate(srv, http):
    url = first_url(http, srv)
    full = requests.get(url, timeout=5).content
    srv.queue_file_faults([{"truncate": True}, {"truncate_declared": True}])
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        requests.get(url, timeout=5).content  # noqa: B018 - reading is the point
    r = requests.get(url, timeout=5)
    assert r.status_code == 200 and r.content == full[: len(full) // 2]
    assert r.headers["Content-Length"] == str(len(full) // 2)
    assert requests.get(url, timeout=5).content == full


@pytest.mark.parametrize("key", ["oversize", "oversize_chunked"])
def test_file_oversize_stream_and_client_hangup(srv, http, key):
    url = first_url(http, srv)
    srv.queue_file_faults([{key: 100_000_000}])
    with requests.get(url, stream=True, timeout=5) as r:
        if key == "oversize":
            assert r.headers["Content-Length"] == "100000000"
        else:
            assert r.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in r.headers
        got = 0
        for chunk in r.iter_content(65536):
            got += len(chunk)
            if got > 2_000_000:
                break
    assert got > 2_000_000
    assert requests.get(url, timeout=5).status_code == 200  # server unharmed by the hang-up


def test_server_is_quiet_on_hangups(srv, http, capfd):
    url = first_url(http, srv)
    srv.queue_post_faults([{"drop": True}])
    srv.queue_file_faults([{"oversize": 50_000_000}, {"truncate": True}])
    with pytest.raises(requests.ConnectionError):
        post(http, srv, body())
    with requests.get(url, stream=True, timeout=5) as r:
        next(r.iter_content(65536))
    with pytest.raises(requests.RequestException):
        requests.get(url, timeout=5).content  # noqa: B018 - reading is the point
    requests.post(f"{srv.base_url}/images/generations", json=body(), timeout=5)  # 401
    time.sleep(0.3)
    assert capfd.readouterr().err == ""


def test_file_oversize_small_is_complete(srv, http):
    url = first_url(http, srv)
    srv.queue_file_faults([{"oversize_chunked": 200_000}, {"oversize": 150_000}])
    assert len(requests.get(url, timeout=5).content) == 200_000
    assert len(requests.get(url, timeout=5).content) == 150_000


def test_file_content_type_and_not_image(srv, http):
    url = first_url(http, srv)
    srv.queue_file_faults([{"content_type": "text/html"}, {"not_image": True}])
    r = requests.get(url, timeout=5)
    assert r.headers["Content-Type"] == "text/html" and r.content.startswith(b"\x89PNG")
    r = requests.get(url, timeout=5)
    assert r.headers["Content-Type"] == "image/png"
    with pytest.raises(Exception):  # noqa: B017 - Pillow's exact type is not the point
        Image.open(io.BytesIO(r.content))


def test_file_bomb(srv, http):
    url = first_url(http, srv)
    srv.queue_file_faults([{"bomb": True}])
    data = requests.get(url, timeout=5).content
    assert data.startswith(b"\x89PNG") and len(data) < 1_000_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))
    assert int.from_bytes(data[16:20], "big") == int.from_bytes(data[20:24], "big") == 60000


def test_file_slow(srv, http):
    url = first_url(http, srv)
    size = len(requests.get(url, timeout=5).content)
    srv.queue_file_faults([{"slow": size / 0.5}])  # about half a second
    started = time.monotonic()
    r = requests.get(url, timeout=5)
    assert len(r.content) == size and 0.4 <= time.monotonic() - started < 3


def test_file_redirect(srv, http):
    url = first_url(http, srv)
    other = first_url(http, srv, seed=8)
    srv.queue_file_faults([{"redirect": "file:///etc/passwd"}, {"redirect": other}])
    r = requests.get(url, allow_redirects=False, timeout=5)
    assert r.status_code == 302 and r.headers["Location"] == "file:///etc/passwd"
    r = requests.get(url, timeout=5)  # followed to the other file
    assert np.array_equal(picture(r.content), render_picture(8, 0, 512, 512, "a red fox"))


def test_file_exif_rotate(srv, http):
    url = first_url(http, srv, image_size={"width": 640, "height": 512})
    srv.queue_file_faults([{"exif_rotate": 6}])
    r = requests.get(url, timeout=5)
    assert r.headers["Content-Type"] == "image/jpeg"
    image = Image.open(io.BytesIO(r.content))
    assert image.getexif()[0x0112] == 6 and image.size == (640, 512)
    assert ImageOps.exif_transpose(image).size == (512, 640)


# -- lifecycle, admin and command line ----------------------------------------------

def test_admin_endpoints(srv, http):
    root = srv.root_url
    r = requests.post(f"{root}/_standin/faults", json={"post": [{"status": 500}], "file": [{"status": 404}]}, timeout=5)
    assert r.status_code == 200 and r.json()["pending_post_faults"] == 1
    assert requests.post(f"{root}/_standin/faults", json={"post": [{"bogus": 1}]}, timeout=5).status_code == 400
    assert requests.post(f"{root}/_standin/config", json={"latency": 0.1, "response_mode": "b64"},
                         timeout=5).status_code == 200
    assert (srv.latency, srv.response_mode) == (0.1, "b64")
    assert requests.post(f"{root}/_standin/config", json={"response_mode": "x"}, timeout=5).status_code == 400
    assert post(http, srv, body()).status_code == 500
    assert "b64_json" in post(http, srv, body()).json()["data"][0]
    stats = requests.get(f"{root}/_standin/stats", timeout=5).json()
    assert stats["post_count"] == 2 and stats["file_get_count"] == 0 and stats["pending_file_faults"] == 1
    assert requests.post(f"{root}/_standin/reset", timeout=5).status_code == 200
    assert (srv.post_count, srv.latency, srv.response_mode, srv.post_bodies) == (0, 0.0, "url", [])


def test_requests_endpoint_lists_bodies_with_long_strings_shortened(srv, http):
    picture = "data:image/png;base64," + "A" * 1000
    assert post(http, srv, body(seed=5)).status_code == 200
    post(http, srv, {"model": "blackforestlabs/flux-2-lora-edit", "prompt": "x", "seed": 6,
                     "image_urls": [picture]})  # refused (not a picture), but received and listed
    listed = requests.get(f"{srv.root_url}/_standin/requests", timeout=5).json()["requests"]
    assert listed[0] == body(seed=5)
    assert listed[1]["seed"] == 6 and listed[1]["image_urls"] == [f"<{len(picture)} chars>"]


def test_stop_is_prompt_with_pending_delay():
    srv = StandInServer(key=KEY).start()
    srv.queue_post_faults([{"delay": 30}])
    errors: list[BaseException] = []

    def call() -> None:
        try:
            requests.post(f"{srv.base_url}/images/generations", json=body(),
                          headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
        except requests.RequestException as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.3)
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 2
    caller.join(5)
    assert not caller.is_alive() and len(errors) == 1
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{srv.root_url}/_standin/stats", timeout=2)


def test_non_loopback_host_refused():
    with pytest.raises(ValueError):
        StandInServer(host="0.0.0.0")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_and_stops(tmp_path, stop_signal):
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "api_client.standin", "--port", "0", "--port-file", str(port_file), "--key", KEY],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        port = int(port_file.read_text())
        base = f"http://127.0.0.1:{port}/v1"
        r = requests.post(f"{base}/images/generations", json=body(), headers={"Authorization": f"Bearer {KEY}"},
                          timeout=5)
        assert r.status_code == 200 and requests.get(r.json()["data"][0]["url"], timeout=5).status_code == 200
        assert requests.get(f"http://127.0.0.1:{port}/_standin/stats", timeout=5).json()["post_count"] == 1
    finally:
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert f"export AIML_API_BASE={base}" in out and f"export AIML_API_KEY={KEY}" in out
    assert "Traceback" not in err


def test_cli_refuses_non_loopback_host():
    proc = subprocess.run([sys.executable, "-m", "api_client.standin", "--host", "0.0.0.0", "--port", "0"],
                          cwd=REPO, capture_output=True, text=True, timeout=10)
    assert proc.returncode == 2 and "loopback" in proc.stderr
