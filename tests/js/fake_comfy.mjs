// Stand-ins for ComfyUI's app and api objects, as much of them as the pack's frontend uses. Tests read
// what was registered, toasted and fetched, and answer the pack's routes with ``api.answer``.
class FakeApi extends EventTarget {
  constructor() {
    super();
    this.calls = []; // [{route, method, body}]
    this.listened = []; // event names given to addEventListener
    this.answer = () => null; // (route, method, body) -> the route's JSON answer, or an Error to throw
  }

  addEventListener(type, listener) {
    this.listened.push(type);
    super.addEventListener(type, listener);
  }

  removeEventListener(type, listener) {
    this.listened.splice(this.listened.indexOf(type), 1);
    super.removeEventListener(type, listener);
  }

  /** Send a server event as ComfyUI's api does: a CustomEvent whose detail is the message. */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  async fetchApi(route, init = {}) {
    const body = init.body === undefined ? undefined : JSON.parse(init.body);
    this.calls.push({ route, method: init.method, body, init });
    const answer = await this.answer(route, init.method, body);
    if (answer instanceof Error) throw answer;
    return { json: async () => answer };
  }
}

export const api = new FakeApi();

export const app = {
  registered: [],
  rootGraph: null,
  extensionManager: { toast: { shown: [], add(message) { this.shown.push(message); } } },
  registerExtension(extension) {
    this.registered.push(extension);
  },
};
