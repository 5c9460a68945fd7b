"""How a stage task claims its stage (state moves, redeliveries, the attempts cap) and fails it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks import jobs, stages
from tasks.db import session_scope
from tasks.models import Job, JobStatus, JobTask, Project
from tasks.settings import Settings
from tasks.stages import _begin, _finish_stage


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(render_storage=tmp_path, auth_token="t", max_task_attempts=3)


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


def test_first_claim_starts_the_job(settings: Settings, job_id: str) -> None:
    claim = _begin(settings, job_id, "VALIDATE", "w1@host")
    assert claim is not None and claim.attempt == 1 and not claim.done
    job = _job(settings, job_id)
    assert (job.status, job.stage, job.worker) == ("RUNNING", "VALIDATE", "w1@host")
    assert job.started_at is not None and job.heartbeat_at is not None


def test_a_redelivered_finished_stage_is_skipped(settings: Settings, job_id: str) -> None:
    _begin(settings, job_id, "AUDIO_PREP", "w1")
    _finish_stage(settings, job_id, "AUDIO_PREP")
    claim = _begin(settings, job_id, "AUDIO_PREP", "w2")
    assert claim is not None and claim.done


def test_a_stage_redelivered_too_often_fails_the_job(settings: Settings, job_id: str) -> None:
    for attempt in (1, 2, 3):  # each worker died before the stage finished
        claim = _begin(settings, job_id, "SCENE_BUILD[1]", f"w{attempt}")
        assert claim is not None and claim.attempt == attempt
    assert _begin(settings, job_id, "SCENE_BUILD[1]", "w4") is None
    job = _job(settings, job_id)
    assert job.status == "FAILED" and job.stage == "SCENE_BUILD[1]"
    assert job.error is not None and "started 3 times" in job.error


def test_a_cancelled_job_runs_no_further_stage(settings: Settings, job_id: str) -> None:
    _begin(settings, job_id, "VALIDATE", "w1")
    with session_scope(settings.db_url) as session:
        jobs.request_cancel(session, job_id)
    assert _begin(settings, job_id, "AUDIO_PREP", "w1") is None
    job = _job(settings, job_id)
    assert job.status == "CANCELLED" and job.error == "cancelled by request"
    with session_scope(settings.db_url) as session:
        row = session.get(JobTask, (job_id, "AUDIO_PREP"))
        assert row is not None and row.attempts == 0


def test_a_finished_job_runs_no_further_stage(settings: Settings, job_id: str) -> None:
    _begin(settings, job_id, "VALIDATE", "w1")
    with session_scope(settings.db_url) as session:
        jobs.transition(session, job_id, JobStatus.FAILED, error="scene 0 broke")
    assert _begin(settings, job_id, "SCENE_BUILD[1]", "w1") is None
    assert _job(settings, job_id).error == "scene 0 broke"


def test_unknown_job_is_dropped(settings: Settings) -> None:
    assert _begin(settings, "nope", "VALIDATE", "w1") is None


class _Task:
    """What run_stage reads of a Celery task: the worker's name and a state sink."""

    class request:
        hostname = "w1"

    def update_state(self, **_: object) -> None:
        pass


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
    settings: Settings,
    job_id: str,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    expected: str,
) -> None:
    monkeypatch.setattr(stages, "get_settings", lambda: settings)

    def body(ctx: stages.StageContext) -> None:
        raise error

    with pytest.raises(stages.StageFailed) as info:
        stages.run_stage(_Task(), job_id, "SCENE_BUILD[1]", body)  # type: ignore[arg-type]
    assert str(info.value) == expected
    job = _job(settings, job_id)
    assert job.status == JobStatus.FAILED and job.error == expected
