// The LoRA check's pure frontend logic (web/js/lora_logic.js), under Node's own test runner.
import assert from "node:assert/strict";
import { test } from "node:test";
import { loraLine, loraPathQuery, loraSettingBody } from "../../web/js/lora_logic.js";

test("a path becomes the route's query, nothing for an empty path", () => {
  assert.equal(loraPathQuery("  owner/repo "), "path=owner%2Frepo");
  assert.equal(loraPathQuery("https://h.io/a b.safetensors?x=1&y"), "path=https%3A%2F%2Fh.io%2Fa%20b.safetensors%3Fx%3D1%26y");
  assert.equal(loraPathQuery(""), "");
  assert.equal(loraPathQuery(undefined), "");
});

test("the route's answer becomes the line and its tone", () => {
  assert.deepEqual(loraLine({ text: "FLUX.2 [dev] LoRA · rank 16 · 195 MB · ai-toolkit", tone: "ok" }),
    { text: "FLUX.2 [dev] LoRA · rank 16 · 195 MB · ai-toolkit", tone: "info" });
  assert.deepEqual(loraLine({ text: "Will be refused: x", tone: "error" }), { text: "Will be refused: x", tone: "error" });
  assert.equal(loraLine({ text: "Not recognised", tone: "warn" }).tone, "warn");
  assert.equal(loraLine(null).tone, "warn");
  assert.match(loraLine({ error: "boom" }).text, /^LoRA not checked: boom/);
});

test("the setting's body", () => {
  assert.deepEqual(loraSettingBody("off"), { check_loras: "off" });
  assert.deepEqual(loraSettingBody("on"), { check_loras: "on" });
  assert.deepEqual(loraSettingBody(""), { check_loras: null });
});
