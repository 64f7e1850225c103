// Flux2 LoRA nodes in ComfyUI: credits, cache state and budget after a run, the status while
// waiting, and the Image Size node's resulting size and aspect ratio, live as its widgets change.
// Also the credit budget setting (Settings → Flux2 LoRA), sent to POST /flux2_lora/budget.
//
// The texts live in a DOM widget that is never saved (widget.serialize = false: not in the
// workflow's widgets_values) and never sent (options.serialize = false: not in the API prompt).
// Both renderers show DOM widgets: the classic canvas lays the element over the node, Nodes 2.0
// (Vue nodes, frontend 1.58) mounts it inside the node's DOM. Canvas drawing (onDrawForeground)
// is only the fallback for a frontend without addDOMWidget; it shows nothing in Nodes 2.0.
// Run results and status come from the API's events, found by execution id ("5:7" inside a
// subgraph) from the root graph, so a node inside a subgraph shows them as well.
// Served as /extensions/<pack folder>/js/flux2_lora.js, hence three levels up to /scripts/.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";
import { openKeyDialog } from "./key_setup.js";
import {
  budgetStatusText, compactWidgetValues, CreditTally, creditLines, NodeDisplay, nodeForExecutionId,
  parseBudgetSetting, sizeForWidgets, sizeLabel, statusLine,
} from "./logic.js";
import { callPackRoute } from "./pack_route.js";

const GENERATING_NODES = new Set(["Flux2LoraGenerate", "Flux2LoraEdit"]);
const STATUS_EVENT = "flux2lora.status"; // sent by nodes/comfy_hooks.py (RunHooks.status)
const DISPLAY_WIDGET = "flux2_display"; // its own type: Nodes 2.0 mounts unknown DOM widget types as they are
const DISPLAY_CLASS = "flux2-lora-display";
const LINE_HEIGHT = 16;
const DISPLAY_MARGIN = 2;
const TONE_COLOURS = { status: "#f0c674", info: "#9fd49f", warn: "#f0c674", error: "#ff8a80" };
const BUDGET_ROUTE = "/flux2_lora/budget";
const BUDGET_TYPING_PAUSE_MS = 800; // a text setting changes on every key press

const tally = new CreditTally(); // one total for the browser session, across all nodes
const ticking = new Set(); // nodes whose display counts seconds
const withRuns = new Set(); // generating nodes showing a last run (their session line follows the tally)
let ticker = null;

// Call the node type's own handler (or another extension's) first, then ours.
function chain(target, name, handler) {
  const original = target[name];
  target[name] = function (...args) {
    const result = original?.apply(this, args);
    handler.apply(this, args);
    return result;
  };
}

function rootGraph() {
  return app.rootGraph ?? app.graph;
}

function displayOf(node) {
  node.flux2Display ??= new NodeDisplay();
  return node.flux2Display;
}

// The display widget, added once when the node is created (after its own widgets, so it is last).
function attachDisplay(node) {
  displayOf(node);
  if (node.flux2DisplayWidget !== undefined) return;
  node.flux2DisplayWidget = null;
  if (typeof node.addDOMWidget !== "function") return; // fallback: drawn on the canvas
  const element = document.createElement("div");
  element.className = DISPLAY_CLASS;
  Object.assign(element.style, {
    font: "12px sans-serif", lineHeight: `${LINE_HEIGHT}px`, padding: "0 4px", whiteSpace: "pre-wrap",
    overflow: "hidden", pointerEvents: "none", color: TONE_COLOURS.info,
  });
  // The classic canvas gives the element this height less the margin on both sides.
  const height = () => Math.max(1, node.flux2Display.lines().length) * LINE_HEIGHT + 2 * DISPLAY_MARGIN;
  const widget = node.addDOMWidget(DISPLAY_WIDGET, DISPLAY_WIDGET, element, {
    serialize: false, // not in the API prompt: ComfyUI sees no changed input and keeps its cache
    hideOnZoom: false,
    margin: DISPLAY_MARGIN,
    getValue: () => node.flux2Display.text(),
    setValue: () => {}, // nothing to restore: the display is rebuilt from the node's state
    getMinHeight: height,
    getMaxHeight: height,
  });
  widget.serialize = false; // not in the saved workflow's widgets_values
  node.flux2DisplayWidget = widget;
}

