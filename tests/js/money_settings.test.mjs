// web/js/money_settings.js: each money setting goes to its route with its body and its toast title.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import { api, app, settle } from "./comfy_stub.mjs";

const { MONEY_SETTINGS } = await import("../../web/js/money_settings.js");

const byId = Object.fromEntries(MONEY_SETTINGS.map((setting) => [setting.id.replace("Flux2LoRA.", ""), setting]));
const toasts = app.extensionManager.toast.shown;

beforeEach(() => {
  api.calls.length = 0;
  toasts.length = 0;
  api.answer = () => ({ message: "Done." });
});

beforeEach((t) => t.mock.timers.enable({ apis: ["setTimeout"] }));

async function change(t, key, value, pause) {
  byId[key].onChange(value, "");
  if (pause) {
    t.mock.timers.tick(pause - 1);
    await settle();
    assert.deepEqual(api.calls, [], `${key} waits ${pause} ms for a pause in typing`);
  }
  t.mock.timers.tick(1);
  await settle();
  return api.calls.map((call) => [call.route, call.body]);
}

test("the four money settings, in order", () => {
  assert.deepEqual(Object.keys(byId), ["BalanceFloor", "BudgetPeriod", "BudgetUsd", "BudgetScope"]);
  assert.deepEqual(MONEY_SETTINGS.map((setting) => setting.type), ["text", "combo", "text", "combo"]);
});

test("balance floor: a number of USD to the balance route, after a pause in typing", async (t) => {
  assert.deepEqual(await change(t, "BalanceFloor", "$1,000", 800), [["/flux2_lora/balance", { floor: 1000 }]]);
  assert.deepEqual(toasts.at(-1), { severity: "success", summary: "Flux2 LoRA balance floor", detail: "Done.", life: 6000 });
});

test("budget period and scope: the choice as is, null for the environment's, at once", async (t) => {
  assert.deepEqual(await change(t, "BudgetPeriod", "month", 0), [["/flux2_lora/budget", { period: "month" }]]);
  api.calls.length = 0;
  assert.deepEqual(await change(t, "BudgetScope", "", 0), [["/flux2_lora/budget", { scope: null }]]);
  assert.deepEqual(toasts.map((shown) => shown.summary), ["Flux2 LoRA budget period", "Flux2 LoRA budget scope"]);
});

test("budget in USD: the text as typed, refused before sending when not an amount", async (t) => {
  assert.deepEqual(await change(t, "BudgetUsd", "$5", 800), [["/flux2_lora/budget", { budget_usd: "$5" }]]);
  api.calls.length = 0;
  api.answer = () => ({ error: "The budget in USD needs the period day or month." });
  assert.deepEqual(await change(t, "BudgetUsd", "five", 800), []);
  assert.deepEqual(toasts.map((shown) => [shown.severity, shown.summary]),
    [["success", "Flux2 LoRA budget in USD"], ["error", "Flux2 LoRA budget in USD"]]);
  assert.match(toasts.at(-1).detail, /^The budget in USD must be an amount/);
});
