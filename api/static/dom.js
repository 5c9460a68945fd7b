// Elements from data: h("button", {type: "button", onclick}, "Save"). Text is always text
// (never parsed as HTML), so nothing from the API can inject markup or script.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

let ids = 0;
export const uid = (prefix) => `${prefix}-${++ids}`;

export function announce(text) {
  const region = document.getElementById("announce");
  region.textContent = text;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}
