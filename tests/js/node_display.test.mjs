// web/js/node_display.js: the display widget, its rows, the counting status and the shared node hooks.
import assert from "node:assert/strict";
import { test } from "node:test";
import { app, fakeGraph, fakeNode } from "./comfy_stub.mjs";

const { attachDisplay, displayOf, onStatus, refreshDisplay, showsDisplay } = await import("../../web/js/node_display.js");

const rows = (node) => node.flux2DisplayWidget.element.children.map((row) => [row.dataset.part, row.textContent]);

test("the display is a DOM widget that is neither saved nor sent, added once", () => {
  const node = fakeNode("Flux2LoraGenerate", { prompt: "a fox" });
  attachDisplay(node);
  attachDisplay(node);
  assert.equal(node.widgets.length, 2);
  const widget = node.flux2DisplayWidget;
  assert.equal(widget.type, "flux2_display");
  assert.equal(widget.serialize, false);
  assert.equal(widget.options.serialize, false);
  assert.equal(widget.element.className, "flux2-lora-display");
  displayOf(node).set("price", ["About 1 credit"]);
  assert.equal(widget.options.getValue(), "About 1 credit");
  assert.equal(widget.options.getMinHeight(), 16 + 4);
});

test("refreshing shows a row per line, coloured by tone, and grows the node to fit", () => {
  const node = fakeNode("Flux2LoraGenerate");
  attachDisplay(node);
  displayOf(node).set("run", ["Last run: 1 picture, 12 credits", "This session: 12 credits"]);
  displayOf(node).set("price", ["Price unknown."], "warn");
  refreshDisplay(node);
  assert.deepEqual(rows(node), [["price", "Price unknown."], ["run", "Last run: 1 picture, 12 credits"],
    ["run", "This session: 12 credits"]]);
  assert.equal(node.flux2DisplayWidget.element.children[0].style.color, "#f0c674");
  assert.deepEqual(node.size, [200, 148]);
});

test("without DOM widgets the lines are drawn under the node on the canvas", () => {
  const prototype = {};
  showsDisplay(prototype);
  const node = fakeNode("Flux2LoraImageSize", {}, prototype);
  node.addDOMWidget = undefined;
  node.onNodeCreated();
  assert.equal(node.flux2DisplayWidget, null);
  displayOf(node).set("size", ["1024 × 768 · 4:3 · 0.79 MP"]);
  const drawn = [];
  const ctx = { save() {}, restore() {}, fillText: (text, x, y) => drawn.push([text, x, y]) };
  node.onDrawForeground(ctx);
  assert.deepEqual(drawn, [["1024 × 768 · 4:3 · 0.79 MP", 4, 106]]);
});

test("a saved node keeps its widget values without holes", () => {
  const prototype = {};
  showsDisplay(prototype);
  const node = fakeNode("Flux2LoraAdapter", {}, prototype);
  const saved = { widgets_values: ["a", , "b"] }; // eslint-disable-line no-sparse-arrays
  node.onSerialize(saved);
  assert.deepEqual(saved.widgets_values, ["a", "b"]);
});

test("the status counts the seconds while waiting, found by execution id, and stops", (t) => {
  t.mock.timers.enable({ apis: ["setInterval", "Date"] });
  const prototype = {};
  showsDisplay(prototype);
  const inner = fakeNode("Flux2LoraGenerate", {}, prototype);
  inner.id = 7;
  inner.onNodeCreated();
  const holder = { id: 5, subgraph: fakeGraph([inner]) };
  app.rootGraph = fakeGraph([holder]);
  onStatus({ detail: { node: "5:7", text: "Waiting for the AI/ML API..." } });
  assert.deepEqual(rows(inner), [["status", "Waiting for the AI/ML API... 0 s"]]);
  t.mock.timers.tick(3000);
  assert.deepEqual(rows(inner), [["status", "Waiting for the AI/ML API... 3 s"]]);
  inner.onRemoved(); // the counter stops with the node
  t.mock.timers.tick(2000);
  assert.deepEqual(rows(inner), [["status", "Waiting for the AI/ML API... 3 s"]]);
  onStatus({ detail: { node: "5:7", text: "" } });
  assert.deepEqual(rows(inner), []);
  onStatus({ detail: { node: "9", text: "no such node" } });
});
