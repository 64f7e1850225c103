"""What the pack's nodes show, read back from the real frontend: renderer x frontend x place.

Renderers: the classic canvas and Nodes 2.0 (Vue nodes, setting ``Comfy.VueNodes.Enabled``); frontends
1.27.10 (ComfyUI 0.3.64's pinned one) and 1.58.1; places: the top level and inside a subgraph (made with
``graph.convertToSubgraph`` and opened with ``canvas.openSubgraph``, as "Convert to Subgraph" does).
Nodes 2.0 texts are read from the node's DOM (``[data-node-id="..."]``); classic texts from the
display widget the frontend holds (its value) and its element laid over the canvas (its height > 0).

Frontend 1.27.10's Vue nodes are a hidden experiment (setting type "hidden"): they render only a fixed
list of widget types, no DOM widgets, and never follow a widget value changed from outside, so no
display can show there; those cases are left out (the classic canvas of 1.27.10 shows everything).
"""

from __future__ import annotations

import json
import re

import pytest

from .conftest import NEWEST_FRONTEND, PINNED_FRONTEND
from .harness import cached_nodes, status_messages
from .page import ComfyPage

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CLASSIC, NODES_2 = "classic", "nodes2"
TOP, SUBGRAPH = "top", "subgraph"
LATENCY = 4.0  # seconds the stand-in waits before answering: the status shows meanwhile
SIZE_TEXT = "1024 × 768 · 4:3 · 0.79 MP"
# The price line (web/js/price.js) follows the status and comes before the last run.
PRICE = re.compile(r"^Price: ~\$0\.06( \([\d,]+ credits\))? for 1 picture 1024x768$")
PRICE_LINE = r"Price: ~\$0\.06( \([\d,]+ credits\))? for 1 picture 1024x768"
WAITING = re.compile(rf"^Waiting for the AI/ML API \(1 picture\)\.\.\. \d+ s\n{PRICE_LINE}$")
AFTER_RUN = re.compile(rf"^{PRICE_LINE}\nLast run: 1 picture, [\d,.]+ credits\n.*\nThis session: [\d,.]+ credits · "
                       "ComfyUI total: ", re.DOTALL)
CASES = [(version, renderer, place) for version in (PINNED_FRONTEND, NEWEST_FRONTEND)
         for renderer in (CLASSIC, NODES_2) for place in (TOP, SUBGRAPH)
         if not (version == PINNED_FRONTEND and renderer == NODES_2)]

# Image Size -> Generate -> Preview Image; the seed fixed, so queuing again asks for the same inputs.
# In a subgraph: Image Size and Generate converted into one, which the canvas then opens.
_BUILD = """
(args) => {
  const [place, prompt] = args;
  const graph = app.graph;
  graph.clear();
  const size = LiteGraph.createNode('Flux2LoraImageSize'); size.pos = [40, 140]; graph.add(size);
  const gen = LiteGraph.createNode('Flux2LoraGenerate'); gen.pos = [400, 140]; graph.add(gen);
  const preview = LiteGraph.createNode('PreviewImage'); preview.pos = [940, 140]; graph.add(preview);
  size.connect(0, gen, gen.findInputSlot('image_size'));
  gen.connect(0, preview, 0);
  const set = (node, name, value) => { node.widgets.find((w) => w.name === name).value = value; };
  set(gen, 'prompt', prompt);
  set(gen, 'seed', 4242);
  set(gen, 'control_after_generate', 'fixed');
  if (place === 'top') return {size: String(size.id), gen: String(gen.id), path: [String(gen.id)]};
  const {node: holder, subgraph} = graph.convertToSubgraph(new Set([size, gen]));
  const inner = subgraph.nodes ?? subgraph._nodes;
  const innerSize = inner.find((n) => n.type === 'Flux2LoraImageSize');
  const innerGen = inner.find((n) => n.type === 'Flux2LoraGenerate');
  if (place === 'subgraph') app.canvas.openSubgraph(subgraph, holder);
  return {size: String(innerSize.id), gen: String(innerGen.id), path: [String(holder.id), String(innerGen.id)]};
}
"""

# What each node of the graph on screen shows: its display widget's value (classic state),
# the display element's text and height, and the text of the node's own DOM (Nodes 2.0).
_READ = """
(ids) => {
  const out = {};
  for (const [key, id] of Object.entries(ids)) {
    const node = app.canvas.graph.getNodeById(id);
    const widget = node?.widgets?.find((w) => w.name === 'flux2_display');
    const element = widget?.element;
    const vueNode = document.querySelector(`[data-node-id="${id}"]`);
    out[key] = {
      widget: widget ? widget.value : null,
      element: element ? element.innerText : null,
      height: element && element.isConnected ? element.getBoundingClientRect().height : 0,
      dom: vueNode ? vueNode.innerText : null,
      inside: !!(vueNode && element && vueNode.contains(element)),
    };
  }
  return out;
}
"""


