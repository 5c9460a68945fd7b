"""StageTask: what a stage's task records when its body fails, is cancelled or is taken over."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import Ignore

from pipeline import registry
from pipeline.errors import Cancelled, PipelineError
from pipeline.ffmpeg import Runner, find_ffmpeg
from pipeline.fixtures import ImageFixture, SceneFixture, write_project
from pipeline.registry import StageRun
from pipeline.units import scene_unit
from tasks import jobs, stages
from tasks.db import session_scope
from tasks.models import Job, JobStatus, JobTask, Project, StageStatus
from tasks.settings import Settings
from tasks.storage import Storage
from tests.pipeline_fixtures import SMALL

SCENES = registry.BY_NAME["SCENE_BUILD"]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    s = Settings(render_storage=tmp_path, auth_token="t", max_task_attempts=3)
    monkeypatch.setattr(stages, "get_settings", lambda: s)
    return s


@pytest.fixture
def job_id(settings: Settings) -> str:
    with session_scope(settings.db_url) as session:
        session.add(Project(id="p1"))
        session.flush()
        return jobs.create_job(
            session, project_id="p1", output_name="v.mp4", options={}, scene_count=2
        ).id


def _job(settings: Settings, job_id: str) -> Job:
    with session_scope(settings.db_url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _run(job_id: str, body: Any, scene: int = 1) -> None:
    """Run the SCENE_BUILD task of `scene` in this process, with `body` as its stage body."""
    task = stages.TASKS["SCENE_BUILD"]
    task.stage = dataclasses.replace(SCENES, body=body)
    unit = scene_unit(scene)
    task.push_request(hostname="w1", id=f"{job_id}.{SCENES.label(unit)}")
    try:
        task.run_stage(job_id, unit)
    finally:
        task.pop_request()
        task.stage = SCENES


def test_the_registry_makes_one_task_per_stage() -> None:
    assert {name: task.name for name, task in stages.TASKS.items()} == {
        stage.name: f"render.{stage.name.lower()}" for stage in registry.STAGES
    }
    assert all(
        task.stage is stage
        for stage, task in zip(registry.STAGES, stages.TASKS.values(), strict=True)
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            IsADirectoryError(21, "Is a directory", "/s/w/.tmp.mp4", None, "/s/w/scene_001.mp4"),
            "SCENE_BUILD[1]: file system error on /s/w/scene_001.mp4: Is a directory",
        ),
        (
            ConnectionResetError(104, "Connection reset by peer"),
            "SCENE_BUILD[1]: internal error: ConnectionResetError: "
            "[Errno 104] Connection reset by peer",
        ),
        (KeyError("x"), "SCENE_BUILD[1]: internal error: KeyError: 'x'"),
    ],
)
def test_a_crashing_stage_fails_the_job_saying_what_went_wrong(
    settings: Settings, job_id: str, error: Exception, expected: str
) -> None:
    def body(run: StageRun) -> None:
        raise error

    with pytest.raises(stages.StageFailed) as info:
        _run(job_id, body)
    assert str(info.value) == expected
    job = _job(settings, job_id)
    assert job.status == JobStatus.FAILED and job.error == expected


def test_a_pipeline_error_names_its_stage_and_scene(settings: Settings, job_id: str) -> None:
    def body(run: StageRun) -> None:
        assert run.runner.stage == "SCENE_BUILD" and run.runner.scene == 1
        raise Cancelled("cancelled")

    with pytest.raises(Ignore):
        _run(job_id, body)
    job = _job(settings, job_id)
    assert (job.status, job.stage, job.error) == (
        JobStatus.CANCELLED,
        "SCENE_BUILD[1]",
        "cancelled by request",
    )
    with session_scope(settings.db_url) as session:
        row = session.get(JobTask, (job_id, "SCENE_BUILD[1]"))
        assert row is not None and row.status == StageStatus.CANCELLED


def test_a_stage_taken_over_mid_run_ends_nothing(settings: Settings, job_id: str) -> None:
    def body(run: StageRun) -> None:
        with session_scope(settings.db_url) as session:  # another worker claims it meanwhile
            row = session.get(JobTask, (job_id, "SCENE_BUILD[1]"))
            assert row is not None
            row.attempts += 1
        raise RuntimeError("killed under us")

    with pytest.raises(Ignore):
        _run(job_id, body)
    assert _job(settings, job_id).status == JobStatus.RUNNING


def test_a_stage_held_by_another_live_worker_is_retried_not_run(
    settings: Settings, job_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope(settings.db_url) as session:
        jobs.claim_stage(
            session,
            job_id,
            "SCENE_BUILD[1]",
            worker="w2",
            pid=1,
            max_attempts=3,
            lost_after=timedelta(seconds=30),
        )
    retried: list[dict[str, Any]] = []

    class Retry(Exception):
        pass

    def retry(**kw: Any) -> Exception:
        retried.append(kw)
        return Retry()

    ran: list[int] = []
    monkeypatch.setattr(stages.TASKS["SCENE_BUILD"], "retry", retry)
    with pytest.raises(Retry):
        _run(job_id, lambda run: ran.append(1))
    assert ran == [] and retried and retried[0]["countdown"] > 0


def test_a_body_that_returns_the_plan_reweighs_the_scenes(settings: Settings, job_id: str) -> None:
    # Finishing SCENE_BUILD[1] normally marks it DONE and keeps the job running.
    _run(job_id, lambda run: None)
    with session_scope(settings.db_url) as session:
        row = session.get(JobTask, (job_id, "SCENE_BUILD[1]"))
        assert row is not None and row.status == StageStatus.DONE and row.progress == 1.0
    assert _job(settings, job_id).status == JobStatus.RUNNING


def test_a_stage_on_a_disk_under_min_free_mb_fails_the_job_and_keeps_what_was_written(
    settings: Settings, tmp_path: Path
) -> None:
    # A real project and the real stage bodies, up to the master audio; then the worker's
    # MIN_FREE_MB is set above the free space there really is, as for a disk filling up.
    storage = Storage(settings.render_storage)
    write_project(
        storage.project("p1").root,
        [
            SceneFixture((ImageFixture("a.jpg", 160, 120, "testsrc2"),), duration=1.0),
            SceneFixture((ImageFixture("b.jpg", 160, 120, "gradients"),), duration=1.0),
        ],
    )
    with session_scope(settings.db_url) as session:
        session.add(Project(id="p1"))
        session.flush()
        job = jobs.create_job(
            session,
            project_id="p1",
            output_name="v.mp4",
            options=SMALL.model_dump(by_alias=True),
            scene_count=2,
        )
    project = storage.project("p1").for_run(job.id)
    base = StageRun(project, SMALL, "v.mp4", Runner(find_ffmpeg()))
    for label in ("SPEECH[0]", "SPEECH[1]", "VALIDATE", "AUDIO_PREP"):
        stage, unit = registry.parse_unit(label)
        registry.run_stage(stage, dataclasses.replace(base, unit=unit))
    master = project.work / "audio.wav"
    before = (master.read_bytes(), master.stat().st_mtime_ns)

    free_mb = shutil.disk_usage(settings.render_storage).free // 2**20
    settings.min_free_mb = free_mb + 1024
    with pytest.raises(stages.StageFailed):
        _run(job.id, SCENES.body, scene=0)

    failed = _job(settings, job.id)
    assert failed.status == JobStatus.FAILED and failed.stage == "SCENE_BUILD[0]"
    assert failed.error is not None
    assert failed.error.startswith("SCENE_BUILD[0]: not started") and "MIN_FREE_MB" in failed.error
    assert (master.read_bytes(), master.stat().st_mtime_ns) == before
    assert not (project.work / "scenes").exists()  # the stage wrote nothing


def test_a_min_free_mb_of_0_turns_the_check_off(settings: Settings, job_id: str) -> None:
    settings.min_free_mb = 0
    stages.require_free_space(settings, "VALIDATE")
    settings.min_free_mb = shutil.disk_usage(settings.render_storage).free // 2**20 + 1024
    with pytest.raises(PipelineError, match=r"^VALIDATE: not started: .* MIN_FREE_MB"):
        stages.require_free_space(settings, "VALIDATE")


def test_a_disk_falling_under_min_free_mb_mid_stage_stops_it_and_fails_the_job(
    settings: Settings, job_id: str
) -> None:
    # The stage starts with room to spare; while it writes, the free space falls under the
    # threshold (here the threshold rises above it): its Runner is told to stop, and the job
    # fails naming the stage and the setting, not as a cancel.
    settings.min_free_mb = 1
    seen: list[bool] = []

    def body(run: StageRun) -> None:
        assert run.runner.should_cancel is not None
        seen.append(run.runner.should_cancel())
        settings.min_free_mb = shutil.disk_usage(settings.render_storage).free // 2**20 + 1024
        seen.append(run.runner.should_cancel())
        raise Cancelled("FFmpeg stopped")  # what the Runner raises once told to stop

    with pytest.raises(stages.StageFailed):
        _run(job_id, body)
    assert seen == [False, True]
    job = _job(settings, job_id)
    assert (job.status, job.stage) == (JobStatus.FAILED, "SCENE_BUILD[1]")
    assert job.error is not None
    assert job.error.startswith("SCENE_BUILD[1]: stopped: ") and "MIN_FREE_MB" in job.error
