// The LoRA check in the frontend: the Adapter node's line as its path is typed (debounced), from
// GET /flux2_lora/lora_check ("FLUX.2 [dev] LoRA · rank 16 · 195 MB · ai-toolkit", or why it will be
// refused); after a run, the check's warnings on the generating node (event flux2lora.lora_checks,
// sent by nodes/lora_check.py); and the setting "Check LoRAs before sending", kept by the server on
// disk. The line is the "lora" part of the node's display (node_display.js).
import { followWidgets, fromEnvironment, rootGraph, setting, widgetValue } from "./comfy.js";
import { nodeForExecutionId } from "./logic.js";
import { loraLine, loraPathQuery, loraSettingBody } from "./lora_logic.js";
import { displayOf, refreshDisplay } from "./node_display.js";
import { callPackRoute, settingSender } from "./pack_route.js";

export const CHECKS_EVENT = "flux2lora.lora_checks";
const CHECK_ROUTE = "/flux2_lora/lora_check";
const TYPING_PAUSE_MS = 600;
const MAX_WIDTH = 480; // a node grows to show its line on one row, up to this width
const PADDING = 40; // the element's own padding, and Nodes 2.0's inner margins

const timers = new WeakMap();
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

async function showLine(node) {
  if (!node.graph) return; // removed meanwhile
  const query = loraPathQuery(widgetValue(node, "path"));
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

/** The server's event after a run: the check's warnings on the generating node. */
export function onLoraChecks({ detail }) {
  const node = nodeForExecutionId(rootGraph(), detail?.node);
  if (!node?.flux2Display) return;
  const lines = Array.isArray(detail.lines) ? detail.lines.map(String) : [];
  node.flux2Display.set("lora", lines, "warn");
  fitWidth(node, lines);
  refreshDisplay(node);
}

/** The Adapter node type: its line follows the path widget, and a loaded workflow's path. */
export function checksLoraPath(prototype) {
  followWidgets(prototype, ["path"], schedule);
}

export const CHECK_LORAS_SETTING = setting("CheckLoras", ["LoRA check", "Check LoRAs"], "Check LoRAs before sending",
  "Read each LoRA's header before a run is sent and refuse LoRAs that cannot work with FLUX.2 [dev] "
    + "(another model, not a LoRA, unreachable or private). Off: no request to LoRA hosts. Empty: "
    + "FLUX2_LORA_CHECK_LORAS from ComfyUI's environment (default on).",
  {
    type: "combo",
    options: fromEnvironment("on", "on", "off"),
    onChange: settingSender({ route: "/flux2_lora/lora_check/setting", summary: "Flux2 LoRA check", toBody: loraSettingBody }),
  });
