"""Hostile or broken picture answers: refused with a clear error, never a crash or a memory blow-up.

Other sizes than requested and mixed sizes in one batch are pinned in test_generate.py.
"""

from __future__ import annotations

import base64
import io
import time
import tracemalloc

import pytest
from conftest import REQUEST_BODY, TEST_KEY, generate
from PIL import Image

from api_client.standin.pictures import BOMB_SIDE, bomb_png

MiB = 1024 * 1024


@pytest.fixture
def client(api, standin):
    client = api.ApiClient(api.ApiKey(TEST_KEY, "test"), standin.base_url,
                           retry=api.RetryPolicy(base_delay=0.01, max_delay=0.02))
    yield client
    client.close()


def _peak_during(call) -> tuple[int, object]:
    """Peak bytes Python allocated (all threads) while ``call`` ran, and what it raised or returned."""
    tracemalloc.start()
    try:
        try:
            outcome = call()
        except Exception as exc:
            outcome = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, outcome


# -- where pictures may come from ----------------------------------------------------

@pytest.mark.parametrize("url", [
    "file:///etc/passwd",
    "http://example.com/a.png",
    "http://127.0.0.1.example.com/a.png",  # looks like loopback, is not
    "http://10.0.0.5/a.png",
    "ftp://x/y.png",
    "gopher://z",
    "javascript:alert(1)",
    "data:image/png;base64,iVBORw0KGgo=",
    "https:///no-host.png",
])
def test_picture_urls_other_than_https_are_refused_without_a_request(pack, api, standin, url):
    standin.queue_post_faults([{"url": url}])
    with pytest.raises(api.DownloadError, match="only https"):
        generate(pack)
    assert standin.file_get_count == 0


def test_plain_http_picture_urls_are_fetched_only_on_loopback(client, api, standin):
    ref = client.generate(REQUEST_BODY).images[0]
    assert ref.url.startswith("http://127.0.0.1:")
    assert client.fetch_image(ref).startswith(b"\x89PNG")


@pytest.mark.parametrize("location", [
    "file:///etc/passwd", "http://example.com/x.png", "ftp://example.com/x.png", "http://169.254.169.254/latest",
])
def test_redirects_to_anything_but_https_are_refused(pack, api, standin, location):
    standin.queue_file_faults([{"redirect": location}])
    with pytest.raises(api.DownloadError, match="only https"):
        generate(pack)
    assert standin.file_get_count == 1


def test_safe_redirect_is_followed(pack, standin):
    standin.queue_file_faults([{"redirect": "?moved=1"}])  # relative: same loopback host
    images, _ = generate(pack)["result"]
    assert images.shape == (1, 512, 512, 3) and standin.file_get_count == 2


def test_redirect_loop_ends_after_five_hops(pack, api, standin):
    standin.queue_file_faults([{"redirect": "?again", "times": 20}])
    started = time.monotonic()
    with pytest.raises(api.DownloadError, match="more than 5 times"):
        generate(pack)
    assert standin.file_get_count == 6 and time.monotonic() - started < 5


# -- size caps: streamed, abandoned early, memory bounded ----------------------------

def test_declared_oversized_body_is_never_read(client, api, standin):
    standin.queue_file_faults([{"oversize": 200_000_000}])
    ref = client.generate(REQUEST_BODY).images[0]
    peak, outcome = _peak_during(lambda: client.fetch_image(ref))
    assert isinstance(outcome, api.DownloadError) and "above the 64 MiB cap" in str(outcome)
    assert peak < 2 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_undeclared_oversized_body_is_abandoned_at_the_cap_with_bounded_memory(client, api, standin):
    body_size = 200_000_000  # chunked, no Content-Length: only counting can stop it
    standin.queue_file_faults([{"oversize_chunked": body_size}])
    ref = client.generate(REQUEST_BODY).images[0]
    started = time.monotonic()
    peak, outcome = _peak_during(lambda: client.fetch_image(ref))
    assert isinstance(outcome, api.DownloadError) and "download abandoned" in str(outcome)
    assert time.monotonic() - started < 30
    # What is held is the 64 MiB cap plus one piece, far below the 200 MB on offer.
    assert peak < 72 * MiB < body_size / 2, f"peak {peak / MiB:.1f} MiB"


