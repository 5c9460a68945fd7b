"""The disk watched while rendering, end to end: a worker whose MIN_FREE_MB exceeds the free
space there really is fails the job at the stage it would have written in, naming the stage
and the setting, and the video an earlier render published is left as it was. Real stack
(embedded Redis, a Celery worker, the API under uvicorn, FFmpeg)."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from pipeline.fixtures import ImageFixture, SceneFixture, VoiceFixture
from tests.e2e import Api, running_stack

pytestmark = pytest.mark.e2e


def test_a_worker_short_of_disk_fails_the_job_and_keeps_the_earlier_video(
    tmp_path: Path,
) -> None:
    storage = tmp_path / "storage"
    scenes = [
        SceneFixture((ImageFixture("a.jpg", 320, 240, "testsrc2"),), VoiceFixture("a.wav", 0.6)),
        SceneFixture((ImageFixture("b.jpg", 320, 240, "gradients"),), duration=0.6),
    ]
    with running_stack(storage, workers=1) as stack:
        api = Api(stack.base_url)
        api.upload_project("p1", scenes, tmp_path)
        first = api.wait(api.render("p1", minShot=0.5, xfade=0.2))
        assert first["status"] == "SUCCEEDED", first
        video = storage / "projects" / "p1" / "output" / "video.mp4"
        before = (video.read_bytes(), video.stat().st_mtime_ns)

        # The only worker now reads a MIN_FREE_MB above the free space; the API keeps its own.
        [worker] = stack.workers
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        free_mb = shutil.disk_usage(storage).free // 2**20
        stack.env["MIN_FREE_MB"] = str(free_mb + 4096)
        stack.start_worker()

        failed = api.wait(api.render("p1", minShot=0.5, xfade=0.2, cache=False))
    assert failed["status"] == "FAILED", failed
    stage = failed["stage"]
    # The first stage (nothing is spoken, so VALIDATE): nothing of the job written.
    assert stage == "VALIDATE", failed
    assert failed["error"].startswith(f"{stage}: not started: "), failed["error"]
    assert f"under MIN_FREE_MB ({free_mb + 4096} MiB)" in failed["error"]
    assert (video.read_bytes(), video.stat().st_mtime_ns) == before
