import assert from "node:assert/strict";
import test from "node:test";

import { balanceLine, parseFloorSetting, priceLine, priceQuery } from "../../web/js/money_logic.js";

test("price query carries the model, the picture count and the size", () => {
  assert.equal(priceQuery("Flux2LoraGenerate", 6, { preset: "square_hd", width: 512, height: 512 }),
    "model=generate&num_images=6&preset=square_hd");
  assert.equal(priceQuery("Flux2LoraEdit", 2, { preset: "custom", width: 640, height: 512 }),
    "model=edit&num_images=2&width=640&height=512");
  assert.equal(priceQuery("Flux2LoraGenerate", 1, null), "model=generate&num_images=1");
  assert.equal(priceQuery("Flux2LoraGenerate", "x", null), "model=generate&num_images=1");
});

test("price line says so when there is no price", () => {
  assert.equal(priceLine({ text: "Price: ~$0.06 for 1 picture 1024x1024" }), "Price: ~$0.06 for 1 picture 1024x1024");
  assert.match(priceLine(null), /^Price unknown/);
  assert.equal(priceLine({ error: "num_images must be from 1 to 16; got 17." }),
    "Price unknown: num_images must be from 1 to 16; got 17.");
});

test("balance line and floor setting", () => {
  assert.equal(balanceLine({ message: "Balance $12.35; no balance floor." }), "Balance $12.35; no balance floor.");
  assert.match(balanceLine(null), /^Balance unknown/);
  assert.deepEqual(parseFloorSetting(""), { floor: null });
  assert.deepEqual(parseFloorSetting("$5"), { floor: 5 });
  assert.deepEqual(parseFloorSetting("1,000"), { floor: 1000 });
  assert.ok(parseFloorSetting("-1").error);
  assert.ok(parseFloorSetting("lots").error);
});

test("the budget in USD setting accepts the dollar sign and refuses what is not an amount", async () => {
  const { parseUsdBudgetSetting } = await import("../../web/js/money_logic.js");
  assert.deepEqual(parseUsdBudgetSetting("$5"), { budget_usd: "$5" });
  assert.deepEqual(parseUsdBudgetSetting(" 4.50 "), { budget_usd: "4.50" });
  assert.deepEqual(parseUsdBudgetSetting(""), { budget_usd: null });
  assert.deepEqual(parseUsdBudgetSetting("off"), { budget_usd: null });
  for (const bad of ["-1", "abc", "inf", "Infinity", "5$"]) {
    assert.match(parseUsdBudgetSetting(bad).error, /budget in USD must be an amount/, bad);
  }
});
