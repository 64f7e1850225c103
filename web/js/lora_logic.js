// Pure logic for the LoRA check's lines (no ComfyUI imports, so tests/js can run it under Node).

/** The text of a path widget as the route's query value ("" for nothing to check). */
export function loraPathQuery(value) {
  const path = String(value ?? "").trim();
  return path ? `path=${encodeURIComponent(path)}` : "";
}

/**
 * The Adapter node's line from GET /flux2_lora/lora_check's answer: {text, tone}, tone being the
 * display's "info" (a FLUX.2 [dev] LoRA), "warn" (not recognised or not checked) or "error" (refused).
 */
export function loraLine(answer) {
  if (!answer || typeof answer !== "object") {
    return { text: "LoRA not checked: the Flux2 LoRA check route did not answer.", tone: "warn" };
  }
  if (answer.error) return { text: `LoRA not checked: ${answer.error}`, tone: "warn" };
  const tone = { ok: "info", warn: "warn", error: "error" }[answer.tone] ?? "warn";
  return { text: String(answer.text ?? ""), tone };
}

/** A setting's value as the setting route's body: "on", "off" or null (the environment decides). */
export function loraSettingBody(value) {
  return { check_loras: value === "on" || value === "off" ? value : null };
}
