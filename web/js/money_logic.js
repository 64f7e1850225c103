// Pure logic for the money display (no ComfyUI imports, so tests/js can run it under Node):
// the price route's query for a node's settings and its line, the balance line of the key panel,
// and the balance floor and budget in USD settings' text.

/**
 * The query for GET /flux2_lora/price from a generating node's settings. ``size`` is the
 * connected Image Size node's widgets ({preset, width, height}) or null when image_size is not
 * connected (the API default applies). Custom sizes send width and height, presets their name.
 */
export function priceQuery(nodeType, numImages, size) {
  const params = new URLSearchParams();
  params.set("model", nodeType === "Flux2LoraEdit" ? "edit" : "generate");
  const count = Number(numImages);
  params.set("num_images", String(Number.isInteger(count) && count > 0 ? count : 1));
  if (size && size.preset && size.preset !== "custom") {
    params.set("preset", String(size.preset));
  } else if (size && Number.isFinite(Number(size.width)) && Number.isFinite(Number(size.height))) {
    params.set("width", String(Math.round(Number(size.width))));
    params.set("height", String(Math.round(Number(size.height))));
  }
  return params.toString();
}

/** The line the node shows from the price route's answer; says so when no price can be had. */
export function priceLine(answer) {
  if (!answer || typeof answer !== "object") return "Price unknown: the Flux2 LoRA price route did not answer.";
  if (answer.error) return `Price unknown: ${answer.error}`;
  return String(answer.text || "Price unknown.");
}

/** The key panel's balance line from the balance route's answer (which never holds the key). */
export function balanceLine(answer) {
  if (!answer || typeof answer !== "object") return "Balance unknown: the Flux2 LoRA balance route did not answer.";
  if (answer.error) return `Balance floor not set: ${answer.error}`;
  return String(answer.message || "Balance unknown.");
}

/**
 * The "Budget in USD" setting's text as the budget route wants it: {budget_usd: text or null}, or {error}.
 * "$5", "5", "4.50", "1,000" are amounts; empty, "none" or "off" mean no budget. The server checks it again.
 */
export function parseUsdBudgetSetting(text) {
  const raw = String(text ?? "").trim();
  if (["", "none", "off"].includes(raw.toLowerCase())) return { budget_usd: null };
  const value = Number(raw.replace(/^\$\s*/, "").replace(/,/g, ""));
  if (!/^\$?\s*[0-9.,eE+]+$/.test(raw) || !Number.isFinite(value) || value < 0) {
    return { error: `The budget in USD must be an amount, 0 or more, such as 5 or $5, or empty for none; got "${raw}".` };
  }
  return { budget_usd: raw };
}

/** A floor setting's text as a number of USD, null for none, or {error}. */
export function parseFloorSetting(text) {
  const raw = String(text ?? "").trim().replace(/^\$/, "");
  if (!raw) return { floor: null };
  const value = Number(raw.replace(/,/g, ""));
  if (!Number.isFinite(value) || value < 0) {
    return { error: `The balance floor must be an amount in USD, 0 or more, or empty; got "${String(text)}".` };
  }
  return { floor: value };
}
