"""Helpers for end-to-end tests: a real stack (embedded Redis, Celery worker processes, the
API under uvicorn) in a temp dir, and an HTTP client that uploads projects and waits on jobs.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from api.launch import Stack
from pipeline.fixtures import SceneFixture, write_project
from tasks.settings import Settings, load_settings

TOKEN = "e2e-token"
FINISHED = {"SUCCEEDED", "FAILED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_stack(storage: Path, workers: int = 1, **overrides: str) -> Iterator[Stack]:
    """Start a stack whose settings are the ones given here, whatever this shell exports."""
    ours = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in ours}
    env.update(
        {
            "RENDER_STORAGE": str(storage),
            "AUTH_TOKEN": TOKEN,
            "DEFAULT_RESOLUTION": "320x180",
            "DEFAULT_PRESET": "veryfast",
            "DEFAULT_FPS": "25",
            "WORKER_CONCURRENCY": "2",
            "PROGRESS_INTERVAL": "0.2",
            **overrides,
        }
    )
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        settings = load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    stack = Stack(settings, port=free_port(), env=env, log_dir=storage / "process-logs")
    stack.start(workers=workers)
    try:
        yield stack
    finally:
        stack.stop()


class Api:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )

    def upload_project(
        self, project_id: str, scenes: Sequence[SceneFixture], staging: Path
    ) -> None:
        """Make the project's files by code, then send them the way a user would."""
        project = write_project(staging / project_id, scenes)
        spec = project.spec_file.read_text()
        response = self.http.put(
            f"/v1/projects/{project_id}/scenes",
            content=spec,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        for subdir in ("images", "voiceovers"):
            files = sorted(project.input_dir(subdir).iterdir())
            if not files:
                continue
            parts = [("files", (f.name, f.read_bytes())) for f in files]
            response = self.http.post(
                f"/v1/projects/{project_id}/assets", files=parts, data={"subdir": subdir}
            )
            assert response.status_code == 201 or response.status_code == 200, response.text

    def render(self, project_id: str, output: str = "video.mp4", **options: Any) -> str:
        body = {"outputName": output, "renderOptions": options}
        response = self.http.post(f"/v1/projects/{project_id}/render", json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["jobId"])

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait(
        self,
        job_id: str,
        until: Callable[[dict[str, Any]], bool] = lambda j: j["status"] in FINISHED,
        timeout: float = 120,
        poll: float = 0.1,
    ) -> dict[str, Any]:
        """Poll the job until `until` holds; fail with the last state after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.job(job_id)
            if until(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} not there after {timeout} s: {state}")
            time.sleep(poll)
