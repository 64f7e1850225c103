// web/js/lora_check.js: the Adapter node's LoRA line, the check's warnings after a run, its setting.
import assert from "node:assert/strict";
import { test } from "node:test";
import { api, app, fakeGraph, fakeNode, setWidget, settle } from "./comfy_stub.mjs";

const { CHECK_LORAS_SETTING, CHECKS_EVENT, checksLoraPath, onLoraChecks } = await import("../../web/js/lora_check.js");
const { showsDisplay } = await import("../../web/js/node_display.js");
const { NodeDisplay } = await import("../../web/js/logic.js");

function adapter(path) {
  const prototype = {};
  showsDisplay(prototype);
  checksLoraPath(prototype);
  const node = fakeNode("Flux2LoraAdapter", { path, scale: 1 }, prototype);
  node.onNodeCreated();
  return node;
}

test("the line follows the typed path after a pause, says it is checking, and widens the node", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let release;
  api.answer = () => new Promise((resolve) => { release = resolve; });
  const node = adapter("");
  t.mock.timers.tick(600);
  await settle();
  assert.deepEqual(api.calls, []); // nothing to check
  setWidget(node, "path", "owner/repo");
  t.mock.timers.tick(599);
  assert.equal(node.flux2Display.text(), "");
  t.mock.timers.tick(1);
  await settle();
  assert.equal(node.flux2Display.text(), "Checking the LoRA…");
  assert.equal(api.calls[0].route, "/flux2_lora/lora_check?path=owner%2Frepo");
  release({ text: "FLUX.2 [dev] LoRA · rank 16 · 195 MB · ai-toolkit", tone: "ok" });
  await settle();
  assert.deepEqual(node.flux2Display.lines().map((line) => [line.part, line.tone, line.text]),
    [["lora", "info", "FLUX.2 [dev] LoRA · rank 16 · 195 MB · ai-toolkit"]]);
  assert.equal(node.size[0], 7 * "FLUX.2 [dev] LoRA · rank 16 · 195 MB · ai-toolkit".length + 40); // 7 px a character here
  node.onConfigure(); // a loaded workflow: asked again even for the same path
  api.answer = () => ({ text: "Will be refused: not a LoRA", tone: "error" });
  t.mock.timers.tick(600);
  await settle();
  assert.equal(api.calls.length, 2);
  assert.equal(node.flux2Display.lines()[0].tone, "error");
});

test("after a run the check's warnings show on the generating node", () => {
  assert.equal(CHECKS_EVENT, "flux2lora.lora_checks");
  const gen = fakeNode("Flux2LoraGenerate");
  gen.id = 3;
  gen.flux2Display = new NodeDisplay();
  app.rootGraph = fakeGraph([gen]);
  onLoraChecks({ detail: { node: "3", lines: ["LoRA a: not recognised"] } });
  assert.deepEqual(gen.flux2Display.lines().map((line) => [line.part, line.tone, line.text]),
    [["lora", "warn", "LoRA a: not recognised"]]);
});

test("the setting 'Check LoRAs before sending' goes to its route", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  api.answer = () => ({ message: "LoRAs are checked before sending." });
  CHECK_LORAS_SETTING.onChange("off", "");
  CHECK_LORAS_SETTING.onChange("", undefined); // at start-up, empty: nothing
  t.mock.timers.tick(0);
  await settle();
  assert.deepEqual([api.calls.at(-1).route, api.calls.at(-1).body], ["/flux2_lora/lora_check/setting", { check_loras: "off" }]);
  assert.deepEqual(app.extensionManager.toast.shown.at(-1).summary, "Flux2 LoRA check");
});
