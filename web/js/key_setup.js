// Paste the AI/ML API key in ComfyUI: Settings → Flux2 LoRA, or "Set AI/ML API key…" in the
// menu of a Flux2 LoRA node. The key goes to the pack's route (POST /flux2_lora/key), which
// saves it in ComfyUI's user folder; it is never stored in ComfyUI's settings or a workflow,
// and the route only ever answers whether a key is set and its last four characters. Also the
// key setting (its panel is the setting's renderer) and the command that opens the dialog.
import { balancePanel } from "./balance.js";
import { chain, setting } from "./comfy.js";
import { keyStatusText } from "./logic.js";
import { callPackRoute } from "./pack_route.js";

const ROUTE = "/flux2_lora/key";

const callRoute = (method, body) => callPackRoute(ROUTE, method, body);

function element(tag, properties = {}, style = {}) {
  const node = Object.assign(document.createElement(tag), properties);
  Object.assign(node.style, style);
  return node;
}

/** The key form: status, a password field, Save and Remove. Used by the setting and the dialog. */
export function keyPanel() {
  const root = element("div", {}, { display: "flex", flexDirection: "column", gap: "6px", minWidth: "320px" });
  const status = element("div", { textContent: "Checking…" }, { fontSize: "0.9em", opacity: "0.85" });
  const input = element("input", {
    type: "password", autocomplete: "off", spellcheck: false, placeholder: "Paste your AI/ML API key",
  }, { width: "100%", padding: "4px 6px" });
  input.setAttribute("aria-label", "AI/ML API key");
  const row = element("div", {}, { display: "flex", gap: "6px" });
  const save = element("button", { type: "button", textContent: "Save key" });
  const remove = element("button", { type: "button", textContent: "Remove saved key" });
  row.append(save, remove);
  const balance = balancePanel();
  root.append(input, row, status, balance);

  const show = (answer) => { status.textContent = keyStatusText(answer); };
  save.addEventListener("click", async () => {
    const key = input.value;
    input.value = ""; // the field never keeps the key once sent
    show(await callRoute("POST", { key }));
    balance.flux2Ask(); // a new key: its account's balance
  });
  remove.addEventListener("click", async () => {
    show(await callRoute("POST", { clear: true }));
    balance.flux2Ask();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") event.stopPropagation(); // keep ComfyUI's shortcuts out of the field
    if (event.key === "Enter") save.click();
  });
  callRoute("GET").then(show);
  return root;
}

/** A small dialog with the key form, for frontends or places without the settings panel. */
export function openKeyDialog() {
  const overlay = element("div", {}, {
    position: "fixed", inset: "0", background: "rgba(0,0,0,0.5)", zIndex: "10000",
    display: "flex", alignItems: "center", justifyContent: "center",
  });
  const box = element("div", {}, {
    background: "var(--comfy-menu-bg, #222)", color: "var(--fg-color, #ddd)", padding: "16px",
    borderRadius: "8px", maxWidth: "520px", display: "flex", flexDirection: "column", gap: "10px",
  });
  const close = element("button", { type: "button", textContent: "Close" }, { alignSelf: "flex-end" });
  const title = element("strong", { textContent: "Flux2 LoRA: AI/ML API key" });
  const note = element("div", {
    textContent: "Saved in ComfyUI's user folder (readable only by you); used from the next run on. "
      + "AIML_API_KEY in ComfyUI's environment takes precedence.",
  }, { fontSize: "0.85em", opacity: "0.8" });
  box.append(title, note, keyPanel(), close);
  overlay.append(box);
  const dismiss = () => overlay.remove();
  close.addEventListener("click", dismiss);
  overlay.addEventListener("click", (event) => { if (event.target === overlay) dismiss(); });
  overlay.addEventListener("keydown", (event) => { if (event.key === "Escape") dismiss(); });
  document.body.append(overlay);
  box.querySelector("input")?.focus();
}

/** A generating node type's menu offers "Set AI/ML API key…". */
export function offersKeyDialog(prototype) {
  chain(prototype, "getExtraMenuOptions", function (_canvas, options) {
    options?.push?.({ content: "Set AI/ML API key…", callback: () => openKeyDialog() });
  });
}

export const KEY_SETTING = setting("ApiKey", ["AI/ML API", "Key"], "AI/ML API key",
  "Saved by the Flux2 LoRA pack in ComfyUI's user folder, never in these settings.",
  // A custom renderer: the key never goes through the setting's value (comfy.settings.json).
  { type: () => keyPanel() });

export const KEY_COMMAND = { id: "Flux2LoRA.SetApiKey", label: "Flux2 LoRA: set AI/ML API key", function: () => openKeyDialog() };