// The fallback: text under the node, outside its body, so it never covers a widget.
function drawLines(node, ctx, lines) {
  if (!lines.length || node.flags?.collapsed) return;
  ctx.save();
  ctx.font = "12px sans-serif";
  ctx.textAlign = "left";
  ctx.textBaseline = "top";
  let y = node.size[1] + 6;
  for (const line of lines) {
    ctx.fillStyle = TONE_COLOURS[line.tone] ?? TONE_COLOURS.info;
    ctx.fillText(line.text, 4, y);
    y += LINE_HEIGHT;
  }
  ctx.restore();
}

// Show the node's display as it is now.
function refresh(node) {
  const lines = displayOf(node).lines(Date.now());
  const widget = node.flux2DisplayWidget;
  const element = widget?.element;
  if (element) {
    const shown = lines.map((line) => `${line.tone}|${line.text}`).join("\n");
    if (element.flux2Shown !== shown) {
      element.flux2Shown = shown;
      element.replaceChildren(...lines.map((line) => {
        const row = document.createElement("div");
        row.textContent = line.text;
        row.dataset.part = line.part;
        row.style.color = TONE_COLOURS[line.tone] ?? TONE_COLOURS.info;
        return row;
      }));
    }
    // The classic canvas gives a DOM widget only the height left in the node: grow it to fit.
    const wanted = node.computeSize?.();
    if (wanted && node.size && wanted[1] > node.size[1]) node.setSize?.([node.size[0], wanted[1]]);
  }
  node.setDirtyCanvas?.(true, false);
}

// Refresh once a second while a request is waiting, so the seconds count up.
function updateTicker() {
  if (ticking.size && !ticker) {
    ticker = setInterval(() => ticking.forEach(refresh), 1000);
  } else if (!ticking.size && ticker) {
    clearInterval(ticker);
    ticker = null;
  }
}

function showRun(node) {
  displayOf(node).set("run", creditLines(node.flux2Run, tally.total, tally.budget));
  refresh(node);
}

function onStatus({ detail }) {
  const node = nodeForExecutionId(rootGraph(), detail?.node);
  if (!node?.flux2Display) return;
  const text = detail.text ? String(detail.text) : "";
  const since = Date.now();
  node.flux2Display.set("status", text ? (now) => [statusLine(text, since, now)] : null, "status");
  if (text) ticking.add(node);
  else ticking.delete(node);
  updateTicker();
  refresh(node);
}

// From the API's event, not node.onExecuted: the frontend calls that only for nodes of the graph
// on screen, so a node inside a subgraph would miss its run while the top level is shown.
function onExecuted({ detail }) {
  const output = detail?.output;
  if (!output?.flux2_run) return;
  const node = nodeForExecutionId(rootGraph(), detail.display_node ?? detail.node);
  if (!node?.flux2Display) return;
  node.flux2Run = tally.record(output);
  withRuns.add(node);
  withRuns.forEach(showRun); // every node's session line follows the new total
}

function toast(severity, detail) {
  const toasts = app.extensionManager?.toast;
  if (toasts?.add) toasts.add({ severity, summary: "Flux2 LoRA credit budget", detail, life: 6000 });
  else if (severity === "error") console.warn(`Flux2 LoRA credit budget: ${detail}`);
}

