"""Cancel at every stage boundary, and a worker lost with its whole process tree.

Real stacks (Redis, Celery workers, API, FFmpeg). The instant of a cancel is made exact by the
test hooks of `tests/gates.py`: a stage's task waits at its gate (before it claims the stage),
or an FFmpeg run waits before it starts, until the test has cancelled.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from api.launch import Stack
from pipeline.probe import probe
from tests import gates
from tests.e2e import Api, running_stack
from tests.held import (
    FPS,
    RECOVERY,
    ffmpeg_running_in,
    held_at_scene_1,
    hook_env,
    release,
    scenes,
    wait_for,
    worker_of,
)

pytestmark = pytest.mark.e2e

CANCEL_BOUND = 5.0
LATENCIES: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def report_latencies() -> Iterator[None]:
    """Figures for the notes once the module's tests ran (pytest -s shows them); the bounds
    are asserted in each test."""
    yield
    print("\nlatencies (s):", {k: round(v, 2) for k, v in LATENCIES.items()})


@pytest.fixture(scope="module")
def gate_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gates")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, gate_dir: Path) -> Iterator[Stack]:
    storage = tmp_path_factory.mktemp("storage")
    with running_stack(
        storage,
        workers=1,
        worker_args=["-I", "tests.gates"],
        env_extra=hook_env(gate_dir, "-f concat"),
        FFMPEG_BINARY=str(gates.gated_ffmpeg(gate_dir)),
        **RECOVERY,
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(stack: Stack) -> Api:
    return Api(stack.base_url)


# (what the test calls the instant, the gate that holds the job there). Each scene is 2.5 s
# (minShot), one unit at the default chunk length; "between chunks" makes each three chunks.
BOUNDARIES = [
    ("after VALIDATE", "AUDIO_PREP"),
    ("after AUDIO_PREP", "SCENE_BUILD[0]"),
    ("with some scenes done", "SCENE_BUILD[2]"),
    ("between the chunks of a scene", "SCENE_BUILD[1/1]"),
    ("during CONCAT", "ffmpeg"),
    ("before FINALIZE", "FINALIZE"),
]
CHUNKED = {"chunkSeconds": 1.0}


@pytest.mark.parametrize(("instant", "gate"), BOUNDARIES, ids=[b[0] for b in BOUNDARIES])
def test_cancel_is_final_within_five_seconds(
    stack: Stack, api: Api, gate_dir: Path, tmp_path: Path, instant: str, gate: str
) -> None:
    project_id = "c" + "".join(c for c in gate.lower() if c.isalnum())
    api.upload_project(project_id, scenes(project_id), tmp_path)
    project = stack.settings.render_storage / "projects" / project_id
    held = gates.hold(gate_dir, gate)
    options = CHUNKED if "/" in gate else {}
    try:
        job_id = api.render(project_id, fps=FPS, **options)
        wait_for(lambda: gates.reached(gate_dir, gate), 60, f"the job reaching {gate}")
        started = time.monotonic()
        response = api.http.post(f"/v1/jobs/{job_id}/cancel")
        assert response.status_code == 202, response.text
        job = api.wait(job_id, timeout=CANCEL_BOUND, poll=0.05)
        LATENCIES[f"cancel {instant}"] = time.monotonic() - started
        assert job["status"] == "CANCELLED", job
        assert not ffmpeg_running_in(project)
    finally:
        held.unlink()
        gates.reached_file(gate_dir, gate).unlink(missing_ok=True)
    if instant == "with some scenes done":
        assert [s["status"] for s in job["scenes"]] == ["DONE", "DONE", "PENDING"]
    if instant == "between the chunks of a scene":
        assert [(s["status"], s["chunks"]) for s in job["scenes"]] == [
            ("DONE", 3),
            ("PENDING", 3),  # one of its three chunks built
            ("PENDING", 3),
        ]
        assert 0.2 < job["scenes"][1]["progress"] < 0.5
    # The held task goes on and must still not publish: a job queued behind it on the only
    # worker (one process) ends only after the held task is done.
    api.upload_project(f"{project_id}n", scenes(f"{project_id}n", count=1, seconds=0.4), tmp_path)
    after = api.wait(api.render(f"{project_id}n", fps=FPS, minShot=0.2, xfade=0.1))
    assert after["status"] == "SUCCEEDED", after
    assert api.job(job_id)["status"] == "CANCELLED"
    assert not (project / "output" / "video.mp4").exists()
    assert not ffmpeg_running_in(project)


@pytest.mark.parametrize("unit", ["SCENE_BUILD[1]", "SCENE_BUILD[1/1]"], ids=["scene", "chunk"])
def test_a_lost_worker_host_costs_seconds_not_an_hour(tmp_path: Path, unit: str) -> None:
    """Two workers; the main process of the one running a scene (or a chunk of one) is
    SIGKILLed (its pool children die with it); the other finishes the job, with the
    visibility timeout at its default of hours."""
    chunked = "/" in unit
    with held_at_scene_1(tmp_path, "host", workers=2, scene_count=3, chunked=chunked) as (
        stack,
        api,
        job_id,
    ):
        running = next(s for s in api.job(job_id)["stages"] if s["name"] == unit)
        assert running["status"] == "RUNNING"
        victim = worker_of(stack, running["worker"])
        killed_at = datetime.now().astimezone()
        started = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)  # the main process only
        victim.wait()
        release(stack)

        job = api.wait(job_id, timeout=90)
        LATENCIES[f"kill mid-{unit} → SUCCEEDED, two workers"] = time.monotonic() - started
        assert job["status"] == "SUCCEEDED", job
        again = next(s for s in job["stages"] if s["name"] == unit)
        assert again["attempts"] == 2, again
        assert again["worker"] != running["worker"]
        # Not encoded twice at once: the new attempt started after its old holder was killed.
        assert datetime.fromisoformat(again["startedAt"]) > killed_at
        assert [s["chunks"] for s in job["scenes"]] == [2 if chunked else 1] * 3
        out = stack.settings.render_storage / "projects" / "host" / "output"
        info = probe(out / "video.mp4", count_frames=True)
        assert info.video is not None and info.video.frames == 3 * FPS
        scene = probe(out / "scene_01.mp4", count_frames=True)  # muxed from both chunks
        assert scene.video is not None and scene.video.frames == FPS
        assert not ffmpeg_running_in(stack.settings.render_storage / "projects" / "host")


def test_a_job_whose_only_worker_died_waits_visibly_and_a_new_worker_finishes_it(
    tmp_path: Path,
) -> None:
    with held_at_scene_1(tmp_path, "alone", workers=1, scene_count=2) as (stack, api, job_id):
        victim = stack.workers[0]
        started = time.monotonic()
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        release(stack)
        waiting = api.wait(job_id, lambda j: j["waiting"] is not None, timeout=30)
        assert waiting["status"] == "RUNNING"
        assert "SCENE_BUILD[1] stopped reporting" in waiting["waiting"]

        stack.start_worker()
        job = api.wait(job_id, timeout=90)
        LATENCIES["kill → SUCCEEDED, fresh worker started at once"] = time.monotonic() - started
        assert job["status"] == "SUCCEEDED", job
        assert [s["attempts"] for s in job["stages"] if s["name"] == "SCENE_BUILD[1]"] == [2]
        out = stack.settings.render_storage / "projects" / "alone" / "output" / "video.mp4"
        info = probe(out, count_frames=True)
        assert info.video is not None and info.video.frames == 2 * FPS


def test_a_stage_over_the_time_limit_fails_naming_the_stage_and_the_limit(
    tmp_path: Path,
) -> None:
    limits = {"TASK_TIME_LIMIT": "10", "VISIBILITY_TIMEOUT": "15"}
    with held_at_scene_1(tmp_path, "slow", workers=1, scene_count=2, **limits) as (
        stack,
        api,
        job_id,
    ):
        # The held encode never starts: Celery's soft limit (5 s before the hard one) fires.
        job = api.wait(job_id, timeout=30)
        release(stack)
        assert job["status"] == "FAILED", job
        assert job["stage"] == "SCENE_BUILD[1]"
        assert job["error"] == ("SCENE_BUILD[1]: exceeded the time limit of 10 s (TASK_TIME_LIMIT)")
        assert not ffmpeg_running_in(stack.settings.render_storage / "projects" / "slow")
