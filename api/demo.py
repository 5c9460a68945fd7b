"""`make demo`: the seed's smoke test, driven from Python against a running stack.

Generates the bundled sample project, uploads it through the API, renders it on the worker,
shows progress while it waits, downloads the MP4 and probes it. `ApiClient` is the HTTP side
of that, and what the end-to-end tests drive the stack with.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import httpx

from pipeline import assets
from pipeline.console import ConsoleProgress
from pipeline.fixtures import (
    MusicFixture,
    SceneFixture,
    sample_music,
    sample_scenes,
    write_project,
)
from pipeline.options import DEFAULT_ENGINE
from pipeline.probe import probe
from pipeline.registry import STAGES, parse_label
from tasks.models import FINISHED

PROJECT_ID = "demo"

JobState = dict[str, Any]


class RequestFailed(Exception):
    """The API answered with an error status."""


def finished(state: JobState) -> bool:
    return state["status"] in FINISHED


class ApiClient:
    """Uploads projects, starts renders and waits on jobs, the way a user of the API would."""

    def __init__(
        self,
        base_url: str,
        token: str,
        timeout: float = 60,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )
        # Told what each request is about to do; silent unless given (the demo prints).
        self.echo = echo or (lambda _line: None)

    def upload_project(
        self,
        project_id: str,
        scenes: Sequence[SceneFixture],
        staging: Path,
        music: Sequence[MusicFixture] = (),
    ) -> None:
        """Make the project's files by code under `staging`, then send them through the API."""
        project = write_project(staging / project_id, scenes, music=music)
        self.echo(f"PUT  /v1/projects/{project_id}/scenes ({len(scenes)} scenes)")
        self._check(
            self.http.put(
                f"/v1/projects/{project_id}/scenes",
                content=project.spec_file.read_bytes(),
                headers={"Content-Type": "application/json"},
            )
        )
        for kind in assets.KINDS:
            files = sorted(project.input_dir(kind.folder).iterdir())
            if not files:
                continue
            self.echo(f"POST /v1/projects/{project_id}/assets ({len(files)} {kind.name})")
            with ExitStack() as stack:
                parts = [("files", (f.name, stack.enter_context(f.open("rb")))) for f in files]
                self._check(
                    self.http.post(
                        f"/v1/projects/{project_id}/assets",
                        files=parts,
                        data={"subdir": kind.name},
                    )
                )

    def render(self, project_id: str, output: str = "video.mp4", **options: Any) -> str:
        """Queue a render with these render options (camelCase); the job id."""
        body = {"outputName": output, "renderOptions": options}
        job = self._check(self.http.post(f"/v1/projects/{project_id}/render", json=body)).json()
        job_id = str(job["jobId"])
        self.echo(f"POST /v1/projects/{project_id}/render → job {job_id}")
        return job_id

    def job(self, job_id: str) -> JobState:
        return dict(self._check(self.http.get(f"/v1/jobs/{job_id}")).json())

    def wait(
        self,
        job_id: str,
        until: Callable[[JobState], bool] = finished,
        timeout: float = 120,
        poll: float = 0.1,
        on_poll: Callable[[JobState], None] | None = None,
    ) -> JobState:
        """Poll the job until `until` holds; TimeoutError with the last state after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.job(job_id)
            if on_poll is not None:
                on_poll(state)
            if until(state):
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not there after {timeout:g} s: {state}")
            time.sleep(poll)

    def download_video(self, project_id: str, out: Path) -> Path:
        out.parent.mkdir(parents=True, exist_ok=True)
        with self.http.stream("GET", f"/v1/projects/{project_id}/outputs/video") as response:
            if response.status_code >= 400:
                response.read()
            self._check(response)
            with open(out, "wb") as sink:
                for chunk in response.iter_bytes(1 << 20):
                    sink.write(chunk)
        return out

    @staticmethod
    def _check(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            raise RequestFailed(
                f"{response.request.method} {response.request.url}: "
                f"{response.status_code} {response.text}"
            )
        return response


def run_demo(base_url: str, token: str, out: Path) -> Path:
    client = ApiClient(base_url, token, echo=print)
    try:
        with tempfile.TemporaryDirectory(prefix="render-demo-") as tmp:
            client.upload_project(PROJECT_ID, sample_scenes(), Path(tmp), sample_music())
        # Every sound feature on: narration by the default TTS engine, a ducked music bed,
        # broadcast loudness (the default), captions as files, a track and in the picture.
        job_id = client.render(
            PROJECT_ID,
            "demo.mp4",
            preset="veryfast",
            crf=20,
            tts=DEFAULT_ENGINE,
            music={"file": "bed.mp3", "volume": -20},
            ducking=True,
            captions={"burnIn": True, "language": "en"},
        )
        started = time.monotonic()
        shown = JobProgress(sys.stdout)
        state = client.wait(job_id, timeout=900, poll=0.5, on_poll=shown.show)
        shown.close()
        if state["status"] != "SUCCEEDED":
            raise SystemExit(f"job {job_id} ended {state['status']}: {state.get('error')}")
        client.download_video(PROJECT_ID, out)
    except (RequestFailed, TimeoutError) as exc:
        raise SystemExit(str(exc)) from None
    info = probe(out)
    video = info.video
    picture = (
        f"{video.width}x{video.height} {video.codec} {float(video.fps):g} fps, " if video else ""
    )
    print(
        f"\nrendered in {time.monotonic() - started:.1f} s: {out.resolve()}\n"
        f"  {picture}{info.duration:.2f} s, {out.stat().st_size / 1e6:.1f} MB\n"
        f"  captions: GET /v1/projects/{PROJECT_ID}/outputs/video?name=demo.srt (and demo.vtt)\n"
        f"  to watch, edit and render it again in the web console: make serve, then open\n"
        f"  http://localhost:8080/ and the project {PROJECT_ID!r} (docs/console.md)"
    )
    return out


class JobProgress:
    """A job's progress as the demo prints it while polling: the bar on a terminal; in a log,
    a line per stage once all its runs are done, with its time from the job's own rows."""

    def __init__(self, stream: TextIO, *, bar: bool | None = None) -> None:
        self.console = ConsoleProgress(stream, bar=bar, indent="  ")
        self._reported: set[str] = set()

    def show(self, state: JobState) -> None:
        status, label = state["status"], state.get("stage") or ""
        self.console.update(float(state.get("progress") or 0.0), f"{status:<9} {label:<16}")
        for name, seconds in finished_stages(state.get("stages") or []):
            if name not in self._reported:
                self._reported.add(name)
                self.console.stage_done(name, seconds)

    def close(self) -> None:
        self.console.close()


def finished_stages(rows: Sequence[dict[str, Any]]) -> list[tuple[str, float]]:
    """Each stage (by name, in running order) whose every run is DONE, with the seconds from
    its first run's start to its last one's end (per-scene runs overlap)."""
    done = []
    for stage in STAGES:
        runs = [r for r in rows if parse_label(r["name"])[0] is stage]
        if not runs or any(r["status"] != "DONE" or not r.get("finishedAt") for r in runs):
            continue
        ends = [_time(r["finishedAt"]) for r in runs]
        starts = [_time(r["startedAt"]) for r in runs if r.get("startedAt")]
        done.append((stage.name, max(ends) - min(starts or ends)))
    return done


def _time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
