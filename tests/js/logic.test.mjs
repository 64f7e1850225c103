// Run with: node --test tests/js/
import assert from "node:assert/strict";
import test from "node:test";

import {
  aspectRatio, budgetStatusText, budgetText, compactWidgetValues, CreditTally, creditLines, DISPLAY_ORDER, formatCredits,
  gcd, keyStatusText, megapixels, NodeDisplay, nodeForExecutionId, parseBudgetSetting, sizeForWidgets, sizeLabel,
  statusLine,
} from "../../web/js/logic.js";

const PRESETS = { square_hd: [1024, 1024], landscape_16_9: [1024, 576], portrait_4_3: [768, 1024] };

test("aspect ratio is reduced for the presets and approximate for odd sizes", () => {
  assert.equal(gcd(1024, 768), 256);
  assert.equal(aspectRatio(1024, 768), "4:3");
  assert.equal(aspectRatio(1024, 576), "16:9");
  assert.equal(aspectRatio(576, 1024), "9:16");
  assert.equal(aspectRatio(512, 512), "1:1");
  assert.equal(aspectRatio(1000, 544), "1.84:1");
  assert.equal(aspectRatio(544, 1000), "1:1.84");
  assert.equal(aspectRatio(0, 512), "");
});

test("image size follows the preset, or width and height when custom", () => {
  assert.deepEqual(sizeForWidgets("landscape_16_9", 640, 640, PRESETS), { preset: "landscape_16_9", width: 1024, height: 576 });
  assert.deepEqual(sizeForWidgets("custom", 1536, 640, PRESETS), { preset: "custom", width: 1536, height: 640 });
  assert.equal(sizeForWidgets("unknown_preset", 512, 512, PRESETS), null);
  assert.equal(sizeForWidgets("square_hd", 512, 512, undefined), null);
  assert.equal(sizeLabel(sizeForWidgets("portrait_4_3", 0, 0, PRESETS)), "768 × 1024 · 3:4 · 0.79 MP");
  assert.equal(megapixels(2048, 2048), "4.19");
});

test("credits: each run once, cached repeats not counted, unreported credits shown as such", () => {
  const tally = new CreditTally();
  const first = tally.record({ flux2_credits: [12.5], flux2_images: [4], flux2_run: ["a"] });
  assert.deepEqual(creditLines(first, tally.total), ["Last run: 4 pictures, 12.5 credits", "This session: 12.5 credits"]);
  tally.record({ flux2_credits: [0.025], flux2_images: [1], flux2_run: ["b"] });
  const cached = tally.record({ flux2_credits: [12.5], flux2_images: [4], flux2_run: ["a"] });
  assert.equal(cached.repeated, true);
  assert.equal(tally.total, 12.525);
  assert.deepEqual(creditLines(cached, tally.total),
    ["Last run: cached result, no new credits used", "This session: 12.525 credits"]);
  const unknown = tally.record({ flux2_credits: [null], flux2_images: [1], flux2_run: ["c"] });
  assert.equal(creditLines(unknown, tally.total)[0], "Last run: 1 picture, credits not reported");
  assert.equal(tally.total, 12.525);
  assert.equal(formatCredits(3), "3");
  assert.equal(formatCredits(1_234_567.8904), "1,234,567.89");
  assert.equal(formatCredits(undefined), "not reported");
});

const MISS = { state: "miss", text: "not in the cache: sent to the API, saved for next time" };

test("result cache: a hit shows 0 credits, other states say what happened", () => {
  const tally = new CreditTally();
  const hit = tally.record({ flux2_credits: [null], flux2_images: [2], flux2_run: ["h"],
    flux2_cache: [{ state: "hit", text: "from cache, 0 credits" }] });
  assert.deepEqual(creditLines(hit, tally.total), ["Last run: 2 pictures, from cache, 0 credits", "This session: 0 credits"]);
  const miss = tally.record({ flux2_credits: [240000], flux2_images: [2], flux2_run: ["m"], flux2_cache: [MISS] });
  assert.deepEqual(creditLines(miss, tally.total).slice(0, 2),
    ["Last run: 2 pictures, 240,000 credits", "Not in the cache: sent to the API, saved for next time"]);
  const partial = tally.record({ flux2_credits: [120000], flux2_images: [8], flux2_run: ["p"], flux2_cache: [
    { state: "partial", text: "1 of 2 requests from cache (0 credits), 1 sent to the API" }] });
  assert.equal(creditLines(partial, tally.total)[1], "1 of 2 requests from cache (0 credits), 1 sent to the API");
});

test("budget: the process total and budget stand next to the session total, from the latest run", () => {
  const tally = new CreditTally();
  const run = tally.record({ flux2_credits: [240000], flux2_images: [2], flux2_run: ["a"], flux2_cache: [MISS],
    flux2_budget: [{ spent: 240000, budget: 1000000 }] });
  assert.equal(creditLines(run, tally.total, tally.budget)[2],
    "This session: 240,000 credits · ComfyUI total: 240,000 of 1,000,000 budget, 760,000 left");
  tally.record({ flux2_credits: [240000], flux2_images: [2], flux2_run: ["a"], flux2_budget: [{ spent: 1, budget: 1 }] });
  assert.deepEqual(tally.budget, { spent: 240000, budget: 1000000 }); // a repeated message is not newer
  tally.setBudget({ spent: 240000, budget: null, message: "No credit budget" }); // the budget route's answer
  assert.equal(budgetText(tally.budget), "ComfyUI total: 240,000, no budget");
  assert.equal(budgetText({ spent: 1200, budget: 1000 }), "ComfyUI total: 1,200 of 1,000 budget, budget reached");
  assert.equal(budgetText(null), "");
});

