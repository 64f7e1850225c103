// web/js/flux2_lora.js, the one entry: every other module only exports (ComfyUI loads each .js file of
// the pack as an extension), and the entry registers the one extension with every setting as users know it.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { test } from "node:test";
import { api, app, fakeNode } from "./comfy_stub.mjs";

const WEB_JS = new URL("../../web/js/", import.meta.url);
const MODULES = readdirSync(WEB_JS).filter((name) => name.endsWith(".js")).sort();

// Counted from before any module of the pack is imported.
const started = { timers: 0 };
for (const name of ["setTimeout", "setInterval"]) {
  const original = globalThis[name];
  globalThis[name] = (...args) => {
    started.timers += 1;
    return original(...args);
  };
}
const others = MODULES.filter((name) => name !== "flux2_lora.js");
for (const name of others) await import(new URL(name, WEB_JS).href);
const afterOthers = { registered: app.registered.length, listened: [...api.listened], timers: started.timers,
  body: document.body.children.length };
await import(new URL("flux2_lora.js", WEB_JS).href);
const [extension] = app.registered;

test("importing any module but the entry registers nothing, listens to nothing, starts no timer", () => {
  assert.ok(others.length >= 10, others.join(", "));
  assert.deepEqual(afterOthers, { registered: 0, listened: [], timers: 0, body: 0 });
});

test("the entry registers one extension, and listens only once set up", () => {
  assert.equal(app.registered.length, 1);
  assert.equal(extension.name, "flux2lora.Flux2LoRA");
  assert.deepEqual(api.listened, []);
  extension.setup();
  assert.deepEqual(api.listened.sort(), ["executed", "executed", "flux2lora.lora_checks", "flux2lora.status"]);
});

// As users know them: ids, where they stand, their names and kinds. Changing one is a visible change.
const SETTINGS = [
  ["Flux2LoRA.ApiKey", "AI/ML API/Key", "AI/ML API key", "function"],
  ["Flux2LoRA.CreditBudget", "AI/ML API/Credit budget", "Credit budget (credits this ComfyUI process may spend)", "text"],
  ["Flux2LoRA.CheckLoras", "LoRA check/Check LoRAs", "Check LoRAs before sending", "combo"],
  ["Flux2LoRA.BalanceFloor", "AI/ML API/Balance floor", "Balance floor (USD the account keeps)", "text"],
  ["Flux2LoRA.BudgetPeriod", "AI/ML API/Budget period", "Credit budget period", "combo"],
  ["Flux2LoRA.BudgetUsd", "AI/ML API/Budget in USD", "Budget in USD (a hard cap per budget period)", "text"],
  ["Flux2LoRA.BudgetScope", "AI/ML API/Budget scope", "Budget scope (this machine, or every machine on the key)", "combo"],
];

test("every setting and the command as before", () => {
  const shown = extension.settings.map((setting) => [setting.id, setting.category.slice(1).join("/"), setting.name,
    typeof setting.type === "function" ? "function" : setting.type]);
  assert.deepEqual(shown, SETTINGS);
  for (const setting of extension.settings) {
    assert.equal(setting.category[0], "Flux2 LoRA");
    assert.equal(setting.defaultValue, "");
    assert.ok(setting.tooltip.length > 40, setting.id);
    assert.equal(typeof (setting.onChange ?? (() => {})), "function");
  }
  assert.deepEqual(extension.commands.map((command) => command.id), ["Flux2LoRA.SetApiKey"]);
});

function registered(name, input = {}) {
  const nodeType = { prototype: {} };
  extension.beforeRegisterNodeDef(nodeType, { name, input });
  return nodeType.prototype;
}

test("each node type gets its hooks, and other node types none", () => {
  assert.deepEqual(Object.keys(registered("KSampler")), []);
  const generate = registered("Flux2LoraGenerate");
  assert.deepEqual(Object.keys(generate).sort(), ["getExtraMenuOptions", "onConfigure", "onConnectionsChange",
    "onDrawForeground", "onNodeCreated", "onRemoved", "onSerialize"]);
  assert.deepEqual(Object.keys(registered("Flux2LoraEdit")).sort(), Object.keys(generate).sort());
  assert.deepEqual(Object.keys(registered("Flux2LoraAdapter")).sort(),
    ["onConfigure", "onDrawForeground", "onNodeCreated", "onRemoved", "onSerialize"]);
  const size = registered("Flux2LoraImageSize", { required: { preset: ["COMBO", { flux2_pixels: { square_hd: [1024, 1024] } }] } });
  const node = fakeNode("Flux2LoraImageSize", { preset: "square_hd", width: 1, height: 1 }, size);
  node.onNodeCreated();
  assert.equal(node.flux2DisplayWidget.type, "flux2_display");
  assert.equal(node.flux2Display.text(), "1024 × 1024 · 1:1 · 1.05 MP");
});