def _open(browser, comfy, renderer):
    page = ComfyPage(browser, comfy).open(settings={"Comfy.VueNodes.Enabled": renderer == NODES_2})
    page.page.wait_for_timeout(500)  # Nodes 2.0 mounts its node components just after
    return page


def _texts(page, ids, renderer):
    """{"size": text, "gen": text} as the renderer shows them; checks the text is on screen."""
    read = page.page.evaluate(_READ, {"size": ids["size"], "gen": ids["gen"]})
    texts = {}
    for key, seen in read.items():
        if renderer == NODES_2:
            assert seen["dom"] is not None, f"no [data-node-id={ids[key]}] in the page"
            assert seen["inside"] and seen["element"] in seen["dom"], seen  # mounted inside the node
        else:
            assert seen["widget"] == seen["element"], seen
        assert seen["height"] > 0 or not seen["element"], f"the {key} display takes no room: {seen}"
        texts[key] = seen["element"]
    return texts


def _wait_for_text(page, ids, pattern, timeout_ms=30_000):
    page.page.wait_for_function(
        """([id, pattern]) => new RegExp(pattern, 's').test(app.canvas.graph.getNodeById(id)
             ?.widgets?.find((w) => w.name === 'flux2_display')?.element?.innerText ?? '')""",
        arg=[ids["gen"], pattern], timeout=timeout_ms)


def _saved_values(doc):
    """widgets_values of every node in a saved workflow, subgraph definitions included, by type."""
    nodes = list(doc["nodes"])
    for subgraph in (doc.get("definitions") or {}).get("subgraphs", []):
        nodes += subgraph["nodes"]
    return {node["type"]: node.get("widgets_values") for node in nodes}


@pytest.mark.parametrize(("version", "renderer", "place"), CASES, ids=lambda v: str(v))
def test_node_texts_while_waiting_and_after_the_run_and_nothing_saved(
        servers, version, renderer, place, browser, standin, screenshot_dir):
    comfy = servers(version)
    comfy.free_caches()
    comfy.clear_result_cache()
    standin.configure(latency=LATENCY)
    page = _open(browser, comfy, renderer)
    name = f"display-{version}-{renderer}-{place}"
    try:
        assert page.frontend_version() == version
        ids = page.page.evaluate(_BUILD, [place, f"a fox, {name}"])
        page.page.wait_for_timeout(500)
        _wait_for_text(page, ids, "^Price: ")
        before = _texts(page, ids, renderer)
        assert before["size"] == SIZE_TEXT and PRICE.match(before["gen"]), before

        known = set(comfy.history())
        status, answer = page.queue()
        assert status == 200, answer  # refused prompts never reach the history
        _wait_for_text(page, ids, "^Waiting for the AI/ML API")
        page.page.wait_for_timeout(1200)  # the seconds count up
        waiting = _texts(page, ids, renderer)
        page.screenshot(screenshot_dir / f"{name}-waiting.png")
        assert WAITING.match(waiting["gen"]), waiting
        assert not waiting["gen"].split("\n")[0].endswith(" 0 s"), waiting
        assert waiting["size"] == SIZE_TEXT

        entry = comfy.wait_for_new_entry(known)
        assert entry["status"]["status_str"] == "success", status_messages(entry)
        _wait_for_text(page, ids, "Last run:")
        after = _texts(page, ids, renderer)
        page.screenshot(screenshot_dir / f"{name}-after.png")
        assert AFTER_RUN.match(after["gen"]), after
        assert "Waiting" not in after["gen"]
        assert after["size"] == SIZE_TEXT
        assert standin.post_count == 1

        # Saved and loaded again, the workflow holds only the nodes' own values, in their places,
        # and its prompt asks ComfyUI for the same thing: answered from its cache, nothing sent.
        # As a saved file holds it: JSON (which drops undefined fields; null ones break 1.58.1's loader).
        doc = page.page.evaluate("() => JSON.parse(JSON.stringify((app.rootGraph ?? app.graph).serialize()))")
        text = json.dumps(doc, ensure_ascii=False)
        for shown in (SIZE_TEXT, "Last run", "This session", "Price:", "flux2_display"):
            assert shown not in text, f"{shown!r} was saved in the workflow"
        values = _saved_values(doc)
        assert values["Flux2LoraImageSize"] == ["landscape_4_3", 1024, 768]
        assert values["Flux2LoraGenerate"][:3] == [f"a fox, {name}", 4242, "fixed"]
        assert len(values["Flux2LoraGenerate"]) == 11  # 10 inputs with widgets + control_after_generate
        prompt = page.page.evaluate("async () => (await app.graphToPrompt()).output")
        assert "flux2_display" not in json.dumps(prompt) and SIZE_TEXT not in json.dumps(prompt, ensure_ascii=False)

        page.load_workflow(doc)
        known = set(comfy.history())
        status, answer = page.queue()
        assert status == 200, answer  # refused prompts never reach the history
        again = comfy.wait_for_new_entry(known)
        assert again["status"]["status_str"] == "success", status_messages(again)
        assert ":".join(ids["path"]) in cached_nodes(again), cached_nodes(again)
        assert standin.post_count == 1, "queuing the saved workflow again sent a request"
        assert again["prompt"][2] == entry["prompt"][2]
        assert page.pack_errors() == [], page.all_errors()
    finally:
        standin.configure(latency=0)
        page.close()


