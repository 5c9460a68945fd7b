// The console: a hash router over four screens (login, projects, a project, a job). Each
// screen is drawn from the API's answers; nothing is kept in the browser but the URL.

import { ApiError, call, journal, resetJournal } from "./api.js";
import { announce, h, when } from "./dom.js";
import { loadSchema } from "./form.js";
import { jobScreen } from "./job.js";
import { projectScreen } from "./project.js";

const main = document.getElementById("main");
const logout = document.getElementById("logout");
const curlOpen = document.getElementById("curl-open");
let leave = () => {};

function show(title, ...content) {
  document.title = `${title} · Render API console`;
  main.replaceChildren(h("h1", {}, title), ...content);
}

function loginScreen(message) {
  logout.hidden = true;
  curlOpen.hidden = true;
  const token = h("input", { id: "token", name: "token", type: "password", autocomplete: "current-password", required: true });
  const error = h("p", { id: "login-error", class: "error", role: "alert", hidden: !message }, message || "");
  const form = h("form", { class: "login", "aria-describedby": "login-help" },
    h("p", { id: "login-help" }, "Paste the service's AUTH_TOKEN. It is exchanged for a session cookie " +
      "this page cannot read; the token is not stored in the browser."),
    h("div", { class: "field" }, h("label", { for: "token" }, "Token"), token),
    error,
    h("button", { type: "submit" }, "Log in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await call("POST", "/v1/session", { token: token.value }, { record: false });
      token.value = "";
      route();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      token.select();
    }
  });
  show("Log in", form);
  token.focus();
}

function statusBadge(status) {
  return status ? h("span", { class: `status status-${status.toLowerCase()}` }, status) : "never rendered";
}

async function projectsScreen() {
  const projects = await call("GET", "/v1/projects");
  const rows = projects.map((p) => h("tr", {},
    h("td", {}, p.poster
      ? h("img", { class: "thumb", src: `/v1/projects/${encodeURIComponent(p.id)}/outputs/poster?name=${encodeURIComponent(p.poster)}`, alt: `poster of ${p.title || p.id}`, width: 96, height: 54 })
      : h("span", { class: "thumb empty" }, "no video")),
    h("td", {}, h("a", { href: `#/projects/${encodeURIComponent(p.id)}` }, p.title || p.id), h("br"), h("code", {}, p.id)),
    h("td", {}, String(p.sceneCount)),
    h("td", {}, statusBadge(p.lastJob?.status)),
    h("td", {}, when(p.updatedAt))));
  const id = h("input", { id: "new-id", name: "id", required: true, pattern: "[A-Za-z0-9][A-Za-z0-9_\\-]{0,63}", "aria-describedby": "new-id-help" });
  const create = h("form", { class: "inline" },
    h("div", { class: "field" }, h("label", { for: "new-id" }, "Project id"), id,
      h("small", { id: "new-id-help", class: "help" }, "letters, digits, '_' and '-', up to 64")),
    h("button", { type: "submit" }, "Create project"));
  create.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/projects/${encodeURIComponent(id.value)}`;
  });
  show("Projects",
    h("section", { "aria-labelledby": "create-title" }, h("h2", { id: "create-title" }, "New project"), create),
    h("section", { "aria-labelledby": "list-title" }, h("h2", { id: "list-title" }, "All projects"),
      projects.length
        ? h("table", {}, h("caption", { class: "visually-hidden" }, "Projects, last changed first"),
          h("thead", {}, h("tr", {}, ["Poster", "Project", "Scenes", "Last render", "Updated"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, rows))
        : h("p", {}, "No projects yet.")));
}

async function route() {
  leave();
  leave = () => {};
  resetJournal();
  const [, screen, id] = location.hash.split("/").map(decodeURIComponent);
  try {
    await loadSchema();
    logout.hidden = false;
    curlOpen.hidden = false;
    if (screen === "projects" && id) leave = await projectScreen(id, show);
    else if (screen === "jobs" && id) leave = await jobScreen(id, show);
    else await projectsScreen();
    main.focus();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) loginScreen(location.hash && journal.length > 1 ? err.message : "");
    else show("Something went wrong", h("p", { class: "error", role: "alert" }, err.message));
  }
}

logout.addEventListener("click", async () => {
  await call("DELETE", "/v1/session", undefined, { record: false });
  announce("Logged out");
  loginScreen();
});

const dialog = document.getElementById("curl");
curlOpen.addEventListener("click", () => {
  document.getElementById("curl-text").value =
    `BASE=${location.origin}\nTOKEN=...   # your AUTH_TOKEN\n\n${journal.join("\n")}\n`;
  dialog.showModal();
});
document.getElementById("curl-copy").addEventListener("click", async () => {
  const text = document.getElementById("curl-text");
  text.select();
  try {
    await navigator.clipboard.writeText(text.value);
    announce("Copied");
  } catch {
    announce("Select the text and copy it");
  }
});

window.addEventListener("hashchange", route);
route();
