// The console's one way to the API: every call goes through here, so every action can be
// shown as the curl command that repeats it. The session cookie authenticates each request
// (same origin); the token is never held here.

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "error";
    this.field = error.field || null;
  }
}

// The calls this screen made, as curl commands (the "Copy as curl" dialog).
export const journal = [];

export function resetJournal() {
  journal.length = 0;
}

const quote = (text) => `'${String(text).replaceAll("'", "'\\''")}'`;

export function curl(method, path, body) {
  const parts = ["curl -sS"];
  if (method !== "GET") parts.push(`-X ${method}`);
  parts.push('-H "Authorization: Bearer $TOKEN"');
  if (body !== undefined) {
    parts.push('-H "Content-Type: application/json"', `-d ${quote(JSON.stringify(body))}`);
  }
  parts.push(`"$BASE${path}"`);
  return parts.join(" ");
}

function remember(line) {
  if (!journal.includes(line)) journal.push(line);
}

export async function call(method, path, body, { record = true } = {}) {
  if (record) remember(curl(method, path, body));
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// One request per file, so each has its own progress bar and its own refusal.
export function upload(projectId, file, onProgress, subdir) {
  const path = `/v1/projects/${encodeURIComponent(projectId)}/assets`;
  remember(`curl -sS -X POST -H "Authorization: Bearer $TOKEN" -F ${quote("files=@" + file.name)} "$BASE${path}"`);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new ApiError(xhr.status, data));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, { error: { message: "network error" } })));
    const form = new FormData();
    if (subdir) form.append("subdir", subdir);
    form.append("files", file, file.name);
    xhr.send(form);
  });
}

export const projectPath = (id) => `/v1/projects/${encodeURIComponent(id)}`;
export const outputUrl = (id, name) => `${projectPath(id)}/outputs/video?name=${encodeURIComponent(name)}`;
export const posterUrl = (id, name) => `${projectPath(id)}/outputs/poster?name=${encodeURIComponent(name)}`;
