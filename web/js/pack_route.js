// Calls to the pack's own routes in ComfyUI's server (/flux2_lora/...), and the settings the pack
// keeps on disk, which every setting sends to its route the same way.
import { api, toast } from "./comfy.js";

/** The route's JSON answer (errors included, they carry "error"), or null if it could not be reached. */
export async function callPackRoute(route, method = "GET", body = undefined) {
  try {
    const response = await api.fetchApi(route, {
      method,
      cache: "no-store",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    return await response.json();
  } catch {
    return null;
  }
}

/** The toast's text for a setting route's answer: its error ("route not reached" without one), or its message. */
export function answerText(answer) {
  return !answer || answer.error ? answer?.error ?? "route not reached" : answer.message;
}

/**
 * A setting's onChange for a setting the pack also keeps on disk (in force from start-up, before any
 * page loads). The frontend calls onChange once when it registers the setting (oldValue undefined):
 * the stored value is sent then too, so the server has what this page shows; but an empty value at
 * start-up says nothing, so a page opened in another browser never clears what someone set. Only a
 * user emptying the field clears it.
 * - ``toBody(value)``: the route's JSON body, or {error} (shown as a toast, nothing sent).
 * - ``pauseMs``: wait for a pause in typing (a text setting changes on every key press).
 * - ``describe(answer)``: the toast's text; ``onAnswer(answer)``: called with every answer first.
 * A failure is always shown, a success only when the user changed the setting.
 */
export function settingSender({ route, summary, toBody, pauseMs = 0, describe = answerText, onAnswer }) {
  let timer = null;
  return (value, oldValue) => {
    const atStartUp = oldValue === undefined;
    if (atStartUp && !String(value ?? "").trim()) return;
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const body = toBody(value);
      if (body.error) return toast("error", summary, body.error);
      const answer = await callPackRoute(route, "POST", body);
      onAnswer?.(answer);
      if (!answer || answer.error) toast("error", summary, describe(answer));
      else if (!atStartUp) toast("success", summary, describe(answer));
    }, atStartUp ? 0 : pauseMs);
  };
}
