// The text a Flux2 LoRA node shows under its widgets: the display (a NodeDisplay of named parts,
// see logic.js) and the DOM widget that shows it, and the waiting status with its seconds counting.
//
// The texts live in a DOM widget that is never saved (widget.serialize = false: not in the
// workflow's widgets_values) and never sent (options.serialize = false: not in the API prompt).
// Both renderers show DOM widgets: the classic canvas lays the element over the node, Nodes 2.0
// (Vue nodes, frontend 1.58) mounts it inside the node's DOM. Canvas drawing (onDrawForeground)
// is only the fallback for a frontend without addDOMWidget; it shows nothing in Nodes 2.0.
// The status comes from the server's event, found by execution id ("5:7" inside a subgraph) from
// the root graph, so a node inside a subgraph shows it as well.
import { chain, rootGraph } from "./comfy.js";
import { compactWidgetValues, NodeDisplay, nodeForExecutionId, statusLine } from "./logic.js";

export const STATUS_EVENT = "flux2lora.status"; // sent by nodes/comfy_hooks.py (RunHooks.status)
const DISPLAY_WIDGET = "flux2_display"; // its own type: Nodes 2.0 mounts unknown DOM widget types as they are
const DISPLAY_CLASS = "flux2-lora-display";
const LINE_HEIGHT = 16;
const DISPLAY_MARGIN = 2;
const TONE_COLOURS = { status: "#f0c674", info: "#9fd49f", warn: "#f0c674", error: "#ff8a80" };

const ticking = new Set(); // nodes whose display counts seconds
let ticker = null;

/** The node's display (created on first use). */
export function displayOf(node) {
  node.flux2Display ??= new NodeDisplay();
  return node.flux2Display;
}

/** The display widget, added once when the node is created (after its own widgets, so it is last). */
export function attachDisplay(node) {
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

/** Show the node's display as it is now. */
export function refreshDisplay(node) {
  const lines = displayOf(node).lines(Date.now());
  const element = node.flux2DisplayWidget?.element;
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
    ticker = setInterval(() => ticking.forEach(refreshDisplay), 1000);
  } else if (!ticking.size && ticker) {
    clearInterval(ticker);
    ticker = null;
  }
}

/** The server's status event: "Waiting for the AI/ML API..." with the seconds waited, or nothing. */
export function onStatus({ detail }) {
  const node = nodeForExecutionId(rootGraph(), detail?.node);
  if (!node?.flux2Display) return;
  const text = detail.text ? String(detail.text) : "";
  const since = Date.now();
  node.flux2Display.set("status", text ? (now) => [statusLine(text, since, now)] : null, "status");
  if (node.flux2Display.ticking) ticking.add(node);
  else ticking.delete(node);
  updateTicker();
  refreshDisplay(node);
}

/** A node type that shows a display: attached when a node is created, never saved, its counter stopped on removal. */
export function showsDisplay(prototype) {
  chain(prototype, "onNodeCreated", function () {
    attachDisplay(this);
  });
  chain(prototype, "onSerialize", function (saved) {
    if (saved) saved.widgets_values = compactWidgetValues(saved.widgets_values);
  });
  chain(prototype, "onRemoved", function () {
    ticking.delete(this);
    updateTicker();
  });
  // Fallback for a frontend without DOM widgets: the same lines under the node, on the canvas.
  chain(prototype, "onDrawForeground", function (ctx) {
    if (this.flux2DisplayWidget === null) drawLines(this, ctx, this.flux2Display?.lines() ?? []);
  });
}