@pytest.mark.parametrize("fault", [{"oversize": 200_000_000}, {"oversize_chunked": 200_000_000}])
def test_oversized_download_through_the_node_is_a_clear_error(pack, api, standin, fault):
    standin.queue_file_faults([fault])
    with pytest.raises(api.DownloadError, match="64 MiB cap"):
        generate(pack)
    assert standin.post_count == 1 and standin.file_get_count == 1


def test_oversized_inline_picture_is_refused_before_decoding(api, standin):
    client = api.ApiClient(TEST_KEY, standin.base_url, max_download_bytes=1 * MiB)
    with pytest.raises(api.DownloadError, match="1 MiB cap"):
        client.fetch_image(api.ImageRef(b64_json="A" * (2 * MiB)))
    client.close()


# -- what the bytes are ----------------------------------------------------------------

def test_decompression_bomb_is_refused_from_its_header_with_bounded_memory(api):
    bomb = bomb_png()
    assert len(bomb) < MiB and BOMB_SIDE == 60000
    peak, outcome = _peak_during(lambda: api.decode_image(bomb))
    assert isinstance(outcome, api.ImageDecodeError) and "decompression bomb" in str(outcome)
    assert peak < 4 * MiB, f"peak {peak / MiB:.1f} MiB for a picture claiming {BOMB_SIDE}x{BOMB_SIDE}"


def test_decompression_bomb_download_through_the_node(pack, api, standin):
    standin.queue_file_faults([{"bomb": True}])
    with pytest.raises(api.ImageDecodeError, match="pixel"):
        generate(pack)


def test_picture_just_over_the_pixel_limit_is_refused_before_decoding(api):
    buffer = io.BytesIO()
    Image.new("1", (4128, 4128)).save(buffer, "PNG")  # 17.0 megapixels, a few KB of file
    with pytest.raises(api.ImageDecodeError, match=r"4128x4128.*pixel limit"):
        api.decode_image(buffer.getvalue())


@pytest.mark.parametrize(("data", "fragment"), [
    (b"this is not an image, just text\n" * 8, "not a PNG, JPEG or WebP"),
    (b"<html><body>Access denied</body></html>", "not a PNG, JPEG or WebP"),
    (b"GIF89a" + bytes(64), "not a PNG, JPEG or WebP"),
    (b"", "not a PNG, JPEG or WebP"),
    (b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, "cannot be read"),
    (b"\xff\xd8\xff\xe0" + bytes(40), "cannot be read"),
])
def test_bytes_that_are_not_a_usable_picture_are_refused(api, data, fragment):
    with pytest.raises(api.ImageDecodeError, match=fragment):
        api.decode_image(data)


def test_non_image_download_through_the_node(pack, api, standin):
    standin.queue_file_faults([{"not_image": True}])
    with pytest.raises(api.ImageDecodeError, match="not a PNG, JPEG or WebP"):
        generate(pack)


@pytest.mark.parametrize("b64", ["%%% not base64 %%%", "data:image/png;base64,@@@@"])
def test_inline_picture_that_is_not_base64_is_refused(client, api, b64):
    with pytest.raises(api.DownloadError, match="not valid base64"):
        client.fetch_image(api.ImageRef(b64_json=b64))


def test_inline_picture_that_is_base64_of_text_is_refused(client, api):
    data = client.fetch_image(api.ImageRef(b64_json=base64.b64encode(b"hello").decode()))
    with pytest.raises(api.ImageDecodeError, match="not a PNG"):
        api.decode_image(data)


def _png_of_length_not_multiple_of_3() -> bytes:
    from api_client.standin import encode_picture, render_picture

    for side in range(64, 96):
        data = encode_picture(render_picture(3, 0, side, side), "png")
        if len(data) % 3:
            return data
    raise AssertionError("no size gives a PNG needing base64 padding")


