"""The ComfyUI frontend in a Playwright page: load a workflow as drag-and-drop does, queue it, watch errors.

    page = ComfyPage(browser, comfy).open()
    report = page.load_workflow(doc)        # missing node types, links the frontend changed
    page.queue()                            # app.queuePrompt, as the Queue button does
    page.pack_errors()                      # errors raised from the pack's own scripts
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .harness import PACK_NAME, ComfyUIProcess

# Settings that keep first-run screens (template browser, tours) off the canvas; the
# frontends that do not know one ignore it.
QUIET_SETTINGS = {
    "Comfy.TutorialCompleted": True,
    "Comfy.Validation.Workflows": True,  # the default; the tests rely on its link check running
}
PACK_SCRIPTS = f"/extensions/{PACK_NAME}/"
PAGE_TIMEOUT_MS = 120_000

# Recorded in the page before any script runs: every error with its stack and source,
# including those the frontend catches and only logs (console.error from an extension hook).
_ERROR_RECORDER = """
(() => {
  const errors = [];
  window.__e2eErrors = errors;
  const describe = (value) => {
    if (value instanceof Error) return `${value.name}: ${value.message}\\n${value.stack || ''}`;
    try { return typeof value === 'string' ? value : JSON.stringify(value); } catch { return String(value); }
  };
  window.addEventListener('error', (event) => errors.push({
    kind: 'error', text: describe(event.error || event.message), source: event.filename || ''}));
  window.addEventListener('unhandledrejection', (event) => errors.push({
    kind: 'unhandledrejection', text: describe(event.reason), source: ''}));
  const consoleError = console.error.bind(console);
  console.error = (...args) => {
    errors.push({kind: 'console.error', text: args.map(describe).join(' '), source: ''});
    consoleError(...args);
  };
})();
"""

# The graph as the frontend holds it after loading: node types it knows, and its links
# as [id, from node, from slot, to node, to input name, type].
_GRAPH_STATE = """
() => {
  const LiteGraph = window.LiteGraph ?? window.comfyAPI?.litegraph?.LiteGraph;
  const graph = window.app.graph;
  const saved = graph.serialize();
  const byId = new Map(saved.nodes.map((n) => [String(n.id), n]));
  // Slots by input name: a frontend may give a node more input slots (one per widget) than
  // the saved file has, which moves slot numbers without changing what is connected.
  const links = saved.links.map((l) => Array.isArray(l) ? l :
      [l.id, l.origin_id, l.origin_slot, l.target_id, l.target_slot, l.type])
    .map(([id, from, fromSlot, to, toSlot, type]) =>
      [id, from, fromSlot, to, byId.get(String(to))?.inputs?.[toSlot]?.name ?? `slot ${toSlot}`, type]);
  return {
    nodes: (graph._nodes ?? graph.nodes).map((n) => ({id: n.id, type: n.type,
        registered: !!(LiteGraph?.registered_node_types?.[n.type]), has_errors: !!n.has_errors})),
    links,
    saved_nodes: saved.nodes.map((n) => ({id: n.id, type: n.type, inputs: (n.inputs ?? []).map((i) => i.name)})),
  };
}
"""


# Scale and move the canvas so every node (with its title and the text under it) is on screen.
_FIT_VIEW = """
() => {
  const canvas = window.app.canvas;
  const nodes = window.app.graph._nodes ?? window.app.graph.nodes;
  if (!nodes.length) return;
  const title = 30, below = 80, margin = 40, left = 70, top = 90;  // sidebars and menus of the page
  const x0 = Math.min(...nodes.map((n) => n.pos[0]));
  const y0 = Math.min(...nodes.map((n) => n.pos[1] - title));
  const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0]));
  const y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1] + below));
  const width = canvas.canvas.clientWidth - left - margin, height = canvas.canvas.clientHeight - top - margin;
  const scale = Math.min(1, width / (x1 - x0), height / (y1 - y0));
  canvas.ds.scale = scale;
  canvas.ds.offset[0] = left / scale - x0;
  canvas.ds.offset[1] = top / scale - y0;
  canvas.setDirty(true, true);
}
"""


class ComfyPage:
    """One browser page on a ComfyUI server's frontend."""

    def __init__(self, browser: Any, comfy: ComfyUIProcess) -> None:
        self.browser = browser
        self.comfy = comfy
        self.context: Any = None
        self.page: Any = None
        self.page_errors: list[str] = []
        self.pack_responses: list[tuple[int, str]] = []  # (status, url) of every pack file served

    def open(self, settings: dict[str, Any] | None = None) -> ComfyPage:
        """Open the frontend and wait until ``window.app`` has its graph; returns self.

        ``settings`` are frontend settings to apply first, e.g. {"Comfy.VueNodes.Enabled": True}
        for the Nodes 2.0 renderer of newer frontends (they stay for later pages of this server).
        """
        self.comfy.write_settings({**QUIET_SETTINGS, **(settings or {})})
        self.context = self.browser.new_context(viewport={"width": 1600, "height": 900})
        self.context.add_init_script(_ERROR_RECORDER)
        self.page = self.context.new_page()
        self.page.set_default_timeout(PAGE_TIMEOUT_MS)
        self.page.on("pageerror", lambda error: self.page_errors.append(f"{error}\n{getattr(error, 'stack', '')}"))
        self.page.on("response", self._record_response)
        self.page.goto(self.comfy.url, wait_until="load")
        self.page.wait_for_function("() => window.app && window.app.graph && window.app.canvas")
        # Extensions finish setting up after the graph exists; the node definitions are registered by then.
        self.page.wait_for_function("() => (window.LiteGraph ?? window.comfyAPI?.litegraph?.LiteGraph)"
                                    "?.registered_node_types?.Flux2LoraGenerate")
        return self

    def close(self) -> None:
        if self.context is not None:
            self.context.close()
            self.context = None

    def _record_response(self, response: Any) -> None:
        if PACK_SCRIPTS in response.url:
            self.pack_responses.append((response.status, response.url))

    def frontend_version(self) -> str:
        """The version the page runs, as the frontend reports it."""
        return self.page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ ?? ''")

    def load_workflow(self, doc: dict[str, Any]) -> dict[str, Any]:
        """``app.loadGraphData(doc)``, as dropping the file on the canvas does; the graph state after it."""
        self.page.evaluate("async (doc) => { await window.app.loadGraphData(structuredClone(doc)); }", doc)
        self.page.wait_for_timeout(300)  # toasts and node resizing happen just after
        return self.page.evaluate(_GRAPH_STATE)

    def toasts(self) -> list[str]:
        """Texts of the toast messages on screen (the frontend's link check reports through them)."""
        return self.page.locator(".p-toast-message").all_inner_texts()

    def queue(self) -> tuple[int, Any]:
        """Queue the graph as the Queue button does; (status, body) of the page's POST /prompt.

        A prompt the server refuses (its node_errors are in the body) never reaches the history,
        so callers check this before waiting for a run.
        """
        def is_queue_post(response: Any) -> bool:
            return response.request.method == "POST" and response.url.split("?")[0].endswith("/prompt")

        with self.page.expect_response(is_queue_post) as answer:
            self.page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
        response = answer.value
        try:
            body = response.json()
        except Exception:  # not JSON: keep the text for the assertion message
            body = response.text()
        return response.status, body

    def pack_errors(self) -> list[str]:
        """Errors whose text or source names one of the pack's scripts (/extensions/<pack folder>/...)."""
        recorded = self.page.evaluate("() => window.__e2eErrors")
        texts = [f"{e['kind']}: {e['text']} {e['source']}" for e in recorded] + self.page_errors
        failed = [f"HTTP {status} for {url}" for status, url in self.pack_responses if status >= 400]
        return [text for text in texts if PACK_SCRIPTS in text] + failed

    def all_errors(self) -> list[str]:
        """Every error recorded, the frontend's own included (for messages when something fails)."""
        recorded = self.page.evaluate("() => window.__e2eErrors")
        return [f"{e['kind']}: {e['text'][:500]}" for e in recorded] + self.page_errors

    def screenshot(self, path: Path) -> Path:
        """The whole graph, fitted to the window, saved as ``path`` (nothing if the page never opened)."""
        if self.page is None:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.evaluate(_FIT_VIEW)
        self.page.wait_for_timeout(300)  # the next frame is drawn
        self.page.screenshot(path=str(path))
        return path

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Until the server's queue is empty (nothing running or pending)."""
        deadline = time.monotonic() + timeout
        while True:
            queue = self.comfy.get("/queue").json()
            if not queue["queue_running"] and not queue["queue_pending"]:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"ComfyUI's queue not empty after {timeout} s: {queue}")
            time.sleep(0.1)
