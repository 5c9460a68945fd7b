// Form fields generated from the API's own JSON schema (/openapi.json): types, ranges,
// enums, defaults and descriptions come from there, so a field the API gains (a text layer,
// a transition, a new render option) appears here without new JavaScript.

import { h, uid } from "./dom.js";

let openapi = null;

export async function loadSchema() {
  if (!openapi) {
    const response = await fetch("/openapi.json", { credentials: "same-origin" });
    openapi = await response.json();
  }
  return openapi;
}

export function resolve(schema) {
  let s = schema || {};
  while (s.$ref) s = openapi.components.schemas[s.$ref.split("/").pop()];
  return s;
}

export const component = (name) => openapi.components.schemas[name];

// anyOf [X, null] → X, and whether null is allowed. Keywords beside anyOf (the patch's
// ranges and description) are kept.
function unwrap(schema) {
  const { anyOf, ...rest } = schema;
  if (!anyOf) return { inner: { ...rest, ...resolve(schema) }, nullable: false };
  const options = anyOf.filter((s) => s.type !== "null");
  // Several shapes (a string or an object, say): edited as JSON.
  const inner = options.length === 1 ? resolve(options[0]) : { oneOf: options };
  return { inner: { ...inner, ...rest, description: rest.description || inner.description }, nullable: options.length < anyOf.length };
}

const label = (name) => name.replace(/([A-Z])/g, " $1").replace(/^./, (c) => c.toLowerCase());

function hint(schema, name, suggestions) {
  const parts = [];
  if (schema.description) parts.push(schema.description);
  const range = [];
  if (schema.minimum !== undefined) range.push(`≥ ${schema.minimum}`);
  if (schema.exclusiveMinimum !== undefined) range.push(`> ${schema.exclusiveMinimum}`);
  if (schema.maximum !== undefined) range.push(`≤ ${schema.maximum}`);
  if (range.length) parts.push(range.join(", "));
  if (schema.default !== undefined && schema.default !== null) parts.push(`default ${JSON.stringify(schema.default)}`);
  const items = schema.type === "array" ? resolve(schema.items) : null;
  if (items && ["string", "number", "integer"].includes(items.type)) parts.push(suggestions ? "comma-separated file names" : "comma-separated");
  else if (items || !schema.type) parts.push("JSON");
  return parts.join("; ");
}

