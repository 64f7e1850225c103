// The money settings and what they send: the balance floor (POST /flux2_lora/balance), and the
// budget period, the budget in USD and its scope (POST /flux2_lora/budget). The credit budget is in
// credits.js, since its answer also updates the nodes' budget lines.
import { fromEnvironment, setting } from "./comfy.js";
import { parseFloorSetting, parseUsdBudgetSetting } from "./money_logic.js";
import { settingSender } from "./pack_route.js";

const BUDGET_ROUTE = "/flux2_lora/budget";
const TYPING_PAUSE_MS = 800; // a text setting changes on every key press

// A combo's choice, sent as is ("" for the environment's).
const budgetChoice = (field, summary) => settingSender({
  route: BUDGET_ROUTE, summary, toBody: (value) => ({ [field]: value || null }),
});

export const MONEY_SETTINGS = [
  setting("BalanceFloor", ["AI/ML API", "Balance floor"], "Balance floor (USD the account keeps)",
    "A run whose estimated price would take the account balance below this is refused before "
      + "sending. Empty: FLUX2_LORA_BALANCE_FLOOR from ComfyUI's environment, or no floor.",
    {
      type: "text",
      attrs: { placeholder: "e.g. 5; empty: no floor" },
      onChange: settingSender({ route: "/flux2_lora/balance", summary: "Flux2 LoRA balance floor",
        toBody: parseFloorSetting, pauseMs: TYPING_PAUSE_MS }),
    }),
  setting("BudgetPeriod", ["AI/ML API", "Budget period"], "Credit budget period",
    "What the credit budget counts: this ComfyUI process (forgotten on restart), today, this month "
      + "or all time (kept in the spending ledger in ComfyUI's user folder). Empty: FLUX2_LORA_BUDGET_PERIOD.",
    {
      type: "combo",
      options: fromEnvironment("process", "process", "day", "month", "all"),
      onChange: budgetChoice("period", "Flux2 LoRA budget period"),
    }),
  setting("BudgetUsd", ["AI/ML API", "Budget in USD"], "Budget in USD (a hard cap per budget period)",
    "A run whose estimated price would take the spending of the period over this is refused before "
      + "sending. Counted on this machine, or for the whole key with the scope 'key'. Accepts 5 or $5. Empty: "
      + "FLUX2_LORA_BUDGET_USD from ComfyUI's environment, or none.",
    {
      type: "text",
      attrs: { placeholder: "e.g. $5; empty: no budget in USD" },
      onChange: settingSender({ route: BUDGET_ROUTE, summary: "Flux2 LoRA budget in USD",
        toBody: parseUsdBudgetSetting, pauseMs: TYPING_PAUSE_MS }),
    }),
  setting("BudgetScope", ["AI/ML API", "Budget scope"], "Budget scope (this machine, or every machine on the key)",
    "machine: this machine's spending ledger. key: what the AI/ML API says the whole key spent today or "
      + "this month (every machine using it), asked before each paid run; needs a budget in USD and the period "
      + "day or month. Empty: FLUX2_LORA_BUDGET_SCOPE (default machine).",
    {
      type: "combo",
      options: fromEnvironment("machine", "machine", "key"),
      onChange: budgetChoice("scope", "Flux2 LoRA budget scope"),
    }),
];
