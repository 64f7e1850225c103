// Pure logic of the Flux2 LoRA frontend extension: formatting, aspect ratio, credit totals, budget,
// the node display's parts, the key's status.
// No DOM and no ComfyUI imports, so Node's test runner checks it (tests/js/logic.test.mjs).

/** The pack's node ids (nodes/__init__.py) that the frontend extends. */
export const GENERATING_NODES = new Set(["Flux2LoraGenerate", "Flux2LoraEdit"]);
export const IMAGE_SIZE_NODE = "Flux2LoraImageSize";
export const ADAPTER_NODE = "Flux2LoraAdapter";

/** Greatest common divisor of two positive integers. */
export function gcd(a, b) {
  let x = Math.abs(Math.trunc(a));
  let y = Math.abs(Math.trunc(b));
  while (y) [x, y] = [y, x % y];
  return x;
}

/** "4:3" for 1024x768; "1.84:1" when the reduced ratio has large terms (1000x544). */
export function aspectRatio(width, height) {
  if (!(width > 0 && height > 0)) return "";
  const d = gcd(width, height);
  const [w, h] = [width / d, height / d];
  if (w <= 32 && h <= 32) return `${w}:${h}`;
  return width >= height ? `${(width / height).toFixed(2)}:1` : `1:${(height / width).toFixed(2)}`;
}

/** Megapixels with two decimals: "0.79". */
export function megapixels(width, height) {
  return ((width * height) / 1e6).toFixed(2);
}

/**
 * The size an Image Size node gives for its widget values, or null if unknown.
 * presetPixels maps preset names to [width, height]; it comes from the node definition.
 */
export function sizeForWidgets(preset, width, height, presetPixels) {
  if (preset === "custom") {
    return Number.isInteger(width) && Number.isInteger(height) ? { preset, width, height } : null;
  }
  const pixels = presetPixels?.[preset];
  return Array.isArray(pixels) && pixels.length === 2 ? { preset, width: pixels[0], height: pixels[1] } : null;
}

/** "1024 × 768 · 4:3 · 0.79 MP" */
export function sizeLabel(size) {
  if (!size) return "";
  return `${size.width} × ${size.height} · ${aspectRatio(size.width, size.height)} · ` +
    `${megapixels(size.width, size.height)} MP`;
}

/** Credits as people read them: "12", "0.025", "240,000", "not reported". */
export function formatCredits(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "not reported";
  return (Math.round(value * 1000) / 1000).toLocaleString("en-US", { maximumFractionDigits: 3 });
}

function first(message, key) {
  const value = message?.[key];
  return Array.isArray(value) ? value[0] : undefined;
}

/**
 * Credits per run and for the whole browser session. Each run has its own id
 * (ui.flux2_run), so a cached result that ComfyUI shows again is not counted twice.
 * ``budget`` is the server's latest {spent, budget}: the whole ComfyUI process, all nodes.
 */
export class CreditTally {
  constructor() {
    this.total = 0;
    this.runs = 0;
    this.seen = new Set();
    this.budget = null;
  }

  /** Record a node's executed message; returns what to show for that run. */
  record(message) {
    const runId = first(message, "flux2_run");
    const credits = first(message, "flux2_credits");
    const images = first(message, "flux2_images");
    const cache = first(message, "flux2_cache");
    const repeated = runId !== undefined && this.seen.has(runId);
    if (!repeated) {
      if (runId !== undefined) this.seen.add(runId);
      this.runs += 1;
      if (typeof credits === "number" && Number.isFinite(credits)) this.total += credits;
      this.setBudget(first(message, "flux2_budget"));
    }
    const notice = first(message, "flux2_model_notice");
    return { credits: credits ?? null, images: images ?? null, cache: cache ?? null, repeated,
      notice: typeof notice === "string" ? notice : "" };
  }

  /**
   * Keep the server's {spent, budget} (from a run or the budget route's answer), and its line for
   * the budget in USD when one is set ("Key today: $4.12 of $5.00 (all machines) · this machine: $0.66").
   */
  setBudget(snapshot) {
    if (snapshot && typeof snapshot.spent === "number") {
      this.budget = { spent: snapshot.spent, budget: typeof snapshot.budget === "number" ? snapshot.budget : null };
      if (typeof snapshot.usd_line === "string" && snapshot.usd_line) this.budget.usdLine = snapshot.usd_line;
    }
  }
}

function creditsText(value) {
  return typeof value === "number" && Number.isFinite(value) ? `${formatCredits(value)} credits` : "credits not reported";
}

/** "ComfyUI total: 240,000 of 1,000,000 budget, 760,000 left" from the server's {spent, budget}. */
export function budgetText(snapshot) {
  if (!snapshot) return "";
  const spent = formatCredits(snapshot.spent);
  if (snapshot.budget === null) return `ComfyUI total: ${spent}, no budget`;
  const left = snapshot.budget - snapshot.spent;
  const state = left > 0 ? `${formatCredits(left)} left` : "budget reached";
  return `ComfyUI total: ${spent} of ${formatCredits(snapshot.budget)} budget, ${state}`;
}

