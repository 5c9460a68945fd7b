// A job: live progress over Server-Sent Events (the session cookie opens the stream), its
// stages and scenes, why it waits, its log tail and its error in full; Cancel; and once it
// has succeeded, the player, the scene posters to jump to, captions and downloads. The URL
// names the job, so a refresh comes back here and attaches to the stream again.

import { call, outputUrl, posterUrl, projectPath } from "./api.js";
import { announce, h, when } from "./dom.js";

const pct = (x) => `${Math.round((x || 0) * 100)}%`;

export async function jobScreen(jobId, show) {
  let job = await call("GET", `/v1/jobs/${encodeURIComponent(jobId)}`);
  const bar = h("progress", { id: "job-progress", max: 1, value: job.progress, "aria-labelledby": "progress-label" });
  const label = h("span", { id: "progress-label" });
  const live = h("p", { id: "job-live", "aria-live": "polite", class: "live" });
  const status = h("p", { id: "job-status" });
  const waiting = h("p", { class: "notice", hidden: true });
  const error = h("pre", { id: "job-error", class: "error", role: "alert", hidden: true });
  const stages = h("tbody", {});
  const scenes = h("ul", { class: "scene-progress" });
  const logs = h("pre", { id: "job-logs", class: "logs", tabindex: "0", "aria-label": "log tail" });
  const cancel = h("button", { type: "button", id: "cancel" }, "Cancel");
  const result = h("section", { id: "result", "aria-labelledby": "result-title", hidden: true });
  let lastAnnounced = "";

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    draw(await call("POST", `/v1/jobs/${encodeURIComponent(jobId)}/cancel`));
  });

  function draw(doc) {
    job = doc;
    const finished = !["QUEUED", "RUNNING"].includes(doc.status);
    bar.value = doc.progress;
    label.textContent = `Progress ${pct(doc.progress)}`;
    status.replaceChildren("Status ", h("strong", { class: `status status-${doc.status.toLowerCase()}` }, doc.status),
      doc.stage ? ` · stage ${doc.stage}` : "", doc.cancelRequested && !finished ? " · cancelling" : "");
    const said = `${doc.status} ${pct(doc.progress)}${doc.stage ? `, ${doc.stage}` : ""}`;
    if (said !== lastAnnounced) live.textContent = lastAnnounced = said;
    waiting.hidden = !doc.waiting;
    waiting.textContent = doc.waiting ? `Waiting: ${doc.waiting}` : "";
    error.hidden = !doc.error;
    error.textContent = doc.error || "";
    stages.replaceChildren(...doc.stages.map((s) => h("tr", {},
      h("td", {}, s.name), h("td", {}, s.status), h("td", {}, h("progress", { max: 1, value: s.progress, "aria-label": `${s.name} progress` }), " ", pct(s.progress)),
      h("td", {}, s.clip || (s.cached ? "cached" : "")))));
    scenes.replaceChildren(...doc.scenes.map((s) => h("li", {}, `Scene ${s.index + 1}: ${s.status} ${pct(s.progress)}`,
      s.chunks > 1 ? ` (${s.chunks} chunks)` : "", s.clip ? ` · ${s.clip}` : "")));
    logs.textContent = doc.logs.join("\n");
    cancel.hidden = finished;
    if (doc.status === "SUCCEEDED" && result.hidden) showResult(doc);
  }

  async function showResult(doc) {
    const project = doc.projectId;
    const name = doc.outputName;
    const stem = name.replace(/\.mp4$/i, "");
    const files = await call("GET", `${projectPath(project)}/outputs`);
    const captions = files.filter((f) => f.name.startsWith(`${stem}.`) && /\.(vtt|srt)$/.test(f.name));
    const video = h("video", { id: "player", controls: true, preload: "metadata", width: 640, poster: posterUrl(project, name), src: outputUrl(project, name) },
      captions.filter((f) => f.name.endsWith(".vtt")).map((f) => h("track", { kind: "captions", src: outputUrl(project, f.name), srclang: doc.options?.captions?.language || "en", label: "Captions" })));
    const posters = files.filter((f) => /^scene_\d+\.jpg$/.test(f.name) && !doc.options?.preview);
    const jumps = h("ol", { class: "jumps" });
    // Each scene's start: the lengths of the scene clips before it, less the cross-fades.
    const starts = await sceneStarts(project, files, doc.options?.xfade || 0);
    posters.forEach((f, i) => {
      jumps.append(h("li", {}, h("button", { type: "button", class: "jump", onclick: () => { video.currentTime = starts[i] ?? 0; video.focus(); } },
        h("img", { src: posterUrl(project, f.name), alt: "", width: 96, height: 54 }), `Scene ${i + 1}`)));
    });
    const downloads = [name, ...captions.map((f) => f.name)].map((n) => h("li", {}, h("a", { href: outputUrl(project, n), download: n }, `Download ${n}`)));
    result.replaceChildren(h("h2", { id: "result-title" }, "Result"), video,
      posters.length ? h("nav", { "aria-label": "scenes" }, h("h3", {}, "Jump to a scene"), jumps) : "",
      h("h3", {}, "Files"), h("ul", {}, downloads));
    result.hidden = false;
  }

  let source = null;
  function attach() {
    if (["QUEUED", "RUNNING"].includes(job.status)) {
      source = new EventSource(`/v1/jobs/${encodeURIComponent(jobId)}/events`);
      source.addEventListener("job", (event) => {
        const doc = JSON.parse(event.data);
        draw(doc);
        if (!["QUEUED", "RUNNING"].includes(doc.status)) {
          source.close();
          announce(`Job ${doc.status.toLowerCase()}`);
        }
      });
    }
  }

  show(`Job ${jobId.slice(0, 8)}`,
    h("p", {}, h("a", { href: `#/projects/${encodeURIComponent(job.projectId)}` }, `← project ${job.projectId}`),
      ` · ${job.outputName} · created ${when(job.createdAt)}`),
    status, h("p", {}, label, " ", bar), live, waiting, error, h("p", {}, cancel),
    result,
    h("section", { "aria-labelledby": "scenes-progress" }, h("h2", { id: "scenes-progress" }, "Scenes"), scenes),
    h("section", { "aria-labelledby": "stages-title" }, h("h2", { id: "stages-title" }, "Stages"),
      h("table", {}, h("thead", {}, h("tr", {}, ["Stage", "Status", "Progress", "Clip"].map((t) => h("th", { scope: "col" }, t)))), stages)),
    h("section", { "aria-labelledby": "logs-title" }, h("h2", { id: "logs-title" }, "Log"), logs));
  draw(job);
  attach();
  return () => source?.close();
}

// The scene clips' lengths, read from their metadata by the browser (a Range request each).
async function sceneStarts(project, files, xfade) {
  const clips = files.filter((f) => /^scene_\d+\.mp4$/.test(f.name)).map((f) => f.name).sort();
  const lengths = await Promise.all(clips.map((name) => new Promise((resolve) => {
    const probe = document.createElement("video");
    probe.preload = "metadata";
    probe.addEventListener("loadedmetadata", () => resolve(probe.duration || 0));
    probe.addEventListener("error", () => resolve(0));
    probe.src = outputUrl(project, name);
  })));
  const starts = [];
  let at = 0;
  for (const length of lengths) {
    starts.push(Math.max(0, at));
    at += length - xfade;
  }
  return starts;
}
