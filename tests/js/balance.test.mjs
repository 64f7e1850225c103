// web/js/balance.js: the balance line in the key panel, asked again after each run while on screen.
import assert from "node:assert/strict";
import { test } from "node:test";
import { api, settle } from "./comfy_stub.mjs";

const { balancePanel } = await import("../../web/js/balance.js");

test("asked when shown and after every run while in the page; forgotten once gone", async () => {
  let asked = 0;
  api.answer = () => ({ message: `Balance: $${(asked += 1)}.00` });
  const line = balancePanel();
  assert.equal(line.textContent, "Balance: asking…");
  await settle();
  assert.equal(line.textContent, "Balance: $1.00");
  document.body.append(line);
  api.emit("executed", {});
  await settle();
  assert.equal(line.textContent, "Balance: $2.00");
  line.remove();
  api.emit("executed", {});
  await settle();
  assert.equal(asked, 2);
  assert.deepEqual(api.listened, []);
  api.answer = () => ({ error: "no key" });
  await balancePanel().flux2Ask();
  assert.equal(api.calls.at(-1).route, "/flux2_lora/balance");
});
