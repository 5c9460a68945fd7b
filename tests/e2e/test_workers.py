"""Several workers end to end: the chunks of one job's scenes spread over them, a worker SIGKILLed
mid-scene, a Redis restarted mid-job, a job whose only worker died.

Each test runs its own stack with a short visibility timeout, so a lost task comes back in
seconds instead of an hour.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

import av
import pytest

from pipeline.ffmpeg import Runner, find_ffmpeg
from pipeline.fixtures import ImageFixture, SceneFixture
from pipeline.options import RenderOptions
from pipeline.probe import probe
from pipeline.project import ProjectDir
from pipeline.render import render
from tests.e2e import Api, running_stack

pytestmark = pytest.mark.e2e

# A killed worker's task comes back after VISIBILITY_TIMEOUT, which must exceed the time limit.
# The limit leaves a unit (a 640x360 chunk at preset slow, 5.5 s under a full suite's load on a
# 2.4 GHz 2-core machine, then its scene's mux) room under its soft limit (5 s before it).
FAST_REDELIVERY = {
    "TASK_TIME_LIMIT": "25",
    "VISIBILITY_TIMEOUT": "30",
    "STALE_AFTER": "90",
    "WATCHDOG_INTERVAL": "1",
}


def slow_scenes() -> list[SceneFixture]:
    # Long enough at 640x360 / preset slow that a scene build runs for a few seconds.
    return [
        SceneFixture((ImageFixture(f"k{i}.jpg", 1600, 1200, "testsrc2"),), duration=6.0)
        for i in range(2)
    ]


def _frame_hashes(path: Path) -> list[str]:
    """The md5 of every decoded frame's planes, in order."""
    with av.open(str(path)) as container:
        return [
            hashlib.md5(b"".join(bytes(plane) for plane in frame.planes)).hexdigest()
            for frame in container.decode(video=0)
        ]


def test_two_workers_share_the_chunks_of_one_job_frame_exact(tmp_path: Path) -> None:
    # Lossless (crf 0), so "the same frames" is a statement about the drawing alone: the
    # chunks two workers built, joined, equal one unchunked render of the whole scenes.
    options: dict[str, Any] = {"fps": 25, "preset": "fast", "resolution": "640x360", "crf": 0}
    with running_stack(tmp_path / "storage", workers=2, WORKER_CONCURRENCY="1") as stack:
        api = Api(stack.base_url)
        api.upload_project("wide", slow_scenes(), tmp_path)
        job = api.wait(api.render("wide", chunkSeconds=2.5, **options), timeout=180)
        assert job["status"] == "SUCCEEDED", job
        project = ProjectDir(stack.settings.render_storage / "projects" / "wide")
    chunks = [s for s in job["stages"] if s["name"].startswith("SCENE_BUILD[")]
    assert [s["name"] for s in chunks] == [f"SCENE_BUILD[{i}/{c}]" for i in (0, 1) for c in (0, 1)]
    assert [s["chunks"] for s in job["scenes"]] == [2, 2]
    assert {s["worker"].split("@")[0] for s in chunks} == {"worker1", "worker2"}
    spans = [
        (datetime.fromisoformat(s["startedAt"]), datetime.fromisoformat(s["finishedAt"]))
        for s in chunks
    ]
    assert any(a[0] < b[1] and b[0] < a[1] for a, b in itertools.combinations(spans, 2)), (
        "no two chunk builds overlapped"
    )

    reference = ProjectDir(tmp_path / "reference")
    shutil.copytree(project.input, reference.input)
    unchunked = RenderOptions.model_validate({**options, "chunkSeconds": 0})
    render(reference, unchunked, "video.mp4", Runner(ffmpeg=find_ffmpeg()))
    ours = _frame_hashes(project.output / "video.mp4")
    assert len(ours) == 2 * 6 * 25
    assert ours == _frame_hashes(reference.output / "video.mp4")
    for index in (0, 1):  # each scene's own file, muxed from its chunks
        name = f"scene_{index:02d}.mp4"
        assert _frame_hashes(project.output / name) == _frame_hashes(reference.output / name)


def test_worker_killed_mid_scene_then_a_fresh_worker_finishes_the_job(tmp_path: Path) -> None:
    with running_stack(tmp_path / "storage", workers=1, **FAST_REDELIVERY) as stack:
        api = Api(stack.base_url)
        api.upload_project("crash", slow_scenes(), tmp_path)
        job_id = api.render("crash", fps=25, preset="slow", resolution="640x360")
        api.wait(
            job_id,
            lambda j: any(s["status"] == "RUNNING" and s["progress"] > 0 for s in j["scenes"]),
            timeout=60,
        )
        victim = stack.workers[0]
        os.killpg(victim.pid, signal.SIGKILL)  # the worker and its pool children, no goodbye
        victim.wait()
        stack.start_worker()

        job = api.wait(job_id, timeout=120)
        assert job["status"] == "SUCCEEDED", job
        retried = [s for s in job["stages"] if s["attempts"] > 1]
        assert retried, "the killed scene should have run a second time"
        out = stack.settings.render_storage / "projects" / "crash" / "output" / "video.mp4"
        info = probe(out, count_frames=True)
        assert info.video is not None and info.video.frames == 2 * 6 * 25


def test_redis_restart_mid_job_does_not_lose_the_job(tmp_path: Path) -> None:
    with running_stack(tmp_path / "storage", workers=1, **FAST_REDELIVERY) as stack:
        assert stack.redis is not None
        api = Api(stack.base_url)
        api.upload_project("bounce", slow_scenes(), tmp_path)
        job_id = api.render("bounce", fps=25, preset="slow", resolution="640x360")
        api.wait(job_id, lambda j: str(j["stage"]).startswith("SCENE_BUILD"), timeout=60)
        stack.redis.restart()

        job = api.wait(job_id, timeout=120)
        assert job["status"] == "SUCCEEDED", job


def test_job_whose_only_worker_died_fails_after_the_wait_bound_saying_why(
    tmp_path: Path,
) -> None:
    settings = {
        **FAST_REDELIVERY,
        "HEARTBEAT_INTERVAL": "0.5",
        "STAGE_LOST_AFTER": "3",
        "WORKER_WAIT_TIMEOUT": "10",
    }
    with running_stack(tmp_path / "storage", workers=1, **settings) as stack:
        api = Api(stack.base_url)
        api.upload_project("orphan", slow_scenes(), tmp_path)
        job_id = api.render("orphan", fps=25, preset="slow", resolution="640x360")
        api.wait(job_id, lambda j: str(j["stage"]).startswith("SCENE_BUILD"), timeout=60)
        victim = stack.workers[0]
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()

        # No worker is left: the job says it is waiting, then the API's watchdog ends it.
        waiting = api.wait(job_id, lambda j: j["waiting"] is not None, timeout=30)
        assert waiting["status"] == "RUNNING", waiting
        job = api.wait(job_id, timeout=60)
        assert job["status"] == "FAILED", job
        assert "no worker was alive" in job["error"] and "WORKER_WAIT_TIMEOUT" in job["error"]
