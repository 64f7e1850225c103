// The LoRA check in the frontend: the Adapter node's line as its path is typed (debounced), from
// GET /flux2_lora/lora_check ("FLUX.2 [dev] LoRA · rank 16 · 195 MB · ai-toolkit", or why it will be
// refused); after a run, the check's warnings on the generating node (event flux2lora.lora_checks,
// sent by nodes/lora_check.py); and the setting "Check LoRAs before sending", kept by the server on disk.
// The line is the "lora" part of the node's display (web/js/flux2_lora.js), a DOM widget that every
// renderer shows (the classic canvas and Nodes 2.0) and that is never saved.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";
import { attachDisplay, displayOf, refreshDisplay } from "./flux2_lora.js";
import { compactWidgetValues, nodeForExecutionId } from "./logic.js";
import { loraLine, loraPathQuery, loraSettingBody } from "./lora_logic.js";
import { callPackRoute } from "./pack_route.js";

const ADAPTER_NODE = "Flux2LoraAdapter";
const CHECK_ROUTE = "/flux2_lora/lora_check";
const SETTING_ROUTE = "/flux2_lora/lora_check/setting";
const CHECKS_EVENT = "flux2lora.lora_checks";
const TYPING_PAUSE_MS = 600;
const MAX_WIDTH = 480; // a node grows to show its line on one row, up to this width
const PADDING = 40; // the element's own padding, and Nodes 2.0's inner margins

const timers = new WeakMap();

function chain(target, name, handler) {
  const original = target[name];
  target[name] = function (...args) {
    const result = original?.apply(this, args);
    handler.apply(this, args);
    return result;
  };
}

let measure = null;

// The classic canvas lays the line out in the node's width, one row per line: widen the node (never
// narrow it) so a line is not cut; Nodes 2.0 follows the node's size too.
function fitWidth(node, lines) {
  measure ??= document.createElement("canvas").getContext("2d");
  if (!measure || !node.size || !lines.length) return;
  measure.font = "12px sans-serif";
  const wanted = Math.min(MAX_WIDTH, Math.ceil(Math.max(...lines.map((t) => measure.measureText(t).width))) + PADDING);
  if (wanted > node.size[0]) node.setSize?.([wanted, node.size[1]]);
}

function pathOf(node) {
  return node.widgets?.find((widget) => widget.name === "path")?.value;
}

async function showLine(node) {
  if (!node.graph) return; // removed meanwhile
  const query = loraPathQuery(pathOf(node));
  if (node.flux2LoraQuery === query) return;
  node.flux2LoraQuery = query;
  if (!query) {
    displayOf(node).set("lora", []);
    refreshDisplay(node);
    return;
  }
  displayOf(node).set("lora", ["Checking the LoRA…"], "status");
  refreshDisplay(node);
  const answer = await callPackRoute(`${CHECK_ROUTE}?${query}`, "GET");
  if (node.flux2LoraQuery !== query) return; // the path changed meanwhile: a newer answer follows
  const line = loraLine(answer);
  displayOf(node).set("lora", line.text ? [line.text] : [], line.tone);
  fitWidth(node, line.text ? [line.text] : []);
  refreshDisplay(node);
}

function schedule(node, force = false) {
  if (force) node.flux2LoraQuery = undefined;
  clearTimeout(timers.get(node));
  timers.set(node, setTimeout(() => showLine(node), TYPING_PAUSE_MS));
}

function onChecks({ detail }) {
  const node = nodeForExecutionId(app.rootGraph ?? app.graph, detail?.node);
  if (!node?.flux2Display) return;
  const lines = Array.isArray(detail.lines) ? detail.lines.map(String) : [];
  node.flux2Display.set("lora", lines, "warn");
  fitWidth(node, lines);
  refreshDisplay(node);
}

function toast(severity, detail) {
  const toasts = app.extensionManager?.toast;
  if (toasts?.add) toasts.add({ severity, summary: "Flux2 LoRA check", detail, life: 6000 });
  else if (severity === "error") console.warn(`Flux2 LoRA check: ${detail}`);
}

// Kept by the server on disk: at start-up an empty value says nothing (the server's file stays).
async function sendSetting(value, atStartUp) {
  if (atStartUp && !value) return;
  const answer = await callPackRoute(SETTING_ROUTE, "POST", loraSettingBody(value));
  if (!answer || answer.error) toast("error", answer?.error ?? "route not reached");
  else if (!atStartUp) toast("success", answer.message);
}

app.registerExtension({
  name: "flux2lora.LoraCheck",

  settings: [
    {
      id: "Flux2LoRA.CheckLoras",
      category: ["Flux2 LoRA", "LoRA check", "Check LoRAs"],
      name: "Check LoRAs before sending",
      tooltip: "Read each LoRA's header before a run is sent and refuse LoRAs that cannot work with FLUX.2 [dev] "
        + "(another model, not a LoRA, unreachable or private). Off: no request to LoRA hosts. Empty: "
        + "FLUX2_LORA_CHECK_LORAS from ComfyUI's environment (default on).",
      type: "combo",
      options: [{ text: "from the environment (default: on)", value: "" }, "on", "off"],
      defaultValue: "",
      onChange: (value, oldValue) => sendSetting(value, oldValue === undefined),
    },
  ],

  setup() {
    api.addEventListener(CHECKS_EVENT, onChecks);
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== ADAPTER_NODE) return;
    const prototype = nodeType.prototype;
    chain(prototype, "onNodeCreated", function () {
      attachDisplay(this);
      // Every renderer calls a widget's callback when its value changes (Nodes 2.0 too).
      const path = this.widgets?.find((widget) => widget.name === "path");
      if (path) chain(path, "callback", () => schedule(this));
      schedule(this);
    });
    chain(prototype, "onConfigure", function () {
      schedule(this, true); // a loaded workflow's path
    });
    chain(prototype, "onSerialize", function (saved) {
      if (saved) saved.widgets_values = compactWidgetValues(saved.widgets_values);
    });
  },
});
