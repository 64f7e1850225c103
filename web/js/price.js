// The price line on Flux2 LoRA Generate and Edit, before running: what the node's current
// num_images and size (the connected Image Size node's preset or custom size, else the API
// default) will cost, from GET /flux2_lora/price (the model's documented price, which the server
// keeps on disk and asks the API for at most daily). Shown as the "price" part of the node's
// display (node_display.js); asked again when a widget, a link or the Image Size node changes,
// and after every run (a run shows the credits-per-USD rate, so credits appear).
import { chain, followWidgets, onWidgetChange, rootGraph, widgetValue } from "./comfy.js";
import { SIZE_WIDGETS } from "./image_size.js";
import { GENERATING_NODES, IMAGE_SIZE_NODE } from "./logic.js";
import { priceLine, priceQuery } from "./money_logic.js";
import { displayOf, refreshDisplay } from "./node_display.js";
import { callPackRoute } from "./pack_route.js";

const PRICE_ROUTE = "/flux2_lora/price";
const ASK_PAUSE_MS = 300; // widgets change on every step of a drag

const timers = new WeakMap();

const typeOf = (node) => node.comfyClass ?? node.type;

// The Image Size node feeding this node's image_size input, read from its widgets; null if none.
function connectedSize(node) {
  const slot = node.findInputSlot?.("image_size") ?? -1;
  let source = null;
  try {
    source = slot >= 0 ? node.getInputNode?.(slot) : null;
  } catch {
    return null; // the link points into a graph being rebuilt (e.g. nodes moving into a subgraph)
  }
  if (!source || typeOf(source) !== IMAGE_SIZE_NODE) return null;
  return { preset: widgetValue(source, "preset"), width: widgetValue(source, "width"),
           height: widgetValue(source, "height") };
}

async function showPrice(node) {
  if (!node.graph) return; // removed meanwhile (deleted, or moved into a subgraph as a new node)
  const query = priceQuery(typeOf(node), widgetValue(node, "num_images"), connectedSize(node));
  if (node.flux2PriceQuery === query && node.flux2PriceShown) return;
  node.flux2PriceQuery = query;
  const answer = await callPackRoute(`${PRICE_ROUTE}?${query}`, "GET");
  if (node.flux2PriceQuery !== query) return; // settings changed meanwhile: a newer answer follows
  node.flux2PriceShown = true;
  displayOf(node).set("price", [priceLine(answer)]);
  refreshDisplay(node);
}

/** Ask for a generating node's price after a pause; ``force`` asks even if its settings did not change. */
export function schedulePrice(node, force = false) {
  if (!node || !GENERATING_NODES.has(typeOf(node))) return;
  if (force) node.flux2PriceShown = false;
  clearTimeout(timers.get(node));
  timers.set(node, setTimeout(() => showPrice(node), ASK_PAUSE_MS));
}

/** Every generating node of the graph (and its subgraphs): an Image Size change may concern any of them. */
export function generatingNodes(graph = rootGraph(), seen = new Set()) {
  const found = [];
  if (!graph || seen.has(graph)) return found;
  seen.add(graph);
  for (const node of graph._nodes ?? graph.nodes ?? []) {
    if (GENERATING_NODES.has(typeOf(node))) found.push(node);
    if (node.subgraph) found.push(...generatingNodes(node.subgraph, seen));
  }
  return found;
}

/** The API's "executed" event: the credits-per-USD rate is known now, every price line can show credits too. */
export function onExecutedPrices() {
  generatingNodes().forEach((node) => schedulePrice(node, true));
}

/** A generating node type shows its price, asked again as its num_images or its links change, or a workflow loads. */
export function showsPrice(prototype) {
  followWidgets(prototype, ["num_images"], schedulePrice);
  chain(prototype, "onConnectionsChange", function () {
    schedulePrice(this);
  });
}

/** The Image Size node type: a change of its size asks every generating node's price again. */
export function sizeChangesPrices(prototype) {
  chain(prototype, "onNodeCreated", function () {
    onWidgetChange(this, SIZE_WIDGETS, () => generatingNodes().forEach((node) => schedulePrice(node)));
  });
}
