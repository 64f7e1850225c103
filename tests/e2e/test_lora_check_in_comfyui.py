"""The LoRA check inside a real ComfyUI (issue 19): refused before any POST, genuine LoRAs sent, its routes.

The check is off in these ComfyUI processes unless a test turns it on (the harness sets
FLUX2_LORA_CHECK_LORAS=0, since example workflows name huggingface.co URLs); here the setting
route turns it on, as the frontend setting does, and back to the environment's choice after.
Hugging Face names are looked up at the stand-in's LoRA host (HF_ENDPOINT set by the harness).
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from .harness import status_messages

pytestmark = pytest.mark.e2e

SETTING = "/flux2_lora/lora_check/setting"


@pytest.fixture
def check_on(comfy):
    answer = comfy.post(SETTING, {"check_loras": "on"})
    assert answer.status == 200 and answer.json()["enabled"] is True, answer.text
    try:
        yield comfy
    finally:
        assert comfy.post(SETTING, {"check_loras": None}).status == 200
        comfy.free_caches()


def _prompt(path: str, seed: int) -> dict:
    return {
        "1": {"class_type": "Flux2LoraImageSize", "inputs": {"preset": "square", "width": 512, "height": 512}},
        "2": {"class_type": "Flux2LoraAdapter", "inputs": {"path": path, "scale": 0.8}},
        "10": {"class_type": "Flux2LoraGenerate", "inputs": {
            "prompt": "a lighthouse at dusk", "seed": seed, "num_images": 1, "guidance_scale": 2.5,
            "num_inference_steps": 28, "acceleration": "regular", "output_format": "png",
            "enable_prompt_expansion": True, "enable_safety_checker": True, "image_size": ["1", 0],
            "loras": ["2", 0], "use_cache": False}},
        "100": {"class_type": "PreviewImage", "inputs": {"images": ["10", 0]}},
    }


def test_a_lora_for_another_model_is_refused_before_any_post(check_on, standin):
    comfy = check_on
    path = f"{standin.lora_root_url}/files/klein-9b.safetensors"  # a file no other test checks (verdicts are kept)
    entry = comfy.post_prompt(_prompt(path, 9101), expect_success=False)
    messages = status_messages(entry)
    assert entry["status"]["status_str"] == "error", messages
    assert "LoraRefusedError" in messages and "Not sent, nothing billed" in messages, messages
    assert "FLUX.2 [klein] 9B" in messages and path in messages
    assert standin.post_count == 0
    stats = standin.lora_stats()
    assert 0 < stats["bytes_served"]["klein-9b.safetensors"] <= 1024 * 1024
    assert stats["authorization_seen"] == 0


def test_a_genuine_lora_is_checked_once_and_sent(check_on, standin):
    comfy = check_on
    entry = comfy.post_prompt(_prompt("standin/flux2-dev-diffusers", 9201))
    assert standin.post_count == 1
    asked = standin.lora_stats()["request_count"]
    assert asked >= 3  # the repository's listing, the resolve redirect, the file's first bytes
    verdicts = json.loads((comfy.user_dir / "flux2_lora" / "lora_checks.json").read_text())["entries"]
    (entry_,) = [v for k, v in verdicts.items() if k.endswith("/standin/flux2-dev-diffusers")]
    assert (entry_["verdict"], entry_["rank"], entry_["format"]) == ("flux2-dev", 16, "diffusers/PEFT")
    comfy.post_prompt(_prompt("standin/flux2-dev-diffusers", 9202))  # a new seed: sent again, not checked again
    assert standin.post_count == 2
    assert standin.lora_stats()["request_count"] == asked
    assert entry["status"]["status_str"] == "success"


def test_the_adapter_line_route_answers_in_comfyui(check_on, standin):
    comfy = check_on
    url = f"{standin.lora_root_url}/files/flux2-dev-ai-toolkit-r16.safetensors"
    answer = comfy.get(f"/flux2_lora/lora_check?path={quote(url, safe='')}")
    assert answer.status == 200, answer.text
    assert answer.json()["text"] == "FLUX.2 [dev] LoRA · rank 16 · 195 MB · ai-toolkit"
    gated = comfy.get("/flux2_lora/lora_check?path=standin/gated").json()
    assert gated["tone"] == "error" and "gated" in gated["text"]


def test_off_by_the_environment_asks_no_lora_host(comfy, standin):
    assert comfy.get(SETTING).json()["enabled"] is False  # the harness's FLUX2_LORA_CHECK_LORAS=0
    comfy.post_prompt(_prompt(f"{standin.lora_root_url}/files/flux1-dev-kohya.safetensors", 9301))
    assert standin.post_count == 1
    assert standin.lora_stats()["request_count"] == 0
