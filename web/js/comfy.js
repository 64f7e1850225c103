// The ComfyUI frontend as the pack's modules see it: its app and api objects (this is the only
// module that imports ComfyUI's own scripts) and the helpers every feature needs. No side effects.
// Served as /extensions/<pack folder>/js/comfy.js, hence three levels up to /scripts/.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

export { api, app };

/** Call the node type's own handler (or another extension's) first, then ours; keeps its result. */
export function chain(target, name, handler) {
  const original = target[name];
  target[name] = function (...args) {
    const result = original?.apply(this, args);
    handler.apply(this, args);
    return result;
  };
}

/** The top-level graph whichever graph the canvas shows (app.graph in frontends without subgraphs). */
export function rootGraph() {
  return app.rootGraph ?? app.graph;
}

/** The value of a node's widget by name; undefined without that widget (or without a node). */
export function widgetValue(node, name) {
  return node?.widgets?.find((widget) => widget.name === name)?.value;
}

/** A toast in the frontend's corner; a frontend without toasts gets errors in the console. */
export function toast(severity, summary, detail) {
  const toasts = app.extensionManager?.toast;
  if (toasts?.add) toasts.add({ severity, summary, detail, life: 6000 });
  else if (severity === "error") console.warn(`${summary}: ${detail}`);
}

/** Call ``handler`` whenever one of the node's widgets named in ``names`` changes. */
export function onWidgetChange(node, names, handler) {
  // Every renderer calls a widget's callback when its value changes (Nodes 2.0 too).
  for (const widget of node.widgets ?? []) {
    if (names.includes(widget.name)) chain(widget, "callback", handler);
  }
}

/**
 * A node type whose nodes run ``update(node, loaded)`` when created and whenever one of the widgets in
 * ``names`` changes (loaded false), and when a workflow's values are loaded into them (loaded true).
 */
export function followWidgets(prototype, names, update) {
  chain(prototype, "onNodeCreated", function () {
    onWidgetChange(this, names, () => update(this, false));
    update(this, false);
  });
  chain(prototype, "onConfigure", function () {
    update(this, true);
  });
}

/** A setting under Settings → Flux2 LoRA: ``where`` is its [group, label] there; empty by default. */
export function setting(key, where, name, tooltip, control) {
  return { id: `Flux2LoRA.${key}`, category: ["Flux2 LoRA", ...where], name, tooltip, defaultValue: "", ...control };
}

/** A combo setting's options: first "from the environment" (the value ""), then ``values``. */
export function fromEnvironment(defaultText, ...values) {
  return [{ text: `from the environment (default: ${defaultText})`, value: "" }, ...values];
}
