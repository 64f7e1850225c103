// web/js/comfy.js: the helpers every feature uses, over a fake ComfyUI.
import assert from "node:assert/strict";
import { test } from "node:test";
import { app, fakeNode, setWidget } from "./comfy_stub.mjs";

const { chain, followWidgets, fromEnvironment, onWidgetChange, rootGraph, setting, toast, widgetValue } =
  await import("../../web/js/comfy.js");

test("chain calls the original handler first, then ours, and keeps the original's result", () => {
  const calls = [];
  const target = { greet(name) { calls.push(`original ${name}`); return 42; } };
  chain(target, "greet", function (name) { calls.push(`ours ${name} ${this === target}`); });
  assert.equal(target.greet("a"), 42);
  assert.deepEqual(calls, ["original a", "ours a true"]);
  const empty = {};
  chain(empty, "onNodeCreated", () => calls.push("only ours"));
  assert.equal(empty.onNodeCreated(), undefined);
  assert.equal(calls.at(-1), "only ours");
});

test("the root graph, whichever graph the canvas shows; widget values by name", () => {
  app.rootGraph = null;
  app.graph = "graph";
  assert.equal(rootGraph(), "graph");
  app.rootGraph = "root";
  assert.equal(rootGraph(), "root");
  const node = fakeNode("X", { preset: "square_hd", width: 512 });
  assert.equal(widgetValue(node, "width"), 512);
  assert.equal(widgetValue(node, "height"), undefined);
  assert.equal(widgetValue(undefined, "width"), undefined);
});

test("a toast in the frontend's corner, else errors in the console", (t) => {
  const shown = app.extensionManager.toast.shown;
  toast("success", "Flux2 LoRA check", "Saved.");
  assert.deepEqual(shown.at(-1), { severity: "success", summary: "Flux2 LoRA check", detail: "Saved.", life: 6000 });
  const warn = t.mock.method(console, "warn", () => {});
  const manager = app.extensionManager;
  app.extensionManager = undefined;
  try {
    toast("success", "S", "not shown");
    toast("error", "S", "shown");
  } finally {
    app.extensionManager = manager;
  }
  assert.deepEqual(warn.mock.calls.map((call) => call.arguments), [["S: shown"]]);
});

test("widget changes, node creation and a loaded workflow all update a node", () => {
  const updates = [];
  const prototype = {};
  followWidgets(prototype, ["width", "height"], (node, loaded) => updates.push([node.id, loaded]));
  const node = fakeNode("X", { width: 1, height: 2, seed: 3 }, prototype);
  node.id = 7;
  node.onNodeCreated();
  setWidget(node, "width", 5);
  setWidget(node, "seed", 5);
  node.onConfigure();
  assert.deepEqual(updates, [[7, false], [7, false], [7, true]]);
  const seen = [];
  onWidgetChange(node, ["seed"], () => seen.push("seed"));
  setWidget(node, "seed", 6);
  assert.deepEqual(seen, ["seed"]);
});

test("settings stand under Flux2 LoRA, empty by default; combos offer the environment first", () => {
  const onChange = () => {};
  assert.deepEqual(setting("CheckLoras", ["LoRA check", "Check LoRAs"], "Check", "Tip", { type: "combo", onChange }), {
    id: "Flux2LoRA.CheckLoras", category: ["Flux2 LoRA", "LoRA check", "Check LoRAs"], name: "Check",
    tooltip: "Tip", defaultValue: "", type: "combo", onChange,
  });
  assert.deepEqual(fromEnvironment("on", "on", "off"),
    [{ text: "from the environment (default: on)", value: "" }, "on", "off"]);
});
