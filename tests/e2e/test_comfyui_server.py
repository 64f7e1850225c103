"""The pack inside a real ComfyUI process: import, node definitions, workflows, key, cancel, cache, routes."""

from __future__ import annotations

import json
import time

import pytest
from conftest import TEST_KEY
from contract import CONTRACT, DEFAULTS, RANGES, check_range
from PIL import Image

from .harness import PACK_NAME, cached_nodes, message_kinds, status_messages
from .workflows import text_to_image_prompt

pytestmark = pytest.mark.e2e


def test_pack_imports_without_error(comfy):
    log = comfy.log_text()
    pack_lines = [line for line in log.splitlines() if PACK_NAME in line]
    assert any(line.strip().endswith(f"custom_nodes/{PACK_NAME}") and "seconds:" in line for line in pack_lines), (
        f"no import time line for the pack in ComfyUI's log:\n{log[-3000:]}")
    failures = [line for line in pack_lines if "IMPORT FAILED" in line or "Cannot import" in line]
    assert failures == []
    assert "Traceback" not in "\n".join(pack_lines)


@pytest.fixture(scope="module")
def object_info(comfy):
    return comfy.object_info()


@pytest.mark.parametrize("node_id", list(CONTRACT))
def test_object_info_has_the_contract_inputs_in_order(object_info, node_id):
    info, spec = object_info[node_id], CONTRACT[node_id]
    assert info["display_name"] == spec["display"]
    assert info["python_module"] == f"custom_nodes.{PACK_NAME}"
    for section in ("required", "optional"):
        declared = info["input"].get(section, {})
        # input_order is what the frontend maps saved widget values by.
        assert info["input_order"].get(section, []) == [name for name, _ in spec[section]], section
        got = [(name, declared[name][0]) for name in info["input_order"].get(section, [])]
        assert got == spec[section], section
    assert tuple(info["output"]) == spec["outputs"]
    assert len(info["output_name"]) == len(info["output_tooltips"]) == len(spec["outputs"])


@pytest.mark.parametrize("node_id", list(CONTRACT))
def test_every_node_with_search_aliases_loads_and_object_info_sends_them_or_nothing(comfy, object_info, node_id):
    # The classes carry SEARCH_ALIASES (tests/nodes/test_search_aliases.py); ComfyUI 0.3.64 does not know the
    # attribute and must still load the node; newer releases send it as "search_aliases", unchanged.
    assert object_info[node_id]["name"] == node_id
    sent = object_info[node_id].get("search_aliases")
    version = comfy.get("/system_stats").json()["system"]["comfyui_version"]
    if version == "0.3.64":
        assert sent is None
    if sent is not None:
        assert "flux2" in sent and "aimlapi" in sent


