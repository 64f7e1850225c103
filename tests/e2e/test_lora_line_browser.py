"""The Adapter node's LoRA line in the real frontend (issue 19): classic canvas and Nodes 2.0.

The path is typed (in Nodes 2.0 into the node's own text box, as a user does; on the classic
canvas set as its edit dialog sets it, calling the widget's callback); after the typing pause the
line shows what the file is, then why another file will be refused. The line is the node's
display widget: never saved in the workflow, never sent with the prompt.
"""

from __future__ import annotations

import json

import pytest

from .conftest import NEWEST_FRONTEND, PINNED_FRONTEND
from .page import ComfyPage

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CLASSIC, NODES_2 = "classic", "nodes2"
CASES = [(PINNED_FRONTEND, CLASSIC), (NEWEST_FRONTEND, CLASSIC), (NEWEST_FRONTEND, NODES_2)]
GENUINE = "FLUX.2 [dev] LoRA · rank 16 · 195 MB · ai-toolkit"
GENUINE_PATTERN = r"^FLUX\.2 \[dev\] LoRA · rank 16 · 195 MB · ai-toolkit$"
SETTING = "/flux2_lora/lora_check/setting"

_ADD = """
() => {
  app.graph.clear();
  const node = LiteGraph.createNode('Flux2LoraAdapter'); node.pos = [200, 150]; app.graph.add(node);
  app.canvas.setDirty(true, true);
  return String(node.id);
}
"""
# What the canvas's text edit dialog does when the user confirms a new value.
_SET_PATH = """
([id, value]) => {
  const node = app.graph.getNodeById(id);
  const widget = node.widgets.find((w) => w.name === 'path');
  widget.value = value;
  widget.callback?.(value, app.canvas, node);
}
"""
_READ = """
(id) => {
  const node = app.graph.getNodeById(id);
  const widget = node.widgets.find((w) => w.name === 'flux2_display');
  const element = widget?.element;
  const vueNode = document.querySelector(`[data-node-id="${id}"]`);
  return {
    widget: widget ? widget.value : null,
    element: element ? element.innerText : null,
    height: element && element.isConnected ? element.getBoundingClientRect().height : 0,
    colour: element?.firstElementChild ? getComputedStyle(element.firstElementChild).color : null,
    inside: !!(vueNode && element && vueNode.contains(element)),
  };
}
"""


def _type_path(page, node_id, renderer, value):
    if renderer == NODES_2:
        box = page.page.locator(f'[data-node-id="{node_id}"] input, [data-node-id="{node_id}"] textarea').first
        box.click()
        box.fill("")
        box.type(value, delay=5)
        box.press("Enter")
        page.page.locator("body").click(position={"x": 5, "y": 450})  # leave the box, as a user does
    else:
        page.page.evaluate(_SET_PATH, [node_id, value])


def _wait_for_line(page, node_id, pattern):
    page.page.wait_for_function(
        """([id, pattern]) => new RegExp(pattern).test(app.graph.getNodeById(id)
             ?.widgets?.find((w) => w.name === 'flux2_display')?.element?.innerText ?? '')""",
        arg=[node_id, pattern], timeout=30_000)


@pytest.mark.parametrize(("version", "renderer"), CASES, ids=lambda v: str(v))
def test_adapter_line_follows_the_typed_path(servers, version, renderer, browser, standin, screenshot_dir):
    comfy = servers(version)
    assert comfy.post(SETTING, {"check_loras": "on"}).status == 200
    page = ComfyPage(browser, comfy).open(settings={"Comfy.VueNodes.Enabled": renderer == NODES_2})
    name = f"lora-line-{version}-{renderer}"
    try:
        page.page.wait_for_timeout(500)
        node_id = page.page.evaluate(_ADD)
        page.page.wait_for_timeout(500)
        genuine = f"{standin.lora_root_url}/files/flux2-dev-ai-toolkit-r16.safetensors"
        _type_path(page, node_id, renderer, genuine)
        _wait_for_line(page, node_id, GENUINE_PATTERN)
        shown = page.page.evaluate(_READ, node_id)
        page.screenshot(screenshot_dir / f"{name}-genuine.png")
        assert shown["element"] == GENUINE and shown["height"] > 0, shown
        if renderer == NODES_2:
            assert shown["inside"], shown  # mounted inside the node's own DOM
        else:
            assert shown["widget"] == GENUINE, shown

        _type_path(page, node_id, renderer, f"{standin.lora_root_url}/files/flux1-dev-kohya.safetensors")
        _wait_for_line(page, node_id, "^Will be refused: a LoRA for FLUX\\.1 \\[dev\\]")
        refused = page.page.evaluate(_READ, node_id)
        page.screenshot(screenshot_dir / f"{name}-refused.png")
        assert refused["colour"] != shown["colour"], (refused, shown)  # the refusal in its own colour

        # Typed, not run: each path's header read at most once (none if an earlier case of this server
        # checked it: the verdict is kept), a few hundred kB at most.
        stats = standin.lora_stats()
        assert all(n <= 1024 * 1024 for n in stats["bytes_served"].values()), stats
        assert stats["authorization_seen"] == 0
        saved = page.page.evaluate("() => JSON.parse(JSON.stringify(app.graph.serialize()))")
        text = json.dumps(saved, ensure_ascii=False)
        assert "Will be refused" not in text and "flux2_display" not in text
        (adapter,) = [n for n in saved["nodes"] if n["type"] == "Flux2LoraAdapter"]
        assert adapter["widgets_values"] == [f"{standin.lora_root_url}/files/flux1-dev-kohya.safetensors", 1.0]
        assert page.pack_errors() == [], page.all_errors()
    finally:
        page.close()
        comfy.post(SETTING, {"check_loras": None})
