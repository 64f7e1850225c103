// web/js/image_size.js: the Image Size node's size line, live as its widgets change.
import assert from "node:assert/strict";
import { test } from "node:test";
import { fakeNode, setWidget } from "./comfy_stub.mjs";

const { showsSize, SIZE_WIDGETS } = await import("../../web/js/image_size.js");
const { showsDisplay } = await import("../../web/js/node_display.js");

test("the size follows the preset, or width and height when custom, and a loaded workflow", () => {
  assert.deepEqual(SIZE_WIDGETS, ["preset", "width", "height"]);
  const prototype = {};
  showsDisplay(prototype);
  showsSize(prototype, { square_hd: [1024, 1024], landscape_4_3: [1024, 768] });
  const node = fakeNode("Flux2LoraImageSize", { preset: "landscape_4_3", width: 512, height: 512 }, prototype);
  node.onNodeCreated();
  assert.equal(node.flux2Display.text(), "1024 × 768 · 4:3 · 0.79 MP");
  setWidget(node, "preset", "custom");
  assert.equal(node.flux2Display.text(), "512 × 512 · 1:1 · 0.26 MP");
  node.widgets[0].value = "square_hd"; // as a loaded workflow sets it, without callbacks
  node.onConfigure();
  assert.equal(node.flux2Display.text(), "1024 × 1024 · 1:1 · 1.05 MP");
  setWidget(node, "preset", "unknown");
  assert.equal(node.flux2Display.text(), "");
});