@pytest.mark.parametrize("node_id", list(CONTRACT))
def test_object_info_has_a_tooltip_on_every_input(object_info, node_id):
    inputs = object_info[node_id]["input"]
    for section in ("required", "optional"):
        for name, value in inputs.get(section, {}).items():
            assert len(value) == 2 and value[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    assert len(object_info[node_id]["description"]) > 40


@pytest.mark.parametrize(("node_input", "expected"), list(RANGES.items()))
def test_object_info_ranges_and_defaults(object_info, node_input, expected):
    node_id, name = node_input
    options = object_info[node_id]["input"]["required"][name][1]
    check_range(options, expected)


@pytest.mark.parametrize(("node_input", "default"), list(DEFAULTS.items()))
def test_object_info_choice_and_boolean_defaults(object_info, node_input, default):
    node_id, name = node_input
    assert object_info[node_id]["input"]["required"][name][1]["default"] == default


def _all_files(folder):
    return [path for path in folder.rglob("*") if path.is_file()]


def test_the_key_appears_in_no_history_png_log_or_cache(comfy, standin):
    entry = comfy.post_prompt(text_to_image_prompt())
    assert standin.post_count == 1, "the stand-in accepted the key (it answers 401 to any other)"
    (png,) = comfy.output_files(entry)
    with Image.open(png) as picture:
        metadata = dict(picture.info)
    assert "prompt" in metadata and "workflow" not in metadata  # ComfyUI embeds the prompt: the key must not be in it
    places = {
        "GET /history": comfy.get("/history").text,
        "GET /internal/logs": comfy.get("/internal/logs").text,
        "ComfyUI's log": comfy.log_text(),
        f"metadata of {png.name}": json.dumps(metadata, default=str),
    }
    cache_files = _all_files(comfy.cache_dir)
    assert cache_files, "the run was saved to the result cache"
    # Every file ComfyUI or the pack wrote: outputs (PNG text chunks are stored uncompressed), temp, user
    # settings, the result cache. Not the pack's own folder (its tests hold the test key by design).
    written = [p for p in _all_files(comfy.base_dir) if comfy.pack_dir not in p.parents and p != comfy.log_path]
    assert set(cache_files) <= set(written)
    places.update({str(p.relative_to(comfy.base_dir)): p.read_bytes().decode("latin-1") for p in written})
    secret = TEST_KEY.removeprefix("sk-")
    assert [where for where, text in places.items() if secret in text] == []


def test_interrupt_while_the_stand_in_waits_ends_the_prompt_within_a_second(comfy, standin):
    standin.queue_faults(post=[{"delay": 30}])  # the API "generating" for 30 s
    prompt_id = comfy.queue_prompt(text_to_image_prompt())
    standin.wait_for_posts(1)
    start = time.monotonic()
    comfy.interrupt()
    entry = comfy.wait(prompt_id, timeout=30)
    elapsed = time.monotonic() - start
    assert "execution_interrupted" in message_kinds(entry), status_messages(entry)
    assert entry["status"]["status_str"] == "error" and not entry.get("outputs")
    assert elapsed < 1.0, f"the prompt ended {elapsed:.2f} s after POST /interrupt"
    time.sleep(1.0)  # a retry or a download would come in this time
    assert (standin.post_count, standin.file_get_count) == (1, 0), "nothing sent after the interrupt"


def test_result_cache_answers_the_same_prompt_after_a_restart(comfy, standin):
    prompt = text_to_image_prompt()
    first = comfy.post_prompt(prompt)
    assert standin.post_count == 1
    comfy.restart()
    standin.reset()

    second = comfy.post_prompt(prompt)

    assert cached_nodes(second) == [], "a new ComfyUI process has nothing in its own cache"
    assert (standin.post_count, standin.file_get_count) == (0, 0), "answered from the result cache"
    assert second["outputs"]["3"]["flux2_cache"][0]["state"] == "hit"
    assert second["outputs"]["3"]["flux2_credits"] == [0]
    (before,), (after,) = comfy.output_files(first), comfy.output_files(second)
    with Image.open(before) as a, Image.open(after) as b:
        assert a.tobytes() == b.tobytes() and a.size == b.size == (1024, 768)


def _saved_key_files(comfy):
    return sorted((comfy.user_dir / "flux2_lora").rglob("api_key"))


def test_key_route_through_comfyuis_server(comfy):
    status = comfy.get("/flux2_lora/key")
    assert status.status == 200 and status.headers.get("Cache-Control") == "no-store"
    assert status.json()["set"] and status.json()["env_var"] == "AIML_API_KEY"
    assert status.json()["last4"] == TEST_KEY[-4:] and TEST_KEY not in status.text
    other_key = "sk-e2e-saved-0123456789abcdef"
    try:
        answer = comfy.post("/flux2_lora/key", {"key": other_key})
        assert answer.status == 200 and answer.json()["changed"] and answer.json()["saved"]
        (saved,) = _saved_key_files(comfy)
        assert saved.read_text().strip() == other_key and saved.stat().st_mode & 0o777 == 0o600
        # Private folder too, although the result cache created user/flux2_lora first (0755).
        assert saved.parent.stat().st_mode & 0o777 == 0o700
        # The environment variable still wins, and the route says so; neither key comes back.
        assert comfy.get("/flux2_lora/key").json()["last4"] == TEST_KEY[-4:]
        assert other_key not in answer.text and TEST_KEY not in answer.text
        refused = comfy.post("/flux2_lora/key", raw=b'{"key": "x"}', content_type="text/plain")
        assert refused.status in (400, 415) and "error" in refused.json()
    finally:
        cleared = comfy.post("/flux2_lora/key", {"clear": True})
    assert cleared.status == 200 and _saved_key_files(comfy) == [] and not cleared.json()["saved"]


def test_budget_route_through_comfyuis_server(comfy, standin):
    status = comfy.get("/flux2_lora/budget").json()
    assert {"spent", "budget", "left", "source", "setting", "message"} <= set(status)
    try:
        answer = comfy.post("/flux2_lora/budget", {"budget": 0})
        assert answer.status == 200 and answer.json()["budget"] == 0 and answer.json()["left"] == 0
        refused = comfy.post_prompt(text_to_image_prompt(), expect_success=False)
        assert refused["status"]["status_str"] == "error"
        assert "budget" in status_messages(refused).lower()
        assert standin.post_count == 0, "refused before sending"
        bad = comfy.post("/flux2_lora/budget", {"budget": -1})
        assert bad.status == 400 and "error" in bad.json()
    finally:
        reset = comfy.post("/flux2_lora/budget", {"budget": None})
    assert reset.status == 200 and reset.json()["budget"] is None
    assert comfy.post_prompt(text_to_image_prompt())["status"]["status_str"] == "success"
    assert standin.post_count == 1
