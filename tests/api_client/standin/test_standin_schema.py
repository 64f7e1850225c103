"""The stand-in refuses exactly what the official schema refuses; strict mode warns, never refuses.

Also: the stand-in's pictures say what was asked (legible text, deterministic), and Edit answers with
the requested size.
"""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import requests
from conftest import ROOT
from PIL import Image

from api_client.standin import StandInServer, encode_picture, render_picture
from api_client.standin.pictures import _label_font, label_lines

KEY = "sk-standin-schema-test"
T2I = "blackforestlabs/flux-2-lora"
EDIT = "blackforestlabs/flux-2-lora-edit"


@pytest.fixture(scope="module")
def server():
    with StandInServer(key=KEY) as srv:
        yield srv


@pytest.fixture
def srv(server):
    server.reset()
    server.configure(strict=False)
    yield server
    server.reset()
    server.configure(strict=False)


def post(srv: StandInServer, payload: Any, **kw: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {KEY}", **kw.pop("headers", {})}
    return requests.post(f"{srv.base_url}/images/generations", json=payload, headers=headers, timeout=10, **kw)


def body(**overrides: Any) -> dict[str, Any]:
    return {"model": T2I, "prompt": "a red fox", "seed": 7, "image_size": "square", **overrides}


def picture(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


# -- exactly the schema ------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides", [
    {"response_format": "url"},                     # not in the schema: JSON Schema allows and the API ignores it
    {"promt": "typo"},
    {"loras": [{"path": "o/r", "scale": 1.0, "weight_name": "x.safetensors"}]},
    {"num_images": 2.0},                            # "number" 1..4
    {"seed": 5.0},                                  # JSON Schema: an integer is a number with no fractional part
    {"image_size": {"width": 512.0, "height": 512}},
    {"num_inference_steps": 28.0},
    {"prompt": "   "},                              # maxLength is the schema's only prompt rule
])
def test_what_the_schema_allows_is_answered(srv, overrides):
    r = post(srv, body(**overrides))
    assert r.status_code == 200, r.text
    assert srv.warnings == []  # not strict: nothing recorded


def test_num_images_2_point_0_makes_two_pictures_and_a_fraction_makes_the_whole_part(srv):
    assert len(post(srv, body(num_images=2.0)).json()["data"]) == 2
    assert len(post(srv, body(num_images=2.5)).json()["data"]) == 2


@pytest.mark.parametrize(("overrides", "message"), [
    ({"seed": 1.5}, "seed: expected integer, got number 1.5"),
    ({"image_size": {"width": 512.5, "height": 512}}, "image_size"),
    ({"num_images": "2"}, "num_images: expected number, got string"),
    ({"num_images": 4.5}, "num_images: 4.5 is above the maximum 4"),
])
def test_what_the_schema_refuses_is_still_refused(srv, overrides, message):
    r = post(srv, body(**overrides))
    assert r.status_code == 422 and message in r.json()["message"], r.text


def test_form_encoded_and_untyped_bodies_are_refused_as_the_api_does(srv):
    url = f"{srv.base_url}/images/generations"
    auth = {"Authorization": f"Bearer {KEY}"}
    form = requests.post(url, data={"model": T2I, "prompt": "a fox"}, headers=auth, timeout=10)
    assert form.status_code == 400
    assert "Content-Type: application/json" in form.json()["message"]
    assert "application/x-www-form-urlencoded" in form.json()["message"]
    raw_json_no_type = requests.post(url, data=b'{"model": "%s", "prompt": "x"}' % T2I.encode(), headers=auth,
                                     timeout=10)
    assert raw_json_no_type.status_code == 400
    typed = requests.post(url, data=b'{"model": "%s", "prompt": "x"}' % T2I.encode(), timeout=10,
                          headers={**auth, "Content-Type": "application/json; charset=utf-8"})
    assert typed.status_code == 200, typed.text


# -- strict mode: warnings, not refusals -------------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "warning"), [
    ({"promt": "typo"}, "promt: not in the official schema, so the API ignores it (a typo of 'prompt'?)"),
    ({"response_format": "url"}, "response_format: not in the official schema"),
    ({"loras": [{"path": "o/r", "scael": 1.0}]}, "loras[0].scael: not in the official schema, so the API "
                                                 "ignores it (a typo of 'scale'?)"),
    ({"seed": 5.0}, "seed: 5.0 is an integer by JSON Schema's rules, but send 5"),
    ({"num_images": 1.5}, "num_images: 1.5 is not a whole number; the stand-in makes 1"),
    ({"prompt": "  "}, "prompt: is blank"),
    ({"image_urls": ["data:image/png;base64,AAAA"]}, f"image_urls: {T2I} takes no pictures"),
])
def test_strict_mode_warns_about_likely_mistakes_and_still_answers(srv, overrides, warning, capfd):
    srv.configure(strict=True)
    r = post(srv, body(**overrides))
    assert r.status_code == 200, r.text
    assert len(srv.warnings) == 1 and srv.warnings[0].startswith(warning), srv.warnings
    assert f"stand-in warning: {warning}" in capfd.readouterr().err
    assert requests.get(f"{srv.root_url}/_standin/stats", timeout=5).json()["warnings"] == srv.warnings


