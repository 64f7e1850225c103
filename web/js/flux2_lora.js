// The Flux2 LoRA frontend extension, the pack's only one: its settings (Settings → Flux2 LoRA), the
// key command, the server events it listens to and what each node type shows. This is the only
// module with a side effect (the registration); the others only export, since ComfyUI loads every
// .js file of the pack as an extension too. What they hold:
//   node_display.js    the text under a node (a DOM widget, never saved) and the waiting status
//   credits.js         a run's credits, cache state and budget lines; the credit budget setting
//   image_size.js      the Image Size node's size and aspect ratio, live as its widgets change
//   price.js           the price line on Generate and Edit, before running
//   lora_check.js      the Adapter node's LoRA line, the check's warnings after a run, its setting
//   money_settings.js  the balance floor, budget period, budget in USD and budget scope settings
//   key_setup.js       the key setting, panel, dialog and command (balance.js: the balance line in it)
//   comfy.js           ComfyUI's app and api, and the helpers every feature uses
//   pack_route.js      calls to the pack's routes, and the sender every kept setting uses
//   logic.js, money_logic.js, lora_logic.js   pure logic, tested under Node (tests/js/)
// Served as /extensions/<pack folder>/js/flux2_lora.js.
import { api, app } from "./comfy.js";
import { CREDIT_BUDGET_SETTING, onExecuted, showsRuns } from "./credits.js";
import { showsSize } from "./image_size.js";
import { KEY_COMMAND, KEY_SETTING, offersKeyDialog } from "./key_setup.js";
import { ADAPTER_NODE, GENERATING_NODES, IMAGE_SIZE_NODE } from "./logic.js";
import { CHECK_LORAS_SETTING, checksLoraPath, CHECKS_EVENT, onLoraChecks } from "./lora_check.js";
import { MONEY_SETTINGS } from "./money_settings.js";
import { onStatus, showsDisplay, STATUS_EVENT } from "./node_display.js";
import { onExecutedPrices, showsPrice, sizeChangesPrices } from "./price.js";

app.registerExtension({
  name: "flux2lora.Flux2LoRA",
  settings: [KEY_SETTING, CREDIT_BUDGET_SETTING, CHECK_LORAS_SETTING, ...MONEY_SETTINGS],
  commands: [KEY_COMMAND],

  setup() {
    api.addEventListener(STATUS_EVENT, onStatus);
    api.addEventListener("executed", onExecuted);
    api.addEventListener("executed", onExecutedPrices);
    api.addEventListener(CHECKS_EVENT, onLoraChecks);
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    const prototype = nodeType.prototype;
    if (GENERATING_NODES.has(nodeData.name)) {
      showsDisplay(prototype);
      showsRuns(prototype);
      showsPrice(prototype);
      offersKeyDialog(prototype);
    } else if (nodeData.name === IMAGE_SIZE_NODE) {
      showsDisplay(prototype);
      // Preset pixel sizes come from the node definition (nodes/image_size.py), not a copy here.
      showsSize(prototype, nodeData.input?.required?.preset?.[1]?.flux2_pixels ?? {});
      sizeChangesPrices(prototype);
    } else if (nodeData.name === ADAPTER_NODE) {
      showsDisplay(prototype);
      checksLoraPath(prototype);
    }
  },
});
