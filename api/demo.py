"""`make demo`: the seed's smoke test, driven from Python against a running stack.

Generates the bundled sample project, uploads it through the API, renders it on the worker,
shows progress while it waits, downloads the MP4 and probes it.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

from pipeline.fixtures import make_sample_project
from pipeline.probe import probe

PROJECT_ID = "demo"
POLL_SECONDS = 0.5
TIMEOUT_SECONDS = 900


def _check(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise SystemExit(
            f"{response.request.method} {response.request.url}: "
            f"{response.status_code} {response.text}"
        )
    return response


def run_demo(base_url: str, token: str, out: Path) -> Path:
    client = httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    with tempfile.TemporaryDirectory(prefix="render-demo-") as tmp:
        project = Path(tmp) / PROJECT_ID
        make_sample_project(project)
        spec = json.loads((project / "input" / "scenes.json").read_text())
        print(f"PUT  /v1/projects/{PROJECT_ID}/scenes ({len(spec['scenes'])} scenes)")
        _check(client.put(f"/v1/projects/{PROJECT_ID}/scenes", json=spec))
        for subdir in ("images", "voiceovers"):
            files = sorted((project / "input" / subdir).iterdir())
            print(f"POST /v1/projects/{PROJECT_ID}/assets ({len(files)} {subdir})")
            handles = [("files", (f.name, f.open("rb"))) for f in files]
            try:
                _check(
                    client.post(
                        f"/v1/projects/{PROJECT_ID}/assets", files=handles, data={"subdir": subdir}
                    )
                )
            finally:
                for _, (_, fh) in handles:
                    fh.close()
    body = {"outputName": "demo.mp4", "renderOptions": {"preset": "veryfast", "crf": 20}}
    job = _check(client.post(f"/v1/projects/{PROJECT_ID}/render", json=body)).json()
    job_id = job["jobId"]
    print(f"POST /v1/projects/{PROJECT_ID}/render → job {job_id}")
    started = time.monotonic()
    state = _wait(client, job_id)
    if state["status"] != "SUCCEEDED":
        raise SystemExit(f"job {job_id} ended {state['status']}: {state.get('error')}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with client.stream("GET", f"/v1/projects/{PROJECT_ID}/outputs/video") as response:
        _check(response)
        with open(out, "wb") as sink:
            for chunk in response.iter_bytes(1 << 20):
                sink.write(chunk)
    info = probe(out)
    video = info.video
    picture = (
        f"{video.width}x{video.height} {video.codec} {float(video.fps):g} fps, " if video else ""
    )
    print(
        f"\nrendered in {time.monotonic() - started:.1f} s: {out.resolve()}\n"
        f"  {picture}{info.duration:.2f} s, {out.stat().st_size / 1e6:.1f} MB"
    )
    return out


def _wait(client: httpx.Client, job_id: str) -> dict[str, object]:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        state = _check(client.get(f"/v1/jobs/{job_id}")).json()
        progress = float(state.get("progress") or 0.0)
        bar = "#" * int(progress * 30)
        sys.stdout.write(
            f"\r  [{bar:<30}] {progress:6.1%} {state['status']:<9} {state.get('stage') or '':<16}"
        )
        sys.stdout.flush()
        if state["status"] in {"SUCCEEDED", "FAILED", "CANCELLED"}:
            sys.stdout.write("\n")
            return state
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} did not finish within {TIMEOUT_SECONDS} s")
        time.sleep(POLL_SECONDS)
