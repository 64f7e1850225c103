// The price line on Flux2 LoRA Generate and Edit, before running: what the node's current
// num_images and size (the connected Image Size node's preset or custom size, else the API
// default) will cost, from GET /flux2_lora/price (the model's documented price, which the server
// keeps on disk and asks the API for at most daily). Shown as the "price" part of the node's
// display (web/js/flux2_lora.js); asked again when a widget, a link or the Image Size node
// changes, and after every run (a run shows the credits-per-USD rate, so credits appear).
// Also the money settings: the balance floor (POST /flux2_lora/balance), the budget period, the
// budget in USD and its scope (POST /flux2_lora/budget).
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";
import { displayOf, refreshDisplay } from "./flux2_lora.js";
import { parseFloorSetting, parseUsdBudgetSetting, priceLine, priceQuery } from "./money_logic.js";
import { callPackRoute } from "./pack_route.js";

const GENERATING_NODES = new Set(["Flux2LoraGenerate", "Flux2LoraEdit"]);
const IMAGE_SIZE_NODE = "Flux2LoraImageSize";
const PRICE_ROUTE = "/flux2_lora/price";
const ASK_PAUSE_MS = 300; // widgets change on every step of a drag
const TYPING_PAUSE_MS = 800;

const timers = new WeakMap();

function rootGraph() {
  return app.rootGraph ?? app.graph;
}

function widgetValue(node, name) {
  return node?.widgets?.find((widget) => widget.name === name)?.value;
}

// The Image Size node feeding this node's image_size input, read from its widgets; null if none.
function connectedSize(node) {
  const slot = node.findInputSlot?.("image_size") ?? -1;
  let source = null;
  try {
    source = slot >= 0 ? node.getInputNode?.(slot) : null;
  } catch {
    return null; // the link points into a graph being rebuilt (e.g. nodes moving into a subgraph)
  }
  if (!source || (source.comfyClass ?? source.type) !== IMAGE_SIZE_NODE) return null;
  return { preset: widgetValue(source, "preset"), width: widgetValue(source, "width"),
           height: widgetValue(source, "height") };
}

async function showPrice(node) {
  if (!node.graph) return; // removed meanwhile (deleted, or moved into a subgraph as a new node)
  const nodeType = node.comfyClass ?? node.type;
  const query = priceQuery(nodeType, widgetValue(node, "num_images"), connectedSize(node));
  if (node.flux2PriceQuery === query && node.flux2PriceShown) return;
  node.flux2PriceQuery = query;
  const answer = await callPackRoute(`${PRICE_ROUTE}?${query}`, "GET");
  if (node.flux2PriceQuery !== query) return; // settings changed meanwhile: a newer answer follows
  node.flux2PriceShown = true;
  displayOf(node).set("price", [priceLine(answer)]);
  refreshDisplay(node);
}

function schedule(node, force = false) {
  if (!node || !GENERATING_NODES.has(node.comfyClass ?? node.type)) return;
  if (force) node.flux2PriceShown = false;
  clearTimeout(timers.get(node));
  timers.set(node, setTimeout(() => showPrice(node), ASK_PAUSE_MS));
}

// Every generating node of the graph (and its subgraphs): an Image Size change may concern any of them.
function generatingNodes(graph = rootGraph(), seen = new Set()) {
  const found = [];
  if (!graph || seen.has(graph)) return found;
  seen.add(graph);
  for (const node of graph._nodes ?? graph.nodes ?? []) {
    if (GENERATING_NODES.has(node.comfyClass ?? node.type)) found.push(node);
    if (node.subgraph) found.push(...generatingNodes(node.subgraph, seen));
  }
  return found;
}

function chain(target, name, handler) {
  const original = target[name];
  target[name] = function (...args) {
    const result = original?.apply(this, args);
    handler.apply(this, args);
    return result;
  };
}

function toast(severity, summary, detail) {
  const toasts = app.extensionManager?.toast;
  if (toasts?.add) toasts.add({ severity, summary, detail, life: 6000 });
  else if (severity === "error") console.warn(`${summary}: ${detail}`);
}

// Settings the pack also keeps on disk: sent when changed and once at start-up (an empty value at
// start-up says nothing, so a page opened elsewhere never clears what someone set).
let floorTimer = null;
function sendFloorSetting(value, atStartUp) {
  if (atStartUp && !String(value ?? "").trim()) return;
  clearTimeout(floorTimer);
  floorTimer = setTimeout(async () => {
    const parsed = parseFloorSetting(value);
    if (parsed.error) return toast("error", "Flux2 LoRA balance floor", parsed.error);
    const answer = await callPackRoute("/flux2_lora/balance", "POST", { floor: parsed.floor });
    if (!answer || answer.error) toast("error", "Flux2 LoRA balance floor", answer?.error ?? "route not reached");
    else if (!atStartUp) toast("success", "Flux2 LoRA balance floor", answer.message);
  }, atStartUp ? 0 : TYPING_PAUSE_MS);
}

async function sendPeriodSetting(value, atStartUp) {
  if (atStartUp && !value) return;
  const answer = await callPackRoute("/flux2_lora/budget", "POST", { period: value || null });
  if (!answer || answer.error) toast("error", "Flux2 LoRA budget period", answer?.error ?? "route not reached");
  else if (!atStartUp) toast("success", "Flux2 LoRA budget period", answer.message);
}

