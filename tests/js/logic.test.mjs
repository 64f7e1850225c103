// Run with: node --test tests/js/
import assert from "node:assert/strict";
import test from "node:test";

import {
  aspectRatio, CreditTally, creditLines, formatCredits, gcd, graphNodeId, keyStatusText, megapixels,
  sizeForWidgets, sizeLabel, statusLine,
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
  assert.equal(formatCredits(undefined), "not reported");
});

test("status line counts the seconds waited", () => {
  assert.equal(statusLine("Waiting for the AI/ML API (1 picture)...", 1000, 13_900), "Waiting for the AI/ML API (1 picture)... 12 s");
  assert.equal(statusLine("", 0, 5000), "");
});

test("server node ids map to graph ids, subgraph ids are left alone", () => {
  assert.equal(graphNodeId("7"), 7);
  assert.equal(graphNodeId(12), 12);
  assert.equal(graphNodeId("5:7"), null);
  assert.equal(graphNodeId(undefined), null);
});

test("key status text never needs the key and says why it was refused", () => {
  assert.equal(keyStatusText({ set: true, last4: "9c2d", source: "saved in ComfyUI", message: "Applies next run." }),
    "Key set (ends in 9c2d), saved in ComfyUI. Applies next run.");
  assert.match(keyStatusText({ error: "The key must be 16 to 512 characters long", set: false, message: "" }), /^Not saved: /);
  assert.match(keyStatusText(null), /Could not reach/);
});
