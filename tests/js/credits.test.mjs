// web/js/credits.js: a run's lines on the generating node, the session's total, the credit budget setting.
import assert from "node:assert/strict";
import { test } from "node:test";
import { api, app, fakeGraph, fakeNode, settle } from "./comfy_stub.mjs";

const { CREDIT_BUDGET_SETTING, onExecuted, showsRuns } = await import("../../web/js/credits.js");
const { attachDisplay } = await import("../../web/js/node_display.js");

const text = (node) => node.flux2Display.text();

function generatingNode(id) {
  const prototype = {};
  showsRuns(prototype);
  const node = fakeNode("Flux2LoraGenerate", {}, prototype);
  node.id = id;
  attachDisplay(node);
  return node;
}

test("a run's credits show on its node, and every node's session line follows the total", async (t) => {
  const first = generatingNode(1);
  const second = generatingNode(2);
  app.rootGraph = fakeGraph([first, second]);
  onExecuted({ detail: { node: "1", output: { flux2_run: ["a"], flux2_credits: [12], flux2_images: [1] } } });
  assert.equal(text(first), "Last run: 1 picture, 12 credits\nThis session: 12 credits");
  onExecuted({ detail: { node: "2", output: { flux2_run: ["b"], flux2_credits: [3], flux2_images: [2] } } });
  assert.equal(text(first), "Last run: 1 picture, 12 credits\nThis session: 15 credits");
  assert.equal(text(second), "Last run: 2 pictures, 3 credits\nThis session: 15 credits");
  onExecuted({ detail: { node: "1", output: { images: [] } } }); // not a Flux2 LoRA run
  assert.equal(text(first), "Last run: 1 picture, 12 credits\nThis session: 15 credits");

  // The credit budget setting's answer updates every node showing a run; a removed one no longer follows.
  second.onRemoved();
  t.mock.timers.enable({ apis: ["setTimeout"] });
  api.answer = () => ({ spent: 15, budget: 100, message: "Credit budget: 100 credits." });
  CREDIT_BUDGET_SETTING.onChange("100", "");
  t.mock.timers.tick(800);
  await settle();
  assert.deepEqual(api.calls.at(-1).body, { budget: 100 });
  assert.equal(api.calls.at(-1).route, "/flux2_lora/budget");
  assert.equal(text(first), "Last run: 1 picture, 12 credits\nThis session: 15 credits · ComfyUI total: 15 of 100 budget, 85 left");
  assert.equal(text(second), "Last run: 2 pictures, 3 credits\nThis session: 15 credits");
  assert.deepEqual(app.extensionManager.toast.shown.at(-1),
    { severity: "success", summary: "Flux2 LoRA credit budget", detail: "Credit budget: 100 credits.", life: 6000 });
});

test("the credit budget setting: words its failures as before", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  api.answer = () => null;
  CREDIT_BUDGET_SETTING.onChange("5", undefined);
  t.mock.timers.tick(0);
  await settle();
  CREDIT_BUDGET_SETTING.onChange("lots", "5");
  t.mock.timers.tick(800);
  await settle();
  assert.deepEqual(app.extensionManager.toast.shown.slice(-2).map((shown) => shown.detail), [
    "Could not reach the Flux2 LoRA budget route; restart ComfyUI after installing the pack.",
    'The credit budget must be a number of credits, 0 or more, or empty for none; got "lots".',
  ]);
});
