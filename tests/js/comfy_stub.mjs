// Import this first in a test of a frontend module that uses ComfyUI (then import the module itself
// with await import(...)): ComfyUI's scripts resolve to fake_comfy.mjs and `document` is fake_dom.mjs.
import { register } from "node:module";
import "./fake_dom.mjs";

register("./comfy_hooks.mjs", import.meta.url);

export const { api, app } = await import("./fake_comfy.mjs");

/** Let pending promises (a route's answer, its JSON) settle. */
export async function settle() {
  for (let i = 0; i < 10; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

/** A node as LiteGraph makes one, with widgets {name, value} and a DOM widget like the frontend's. */
export function fakeNode(type, widgets = {}, prototype = {}) {
  const node = Object.create(prototype);
  Object.assign(node, {
    type, comfyClass: type, graph: {}, size: [200, 100], sized: [],
    widgets: Object.entries(widgets).map(([name, value]) => ({ name, value })),
    addDOMWidget(name, type, element, options) {
      const widget = { name, type, element, options };
      this.widgets.push(widget);
      return widget;
    },
    computeSize() { return [this.size[0], 100 + 16 * (this.flux2Display?.lines().length ?? 0)]; },
    setSize(size) { this.size = size; this.sized.push(size); },
    setDirtyCanvas() {},
  });
  return node;
}

/** Change a widget's value as the frontend does: set it, then call its callback. */
export function setWidget(node, name, value) {
  const widget = node.widgets.find((candidate) => candidate.name === name);
  widget.value = value;
  widget.callback?.(value);
}

/** A graph of nodes found by id (getNodeById), as LiteGraph's. */
export function fakeGraph(nodes) {
  return { _nodes: nodes, getNodeById: (id) => nodes.find((node) => String(node.id) === String(id)) ?? null };
}
