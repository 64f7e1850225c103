"""Generation end to end through real HTTP: request bodies, batching, pixels, info and ui."""

from __future__ import annotations

import base64
import io
import json

import jsonschema
import numpy as np
import pytest
import torch
from conftest import ROOT, generate
from PIL import Image

from api_client.standin import encode_picture, render_picture

SCHEMA = json.loads((ROOT / "api_client" / "api" / "schema" / "flux-2-lora.openapi.json").read_text())
REQUEST_SCHEMA = SCHEMA["paths"]["/v1/images/generations"]["post"]["requestBody"]["content"]["application/json"][
    "schema"]


def _expected(seed, index, width, height, prompt="a red fox in snow", loras=None):
    return torch.from_numpy(render_picture(seed, index, width, height, prompt, loras).astype(np.float32) / 255.0)


@pytest.mark.parametrize("mode", ["url", "b64"])
@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_pixel_exact_round_trip(pack, standin, mode, fmt):
    standin.response_mode = mode
    out = generate(pack, output_format=fmt, num_images=2, image_size={"width": 640, "height": 512})
    images, info = out["result"]
    assert images.shape == (2, 512, 640, 3) and images.dtype == torch.float32
    assert images.is_contiguous() and images.device.type == "cpu"
    for i in range(2):
        assert torch.equal(images[i], _expected(7, i, 640, 512))
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0


def test_a_height_that_is_not_a_whole_number_of_strips_arrives_pixel_exact(pack, standin):
    # Pixels are converted in strips of rows; 515 rows leave a short last strip.
    standin.queue_post_faults([{"size": [520, 515]}])
    images, _ = generate(pack)["result"]
    assert images.shape == (1, 515, 520, 3)
    assert torch.equal(images[0], _expected(7, 0, 520, 515))


def test_sixteen_images_split_into_four_concurrent_requests_with_consecutive_seeds(pack, standin):
    standin.latency = 0.3
    images, info = generate(pack, num_images=16, seed=100)["result"]
    assert images.shape[0] == 16
    seeds = sorted(body["seed"] for body in standin.post_bodies)
    assert seeds == [100, 101, 102, 103]
    assert all(body["num_images"] == 4 for body in standin.post_bodies)
    # Batch order follows seeds: picture 4*k+i comes from request k.
    assert torch.equal(images[5], _expected(101, 1, 512, 512))
    assert torch.equal(images[15], _expected(103, 3, 512, 512))
    assert json.loads(info)["seeds"] == [100, 101, 102, 103]


def test_odd_batch_split(pack, standin):
    images, _ = generate(pack, num_images=6)["result"]
    assert images.shape[0] == 6
    assert sorted((b["seed"], b["num_images"]) for b in standin.post_bodies) == [(7, 4), (8, 2)]


def test_every_body_sent_conforms_to_the_official_schema(pack, standin):
    generate(pack, num_images=5, loras=[{"path": "a/b", "scale": 0.7}, {"path": "https://h.io/x.safetensors",
                                                                           "scale": 2}])
    generate(pack, image_size=None)
    assert standin.post_count == 3
    for body in standin.post_bodies:
        jsonschema.validate(body, REQUEST_SCHEMA)


def test_default_size_when_image_size_unconnected(pack, standin):
    images, info = generate(pack, image_size=None)["result"]
    assert "image_size" not in standin.post_bodies[0]
    assert images.shape == (1, 768, 1024, 3)
    assert json.loads(info)["image_size"] == "landscape_4_3 (API default)"


def test_info_json_and_ui_credits(pack, standin):
    out = generate(pack, num_images=6, loras=[{"path": "owner/repo", "scale": 1.0}])
    images, info_text = out["result"]
    info = json.loads(info_text)
    assert info["model"] == "blackforestlabs/flux-2-lora"
    assert info["seeds"] == [7, 8] and info["num_images"] == 6 and info["requests"] == 2
    assert (info["width"], info["height"]) == (512, 512) and info["image_size"] == "square"
    assert info["loras"] == [{"path": "owner/repo", "scale": 1.0}]
    assert info["credits_used"] > 0
    assert len(info["image_urls"]) == 6 and all(u.startswith(standin.root_url) for u in info["image_urls"])
    assert out["ui"]["flux2_credits"] == [info["credits_used"]]


def test_jpeg_output_decodes_close_to_source(pack, standin):
    images, _ = generate(pack, output_format="jpeg")["result"]
    diff = (images[0] - _expected(7, 0, 512, 512)).abs().mean()
    assert images.shape == (1, 512, 512, 3) and float(diff) < 0.03


def test_other_size_than_requested_is_accepted_and_reported(pack, standin):
    standin.queue_post_faults([{"size": [576, 512]}])
    images, info = generate(pack)["result"]
    assert images.shape == (1, 512, 576, 3)
    assert json.loads(info)["size_note"] == "asked for 512x512, the API returned 576x512"


def test_mixed_sizes_in_one_batch_is_a_clear_error(pack, api, standin):
    standin.queue_post_faults([{"sizes": [[512, 512], [640, 512]]}])
    with pytest.raises(api.ImageDecodeError, match=r"different sizes.*(512x512.*640x512|640x512.*512x512)"):
        generate(pack, num_images=2)


def _b64_png(pixels):
    return base64.b64encode(encode_picture(pixels, "png")).decode()


def test_fewer_pictures_than_asked_are_compacted_and_reported(pack, standin):
    pixels = render_picture(1, 0, 512, 512)
    standin.queue_post_faults([{"data": [{"b64_json": _b64_png(pixels)}]}])
    images, info = generate(pack, num_images=3)["result"]
    assert images.shape == (1, 512, 512, 3)
    assert torch.equal(images[0], torch.from_numpy(pixels.astype(np.float32) / 255.0))
    assert json.loads(info)["missing_note"] == "asked for 3 pictures, the API returned 1"


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "I;16"])
def test_other_picture_modes_become_rgb(pack, standin, mode):
    source = Image.fromarray(render_picture(3, 0, 512, 512)).convert("RGBA" if mode == "I;16" else mode)
    if mode == "I;16":
        source = Image.fromarray(np.asarray(source.convert("L"), dtype=np.uint16) * 257)
        assert source.mode.startswith("I;16")
    buffer = io.BytesIO()
    source.save(buffer, "PNG")
    standin.queue_post_faults([{"data": [{"b64_json": base64.b64encode(buffer.getvalue()).decode()}]}])
    images, _ = generate(pack)["result"]
    assert images.shape == (1, 512, 512, 3)
    if mode in ("L", "I;16"):
        grey = torch.from_numpy(np.array(source.convert("L") if mode == "L" else
                                           Image.fromarray(render_picture(3, 0, 512, 512)).convert("L")))
        assert torch.equal((images[0, :, :, 1] * 255).round().to(torch.uint8), grey)


def test_exif_orientation_is_applied(pack, standin):
    standin.queue_file_faults([{"exif_rotate": 6}])
    images, _ = generate(pack, image_size={"width": 640, "height": 512})["result"]
    # Orientation 6 means "rotate 90 degrees clockwise to display": width and height swap.
    assert images.shape == (1, 640, 512, 3)
