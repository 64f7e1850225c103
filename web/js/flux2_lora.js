// Flux2 LoRA nodes in ComfyUI's canvas: credits, cache state and budget after a run, the status
// while waiting, and the Image Size node's resulting size and aspect ratio, live as its widgets
// change. Also the credit budget setting (Settings → Flux2 LoRA), sent to POST /flux2_lora/budget.
// Served as /extensions/<pack folder>/js/flux2_lora.js, hence three levels up to /scripts/.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";
import { openKeyDialog } from "./key_setup.js";
import {
  budgetStatusText, CreditTally, creditLines, graphNodeId, parseBudgetSetting, sizeForWidgets, sizeLabel, statusLine,
} from "./logic.js";
import { callPackRoute } from "./pack_route.js";

const GENERATING_NODES = new Set(["Flux2LoraGenerate", "Flux2LoraEdit"]);
const STATUS_EVENT = "flux2lora.status"; // sent by nodes/comfy_hooks.py (RunHooks.status)
const LINE_HEIGHT = 16;
const STATUS_COLOUR = "#f0c674";
const INFO_COLOUR = "#9fd49f";
const BUDGET_ROUTE = "/flux2_lora/budget";
const BUDGET_TYPING_PAUSE_MS = 800; // a text setting changes on every key press

const tally = new CreditTally(); // one total for the browser session, across all nodes
const waiting = new Set();
let ticker = null;

// Text under the node, outside its body, so it never covers a widget or changes the node's size.
function drawLines(node, ctx, lines, colour) {
  if (!lines.length || node.flags?.collapsed) return;
  ctx.save();
  ctx.font = "12px sans-serif";
  ctx.fillStyle = colour;
  ctx.textAlign = "left";
  ctx.textBaseline = "top";
  let y = node.size[1] + 6;
  for (const line of lines) {
    ctx.fillText(line, 4, y);
    y += LINE_HEIGHT;
  }
  ctx.restore();
}

// Call the node type's own handler (or another extension's) first, then ours.
function chain(prototype, name, handler) {
  const original = prototype[name];
  prototype[name] = function (...args) {
    const result = original?.apply(this, args);
    handler.apply(this, args);
    return result;
  };
}

// Redraw once a second while a request is waiting, so the seconds count up.
function updateTicker() {
  if (waiting.size && !ticker) {
    ticker = setInterval(() => app.graph?.setDirtyCanvas(true, false), 1000);
  } else if (!waiting.size && ticker) {
    clearInterval(ticker);
    ticker = null;
  }
}

function onStatus({ detail }) {
  const id = graphNodeId(detail?.node);
  const node = id === null ? null : app.graph?.getNodeById(id);
  if (!node) return;
  node.flux2Status = detail.text ? { text: String(detail.text), since: Date.now() } : null;
  if (node.flux2Status) waiting.add(node);
  else waiting.delete(node);
  updateTicker();
  node.setDirtyCanvas(true, false);
}

function toast(severity, detail) {
  const toasts = app.extensionManager?.toast;
  if (toasts?.add) toasts.add({ severity, summary: "Flux2 LoRA credit budget", detail, life: 6000 });
  else if (severity === "error") console.warn(`Flux2 LoRA credit budget: ${detail}`);
}

// The server keeps the budget only in memory, so the stored setting is sent at start-up too:
// the frontend calls onChange once when it registers the setting (oldValue undefined).
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
      app.graph?.setDirtyCanvas(true, false);
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
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (GENERATING_NODES.has(nodeData.name)) {
      chain(nodeType.prototype, "onExecuted", function (message) {
        this.flux2Run = tally.record(message);
        this.setDirtyCanvas(true, false);
      });
      chain(nodeType.prototype, "onDrawForeground", function (ctx) {
        const lines = [];
        if (this.flux2Status) lines.push(statusLine(this.flux2Status.text, this.flux2Status.since, Date.now()));
        if (this.flux2Run) lines.push(...creditLines(this.flux2Run, tally.total, tally.budget));
        drawLines(this, ctx, lines, this.flux2Status ? STATUS_COLOUR : INFO_COLOUR);
      });
      chain(nodeType.prototype, "onRemoved", function () {
        waiting.delete(this);
        updateTicker();
      });
      chain(nodeType.prototype, "getExtraMenuOptions", function (_canvas, options) {
        options?.push?.({ content: "Set AI/ML API key…", callback: () => openKeyDialog() });
      });
    }
    if (nodeData.name === "Flux2LoraImageSize") {
      // Preset pixel sizes come from the node definition (nodes/image_size.py), not a copy here.
      const presetPixels = nodeData.input?.required?.preset?.[1]?.flux2_pixels ?? {};
      chain(nodeType.prototype, "onDrawForeground", function (ctx) {
        const size = sizeForWidgets(
          widgetValue(this, "preset"), widgetValue(this, "width"), widgetValue(this, "height"), presetPixels);
        drawLines(this, ctx, size ? [sizeLabel(size)] : [], INFO_COLOUR);
      });
    }
  },
});