// The pack keeps the budget on disk itself (in force from start-up, before any page loads); the stored
// setting is sent at start-up too, so the server has what this page shows: the frontend calls onChange
// once when it registers the setting (oldValue undefined).
let budgetTimer = null;
function sendBudgetSetting(value, atStartUp) {
  // An empty setting at start-up says nothing: a page opened in another browser must not
  // clear a budget someone set. Only a user emptying the field clears it.
  if (atStartUp && !String(value ?? "").trim()) return;
  clearTimeout(budgetTimer);
  budgetTimer = setTimeout(async () => {
    const parsed = parseBudgetSetting(value);
    if (parsed.error) return toast("error", parsed.error);
    const answer = await callPackRoute(BUDGET_ROUTE, "POST", { budget: parsed.budget });
    if (answer && !answer.error) {
      tally.setBudget(answer);
      withRuns.forEach(showRun);
    }
    if (!answer || answer.error) toast("error", budgetStatusText(answer));
    else if (!atStartUp) toast("success", budgetStatusText(answer));
  }, atStartUp ? 0 : BUDGET_TYPING_PAUSE_MS);
}

function widgetValue(node, name) {
  return node.widgets?.find((widget) => widget.name === name)?.value;
}

app.registerExtension({
  name: "flux2lora.NodeDisplays",

  settings: [
    {
      id: "Flux2LoRA.CreditBudget",
      category: ["Flux2 LoRA", "AI/ML API", "Credit budget"],
      name: "Credit budget (credits this ComfyUI process may spend)",
      tooltip: "Once the Flux2 LoRA nodes have spent this many credits since ComfyUI started, further requests "
        + "are refused before sending; results from the cache still run. Empty: FLUX2_LORA_CREDIT_BUDGET from "
        + "ComfyUI's environment, or no budget.",
      type: "text",
      defaultValue: "",
      attrs: { placeholder: "e.g. 1000000; empty: no budget" },
      onChange: (value, oldValue) => sendBudgetSetting(value, oldValue === undefined),
    },
  ],

  setup() {
    api.addEventListener(STATUS_EVENT, onStatus);
    api.addEventListener("executed", onExecuted);
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    const generating = GENERATING_NODES.has(nodeData.name);
    const imageSize = nodeData.name === "Flux2LoraImageSize";
    if (!generating && !imageSize) return;
    const prototype = nodeType.prototype;
    chain(prototype, "onSerialize", function (saved) {
      if (saved) saved.widgets_values = compactWidgetValues(saved.widgets_values);
    });
    chain(prototype, "onRemoved", function () {
      ticking.delete(this);
      withRuns.delete(this);
      updateTicker();
    });
    // Fallback for a frontend without DOM widgets: the same lines under the node, on the canvas.
    chain(prototype, "onDrawForeground", function (ctx) {
      if (this.flux2DisplayWidget === null) drawLines(this, ctx, this.flux2Display?.lines() ?? []);
    });
    if (generating) {
      chain(prototype, "onNodeCreated", function () {
        attachDisplay(this);
      });
      chain(prototype, "getExtraMenuOptions", function (_canvas, options) {
        options?.push?.({ content: "Set AI/ML API key…", callback: () => openKeyDialog() });
      });
    }
    if (imageSize) {
      // Preset pixel sizes come from the node definition (nodes/image_size.py), not a copy here.
      const presetPixels = nodeData.input?.required?.preset?.[1]?.flux2_pixels ?? {};
      const showSize = (node) => {
        const size = sizeForWidgets(
          widgetValue(node, "preset"), widgetValue(node, "width"), widgetValue(node, "height"), presetPixels);
        displayOf(node).set("size", size ? [sizeLabel(size)] : []);
        refresh(node);
      };
      chain(prototype, "onNodeCreated", function () {
        attachDisplay(this);
        // Every renderer calls a widget's callback when its value changes (Nodes 2.0 too).
        for (const widget of this.widgets ?? []) {
          if (["preset", "width", "height"].includes(widget.name)) chain(widget, "callback", () => showSize(this));
        }
        showSize(this);
      });
      chain(prototype, "onConfigure", function () {
        showSize(this); // a loaded workflow's values
      });
    }
  },
});

// For the pack's other pieces that add a part to a node's display (web/js/price.js: "price",
// web/js/lora_check.js: "lora", on the Adapter node whose display it attaches).
export { attachDisplay, displayOf, refresh as refreshDisplay };
