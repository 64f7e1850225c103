// web/js/key_setup.js: the key panel and dialog, the key setting, command and node menu entry.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import { api, settle } from "./comfy_stub.mjs";

const { KEY_COMMAND, KEY_SETTING, keyPanel, offersKeyDialog, openKeyDialog } = await import("../../web/js/key_setup.js");

const find = (root, tag, text) => [...root.descendants()].find((el) => el.tagName === tag && (!text || el.textContent === text));

beforeEach(() => {
  api.calls.length = 0;
  api.answer = (route, method, body) => {
    if (route === "/flux2_lora/balance") return { message: "Balance: $12.00" };
    if (body?.key) return { set: true, last4: "9xyz", source: "saved in ComfyUI's user folder" };
    return { set: false, message: "No key set." };
  };
});

test("the panel shows the key's state and balance; Save sends the key once and clears the field", async () => {
  const panel = keyPanel();
  document.body.append(panel); // on screen: the balance is asked again
  await settle();
  const [status, balance] = panel.children.slice(-2);
  assert.equal(status.textContent, "No key set.");
  assert.equal(balance.textContent, "Balance: $12.00");
  const input = find(panel, "INPUT");
  assert.equal(input.type, "password");
  input.value = "sk-secret-9xyz";
  input.dispatch("keydown", { key: "Enter" });
  await settle();
  assert.equal(input.value, "");
  assert.equal(status.textContent, "Key set (ends in 9xyz), saved in ComfyUI's user folder.");
  const posts = api.calls.filter((call) => call.method === "POST");
  assert.deepEqual(posts.map((call) => [call.route, call.body]), [["/flux2_lora/key", { key: "sk-secret-9xyz" }]]);
  find(panel, "BUTTON", "Remove saved key").click();
  await settle();
  assert.deepEqual(api.calls.filter((call) => call.method === "POST").at(-1).body, { clear: true });
  assert.equal(api.calls.filter((call) => call.route === "/flux2_lora/balance").length, 3); // asked again each time
});

test("the dialog opens over the page with the panel focused, and closes", () => {
  openKeyDialog();
  const overlay = document.body.children.at(-1);
  assert.equal(find(overlay, "STRONG").textContent, "Flux2 LoRA: AI/ML API key");
  assert.equal(document.activeElement, find(overlay, "INPUT"));
  overlay.dispatch("keydown", { key: "Escape" });
  assert.equal(overlay.isConnected, false);
});

test("the setting renders the panel (the key is never its value); the command and node menu open the dialog", () => {
  assert.equal(KEY_SETTING.id, "Flux2LoRA.ApiKey");
  assert.equal(KEY_SETTING.defaultValue, "");
  assert.equal(KEY_SETTING.type().tagName, "DIV");
  assert.deepEqual([KEY_COMMAND.id, KEY_COMMAND.label], ["Flux2LoRA.SetApiKey", "Flux2 LoRA: set AI/ML API key"]);
  const prototype = { getExtraMenuOptions: (_canvas, options) => options.push({ content: "Title" }) };
  offersKeyDialog(prototype);
  const options = [];
  prototype.getExtraMenuOptions(null, options);
  assert.deepEqual(options.map((option) => option.content), ["Title", "Set AI/ML API key…"]);
  const before = document.body.children.length;
  options[1].callback();
  assert.equal(document.body.children.length, before + 1);
  KEY_COMMAND.function();
  assert.equal(document.body.children.length, before + 2);
});