def test_strict_mode_is_quiet_for_a_clean_request_and_switches_over_http(srv):
    r = requests.post(f"{srv.root_url}/_standin/config", json={"strict": True}, timeout=5)
    assert r.status_code == 200 and r.json()["strict"] is True
    assert post(srv, body(num_images=2, loras=[{"path": "o/r", "scale": 0.5}])).status_code == 200
    assert srv.warnings == []
    assert requests.post(f"{srv.root_url}/_standin/config", json={"strict": "yes"}, timeout=5).status_code == 400
    srv.reset()
    assert srv.strict  # reset clears warnings, not the mode


def test_command_line_has_the_strict_switch():
    out = subprocess.run([sys.executable, "-m", "api_client.standin", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "--strict" in out.stdout


# -- Edit: the requested size ------------------------------------------------------------------------------

def _edit_body(pixels: np.ndarray, **overrides: Any) -> dict[str, Any]:
    uri = "data:image/png;base64," + base64.b64encode(encode_picture(pixels, "png")).decode("ascii")
    return {"model": EDIT, "prompt": "make it blue", "seed": 3, "image_urls": [uri], **overrides}


def test_edit_answers_with_the_requested_size_or_else_the_input_unchanged(srv):
    pixels = render_picture(1, 0, 96, 64)
    sized = post(srv, _edit_body(pixels, image_size={"width": 512, "height": 768}, num_images=2))
    assert sized.status_code == 200, sized.text
    for item in sized.json()["data"]:
        assert Image.open(io.BytesIO(requests.get(item["url"], timeout=5).content)).size == (512, 768)
    preset = post(srv, _edit_body(pixels, image_size="landscape_16_9")).json()["data"][0]["url"]
    assert Image.open(io.BytesIO(requests.get(preset, timeout=5).content)).size == (1024, 576)
    unchanged = post(srv, _edit_body(pixels)).json()["data"][0]["url"]
    assert np.array_equal(picture(requests.get(unchanged, timeout=5).content), pixels)


# -- pictures that say what was asked ----------------------------------------------------------------------

def test_label_names_size_seed_place_in_the_request_and_each_lora():
    loras = [{"path": "example-user/flux2-watercolor-lora", "scale": 0.8},
             {"path": "https://huggingface.co/o/r/resolve/main/ink_v2.safetensors?download=true", "scale": 1.5}]
    assert label_lines(43, 1, 768, 512, loras) == [
        "stand-in picture (offline)",
        "768x512  seed 43  picture 2 of its request",
        "LoRA example-user/flux2-watercolor-lora  scale 0.8",
        "LoRA ink_v2.safetensors  scale 1.5",
    ]
    assert label_lines(1, 0, 512, 512)[-1] == "no LoRA"
    assert label_lines(1, 0, 512, 512, [{"path": "o/r"}])[-1] == "LoRA o/r  scale default"


def test_the_label_is_drawn_legibly_and_deterministically():
    loras = [{"path": "owner/style", "scale": 0.8}]
    a = render_picture(42, 0, 768, 512, "fox", loras)
    assert np.array_equal(a, render_picture(42, 0, 768, 512, "fox", loras))  # same request, same pixels
    # Top-left: a darkened box with white text in it; the rest of the picture is the pattern.
    box = a[16:120, 16:400]
    assert (box == 255).all(axis=2).sum() > 500          # text strokes in full white
    assert np.median(box) < 64                           # on a dark background
    # Inside the box only text is white (the darkened pattern stays below 64), and another scale is
    # other words: the text strokes differ.
    other = render_picture(42, 0, 768, 512, "fox", [{"path": "owner/style", "scale": 0.9}])
    text_a, text_other = (a[16:200] == 255).all(axis=2), (other[16:200] == 255).all(axis=2)
    assert text_a.sum() > 500 and (text_a != text_other).sum() > 20


def test_label_uses_pillows_own_font_and_falls_back_to_the_bitmap_one(monkeypatch):
    from PIL import ImageFont

    font, enlarge = _label_font.__wrapped__(20)
    assert enlarge == 1 and isinstance(font, ImageFont.FreeTypeFont)  # Pillow >= 10.1: load_default(size=)

    def old_load_default(size=None):  # Pillow < 10.1 has no size argument
        if size is not None:
            raise TypeError("load_default() got an unexpected keyword argument 'size'")
        return ImageFont.load_default_imagefont()

    monkeypatch.setattr(ImageFont, "load_default", old_load_default)
    font, enlarge = _label_font.__wrapped__(33)
    assert enlarge == 3 and not isinstance(font, ImageFont.FreeTypeFont)