function capitalised(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** The lines a generating node shows after a run; ``budget`` is the server's {spent, budget} or null. */
export function creditLines(run, total, budget = null) {
  if (!run) return [];
  const pictures = run.images === null ? "" : `${run.images} picture${run.images === 1 ? "" : "s"}, `;
  const cacheText = typeof run.cache?.text === "string" ? run.cache.text : "";
  const lines = [];
  if (run.repeated) {
    lines.push("Last run: cached result, no new credits used");
  } else if (run.cache?.state === "hit") {
    lines.push(`Last run: ${pictures}${cacheText}`); // "from cache, 0 credits"
  } else {
    lines.push(`Last run: ${pictures}${creditsText(run.credits)}`);
    if (cacheText) lines.push(capitalised(cacheText));
  }
  const session = `This session: ${creditsText(total)}`;
  lines.push(budget ? `${session} · ${budgetText(budget)}` : session);
  if (budget?.usdLine) lines.push(budget.usdLine);
  if (run.notice) lines.push(run.notice); // the API's deprecations feed: the model is retiring
  return lines;
}

/**
 * The credit budget setting's text as the budget route wants it: {budget: number|null}, or {error}.
 * Empty, "none" or "off" mean no budget; thousands separators are allowed ("1,000,000").
 * The server checks the range and answers with a clear error.
 */
export function parseBudgetSetting(text) {
  const cleaned = String(text ?? "").trim().replace(/[,_\s]/g, "");
  if (["", "none", "off"].includes(cleaned.toLowerCase())) return { budget: null };
  const value = Number(cleaned);
  if (!Number.isFinite(value)) {
    return { error: `The credit budget must be a number of credits, 0 or more, or empty for none; got "${text}".` };
  }
  return { budget: value };
}

/** One sentence for the budget setting from the budget route's answer. */
export function budgetStatusText(answer) {
  if (!answer || typeof answer !== "object") {
    return "Could not reach the Flux2 LoRA budget route; restart ComfyUI after installing the pack.";
  }
  return answer.error ? `Not changed: ${answer.error}` : String(answer.message ?? "");
}

/** The waiting status with the seconds waited: "Waiting for the AI/ML API... 12 s". */
export function statusLine(text, sinceMs, nowMs) {
  if (!text) return "";
  const seconds = Math.max(0, Math.floor((nowMs - sinceMs) / 1000));
  return `${text} ${seconds} s`;
}

/**
 * The node a server execution id names: "7" at the top level, "5:7" for node 7 inside the subgraph
 * that node 5 holds (deeper: "3:5:7"). Walks from the root graph, so it finds the node whichever graph
 * the canvas shows. ``rootGraph`` is LiteGraph's graph (getNodeById; subgraph nodes carry .subgraph).
 */
export function nodeForExecutionId(rootGraph, executionId) {
  const parts = String(executionId ?? "").split(":");
  if (!rootGraph || parts.some((part) => !/^\d+$/.test(part))) return null;
  let graph = rootGraph;
  for (const part of parts.slice(0, -1)) {
    graph = graph?.getNodeById?.(part)?.subgraph;
    if (!graph) return null;
  }
  return graph.getNodeById?.(parts.at(-1)) ?? null;
}

/**
 * A node's display: named parts, each with its lines, shown top to bottom in DISPLAY_ORDER.
 * Another feature adds a part by name (parts not in the order come last, in the order set),
 * e.g. display.set("price", ["About 0.05 credits per run"]).
 */
export const DISPLAY_ORDER = ["status", "price", "run", "size"];

export class NodeDisplay {
  constructor(order = DISPLAY_ORDER) {
    this.order = order;
    this.parts = new Map();
  }

  /**
   * Set a part's lines: strings, or a function of the time in ms giving strings (a counter);
   * ``tone`` is "info" or "status" (waiting). Empty lines remove the part.
   */
  set(part, lines, tone = "info") {
    if (!lines || (Array.isArray(lines) && !lines.length)) this.parts.delete(part);
    else this.parts.set(part, { lines, tone });
  }

  /** True while a part counts with the time (the display needs a refresh each second). */
  get ticking() {
    return [...this.parts.values()].some(({ lines }) => typeof lines === "function");
  }

  /** [{part, tone, text}] to show at ``nowMs``, in display order. */
  lines(nowMs = Date.now()) {
    const known = this.order.filter((part) => this.parts.has(part));
    const others = [...this.parts.keys()].filter((part) => !this.order.includes(part));
    const out = [];
    for (const part of [...known, ...others]) {
      const { lines, tone } = this.parts.get(part);
      for (const text of typeof lines === "function" ? lines(nowMs) : lines) {
        if (text) out.push({ part, tone, text: String(text) });
      }
    }
    return out;
  }

  /** The whole display as one text, a line each (what tests and the widget's value read). */
  text(nowMs = Date.now()) {
    return this.lines(nowMs).map((line) => line.text).join("\n");
  }
}

/**
 * A saved node's widgets_values without holes. Frontend 1.27.10 writes values at the widget's own
 * index and leaves a hole for a widget that is not saved, but reads them back ignoring such widgets:
 * a display widget before a saved one would shift every later value. Positional, as the contract wants.
 */
export function compactWidgetValues(values) {
  return Array.isArray(values) ? values.filter(() => true) : values;
}

/** One sentence on the key's state from the key route's answer (which never holds the key). */
export function keyStatusText(answer) {
  if (!answer || typeof answer !== "object") {
    return "Could not reach the Flux2 LoRA key route; restart ComfyUI after installing the pack.";
  }
  const parts = [];
  if (answer.error) parts.push(`Not saved: ${answer.error}`);
  if (answer.set) {
    const end = answer.last4 ? ` (ends in ${answer.last4})` : "";
    parts.push(`Key set${end}, ${answer.source}.`);
  }
  if (answer.message) parts.push(answer.message);
  return parts.join(" ");
}
