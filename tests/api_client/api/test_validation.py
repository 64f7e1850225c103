"""Bad input is refused before any request is sent (nothing billed), with a message for people."""

from __future__ import annotations

import json

import pytest
from conftest import generate, run_node

# (input overrides, fragments the message must contain)
BAD_GENERATE_INPUTS = [
    ({"prompt": "   "}, ["prompt", "empty", "1 to 4000"]),
    ({"prompt": "x" * 4001}, ["prompt", "4000", "4001"]),
    ({"prompt": None}, ["prompt", "None"]),
    ({"seed": 0}, ["seed", "1 to 2147483647", "got 0"]),
    ({"seed": -5}, ["seed", "got -5"]),
    ({"seed": 2147483648}, ["seed", "2147483648"]),
    ({"seed": 7.0}, ["seed", "7.0", "float", "INT"]),
    ({"seed": None}, ["seed", "None", "unconnected"]),
    ({"seed": True}, ["seed", "True"]),
    ({"num_images": 0}, ["num_images", "1 to 16", "got 0"]),
    ({"num_images": 17}, ["num_images", "1 to 16", "got 17"]),
    ({"num_images": 2.0}, ["num_images", "2.0"]),
    ({"guidance_scale": 20.5}, ["guidance_scale", "0 to 20", "20.5"]),
    ({"guidance_scale": -1}, ["guidance_scale", "got -1"]),
    ({"guidance_scale": float("nan")}, ["guidance_scale", "nan"]),
    ({"guidance_scale": "2.5"}, ["guidance_scale", "'2.5'"]),
    ({"num_inference_steps": 3}, ["num_inference_steps", "4 to 50", "got 3"]),
    ({"num_inference_steps": 51}, ["num_inference_steps", "4 to 50", "got 51"]),
    ({"acceleration": "turbo"}, ["acceleration", "none, regular, high", "'turbo'"]),
    ({"output_format": "gif"}, ["output_format", "jpeg, png, webp", "'gif'"]),
    ({"enable_prompt_expansion": 1}, ["enable_prompt_expansion", "true or false", "got 1"]),
    ({"enable_safety_checker": None}, ["enable_safety_checker", "None"]),
    ({"image_size": "huge"}, ["image_size", "square_hd", "'huge'"]),
    ({"image_size": {"width": 700, "height": 512}}, ["image_size.width", "multiple of 32", "700", "Try 672 or 704"]),
    ({"image_size": {"width": 4096, "height": 512}}, ["image_size.width", "512 to 2048", "4096"]),
    ({"image_size": {"width": 1024.0, "height": 512}}, ["image_size.width", "1024.0"]),
    ({"image_size": {"width": 1024}}, ["image_size", "Image Size node"]),
    ({"image_size": (1024, 768)}, ["image_size", "(1024, 768)"]),
    ({"loras": "owner/repo"}, ["loras", "list", "'owner/repo'"]),
    ({"loras": [{"path": "a/b", "scale": 1}] * 4}, ["loras", "at most 3", "got 4"]),
    ({"loras": [{"path": "a/b", "scale": 4.5}]}, ["loras[1].scale", "0 to 4", "4.5"]),
    ({"loras": [{"path": "http://x.com/l.safetensors", "scale": 1}]}, ["loras[1].path", "https", "http://x.com"]),
    ({"loras": [{"path": "not a repo", "scale": 1}]}, ["loras[1].path", "owner/repo", "'not a repo'"]),
    ({"loras": [{"path": "../../etc/passwd", "scale": 1}]}, ["loras[1].path", "'../../etc/passwd'"]),
    ({"loras": [{"path": "a/b", "weight": 1}]}, ["loras[1]", "path", "scale"]),
    ({"loras": [None]}, ["loras[1]", "None"]),
    # Values wired in from other nodes: wrong types, unconnected inputs, hand-built structures.
    ({"prompt": ["a", "b"]}, ["prompt", "['a', 'b']", "STRING"]),
    ({"prompt": 42}, ["prompt", "got 42"]),
    ({"seed": "7"}, ["seed", "'7'", "a str", "INT"]),
    ({"seed": 1.5}, ["seed", "1.5", "float"]),
    ({"num_images": None}, ["num_images", "None", "unconnected"]),
    ({"num_inference_steps": 28.0}, ["num_inference_steps", "28.0", "float", "INT"]),
    ({"num_inference_steps": None}, ["num_inference_steps", "None", "unconnected"]),
    ({"guidance_scale": None}, ["guidance_scale", "0 to 20", "None", "unconnected", "FLOAT"]),
    ({"guidance_scale": True}, ["guidance_scale", "True", "a bool"]),
    ({"guidance_scale": float("inf")}, ["guidance_scale", "inf"]),
    ({"acceleration": None}, ["acceleration", "none, regular, high", "None"]),
    ({"output_format": None}, ["output_format", "None"]),
    ({"image_size": {"width": None, "height": 512}}, ["image_size.width", "None", "unconnected"]),
    ({"image_size": {"width": True, "height": 512}}, ["image_size.width", "True"]),
    ({"image_size": {"width": "512", "height": 512}}, ["image_size.width", "'512'"]),
    ({"image_size": {"width": 512, "height": -512}}, ["image_size.height", "512 to 2048", "-512"]),
    ({"image_size": {"width": 512, "height": 512, "extra": 1}}, ["image_size", "Image Size node", "'extra'"]),
    ({"image_size": {}}, ["image_size", "Image Size node", "{}"]),
    ({"image_size": [1024, 768]}, ["image_size", "[1024, 768]"]),
    ({"image_size": 1024}, ["image_size", "got 1024"]),
    ({"image_size": "SQUARE"}, ["image_size", "square_hd", "'SQUARE'"]),
    ({"image_size": "custom"}, ["image_size", "'custom'"]),
    ({"loras": 42}, ["loras", "list", "42"]),
    ({"loras": b"owner/repo"}, ["loras", "list", "b'owner/repo'"]),
    ({"loras": {"path": "a/b", "scale": 1}}, ["loras", "list", "'path'"]),
    ({"loras": (lora for lora in [])}, ["loras", "list", "generator"]),
    ({"loras": [("a/b", 1.0)]}, ["loras[1]", "path", "scale", "('a/b', 1.0)"]),
    ({"loras": ["a/b"]}, ["loras[1]", "path", "'a/b'"]),
    ({"loras": [{"scale": 1}]}, ["loras[1]", "path"]),
    ({"loras": [{"path": None, "scale": 1}]}, ["loras[1].path", "None"]),
    ({"loras": [{"path": "a/b", "scale": None}]}, ["loras[1].scale", "0 to 4", "None", "unconnected"]),
    ({"loras": [{"path": "a/b", "scale": "1"}]}, ["loras[1].scale", "'1'"]),
    ({"loras": [{"path": "a/b", "scale": True}]}, ["loras[1].scale", "True"]),
    ({"loras": [{"path": "a/b", "scale": float("nan")}]}, ["loras[1].scale", "nan"]),
    ({"loras": [{"path": "a/b", "scale": -0.5}]}, ["loras[1].scale", "0 to 4", "-0.5"]),
    ({"loras": [{"path": "a/b", "scale": 1}, {"path": "file:///etc/passwd", "scale": 1}]},
     ["loras[2].path", "https", "file:///etc/passwd"]),
    ({"loras": [{"path": "https://user:pw@h.com/x.safetensors", "scale": 1}]}, ["loras[1].path", "credentials"]),
]


