// Module hooks for Node (registered by comfy_stub.mjs): ComfyUI's /scripts/app.js and /scripts/api.js,
// which the frontend modules import from three levels above web/js/, resolve to fake_comfy.mjs.
const FAKE = new URL("./fake_comfy.mjs", import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (/\/scripts\/(app|api)\.js$/.test(specifier) && context.parentURL?.includes("/web/js/")) {
    return { url: FAKE, shortCircuit: true };
  }
  return next(specifier, context);
}
