// What a generating node shows after a run: its pictures and credits, the cache's state, the
// session's total across all nodes, and the server's budget lines. From the API's "executed" event,
// found by execution id ("5:7" inside a subgraph) from the root graph, not node.onExecuted: the
// frontend calls that only for nodes of the graph on screen, so a node inside a subgraph would miss
// its run while the top level is shown. Also the credit budget setting, sent to POST /flux2_lora/budget.
import { chain, rootGraph, setting } from "./comfy.js";
import { budgetStatusText, CreditTally, creditLines, nodeForExecutionId, parseBudgetSetting } from "./logic.js";
import { displayOf, refreshDisplay } from "./node_display.js";
import { settingSender } from "./pack_route.js";

const tally = new CreditTally(); // one total for the browser session, across all nodes
const withRuns = new Set(); // generating nodes showing a last run (their session line follows the tally)

function showRun(node) {
  displayOf(node).set("run", creditLines(node.flux2Run, tally.total, tally.budget));
  refreshDisplay(node);
}

/** The API's "executed" event: a generating node's run, and every node's session line after it. */
export function onExecuted({ detail }) {
  const output = detail?.output;
  if (!output?.flux2_run) return;
  const node = nodeForExecutionId(rootGraph(), detail.display_node ?? detail.node);
  if (!node?.flux2Display) return;
  node.flux2Run = tally.record(output);
  withRuns.add(node);
  withRuns.forEach(showRun);
}

/** A generating node type: a removed node no longer follows the session's total. */
export function showsRuns(prototype) {
  chain(prototype, "onRemoved", function () {
    withRuns.delete(this);
  });
}

// POST /flux2_lora/budget; the answer updates every node's budget line.
const sendCreditBudget = settingSender({
  route: "/flux2_lora/budget",
  summary: "Flux2 LoRA credit budget",
  toBody: parseBudgetSetting,
  pauseMs: 800, // a text setting changes on every key press
  describe: budgetStatusText,
  onAnswer: (answer) => {
    if (!answer || answer.error) return;
    tally.setBudget(answer);
    withRuns.forEach(showRun);
  },
});

export const CREDIT_BUDGET_SETTING = setting("CreditBudget", ["AI/ML API", "Credit budget"],
  "Credit budget (credits this ComfyUI process may spend)",
  "Once the Flux2 LoRA nodes have spent this many credits since ComfyUI started, further requests "
    + "are refused before sending; results from the cache still run. Empty: FLUX2_LORA_CREDIT_BUDGET from "
    + "ComfyUI's environment, or no budget.",
  { type: "text", attrs: { placeholder: "e.g. 1000000; empty: no budget" }, onChange: sendCreditBudget });