@pytest.mark.parametrize(("overrides", "fragments"), BAD_GENERATE_INPUTS,
                         ids=[next(iter(o)) + str(i) for i, (o, _) in enumerate(BAD_GENERATE_INPUTS)])
def test_bad_input_refused_before_any_request(pack, api, standin, overrides, fragments):
    with pytest.raises(api.InputError) as caught:
        generate(pack, **overrides)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"
    assert standin.post_count == 0


def test_bad_input_checked_before_the_key(pack, api, standin, monkeypatch):
    """A user without a key still learns what is wrong with the inputs first."""
    monkeypatch.delenv("AIML_API_KEY")
    with pytest.raises(api.InputError, match="seed"):
        generate(pack, seed=0)


@pytest.mark.parametrize(("inputs", "fragment"), [
    ({"preset": "custom", "width": 500, "height": 512}, "image_size.width"),
    ({"preset": "custom", "width": 512, "height": 3000}, "image_size.height"),
    ({"preset": "giant", "width": 512, "height": 512}, "image_size"),
    ({"preset": "custom", "width": 512.0, "height": 512}, "image_size.width"),
    ({"preset": "custom", "width": None, "height": 512}, "unconnected"),
    ({"preset": "custom", "width": 512, "height": True}, "image_size.height"),
])
def test_image_size_node_refuses_bad_values(pack, api, inputs, fragment):
    with pytest.raises(api.InputError, match=fragment):
        run_node(pack, "Flux2LoraImageSize", **inputs)