// One field for property `name` of an object at `path` ("scenes[1]", "" at the top).
// Returns {element, read}: read() gives the value to send, undefined to leave it out.
export function field(name, rawSchema, value, path, options = {}) {
  const { inner: schema, nullable } = unwrap(rawSchema);
  const fieldPath = path ? `${path}.${name}` : name;
  const id = uid("f");
  const describe = hint(schema, name, options.suggest?.(name));
  const helpId = describe ? `${id}-help` : undefined;
  const errorId = `${id}-error`;
  const common = { id, name, dataset: { field: fieldPath }, "aria-describedby": [helpId, errorId].filter(Boolean).join(" ") };
  const help = describe ? h("small", { id: helpId, class: "help" }, describe) : null;
  const error = h("p", { id: errorId, class: "field-error", hidden: true });

  if (schema.type === "object" && schema.properties) {
    const on = h("input", { type: "checkbox", id, checked: value !== undefined && value !== null, dataset: { field: fieldPath } });
    const sub = objectFields(schema, value || {}, fieldPath, options);
    const body = h("div", { class: "nested" }, sub.element);
    const sync = () => (body.hidden = !on.checked);
    on.addEventListener("change", sync);
    sync();
    return {
      element: h("fieldset", { class: "object" }, h("legend", {}, on, h("label", { for: id }, label(name))), help, error, body),
      read: () => (on.checked ? sub.read() : undefined),
    };
  }
  let input;
  let read;
  const items = schema.type === "array" ? resolve(schema.items) : null;
  const scalar = (t) => ["string", "number", "integer", "boolean"].includes(t);
  if ((items && !scalar(items.type)) || (!schema.type && !schema.enum) || (schema.type === "object")) {
    // A list of objects (text layers, clips), or a value of several shapes: its JSON, as the
    // API takes it. Text that is not JSON is sent as it is, for the API to name the field.
    // A list that may hold plain names (images: names or clip objects) reads "a.png, b.png"
    // as those names, and shows a list of names that way.
    const names = items && (items.oneOf || []).some((o) => resolve(o).type === "string");
    const plain = names && Array.isArray(value) && value.every((v) => typeof v === "string");
    const shown = value === undefined || value === null ? "" : plain ? value.join(", ") : JSON.stringify(value, null, 2);
    input = h("textarea", { ...common, rows: plain ? 1 : 4, class: "json" }, shown);
    read = () => {
      if (input.value.trim() === "") return undefined;
      try {
        return JSON.parse(input.value);
      } catch {
        if (names) return input.value.split(",").map((s) => s.trim()).filter(Boolean);
        return input.value;
      }
    };
  } else if (schema.enum || schema.type === "boolean") {
    const choices = schema.enum || [true, false];
    input = h("select", common,
      h("option", { value: "" }, nullable || schema.default !== undefined || options.optional ? "(default)" : "(choose)"),
      choices.map((c) => h("option", { value: JSON.stringify(c), selected: value === c }, String(c))));
    read = () => (input.value === "" ? undefined : JSON.parse(input.value));
  } else if (schema.type === "integer" || schema.type === "number") {
    const min = schema.minimum ?? schema.exclusiveMinimum;
    input = h("input", { ...common, type: "number", inputmode: "decimal", min, max: schema.maximum,
      step: schema.type === "integer" ? "1" : "any", value: value ?? "", placeholder: schema.default ?? (options.optional ? "default" : "") });
    read = () => (input.value === "" ? undefined : Number(input.value));
  } else if (schema.type === "array") {
    const listId = options.suggest?.(name);
    input = h("input", { ...common, type: "text", list: listId, value: (value || []).join(", ") });
    const number = ["integer", "number"].includes(resolve(schema.items).type);
    read = () => {
      const items = input.value.split(",").map((s) => s.trim()).filter(Boolean);
      if (!items.length) return undefined;
      return number ? items.map(Number) : items;
    };
  } else {
    const long = (schema.maxLength || 0) > 1000;
    const listId = options.suggest?.(name);
    input = long
      ? h("textarea", { ...common, rows: 3 }, value ?? "")
      : h("input", { ...common, type: "text", list: listId, value: value ?? "", pattern: schema.pattern, placeholder: options.optional && schema.default ? String(schema.default) : undefined });
    read = () => (input.value === "" ? undefined : input.value);
  }
  if (options.onChange) input.addEventListener("input", options.onChange);
  if (options.onChange) input.addEventListener("change", options.onChange);
  return { element: h("div", { class: "field" }, h("label", { for: id }, label(name)), input, help, error), read };
}

export function objectFields(rawSchema, value, path, options = {}) {
  const schema = resolve(rawSchema);
  const fields = Object.entries(schema.properties || {})
    .filter(([name]) => !(options.skip || []).includes(name))
    .map(([name, prop]) => [name, field(name, prop, value?.[name], path, options)]);
  return {
    element: h("div", { class: "fields" }, fields.map(([, f]) => f.element)),
    read: () => {
      const out = {};
      for (const [name, f] of fields) {
        const v = f.read();
        if (v !== undefined) out[name] = v;
      }
      return out;
    },
  };
}

// An API error's message on the field it names ("scenes[1].narration"); false when no field
// of `root` has that name (the caller shows it elsewhere).
export function showFieldError(root, error) {
  clearErrors(root);
  if (!error.field) return false;
  let path = error.field;
  while (path) {
    const input = root.querySelector(`[data-field="${CSS.escape(path)}"]`);
    if (input) {
      for (let up = input.closest("details"); up; up = up.parentElement.closest("details")) up.open = true;
      input.setAttribute("aria-invalid", "true");
      const box = input.closest(".field, fieldset")?.querySelector(".field-error");
      if (box) {
        box.textContent = error.message;
        box.hidden = false;
      }
      input.focus();
      return true;
    }
    path = path.replace(/(\.[^.[\]]+|\[\d+\])$/, "");
  }
  return false;
}

export function clearErrors(root) {
  for (const el of root.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of root.querySelectorAll(".field-error")) {
    el.hidden = true;
    el.textContent = "";
  }
}