def _variant(text: str, kind: str) -> str:
    if kind == "trailing newline":
        return text + "\n"
    if kind == "MIME lines":  # base64 as e-mail and `base64` tools write it: CRLF every 76 characters
        return "\r\n".join(text[i:i + 76] for i in range(0, len(text), 76)) + "\r\n"
    if kind == "LF lines":
        return "\n".join(text[i:i + 76] for i in range(0, len(text), 76))
    if kind == "missing padding":
        return text.rstrip("=")
    if kind == "data URI with lines and no padding":
        return "data:image/png;base64," + "\n".join(text.rstrip("=")[i:i + 64] for i in range(0, len(text), 64))
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["trailing newline", "MIME lines", "LF lines", "missing padding",
                                  "data URI with lines and no padding"])
def test_inline_picture_in_base64_variants_standard_decoders_accept_is_decoded(pack, standin, kind):
    png = _png_of_length_not_multiple_of_3()
    text = base64.b64encode(png).decode("ascii")
    assert text.endswith("=")
    standin.queue_post_faults([{"data": [{"url": None, "b64_json": _variant(text, kind)}]}])
    images, _ = generate(pack)["result"]
    side = Image.open(io.BytesIO(png)).width
    assert images.shape == (1, side, side, 3)


def test_inline_picture_with_line_breaks_is_still_capped_before_decoding(api, standin):
    client = api.ApiClient(TEST_KEY, standin.base_url, max_download_bytes=1 * MiB)
    wrapped = "\r\n".join(["A" * 76] * (2 * MiB // 57))  # about 2 MiB once decoded
    with pytest.raises(api.DownloadError, match="1 MiB cap"):
        client.fetch_image(api.ImageRef(b64_json=wrapped))
    client.close()


# -- URLs that parsers read differently: refused, never guessed ---------------------------------------

def _ambiguous_urls(port: int) -> list[str]:
    """URLs where urllib.parse sees the loopback host while requests would connect elsewhere (or might)."""
    return [
        f"http://evil.example\\@127.0.0.1:{port}/x.png",  # urllib.parse: 127.0.0.1; requests: evil.example
        f"http://evil.example\\\\@127.0.0.1:{port}/x.png",
        f"http://evil.example@127.0.0.1:{port}/x.png",  # userinfo
        f"http://127.0.0.1:{port}\t/x.png",  # urllib.parse drops tabs silently
        f"http://127.0.0.1:{port}/x.png\r\nHost: evil.example",
    ]


@pytest.mark.parametrize("index", range(5))
def test_picture_url_that_parsers_read_differently_is_refused_without_a_request(pack, api, standin, index):
    url = _ambiguous_urls(standin.port)[index]
    standin.queue_post_faults([{"url": url}])
    with pytest.raises(api.DownloadError, match="parsers") as caught:
        generate(pack)
    assert "evil.example@" not in str(caught.value)  # the user-info part is not quoted back
    assert standin.file_get_count == 0


@pytest.mark.parametrize("index", range(4))  # (a line break cannot be sent in a header)
def test_redirect_to_a_url_that_parsers_read_differently_is_refused(pack, api, standin, index):
    standin.queue_file_faults([{"redirect": _ambiguous_urls(standin.port)[index]}])
    with pytest.raises(api.DownloadError, match="parsers"):
        generate(pack)
    assert standin.file_get_count == 1


@pytest.mark.parametrize("index", range(3))
def test_base_url_that_parsers_read_differently_is_refused(api, standin, index):
    base = _ambiguous_urls(standin.port)[index].replace("/x.png", "/v1")
    with pytest.raises(api.ConfigError, match="parsers"):
        api.ApiClient(TEST_KEY, base)
    with pytest.raises(api.ConfigError, match="AIML_API_BASE"):
        api.resolve_base_url({"AIML_API_BASE": base})


@pytest.mark.parametrize("path", [
    "https://evil.example\\.huggingface.co/lora.safetensors",
    "https://huggingface.co/owner/repo/resolve/main/lo\tra.safetensors",
    "https://huggingface.co/owner/re po/lora.safetensors",
])
def test_lora_url_that_parsers_read_differently_is_refused_before_sending(pack, api, standin, path):
    with pytest.raises(api.InputError, match="parsers"):
        generate(pack, loras=[{"path": path, "scale": 1.0}])
    assert standin.post_count == 0
