// A project: its assets (drop or pick files, a progress bar each), its scenes (a form from
// the spec's JSON schema, or the JSON itself), the render options (from the RenderOptions
// schema) with Preview and Render, and its job history.

import { ApiError, call, projectPath, upload } from "./api.js";
import { announce, h, uid, when } from "./dom.js";
import { clearErrors, component, field, objectFields, showFieldError } from "./form.js";

const UNFINISHED = ["QUEUED", "RUNNING"];

export async function projectScreen(id, show) {
  let view;
  try {
    view = await call("GET", projectPath(id));
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
    view = { id, title: null, spec: null, assets: {}, missingAssets: [], jobs: [] };
  }
  const spec = view.spec ? structuredClone(view.spec) : { title: id, scenes: [{ images: [] }] };
  const kinds = Object.keys(component("ProjectAssets").properties);
  const datalists = h("div", {});
  const suggest = (name) => (kinds.includes(name) ? `dl-${name}` : kinds.includes(`${name}s`) ? `dl-${name}s` : undefined);

  // --- assets ------------------------------------------------------------------------
  const library = h("div", { class: "library" });
  function drawLibrary() {
    const used = new Set();
    JSON.stringify(spec, (_key, value) => {
      if (typeof value === "string") used.add(value);
      return value;
    });
    const missing = view.missingAssets || [];
    datalists.replaceChildren(...kinds.map((k) => h("datalist", { id: `dl-${k}` }, (view.assets[k] || []).map((n) => h("option", { value: n })))));
    library.replaceChildren(
      ...kinds.map((kind) => h("section", { "aria-label": kind },
        h("h3", {}, kind),
        h("ul", {}, (view.assets[kind] || []).map((name) => h("li", {}, name, " ",
          used.has(name) ? h("span", { class: "tag used" }, "referenced") : h("span", { class: "tag" }, "not used")))))),
      h("section", { "aria-label": "missing files" }, h("h3", {}, "Missing"),
        missing.length ? h("ul", { class: "missing" }, missing.map((m) => h("li", {}, m))) : h("p", {}, "Every referenced file is uploaded.")),
    );
  }

  const uploadSchema = (await call("GET", "/openapi.json", undefined, { record: false }))
    .paths["/v1/projects/{id}/assets"].post.requestBody.content["multipart/form-data"].schema;
  const subdir = field("subdir", uploadSchema.properties.subdir, undefined, "", { optional: true });
  const uploads = h("ul", { class: "uploads", "aria-label": "uploads" });
  const picker = h("input", { type: "file", id: "files", multiple: true, accept: "image/*,audio/*" });
  const zone = h("div", { class: "dropzone", id: "dropzone" },
    h("p", {}, "Drop images and audio here, or "), h("label", { for: "files", class: "button" }, "Choose files"), picker);

  async function send(files) {
    const jobs = [...files].map(async (file) => {
      const bar = h("progress", { max: 1, value: 0, "aria-label": `upload of ${file.name}` });
      const state = h("span", { class: "upload-state" }, "uploading");
      uploads.append(h("li", {}, h("span", {}, file.name), bar, state));
      try {
        const [stored] = await upload(id, file, (p) => (bar.value = p), subdir.read());
        bar.value = 1;
        state.textContent = `stored in ${stored.subdir}/`;
        state.className = "upload-state ok";
      } catch (err) {
        state.textContent = `refused: ${err.message}`;
        state.className = "upload-state error";
        state.setAttribute("role", "alert");
      }
    });
    await Promise.all(jobs);
    announce(`${files.length} upload(s) finished`);
    await refresh();
  }
  picker.addEventListener("change", () => send(picker.files));
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    send(event.dataTransfer.files);
  });

  async function refresh() {
    try {
      const fresh = await call("GET", projectPath(id), undefined, { record: false });
      view = fresh;
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 404) throw err;
    }
    drawLibrary();
    drawHistory();
  }

  // --- scenes ------------------------------------------------------------------------
  const editor = h("form", { class: "scenes", novalidate: true });
  const jsonView = h("pre", { id: "spec-json", tabindex: "0", "aria-label": "the spec as JSON" });
  const sceneList = h("ol", { class: "scene-list" });
  const formError = h("p", { class: "error", role: "alert", hidden: true });
  let readers = [];
  let readTop = () => ({});

  function collect() {
    const top = readTop();
    spec.title = top.title;
    spec.scenes = readers.map((read) => read());
    if (spec.title === undefined) delete spec.title;
    jsonView.textContent = JSON.stringify(spec, null, 2);
  }

  function move(from, to) {
    collect();
    if (to < 0 || to >= spec.scenes.length) return;
    const [scene] = spec.scenes.splice(from, 1);
    spec.scenes.splice(to, 0, scene);
    drawScenes();
    announce(`Scene moved to position ${to + 1}`);
    sceneList.children[to]?.querySelector(`button[data-move="${from < to ? "down" : "up"}"]`)?.focus();
  }

  function drawScenes() {
    const top = objectFields(component("ProjectSpec"), spec, "", { skip: ["scenes"], onChange: collect });
    readTop = top.read;
    readers = [];
    sceneList.replaceChildren(...spec.scenes.map((scene, i) => {
      const fields = objectFields(component("SceneSpec"), scene, `scenes[${i}]`, { suggest, onChange: collect });
      readers.push(fields.read);
      const headingId = uid("scene");
      const item = h("li", { class: "scene", draggable: "true", dataset: { index: String(i) }, "aria-labelledby": headingId },
        h("div", { class: "scene-head" },
          h("h3", { id: headingId }, `Scene ${i + 1}`),
          h("span", { class: "grip", "aria-hidden": "true", title: "drag to reorder" }, "⠿"),
          h("button", { type: "button", dataset: { move: "up" }, disabled: i === 0, onclick: () => move(i, i - 1) }, "Move up"),
          h("button", { type: "button", dataset: { move: "down" }, disabled: i === spec.scenes.length - 1, onclick: () => move(i, i + 1) }, "Move down"),
          h("button", { type: "button", onclick: () => { collect(); spec.scenes.splice(i + 1, 0, structuredClone(spec.scenes[i])); drawScenes(); } }, "Duplicate"),
          h("button", { type: "button", disabled: spec.scenes.length === 1, onclick: () => { collect(); spec.scenes.splice(i, 1); drawScenes(); } }, "Delete")),
        fields.element);
      item.addEventListener("dragstart", (event) => {
        event.dataTransfer.setData("text/x-scene", String(i));
        event.dataTransfer.effectAllowed = "move";
      });
      item.addEventListener("dragover", (event) => {
        if (event.dataTransfer.types.includes("text/x-scene")) event.preventDefault();
      });
      item.addEventListener("drop", (event) => {
        const from = event.dataTransfer.getData("text/x-scene");
        if (from === "") return;
        event.preventDefault();
        move(Number(from), i);
      });
      return item;
    }));
    editor.replaceChildren(top.element, sceneList, formError,
      h("p", { class: "actions" },
        h("button", { type: "button", onclick: () => { collect(); spec.scenes.push({ images: [] }); drawScenes(); } }, "Add scene"),
        h("button", { type: "submit" }, "Save scenes")));
    collect();
    drawLibrary();
  }

  async function save() {
    collect();
    clearErrors(editor);
    formError.hidden = true;
    try {
      const stored = await call("PUT", `${projectPath(id)}/scenes`, spec);
      view.missingAssets = stored.missingAssets;
      announce("Scenes saved");
      await refresh();
      return true;
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 422) throw err;
      showTab("form");
      if (!showFieldError(editor, err)) {
        formError.textContent = err.message;
        formError.hidden = false;
      }
      announce(`Not saved: ${err.message}`);
      return false;
    }
  }
  editor.addEventListener("submit", (event) => {
    event.preventDefault();
    save();
  });

  const tabs = ["form", "json"].map((name) => h("button", { type: "button", role: "tab", id: `tab-${name}`, "aria-controls": `panel-${name}`, onclick: () => showTab(name) }, name === "form" ? "Scenes" : "JSON"));
  const panels = { form: h("div", { role: "tabpanel", id: "panel-form", "aria-labelledby": "tab-form" }, editor),
    json: h("div", { role: "tabpanel", id: "panel-json", "aria-labelledby": "tab-json" }, jsonView) };
  function showTab(name) {
    if (name === "json") collect();
    for (const tab of tabs) tab.setAttribute("aria-selected", String(tab.id === `tab-${name}`));
    for (const [key, panel] of Object.entries(panels)) panel.hidden = key !== name;
  }

  // --- render ------------------------------------------------------------------------
  const request = component("RenderRequest");
  const output = field("outputName", request.properties.outputName, undefined, "", { optional: true });
  // The form starts from the newest job's options (a draft's and a part's own aside), so
  // the next render repeats the last one unless changed.
  const newest = view.jobs[0] ? await call("GET", `/v1/jobs/${encodeURIComponent(view.jobs[0].jobId)}`, undefined, { record: false }) : null;
  const { preview: _p, range: _r, scenes: _s, ...previous } = newest?.options || {};
  const optionsForm = objectFields(component("RenderOptionsPatch"), previous, "renderOptions", { optional: true, suggest, skip: ["preview"] });
  const renderError = h("p", { class: "error", role: "alert", hidden: true });
  const renderForm = h("form", { class: "render", novalidate: true },
    output.element,
    h("details", {}, h("summary", {}, "Render options"), optionsForm.element),
    renderError,
    h("p", { class: "actions" },
      h("button", { type: "button", id: "preview", onclick: () => start(true) }, "Preview"),
      h("button", { type: "button", id: "render", onclick: () => start(false) }, "Render")));

  async function start(preview) {
    renderError.hidden = true;
    clearErrors(renderForm);
    if (!(await save())) return;
    const renderOptions = { ...optionsForm.read(), ...(preview ? { preview: true } : {}) };
    const body = { outputName: preview ? "preview.mp4" : output.read() || "video.mp4", renderOptions };
    try {
      const accepted = await call("POST", `${projectPath(id)}/render`, body);
      location.hash = `#/jobs/${encodeURIComponent(accepted.jobId)}`;
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (!showFieldError(renderForm, err) && !showFieldError(editor, err)) {
        renderError.textContent = err.message;
        renderError.hidden = false;
      }
    }
  }

  // --- history -----------------------------------------------------------------------
  const history = h("div", {});
  function drawHistory() {
    const running = view.jobs.find((j) => UNFINISHED.includes(j.status));
    history.replaceChildren(
      running ? h("p", { class: "notice" }, "A render is under way: ", h("a", { href: `#/jobs/${running.jobId}` }, "watch it")) : "",
      view.jobs.length
        ? h("table", {}, h("thead", {}, h("tr", {}, ["Job", "Status", "Output", "Started", "Finished"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, view.jobs.map((j) => h("tr", {},
            h("td", {}, h("a", { href: `#/jobs/${j.jobId}` }, j.jobId.slice(0, 8))),
            h("td", {}, j.status, j.error ? h("div", { class: "error" }, j.error) : ""),
            h("td", {}, j.outputName), h("td", {}, when(j.createdAt)), h("td", {}, when(j.finishedAt))))))
        : h("p", {}, "No renders yet."));
  }

  show(view.title || id,
    h("p", {}, h("a", { href: "#/" }, "← Projects"), " · project ", h("code", {}, id)),
    datalists,
    h("section", { "aria-labelledby": "assets-title" }, h("h2", { id: "assets-title" }, "Assets"),
      h("div", { class: "upload-row" }, zone, subdir.element), uploads, library),
    h("section", { "aria-labelledby": "scenes-title" }, h("h2", { id: "scenes-title" }, "Scenes"),
      h("div", { role: "tablist", "aria-label": "scenes view" }, tabs), panels.form, panels.json),
    h("section", { "aria-labelledby": "render-title" }, h("h2", { id: "render-title" }, "Render"), renderForm),
    h("section", { "aria-labelledby": "jobs-title" }, h("h2", { id: "jobs-title" }, "Jobs"), history));
  drawScenes();
  showTab("form");
  drawHistory();
  return () => {};
}
