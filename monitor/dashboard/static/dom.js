// DOM helpers: every piece of data goes in as text (textContent / attributes), never as markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Create an HTML element: h("td", {class: "x"}, "text", otherNode). */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  apply(node, attrs);
  return append(node, children);
}

/** Create an SVG element with attributes and children. */
export function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  apply(node, attrs);
  return append(node, children);
}

/** Replace all children of a node. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

let toastTimer = null;

/** Show a short message at the bottom of the screen (role=status for screen readers). */
export function toast(message, kind = "info") {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.className = `toast show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.className = "toast"; }, kind === "error" ? 8000 : 2500);
}

/** A small button that copies `value` to the clipboard. */
export function copyButton(value, what = "value") {
  return h("button", {
    type: "button", class: "copy", title: `Copy ${what}`, "aria-label": `Copy ${what}`,
    dataset: {copy: value},
    onclick: async (event) => {
      event.stopPropagation();
      try {
        await navigator.clipboard.writeText(value);
        toast(`Copied ${what}`);
      } catch {
        // Clipboard API refused (insecure origin or permissions): select a text field instead.
        const field = h("textarea", {class: "offscreen", readonly: true});
        field.value = value;
        document.body.append(field);
        field.select();
        const ok = document.execCommand("copy");
        field.remove();
        toast(ok ? `Copied ${what}` : `Copy failed: ${value}`, ok ? "info" : "error");
      }
    },
  }, copyIcon());
}

function copyIcon() {
  return s("svg", {viewBox: "0 0 16 16", width: 12, height: 12, "aria-hidden": "true", class: "icon"},
    s("rect", {x: 5, y: 5, width: 9, height: 9, rx: 1.5}),
    s("path", {d: "M3 11V3.5C3 2.7 3.7 2 4.5 2H11"}));
}

/** A monospace hash or address, shortened, with the full value as tooltip and a copy button. */
export function hashCell(value, what, link) {
  if (!value) return h("span", {class: "muted"}, "—");
  const label = h(link ? "a" : "span", {class: "mono", title: value, href: link}, short(value));
  return h("span", {class: "hash"}, label, copyButton(value, what));
}

/** 0x1234…abcd */
export function short(value, head = 6, tail = 4) {
  const text = String(value);
  return text.length > head + tail + 1 ? `${text.slice(0, head)}…${text.slice(-tail)}` : text;
}
