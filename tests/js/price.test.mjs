// web/js/price.js: the price line on Generate and Edit, asked as their settings change.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import { api, app, fakeGraph, fakeNode, setWidget, settle } from "./comfy_stub.mjs";

const { generatingNodes, onExecutedPrices, schedulePrice, showsPrice, sizeChangesPrices } =
  await import("../../web/js/price.js");
const { showsDisplay } = await import("../../web/js/node_display.js");

function node(type, widgets, ...extend) {
  const prototype = {};
  showsDisplay(prototype);
  extend.forEach((add) => add(prototype));
  const made = fakeNode(type, widgets, prototype);
  made.onNodeCreated();
  return made;
}

beforeEach(() => {
  api.calls.length = 0;
  api.answer = (route) => ({ text: `About 0.03 USD for ${new URLSearchParams(route.split("?")[1]).get("num_images")}` });
});

test("the price follows num_images and the connected Image Size node, after a pause", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const size = node("Flux2LoraImageSize", { preset: "custom", width: 1024.4, height: 768 }, sizeChangesPrices);
  const gen = node("Flux2LoraGenerate", { num_images: 2 }, showsPrice);
  gen.findInputSlot = (name) => (name === "image_size" ? 0 : -1);
  gen.getInputNode = () => size;
  app.rootGraph = fakeGraph([size, gen]);
  setWidget(gen, "num_images", 3);
  t.mock.timers.tick(300);
  await settle();
  assert.deepEqual(api.calls.map((call) => call.route),
    ["/flux2_lora/price?model=generate&num_images=3&width=1024&height=768"]);
  assert.equal(gen.flux2Display.text(), "About 0.03 USD for 3");
  t.mock.timers.tick(300);
  await settle();
  assert.equal(api.calls.length, 1); // nothing changed: not asked again
  setWidget(size, "preset", "square_hd");
  t.mock.timers.tick(300);
  await settle();
  assert.equal(api.calls.at(-1).route, "/flux2_lora/price?model=generate&num_images=3&preset=square_hd");
  onExecutedPrices(); // a run: asked again, the rate may be known now
  t.mock.timers.tick(300);
  await settle();
  assert.equal(api.calls.length, 3);
});

test("an answer for settings that changed meanwhile is dropped; a removed node is not asked", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const gen = node("Flux2LoraEdit", { num_images: 1 }, showsPrice);
  const pending = [];
  api.answer = () => new Promise((resolve) => { pending.push(resolve); });
  t.mock.timers.tick(300);
  await settle();
  setWidget(gen, "num_images", 4);
  t.mock.timers.tick(300);
  await settle();
  assert.equal(api.calls.at(-1).route, "/flux2_lora/price?model=edit&num_images=4");
  pending[0]({ text: "stale" });
  await settle();
  assert.equal(gen.flux2Display.text(), "");
  pending[1](null);
  await settle();
  assert.equal(gen.flux2Display.text(), "Price unknown: the Flux2 LoRA price route did not answer.");
  gen.graph = null;
  schedulePrice(gen, true);
  t.mock.timers.tick(300);
  await settle();
  assert.equal(api.calls.length, 2);
  schedulePrice(fakeNode("Flux2LoraAdapter"));
  schedulePrice(null);
});

test("every generating node, inside subgraphs too, each once", () => {
  const inner = fakeNode("Flux2LoraEdit");
  const subgraph = { nodes: [inner] };
  const top = [fakeNode("Flux2LoraGenerate"), { type: "Subgraph", subgraph }, { type: "Subgraph", subgraph },
    fakeNode("Flux2LoraImageSize")];
  assert.deepEqual(generatingNodes({ _nodes: top }), [top[0], inner]);
  app.rootGraph = null;
  app.graph = null;
  assert.deepEqual(generatingNodes(), []);
});
