// A tiny DOM for Node: just what the pack's frontend modules touch (elements with style, dataset,
// children, text, listeners; document.body; a canvas context that measures text).
class FakeElement {
  constructor(tag) {
    this.tagName = tag.toUpperCase();
    this.style = {};
    this.dataset = {};
    this.children = [];
    this.parent = null;
    this.listeners = {};
    this.attributes = {};
    this.textContent = "";
    this.className = "";
    this.value = "";
  }

  get isConnected() {
    let node = this;
    while (node.parent) node = node.parent;
    return node === globalThis.document?.body;
  }

  append(...children) {
    for (const child of children) {
      child.parent = this;
      this.children.push(child);
    }
  }

  replaceChildren(...children) {
    this.children = [];
    this.append(...children);
  }

  remove() {
    if (this.parent) this.parent.children = this.parent.children.filter((child) => child !== this);
    this.parent = null;
  }

  setAttribute(name, value) {
    this.attributes[name] = String(value);
  }

  addEventListener(type, listener) {
    (this.listeners[type] ??= []).push(listener);
  }

  dispatch(type, event = {}) {
    for (const listener of this.listeners[type] ?? []) listener({ target: this, stopPropagation() {}, ...event });
  }

  click() {
    this.dispatch("click");
  }

  focus() {
    globalThis.document.activeElement = this;
  }

  /** Every element below this one, depth first. */
  *descendants() {
    for (const child of this.children) {
      yield child;
      yield* child.descendants();
    }
  }

  querySelector(tag) {
    return [...this.descendants()].find((element) => element.tagName === tag.toUpperCase()) ?? null;
  }

  getContext() {
    return this.tagName === "CANVAS" ? { font: "", measureText: (text) => ({ width: 7 * text.length }) } : null;
  }
}

globalThis.document = {
  body: new FakeElement("body"),
  activeElement: null,
  createElement: (tag) => new FakeElement(tag),
};