test("budget setting text becomes a number or null, and route answers read as one sentence", () => {
  assert.deepEqual(parseBudgetSetting(""), { budget: null });
  assert.deepEqual(parseBudgetSetting(" Off "), { budget: null });
  assert.deepEqual(parseBudgetSetting("1,000,000"), { budget: 1000000 });
  assert.deepEqual(parseBudgetSetting("0"), { budget: 0 });
  assert.deepEqual(parseBudgetSetting("-5"), { budget: -5 }); // the server says why that is refused
  assert.match(parseBudgetSetting("ten").error, /number of credits.*"ten"/);
  assert.equal(budgetStatusText({ error: "The credit budget setting must be 0 or more", message: "x" }),
    "Not changed: The credit budget setting must be 0 or more");
  assert.equal(budgetStatusText({ message: "Budget 10 credits" }), "Budget 10 credits");
  assert.match(budgetStatusText(null), /Could not reach/);
});

test("status line counts the seconds waited", () => {
  assert.equal(statusLine("Waiting for the AI/ML API (1 picture)...", 1000, 13_900), "Waiting for the AI/ML API (1 picture)... 12 s");
  assert.equal(statusLine("", 0, 5000), "");
});

// A stand-in for LiteGraph's graphs: getNodeById (string or number ids) and subgraph nodes.
function graph(nodes) {
  return { getNodeById: (id) => nodes[String(id)] ?? null };
}

test("execution ids find the node at the top level and inside (nested) subgraphs", () => {
  const inner = { id: 7 };
  const deeper = { id: 9 };
  const nested = graph({ 9: deeper });
  const sub = graph({ 7: inner, 8: { id: 8, subgraph: nested } });
  const root = graph({ 5: { id: 5, subgraph: sub }, 7: { id: 7, top: true } });
  assert.equal(nodeForExecutionId(root, "7").top, true);
  assert.equal(nodeForExecutionId(root, 7).top, true);
  assert.equal(nodeForExecutionId(root, "5:7"), inner);
  assert.equal(nodeForExecutionId(root, "5:8:9"), deeper);
  assert.equal(nodeForExecutionId(root, "7:1"), null); // node 7 holds no subgraph
  assert.equal(nodeForExecutionId(root, "6"), null);
  assert.equal(nodeForExecutionId(root, ""), null);
  assert.equal(nodeForExecutionId(root, undefined), null);
  assert.equal(nodeForExecutionId(null, "7"), null);
});

test("node display: parts in display order, counters computed at show time, empty parts removed", () => {
  const display = new NodeDisplay();
  assert.equal(display.text(), "");
  display.set("run", ["Last run: 1 picture, 12 credits", "This session: 12 credits"]);
  display.set("status", (now) => [statusLine("Waiting for the AI/ML API (1 picture)...", 0, now)], "status");
  assert.equal(display.ticking, true);
  assert.deepEqual(display.lines(3_500), [
    { part: "status", tone: "status", text: "Waiting for the AI/ML API (1 picture)... 3 s" },
    { part: "run", tone: "info", text: "Last run: 1 picture, 12 credits" },
    { part: "run", tone: "info", text: "This session: 12 credits" },
  ]);
  display.set("status", null);
  assert.equal(display.ticking, false);
  assert.equal(display.text(0), "Last run: 1 picture, 12 credits\nThis session: 12 credits");
  display.set("run", []);
  assert.equal(display.text(0), "");
});

test("node display: another line (a price before the run) slots in by name; unknown parts come last", () => {
  assert.ok(DISPLAY_ORDER.indexOf("price") < DISPLAY_ORDER.indexOf("run"));
  const display = new NodeDisplay();
  display.set("later", ["extra"]);
  display.set("run", ["Last run: 2 pictures, 24 credits"]);
  display.set("price", ["About 24 credits per run"]);
  assert.deepEqual(display.lines(0).map((line) => line.part), ["price", "run", "later"]);
});

test("saved widget values close the holes a display widget leaves, keep nulls and arrays", () => {
  const values = ["landscape_4_3", 1024];
  values[3] = 768; // index 2: a widget that is not saved
  assert.deepEqual(compactWidgetValues(values), ["landscape_4_3", 1024, 768]);
  assert.deepEqual(compactWidgetValues([null, [1, 2], "x"]), [null, [1, 2], "x"]);
  assert.equal(compactWidgetValues(undefined), undefined);
});

test("key status text never needs the key and says why it was refused", () => {
  assert.equal(keyStatusText({ set: true, last4: "9c2d", source: "saved in ComfyUI", message: "Applies next run." }),
    "Key set (ends in 9c2d), saved in ComfyUI. Applies next run.");
  assert.match(keyStatusText({ error: "The key must be 16 to 512 characters long", set: false, message: "" }), /^Not saved: /);
  assert.match(keyStatusText(null), /Could not reach/);
});

test("the budget in USD and a retiring model get a line of their own", () => {
  const tally = new CreditTally();
  const run = tally.record({ flux2_credits: [120000], flux2_images: [1], flux2_run: ["u"], flux2_cache: [MISS],
    flux2_budget: [{ spent: 120000, budget: null,
      usd_line: "Key today: $4.12 of $5.00 (all machines) · this machine: $0.66" }],
    flux2_model_notice: ["Model blackforestlabs/flux-2-lora is deprecated and shuts down on 2027-01-31."] });
  const lines = creditLines(run, tally.total, tally.budget);
  assert.equal(lines.at(-2), "Key today: $4.12 of $5.00 (all machines) · this machine: $0.66");
  assert.equal(lines.at(-1), "Model blackforestlabs/flux-2-lora is deprecated and shuts down on 2027-01-31.");
  const plain = tally.record({ flux2_credits: [1], flux2_images: [1], flux2_run: ["v"], flux2_model_notice: [""] });
  assert.equal(plain.notice, "");
});
