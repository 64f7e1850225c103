// web/js/pack_route.js: calls to the pack's routes and the sender every kept setting uses.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import { api, app, settle } from "./comfy_stub.mjs";

const { answerText, callPackRoute, settingSender } = await import("../../web/js/pack_route.js");

const toasts = app.extensionManager.toast.shown;

beforeEach(() => {
  api.calls.length = 0;
  toasts.length = 0;
  api.answer = () => ({ message: "Saved." });
});

test("a route's JSON answer, or null when it cannot be reached", async () => {
  api.answer = () => ({ set: true });
  assert.deepEqual(await callPackRoute("/flux2_lora/key"), { set: true });
  assert.deepEqual(api.calls[0].init, { method: "GET", cache: "no-store", headers: {}, body: undefined });
  await callPackRoute("/flux2_lora/key", "POST", { clear: true });
  assert.equal(api.calls[1].init.headers["Content-Type"], "application/json");
  assert.deepEqual(api.calls[1].body, { clear: true });
  api.answer = () => new TypeError("Failed to fetch");
  assert.equal(await callPackRoute("/flux2_lora/key"), null);
});

test("an answer's toast text: its error, 'route not reached', or its message", () => {
  assert.equal(answerText({ error: "too large" }), "too large");
  assert.equal(answerText(null), "route not reached");
  assert.equal(answerText({ message: "Saved." }), "Saved.");
});

test("at start-up an empty setting sends nothing; a stored one is sent at once, without a success toast", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const send = settingSender({ route: "/r", summary: "S", toBody: (value) => ({ v: value }), pauseMs: 800 });
  send("", undefined);
  send("  ", undefined);
  t.mock.timers.tick(1000);
  await settle();
  assert.deepEqual(api.calls, []);
  send("5", undefined);
  t.mock.timers.tick(0);
  await settle();
  assert.deepEqual(api.calls.map((call) => [call.route, call.method, call.body]), [["/r", "POST", { v: "5" }]]);
  assert.deepEqual(toasts, []);
});

test("a user's change is sent after a pause in typing, once, and says so", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const answers = [];
  const send = settingSender({ route: "/r", summary: "S", toBody: (value) => ({ v: value }), pauseMs: 800,
    onAnswer: (answer) => answers.push(answer) });
  send("1", "");
  send("12", "1");
  t.mock.timers.tick(799);
  await settle();
  assert.deepEqual(api.calls, []);
  send("", "12"); // emptied by the user: sent (it clears the setting)
  t.mock.timers.tick(800);
  await settle();
  assert.deepEqual(api.calls.map((call) => call.body), [{ v: "" }]);
  assert.deepEqual(answers, [{ message: "Saved." }]);
  assert.deepEqual(toasts.map((shown) => [shown.severity, shown.summary, shown.detail]), [["success", "S", "Saved."]]);
});

test("what cannot be sent, and what the route refuses, is a toast; describe words it", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const send = settingSender({ route: "/r", summary: "S", toBody: (value) => (value === "x" ? { error: "bad" } : { v: value }) });
  send("x", "");
  t.mock.timers.tick(0);
  await settle();
  assert.deepEqual(api.calls, []);
  api.answer = () => ({ error: "refused" });
  send("y", "x");
  t.mock.timers.tick(0);
  await settle();
  api.answer = () => null;
  const worded = settingSender({ route: "/r", summary: "W", toBody: () => ({}), describe: (a) => `said ${a}` });
  worded("z", undefined);
  t.mock.timers.tick(0);
  await settle();
  assert.deepEqual(toasts.map((shown) => [shown.severity, shown.summary, shown.detail]),
    [["error", "S", "bad"], ["error", "S", "refused"], ["error", "W", "said null"]]);
});