@pytest.mark.parametrize(("inputs", "fragment"), [
    ({"path": "", "scale": 1.0}, "path"),
    ({"path": "ftp://host/x.safetensors", "scale": 1.0}, "https"),
    ({"path": "https://user:pw@host/x.safetensors", "scale": 1.0}, "credentials"),
    ({"path": "owner/repo", "scale": 9.0}, "scale"),
    ({"path": "owner/repo", "scale": 1.0, "loras": [{"path": "a/b", "scale": 1}] * 3}, "at most 3"),
    ({"path": "owner/repo", "scale": 1.0, "loras": {"path": "a/b"}}, "list"),
    ({"path": None, "scale": 1.0}, "path"),
    ({"path": "owner/repo", "scale": None}, "unconnected"),
    ({"path": "owner/repo", "scale": "1"}, "scale"),
    ({"path": "owner/repo", "scale": True}, "scale"),
    ({"path": "owner/repo", "scale": 1.0, "loras": "a/b"}, "list"),
    ({"path": "owner/repo", "scale": 1.0, "loras": [{"path": "a/b", "scale": 7}]}, r"loras\[1\].scale"),
])
def test_adapter_refuses_bad_values(pack, api, inputs, fragment):
    with pytest.raises(api.InputError, match=fragment):
        run_node(pack, "Flux2LoraAdapter", **inputs)


@pytest.mark.parametrize(("seed", "fragment"), [
    (0, "got 0"), (-1, "got -1"), (7.0, "float"), (None, "unconnected"), ("7", "str"), (False, "bool"),
])
def test_seed_node_refuses_bad_seeds(pack, api, seed, fragment):
    with pytest.raises(api.InputError, match=fragment):
        run_node(pack, "Flux2LoraSeed", seed=seed)


def test_accepted_values_reach_the_api_exactly(pack, standin):
    generate(pack, prompt="  padded prompt  ", num_images=2, guidance_scale=0, num_inference_steps=4,
             acceleration="none", output_format="webp", enable_prompt_expansion=False,
             image_size={"width": 512, "height": 544},
             loras=[{"path": "owner/repo/file.safetensors", "scale": 0}])
    (body,) = standin.post_bodies
    assert body == {
        "model": "blackforestlabs/flux-2-lora", "prompt": "padded prompt", "seed": 7, "num_images": 2,
        "guidance_scale": 0.0, "num_inference_steps": 4, "acceleration": "none", "output_format": "webp",
        "enable_prompt_expansion": False, "enable_safety_checker": True,
        "image_size": {"width": 512, "height": 544},
        "loras": [{"path": "owner/repo/file.safetensors", "scale": 0.0}],
    }


# -- text that cannot be sent, numbers from other nodes, names and seeds at the edges -----------

@pytest.mark.parametrize("use_cache", [True, False])
def test_lone_surrogate_in_the_prompt_is_refused_naming_its_position(pack, api, standin, use_cache):
    # "a cat " then half of an emoji (U+1F431 is \ud83d\udc31): what a cut-off string gives.
    with pytest.raises(api.InputError, match=r"prompt.*position 7") as caught:
        generate(pack, prompt="a cat \ud83d and more", use_cache=use_cache)
    assert "emoji" in str(caught.value)
    assert standin.post_count == 0


