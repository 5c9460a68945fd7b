"""Several workers end to end: scenes of one job spread over them, a worker SIGKILLed
mid-scene, a Redis restarted mid-job, a job whose only worker died.

Each test runs its own stack with a short visibility timeout, so a lost task comes back in
seconds instead of an hour.
"""

from __future__ import annotations

import os
import signal
from datetime import datetime
from pathlib import Path

import pytest

from pipeline.fixtures import ImageFixture, SceneFixture
from pipeline.probe import probe
from tests.e2e import Api, running_stack

pytestmark = pytest.mark.e2e

FAST_REDELIVERY = {
    "TASK_TIME_LIMIT": "12",
    "VISIBILITY_TIMEOUT": "15",
    "STALE_AFTER": "90",
    "WATCHDOG_INTERVAL": "1",
}


def slow_scenes() -> list[SceneFixture]:
    # Long enough at 640x360 / preset slow that a scene build runs for a few seconds.
    return [
        SceneFixture((ImageFixture(f"k{i}.jpg", 1600, 1200, "testsrc2"),), duration=6.0)
        for i in range(2)
    ]


def test_scenes_of_one_job_run_on_several_workers_at_once(tmp_path: Path) -> None:
    with running_stack(tmp_path / "storage", workers=2, WORKER_CONCURRENCY="1") as stack:
        api = Api(stack.base_url)
        api.upload_project("wide", slow_scenes(), tmp_path)
        job = api.wait(api.render("wide", fps=25, preset="slow", resolution="640x360"))
        assert job["status"] == "SUCCEEDED", job
        scenes = [s for s in job["stages"] if s["name"].startswith("SCENE_BUILD")]
        assert {s["worker"].split("@")[0] for s in scenes} == {"worker1", "worker2"}
        first, second = (
            (datetime.fromisoformat(s["startedAt"]), datetime.fromisoformat(s["finishedAt"]))
            for s in scenes
        )
        assert first[0] < second[1] and second[0] < first[1], "the scene builds did not overlap"


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
