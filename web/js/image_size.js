// The Image Size node's resulting size and aspect ratio ("1024 × 768 · 4:3 · 0.79 MP"), live as
// its widgets change: the "size" part of its display.
import { followWidgets, widgetValue } from "./comfy.js";
import { sizeForWidgets, sizeLabel } from "./logic.js";
import { displayOf, refreshDisplay } from "./node_display.js";

/** The widgets that make the size. */
export const SIZE_WIDGETS = ["preset", "width", "height"];

/**
 * The Image Size node type shows its size. ``presetPixels`` maps preset names to [width, height]; it
 * comes from the node definition (nodes/image_size.py), not a copy here.
 */
export function showsSize(prototype, presetPixels) {
  followWidgets(prototype, SIZE_WIDGETS, (node) => {
    const size = sizeForWidgets(
      widgetValue(node, "preset"), widgetValue(node, "width"), widgetValue(node, "height"), presetPixels);
    displayOf(node).set("size", size ? [sizeLabel(size)] : []);
    refreshDisplay(node);
  });
}
