"""The shipped UI workflows in the real frontend (headless Chromium): load, run from the page, no pack errors.

Two frontends: the one ComfyUI 0.3.64 pins (1.27.10) and the newest (1.58.1, via --front-end-root).
Screenshots of each workflow after its run go to the folder printed at the end of the session.
"""

from __future__ import annotations

import pytest
from workflow_check import ui_to_api

from .conftest import NEWEST_FRONTEND, PINNED_FRONTEND, frontend_root
from .harness import cached_nodes, status_messages
from .page import ComfyPage
from .workflows import UI_FILES, defs_from_object_info, expected_run, load, picture_problems, seen_requests

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module", params=[PINNED_FRONTEND, NEWEST_FRONTEND])
def frontend(request, comfy_factory, frontend_roots):
    """(frontend version, the ComfyUI serving it); one ComfyUI per frontend for the whole session."""
    version = request.param
    root = frontend_root(frontend_roots, version)
    server = comfy_factory("default") if root is None else comfy_factory(f"frontend-{version}", front_end_root=root)
    return version, server


def _load_images(doc):
    return [n["widgets_values"][0] for n in doc["nodes"] if n["type"] == "LoadImage"]


def _named_links(doc):
    """The file's links as [id, from node, from slot, to node, to input name, type], sorted."""
    nodes = {node["id"]: node for node in doc["nodes"]}
    return sorted([link_id, source, slot, target, nodes[target]["inputs"][to_slot]["name"], kind]
                  for link_id, source, slot, target, to_slot, kind in doc["links"])


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_workflow_loads_and_runs_from_the_page(frontend, path, browser, standin, screenshot_dir):
    version, comfy = frontend
    doc = load(path)
    for name in _load_images(doc):
        comfy.add_input_picture(name)
    comfy.free_caches()  # every node runs again, not ComfyUI's cached outputs of an earlier test
    comfy.clear_result_cache()  # and the pack sends its requests
    page = ComfyPage(browser, comfy).open()
    try:
        assert page.frontend_version() == version
        state = page.load_workflow(doc)
        unknown = [node for node in state["nodes"] if not node["registered"] or node["has_errors"]]
        assert unknown == [], "node types the frontend does not know"
        assert sorted(state["links"]) == _named_links(doc), "the frontend changed the workflow's links"
        assert [t for t in page.toasts() if "Workflow" in t or "link" in t.lower()] == []

        known = set(comfy.history())
        status, answer = page.queue()
        assert status == 200, f"ComfyUI refused the prompt the page queued: {answer}"
        entry = comfy.wait_for_new_entry(known)
        page.wait_idle()
        page.page.wait_for_timeout(500)  # the output pictures appear on the nodes

        assert entry["status"]["status_str"] == "success", status_messages(entry)
        assert cached_nodes(entry) == []
        queued = entry["prompt"][2]
        # The page's conversion and the one the end-to-end tests use (tests/workflow_check.py) agree.
        defs = defs_from_object_info(comfy.object_info())
        assert {k: v["inputs"] for k, v in queued.items()} == {
            k: v["inputs"] for k, v in ui_to_api(doc, defs).items()}
        expected = expected_run(queued, comfy.input_dir)
        assert picture_problems(comfy, entry, expected) == []
        assert seen_requests(standin.requests()) == expected.requests
        assert any(status == 200 and url.endswith("/js/flux2_lora.js") for status, url in page.pack_responses), (
            "the pack's frontend extension was not loaded")
        assert page.pack_errors() == [], page.all_errors()
    finally:
        # After the run, or as far as the test got when it failed.
        page.screenshot(screenshot_dir / f"{version}-{path.stem}.png")
        page.close()
