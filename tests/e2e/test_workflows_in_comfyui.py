"""Every shipped workflow runs inside a real ComfyUI through POST /prompt, against the stand-in.

UI-format files are converted the way the frontend converts them (tests/workflow_check.py's
ui_to_api, with the node definitions the running server publishes; the browser tests check
that this conversion equals what the page queues).
"""

from __future__ import annotations

import pytest
from workflow_check import check_api_prompt, ui_to_api

from .harness import cached_nodes
from .workflows import (
    API_FILES,
    FOLDER,
    UI_FILES,
    defs_from_object_info,
    expected_run,
    input_pictures,
    load,
    picture_problems,
    seen_requests,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def defs(comfy):
    """The server's node definitions, read after the pictures LoadImage needs are in its input folder."""
    for path in UI_FILES:
        for node in load(path)["nodes"]:
            if node["type"] == "LoadImage":
                comfy.add_input_picture(node["widgets_values"][0])
    return defs_from_object_info(comfy.object_info())


def prompt_of(path, defs):
    doc = load(path)
    return doc["prompt"] if "prompt" in doc else ui_to_api(doc, defs)


def test_every_ui_workflow_and_the_api_workflow_are_covered():
    assert len(UI_FILES) >= 4 and len(API_FILES) >= 1


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.name)
def test_api_workflow_is_its_ui_workflow_converted_with_the_servers_definitions(path, defs):
    ui = FOLDER / path.name.replace(".api.json", ".json")
    assert load(path)["prompt"] == ui_to_api(load(ui), defs)


@pytest.mark.parametrize("path", API_FILES + UI_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_workflow_runs_to_success_in_comfyui(path, comfy, standin, defs):
    prompt = prompt_of(path, defs)
    assert check_api_prompt(prompt, defs) == []
    assert all((comfy.input_dir / name).is_file() for name in input_pictures(prompt))
    comfy.free_caches()  # ComfyUI runs every node, even if an earlier test ran the same prompt
    comfy.clear_result_cache()  # and the pack sends every request

    entry = comfy.post_prompt(prompt)

    assert cached_nodes(entry) == []
    expected = expected_run(prompt, comfy.input_dir)
    assert expected.pictures, "the workflow saves or previews no pictures"
    assert picture_problems(comfy, entry, expected) == []
    assert seen_requests(standin.requests()) == expected.requests
    downloads = sum(count for _, _, count in expected.requests)
    assert standin.file_get_count == downloads, "each picture downloaded once"