@pytest.mark.parametrize(("version", "renderer"), sorted({case[:2] for case in CASES}), ids=lambda v: str(v))
def test_a_run_while_the_top_level_is_shown_shows_inside_the_subgraph_when_opened(
        servers, version, renderer, browser, standin, screenshot_dir):
    # The frontend tells only the nodes of the graph on screen about their run (node.onExecuted);
    # the pack's display follows the run's event from the root graph down, so it is there when opened.
    comfy = servers(version)
    comfy.free_caches()
    comfy.clear_result_cache()
    page = _open(browser, comfy, renderer)
    try:
        ids = page.page.evaluate(_BUILD, ["subgraph-closed", f"a fox, closed subgraph, {version} {renderer}"])
        known = set(comfy.history())
        status, answer = page.queue()
        assert status == 200, answer  # refused prompts never reach the history
        entry = comfy.wait_for_new_entry(known)
        assert entry["status"]["status_str"] == "success", status_messages(entry)
        page.page.wait_for_timeout(500)
        page.page.evaluate("""(holderId) => { const holder = app.graph.getNodeById(holderId);
                                              app.canvas.openSubgraph(holder.subgraph, holder); }""", ids["path"][0])
        page.page.wait_for_timeout(800)
        opened = _texts(page, ids, renderer)
        page.screenshot(screenshot_dir / f"display-{version}-{renderer}-subgraph-opened-after-run.png")
        assert AFTER_RUN.match(opened["gen"]), opened
        assert opened["size"] == SIZE_TEXT
        assert page.pack_errors() == [], page.all_errors()
    finally:
        page.close()


@pytest.mark.parametrize("renderer", [CLASSIC, NODES_2])
@pytest.mark.parametrize("version", [PINNED_FRONTEND, NEWEST_FRONTEND])
def test_key_panel_budget_setting_and_menu_entry(servers, version, renderer, browser, screenshot_dir):
    comfy = servers(version)
    page = _open(browser, comfy, renderer)
    p = page.page
    try:
        gen = p.evaluate("""() => { app.graph.clear(); const g = LiteGraph.createNode('Flux2LoraGenerate');
            g.pos = [300, 150]; app.graph.add(g); app.canvas.setDirty(true, true); return String(g.id); }""")
        p.wait_for_timeout(500)
        # The node menu entry, from a right click on the node's title as a user does it.
        if renderer == NODES_2:
            p.locator(f'[data-node-id="{gen}"]').first.click(button="right", position={"x": 60, "y": 12})
        else:
            x, y = p.evaluate("""(id) => { const n = app.graph.getNodeById(id);
                const r = app.canvas.canvas.getBoundingClientRect();
                const c = app.canvas.ds.convertOffsetToCanvas([n.pos[0] + 40, n.pos[1] - 15]);
                return [r.left + c[0], r.top + c[1]]; }""", gen)
            p.mouse.click(x, y, button="right")
        p.wait_for_timeout(500)
        entry = p.get_by_text("Set AI/ML API key…")
        if version == PINNED_FRONTEND and renderer == NODES_2:
            # 1.27.10's hidden Vue nodes open no node menu at all; the command stands in for it.
            assert entry.count() == 0
            p.evaluate("() => app.extensionManager.command.execute('Flux2LoRA.SetApiKey')")
        else:
            assert entry.count() == 1
            page.screenshot(screenshot_dir / f"menu-{version}-{renderer}.png")
            entry.first.click()
        p.get_by_text("Flux2 LoRA: AI/ML API key").wait_for()
        p.get_by_text("Key set (ends in ").first.wait_for()  # the key panel asked the key route
        page.screenshot(screenshot_dir / f"key-dialog-{version}-{renderer}.png")
        p.get_by_role("button", name="Close").last.click()

        # The credit budget setting reaches the budget route (after the typing pause).
        p.evaluate("() => app.extensionManager.setting.set('Flux2LoRA.CreditBudget', '1,000,000')")
        p.wait_for_function("""async () => (await (await fetch('/flux2_lora/budget')).json()).budget === 1000000""")
        p.evaluate("() => app.extensionManager.setting.set('Flux2LoRA.CreditBudget', '')")
        p.wait_for_function("""async () => (await (await fetch('/flux2_lora/budget')).json()).budget === null""")
        assert page.pack_errors() == [], page.all_errors()
    finally:
        page.close()
