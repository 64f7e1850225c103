// The account balance in the key panel (Settings → Flux2 LoRA → AI/ML API key, and the key
// dialog): GET /flux2_lora/balance asks the API's GET /v2/billing now, with the saved key. Asked
// when the panel opens and again after every run while the panel is on screen.
import { api } from "./comfy.js";
import { balanceLine } from "./money_logic.js";
import { callPackRoute } from "./pack_route.js";

/** A line with the balance and the floor, kept up to date while it is in the page. */
export function balancePanel() {
  const line = document.createElement("div");
  line.className = "flux2-lora-balance";
  Object.assign(line.style, { fontSize: "0.9em", opacity: "0.85" });
  line.textContent = "Balance: asking…";
  const ask = async () => {
    if (!line.isConnected && line.dataset.asked) {
      api.removeEventListener("executed", ask);
      return;
    }
    line.dataset.asked = "1";
    line.textContent = balanceLine(await callPackRoute("/flux2_lora/balance", "GET"));
  };
  line.flux2Ask = ask;
  api.addEventListener("executed", ask);
  ask();
  return line;
}