@pytest.mark.parametrize("invisible", ["\u200b\u200b\u200b", " \u200d\ufeff ", "\u2060\u200c\u3164"])
def test_prompt_of_only_invisible_characters_is_refused_as_empty(pack, api, standin, invisible):
    with pytest.raises(api.InputError, match="prompt: is empty"):
        generate(pack, prompt=invisible)
    assert standin.post_count == 0


def test_numpy_numbers_from_other_nodes_are_accepted(pack, standin):
    np = pytest.importorskip("numpy")
    generate(pack, seed=np.int64(7), num_images=np.int32(1), guidance_scale=np.float32(2.5),
             num_inference_steps=np.int16(8), loras=[{"path": "owner/repo", "scale": np.float64(0.5)}],
             image_size={"width": np.int64(512), "height": np.uint16(544)})
    (body,) = standin.post_bodies
    assert (body["seed"], body["num_images"], body["guidance_scale"], body["num_inference_steps"]) == (7, 1, 2.5, 8)
    assert body["image_size"] == {"width": 512, "height": 544} and body["loras"][0]["scale"] == 0.5


@pytest.mark.parametrize(("name", "value", "fragment"), [
    ("seed", "bool_", "bool"), ("num_images", "float32", "float32"), ("guidance_scale", "bool_", "bool"),
])
def test_numpy_bools_and_floats_for_ints_are_still_refused(pack, api, standin, name, value, fragment):
    np = pytest.importorskip("numpy")
    with pytest.raises(api.InputError, match=fragment):
        generate(pack, **{name: getattr(np, value)(1)})
    assert standin.post_count == 0


@pytest.mark.parametrize(("path", "suggestion"), [
    ("huggingface.co/owner/repo", "'owner/repo'"),
    ("www.huggingface.co/owner/repo/blob/main/style.safetensors", "'owner/repo/style.safetensors'"),
    ("hf.co/owner/repo/resolve/main/style.safetensors", "'owner/repo/style.safetensors'"),
])
def test_hugging_face_web_address_as_lora_path_is_refused_with_the_name_to_write(pack, api, path, suggestion):
    with pytest.raises(api.InputError, match="Hugging Face") as caught:
        run_node(pack, "Flux2LoraAdapter", path=path, scale=1.0)
    assert f"write {suggestion}" in str(caught.value)


def test_full_hugging_face_file_url_stays_accepted(pack):
    url = "https://huggingface.co/owner/repo/resolve/main/style.safetensors"
    (loras,) = run_node(pack, "Flux2LoraAdapter", path=url, scale=1.0)
    assert loras[0]["path"] == url


def test_seeds_of_a_batch_at_the_top_of_the_range_wrap_around_to_1(pack, standin):
    _, info = generate(pack, seed=2147483647, num_images=16, image_size="square")["result"]
    seeds = sorted(body["seed"] for body in standin.post_bodies)
    assert seeds == [1, 2, 3, 2147483647]
    assert json.loads(info)["seeds"] == [2147483647, 1, 2, 3]


@pytest.mark.parametrize("path", [
    "http://alice:hunter2secret@example.com/lora.safetensors",
    "ftp://alice:hunter2secret@example.com/lora.safetensors",
    "https://alice:hunter2secret@/lora.safetensors",
    "https://alice:hunter2secret@example.com/" + "a" * 2100 + ".safetensors",
    "https://alice:hunter2secret@example.com\\@evil.example/lora.safetensors",
    "https://alice:hunter2secret@ex ample.com/lora.safetensors",
    "alice:hunter2secret@example.com/lora.safetensors",
    "https:/alice:hunter2secret@example.com/lora.safetensors",
    "http://alice:hunter2/secret@example.com/lora.safetensors",  # a "/" in the password
])
def test_lora_url_password_never_appears_in_the_error(pack, api, standin, path):
    with pytest.raises(api.InputError) as caught:
        run_node(pack, "Flux2LoraAdapter", path=path, scale=1.0)
    assert "hunter2" not in str(caught.value) and "alice" not in str(caught.value)
    assert "path" in str(caught.value)
    with pytest.raises(api.InputError) as caught:
        generate(pack, loras=[{"path": path, "scale": 1.0}])
    assert "hunter2" not in str(caught.value) and standin.post_count == 0
