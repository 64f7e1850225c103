"""Flux2 LoRA Edit end to end: IMAGE tensors in, data URIs over real HTTP, IMAGE tensors out."""

from __future__ import annotations

import base64
import io
import json
import re

import jsonschema
import numpy as np
import pytest
import torch
from conftest import ROOT, InterruptProcessingException, generate_inputs
from PIL import Image

from api_client.standin import render_picture

EDIT_MODEL = "blackforestlabs/flux-2-lora-edit"
SCHEMA = json.loads((ROOT / "api_client" / "api" / "schema" / "flux-2-lora-edit.openapi.json").read_text())
REQUEST_SCHEMA = SCHEMA["paths"]["/v1/images/generations"]["post"]["requestBody"]["content"]["application/json"][
    "schema"]


def as_image(*pictures: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, C] pictures as one ComfyUI IMAGE batch, the way LoadImage makes it."""
    return torch.from_numpy(np.stack(pictures).astype(np.float32) / 255.0)


def picture(seed: int, width: int = 96, height: int = 64) -> np.ndarray:
    return render_picture(seed, 0, width, height, "edit input")


def edit(pack, image, **overrides):
    """Run Flux2LoraEdit as ComfyUI does and return its whole output dict."""
    cls = pack.NODE_CLASS_MAPPINGS["Flux2LoraEdit"]
    inputs = generate_inputs(**{"image_size": None, **overrides}, image=image)
    return getattr(cls(), cls.FUNCTION)(**inputs)


def test_tensor_arrives_pixel_exact_and_comes_back_unchanged(pack, standin):
    pixels = picture(1)
    image = as_image(pixels)
    out = edit(pack, image)
    assert len(standin.received_images) == 1 and np.array_equal(standin.received_images[0], pixels)
    images, _ = out["result"]
    assert images.shape == image.shape and torch.equal(images, image)


@pytest.mark.parametrize("mode", ["url", "b64"])
def test_batch_of_three_round_trips_in_order(pack, standin, mode):
    standin.response_mode = mode
    pixels = [picture(seed) for seed in (1, 2, 3)]
    image = as_image(*pixels)
    images, info = edit(pack, image, num_images=3)["result"]
    body = standin.post_bodies[0]
    assert len(body["image_urls"]) == 3 and all(u.startswith("data:image/webp;base64,") for u in body["image_urls"])
    for sent, got in zip(pixels, standin.received_images, strict=True):
        assert np.array_equal(sent, got)
    assert torch.equal(images, image)


def test_values_between_levels_are_rounded_and_out_of_range_clamped(pack, standin):
    image = torch.tensor([[0.5 / 255 + 1e-4, 0.4 / 255, 254.6 / 255],
                          [-0.3, 1.7, float("nan")]], dtype=torch.float32)
    image = image.repeat(32, 32).reshape(1, 64, 96, 1).expand(1, 64, 96, 3)
    edit(pack, image)
    expected = np.tile(np.array([[1, 0, 255], [0, 255, 0]], np.uint8), (32, 32)).reshape(64, 96, 1)
    assert np.array_equal(standin.received_images[0], np.repeat(expected, 3, axis=2))


def test_alpha_is_dropped_and_grey_is_repeated(pack, standin):
    rgb = picture(4)
    alpha = np.full((64, 96, 1), 17, np.uint8)
    grey = np.asarray(Image.fromarray(picture(5)).convert("L"))[:, :, None]
    edit(pack, as_image(np.concatenate([rgb, alpha], axis=2)), image_2=as_image(grey),
         image_3=as_image(np.concatenate([grey, alpha], axis=2)))
    got = standin.received_images
    assert np.array_equal(got[0], rgb)
    assert np.array_equal(got[1], np.repeat(grey, 3, axis=2)) and np.array_equal(got[2], got[1])


def test_half_precision_and_non_contiguous_inputs_arrive_exact(pack, standin):
    pixels = picture(6, 128, 64)
    flipped = as_image(pixels).flip(2)  # a view with negative strides
    edit(pack, flipped.half())
    assert np.array_equal(standin.received_images[0], pixels[:, ::-1])


def test_pictures_of_different_sizes_are_fine(pack, standin):
    a, b, c = picture(1, 96, 64), picture(2, 640, 512), picture(3, 33, 17)
    images, info = edit(pack, as_image(a), image_2=as_image(b), image_3=as_image(c))["result"]
    assert [p.shape for p in standin.received_images] == [a.shape, b.shape, c.shape]
    assert all(np.array_equal(x, y) for x, y in zip((a, b, c), standin.received_images, strict=True))
    assert torch.equal(images[0], as_image(a)[0])  # the stand-in answers with the first input
    described = json.loads(info)["input_images"]
    assert [(d["width"], d["height"], d["sent_as"]) for d in described] == [
        (96, 64, "webp lossless"), (640, 512, "webp lossless"), (33, 17, "webp lossless")]


@pytest.mark.parametrize(("batches", "got"), [((0,), "got 0"), ((2, 2), "got 4 (image: 2, image_2: 2)"),
                                              ((1, 1, 2), "got 4 (image: 1, image_2: 1, image_3: 2)")])
def test_zero_or_more_than_three_pictures_are_refused_before_any_request(pack, api, standin, batches, got):
    images = [torch.zeros((n, 64, 64, 3)) for n in batches]
    extra = dict(zip(("image_2", "image_3")[: len(images) - 1], images[1:], strict=True))
    with pytest.raises(api.InputError, match=r"image \+ image_2 \+ image_3: .*1 to 3 pictures.*" + re.escape(got)):
        edit(pack, images[0], **extra)
    assert standin.post_count == 0


@pytest.mark.parametrize(("image", "message"), [
    (None, "image: must be an IMAGE; got nothing"),
    (np.zeros((1, 8, 8, 3), np.float32), "image: must be an IMAGE; got a ndarray"),
    (torch.zeros((1, 8, 8, 5)), r"image: must be an IMAGE .* channels; got shape \(1, 8, 8, 5\)"),
    (torch.zeros((1, 8, 8, 3), dtype=torch.uint8), "image: must be an IMAGE .* of floats"),
])
def test_malformed_images_are_refused(pack, api, standin, image, message):
    with pytest.raises(api.InputError, match=message):
        edit(pack, image)
    assert standin.post_count == 0


def test_picture_above_four_megapixels_is_refused_without_converting_it(pack, api, standin):
    huge = torch.zeros((1, 1, 1, 3)).expand(2, 2049, 2048, 3)  # no memory behind it
    with pytest.raises(api.InputError, match=r"image_2: must have at most 4,194,304 pixels .* got 2048x2049"):
        edit(pack, as_image(picture(1)), image_2=huge[:1])
    assert standin.post_count == 0


def test_settings_are_checked_like_generate(pack, api, standin):
    with pytest.raises(api.InputError, match="guidance_scale: must be a number from 0 to 20; got 25"):
        edit(pack, as_image(picture(1)), guidance_scale=25)
    assert standin.post_count == 0


def test_body_follows_the_edit_schema_and_info_names_the_edit_model(pack, standin):
    out = edit(pack, as_image(picture(1), picture(2)), num_images=6, seed=40,
               image_size={"width": 512, "height": 512}, loras=[{"path": "owner/repo", "scale": 0.5}])
    bodies = sorted(standin.post_bodies, key=lambda b: b["seed"])
    assert [(b["seed"], b["num_images"]) for b in bodies] == [(40, 4), (41, 2)]
    assert bodies[0]["image_urls"] == bodies[1]["image_urls"]  # encoded once, sent with each request
    for body in bodies:
        assert body["model"] == EDIT_MODEL
        jsonschema.validate(body, REQUEST_SCHEMA)
    images, info_text = out["result"]
    info = json.loads(info_text)
    assert info["model"] == EDIT_MODEL and info["seeds"] == [40, 41] and info["num_images"] == 6
    assert [d["sent_as"] for d in info["input_images"]] == ["webp lossless"] * 2
    assert "data:" not in info_text and out["ui"]["flux2_credits"] == [info["credits_used"]]


def test_same_pictures_and_settings_come_from_the_cache(pack, standin):
    first, info = edit(pack, as_image(picture(1)), image_2=as_image(picture(2)))["result"]
    again, info_again = edit(pack, as_image(picture(1)), image_2=as_image(picture(2)))["result"]
    assert standin.post_count == 1 and torch.equal(first, again)
    assert json.loads(info)["cache"] == "miss" and json.loads(info_again)["cache"] == "hit"
    edit(pack, as_image(picture(1)), image_2=as_image(picture(3)))  # another reference picture: a new request
    edit(pack, as_image(picture(1)), image_2=as_image(picture(2)), use_cache=False)
    assert standin.post_count == 3


def test_cancel_before_encoding_sends_nothing(pack, standin, request):
    request.getfixturevalue("comfy").interrupted = True
    with pytest.raises(InterruptProcessingException):
        edit(pack, as_image(picture(1)))
    assert standin.post_count == 0


def test_edit_shares_generate_settings_widgets(pack):
    generate_types = pack.NODE_CLASS_MAPPINGS["Flux2LoraGenerate"].INPUT_TYPES()
    edit_types = pack.NODE_CLASS_MAPPINGS["Flux2LoraEdit"].INPUT_TYPES()
    required = dict(edit_types["required"])
    assert required.pop("image")[0] == "IMAGE"
    assert required == generate_types["required"]
    assert edit_types["hidden"] == generate_types["hidden"]


# -- the encoding rule (api_client side) ----------------------------------------------------------------


def _decode(uri: str) -> tuple[str, np.ndarray]:
    head, _, payload = uri.partition(",")
    image = Image.open(io.BytesIO(base64.b64decode(payload)))
    return head, np.asarray(image.convert("RGB"))


def test_small_pictures_go_as_lossless_webp(api):
    pixels = picture(9, 300, 200)
    head, got = _decode(api.encode_data_uri(pixels))
    assert head == "data:image/webp;base64" and np.array_equal(got, pixels)


def test_pictures_too_big_for_lossless_go_as_jpeg_q95(api):
    noisy = np.random.default_rng(0).integers(0, 256, (1300, 1300, 3), dtype=np.uint8)  # 4.8 MiB lossless
    encoded = api.encode_input_picture(noisy)
    head, got = _decode(encoded.data_uri)
    assert head == "data:image/jpeg;base64" and encoded.format == "jpeg q95" and got.shape == noisy.shape
    assert encoded.encoded_bytes < 4 * 2**20


def test_pictures_wider_than_webp_allows_go_as_png(api):
    strip = np.ascontiguousarray(np.broadcast_to(picture(3, 16400, 4), (4, 16400, 3)))
    head, got = _decode(api.encode_data_uri(strip))
    assert head == "data:image/png;base64" and np.array_equal(got, strip)


def test_encoder_refuses_what_is_not_uint8_rgb(api):
    with pytest.raises(api.InputError, match=r"must be RGB pixels \[height, width, 3\] of uint8"):
        api.encode_data_uri(np.zeros((8, 8, 4), np.uint8))


@pytest.mark.parametrize(("urls", "message"), [
    ([], "image_urls: the edit model takes 1 to 3 pictures in total; got 0"),
    (["https://h.io/a.png"] * 4, "got 4"),
    ("https://h.io/a.png", "image_urls: must be a list"),
    (["http://example.com/a.png"], r"image_urls\[1\]: must be a https URL or a data:image"),
    (["data:text/plain;base64,AAAA"], r"image_urls\[1\]"),
    (["data:image/png;base64,"], r"image_urls\[1\]"),
])
def test_build_requests_checks_image_urls(api, urls, message):
    settings = {k: v for k, v in generate_inputs().items()}
    with pytest.raises(api.InputError, match=message):
        api.build_requests(**settings, model=api.MODEL_EDIT, image_urls=urls)


def test_text_to_image_takes_no_input_pictures(api):
    with pytest.raises(api.InputError, match="image_urls: only blackforestlabs/flux-2-lora-edit takes"):
        api.build_requests(**generate_inputs(), image_urls=["https://h.io/a.png"])


def test_example_workflow_wires_load_image_and_adapter_into_edit_and_save(pack, standin):
    doc = json.loads((ROOT / "example_workflows" / "flux2_lora_edit.json").read_text())
    nodes = {node["id"]: node for node in doc["nodes"]}
    wires = {(nodes[a]["type"], nodes[b]["type"], nodes[b]["inputs"][slot]["name"], kind)
             for _, a, _, b, slot, kind in doc["links"]}
    assert wires == {("LoadImage", "Flux2LoraEdit", "image", "IMAGE"),
                     ("Flux2LoraAdapter", "Flux2LoraEdit", "loras", "FLUX2_LORAS"),
                     ("Flux2LoraEdit", "SaveImage", "images", "IMAGE")}
    edit_node = next(node for node in doc["nodes"] if node["type"] == "Flux2LoraEdit")
    types = pack.NODE_CLASS_MAPPINGS["Flux2LoraEdit"].INPUT_TYPES()
    declared = {**types["required"], **types["optional"]}
    sockets = [name for name, spec in declared.items() if spec[0] in ("IMAGE", "FLUX2_IMAGE_SIZE", "FLUX2_LORAS")]
    assert [entry["name"] for entry in edit_node["inputs"]] == sockets
    widgets = [name for name in declared if name not in sockets]
    values = list(edit_node["widgets_values"])
    assert values.pop(widgets.index("seed") + 1) in ("fixed", "randomize")  # control_after_generate
    assert len(values) == len(widgets)
    settings = dict(zip(widgets, values, strict=True))
    images, _ = edit(pack, as_image(picture(1)), **settings)["result"]  # the saved values are valid inputs
    assert images.shape == (1, 64, 96, 3) and standin.post_bodies[0]["prompt"] == settings["prompt"]


def test_a_bad_setting_is_reported_before_any_picture_is_encoded(pack, api, standin):
    # A malformed picture would be refused while encoding; the bad seed is found first.
    with pytest.raises(api.InputError, match="seed: must be a whole number"):
        edit(pack, None, seed=0)
    assert standin.post_count == 0