let usdTimer = null;
function sendUsdBudgetSetting(value, atStartUp) {
  if (atStartUp && !String(value ?? "").trim()) return;
  clearTimeout(usdTimer);
  usdTimer = setTimeout(async () => {
    const parsed = parseUsdBudgetSetting(value);
    if (parsed.error) return toast("error", "Flux2 LoRA budget in USD", parsed.error);
    const answer = await callPackRoute("/flux2_lora/budget", "POST", { budget_usd: parsed.budget_usd });
    if (!answer || answer.error) toast("error", "Flux2 LoRA budget in USD", answer?.error ?? "route not reached");
    else if (!atStartUp) toast("success", "Flux2 LoRA budget in USD", answer.message);
  }, atStartUp ? 0 : TYPING_PAUSE_MS);
}

async function sendScopeSetting(value, atStartUp) {
  if (atStartUp && !value) return;
  const answer = await callPackRoute("/flux2_lora/budget", "POST", { scope: value || null });
  if (!answer || answer.error) toast("error", "Flux2 LoRA budget scope", answer?.error ?? "route not reached");
  else if (!atStartUp) toast("success", "Flux2 LoRA budget scope", answer.message);
}

app.registerExtension({
  name: "flux2lora.Price",

  settings: [
    {
      id: "Flux2LoRA.BalanceFloor",
      category: ["Flux2 LoRA", "AI/ML API", "Balance floor"],
      name: "Balance floor (USD the account keeps)",
      tooltip: "A run whose estimated price would take the account balance below this is refused before "
        + "sending. Empty: FLUX2_LORA_BALANCE_FLOOR from ComfyUI's environment, or no floor.",
      type: "text",
      defaultValue: "",
      attrs: { placeholder: "e.g. 5; empty: no floor" },
      onChange: (value, oldValue) => sendFloorSetting(value, oldValue === undefined),
    },
    {
      id: "Flux2LoRA.BudgetPeriod",
      category: ["Flux2 LoRA", "AI/ML API", "Budget period"],
      name: "Credit budget period",
      tooltip: "What the credit budget counts: this ComfyUI process (forgotten on restart), today, this month "
        + "or all time (kept in the spending ledger in ComfyUI's user folder). Empty: FLUX2_LORA_BUDGET_PERIOD.",
      type: "combo",
      options: [{ text: "from the environment (default: process)", value: "" }, "process", "day", "month", "all"],
      defaultValue: "",
      onChange: (value, oldValue) => sendPeriodSetting(value, oldValue === undefined),
    },
    {
      id: "Flux2LoRA.BudgetUsd",
      category: ["Flux2 LoRA", "AI/ML API", "Budget in USD"],
      name: "Budget in USD (a hard cap per budget period)",
      tooltip: "A run whose estimated price would take the spending of the period over this is refused before "
        + "sending. Counted on this machine, or for the whole key with the scope 'key'. Accepts 5 or $5. Empty: "
        + "FLUX2_LORA_BUDGET_USD from ComfyUI's environment, or none.",
      type: "text",
      defaultValue: "",
      attrs: { placeholder: "e.g. $5; empty: no budget in USD" },
      onChange: (value, oldValue) => sendUsdBudgetSetting(value, oldValue === undefined),
    },
    {
      id: "Flux2LoRA.BudgetScope",
      category: ["Flux2 LoRA", "AI/ML API", "Budget scope"],
      name: "Budget scope (this machine, or every machine on the key)",
      tooltip: "machine: this machine's spending ledger. key: what the AI/ML API says the whole key spent today or "
        + "this month (every machine using it), asked before each paid run; needs a budget in USD and the period "
        + "day or month. Empty: FLUX2_LORA_BUDGET_SCOPE (default machine).",
      type: "combo",
      options: [{ text: "from the environment (default: machine)", value: "" }, "machine", "key"],
      defaultValue: "",
      onChange: (value, oldValue) => sendScopeSetting(value, oldValue === undefined),
    },
  ],

  setup() {
    // After a run the credits-per-USD rate is known: every price line can show credits too.
    api.addEventListener("executed", () => generatingNodes().forEach((node) => schedule(node, true)));
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    const prototype = nodeType.prototype;
    if (GENERATING_NODES.has(nodeData.name)) {
      chain(prototype, "onNodeCreated", function () {
        // Every renderer calls a widget's callback when its value changes (Nodes 2.0 too).
        const count = this.widgets?.find((widget) => widget.name === "num_images");
        if (count) chain(count, "callback", () => schedule(this));
        schedule(this);
      });
      chain(prototype, "onConnectionsChange", function () {
        schedule(this);
      });
      chain(prototype, "onConfigure", function () {
        schedule(this, true); // a loaded workflow's values
      });
    }
    if (nodeData.name === IMAGE_SIZE_NODE) {
      chain(prototype, "onNodeCreated", function () {
        for (const widget of this.widgets ?? []) {
          if (["preset", "width", "height"].includes(widget.name)) {
            chain(widget, "callback", () => generatingNodes().forEach((node) => schedule(node)));
          }
        }
      });
    }
  },
});
