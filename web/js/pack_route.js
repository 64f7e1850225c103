// Calls to the pack's own routes in ComfyUI's server (/flux2_lora/key, /flux2_lora/budget).
import { api } from "../../../scripts/api.js";

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
