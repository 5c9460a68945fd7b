"""The watchdog ends RUNNING jobs that stopped heartbeating, and nothing else."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import col

from tasks import jobs
from tasks.db import session_scope
from tasks.models import Job, JobStatus, Project, utcnow
from tasks.settings import Settings
from tasks.watchdog import CANCEL_GRACE_SECONDS, sweep


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(render_storage=tmp_path, auth_token="t", stale_after=120)
    with session_scope(s.db_url) as session:
        session.add(Project(id="p1"))
    return s


def _job(settings: Settings, status: JobStatus, beat_age: float, cancel: bool = False) -> str:
    with session_scope(settings.db_url) as session:
        job = jobs.create_job(
            session, project_id="p1", output_name="v.mp4", options={}, scene_count=1
        )
        if status is not JobStatus.QUEUED:
            jobs.transition(session, job.id, JobStatus.RUNNING, stage="SCENE_BUILD[0]")
        if status.finished:
            jobs.transition(session, job.id, status)
        session.execute(
            update(Job)
            .where(col(Job.id) == job.id)
            .values(
                heartbeat_at=utcnow() - timedelta(seconds=beat_age),
                cancel_requested=cancel,
                stage="SCENE_BUILD[0]",
            )
        )
        return job.id


def _get(settings: Settings, job_id: str) -> Job:
    with session_scope(settings.db_url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def test_stale_running_job_is_failed_naming_its_stage(settings: Settings) -> None:
    stale = _job(settings, JobStatus.RUNNING, beat_age=200)
    fresh = _job(settings, JobStatus.RUNNING, beat_age=5)
    assert sweep(settings) == [(stale, JobStatus.FAILED)]
    job = _get(settings, stale)
    assert job.status == "FAILED"
    assert job.error is not None and "SCENE_BUILD[0]" in job.error and "120 s" in job.error
    assert _get(settings, fresh).status == "RUNNING"


def test_queued_and_finished_jobs_are_left_alone(settings: Settings) -> None:
    _job(settings, JobStatus.QUEUED, beat_age=10_000)
    _job(settings, JobStatus.SUCCEEDED, beat_age=10_000)
    assert sweep(settings) == []


def test_unhonoured_cancel_ends_cancelled_after_the_grace(settings: Settings) -> None:
    waiting = _job(settings, JobStatus.RUNNING, beat_age=CANCEL_GRACE_SECONDS + 5, cancel=True)
    recent = _job(settings, JobStatus.RUNNING, beat_age=1, cancel=True)
    assert sweep(settings) == [(waiting, JobStatus.CANCELLED)]
    assert _get(settings, recent).status == "RUNNING"


def test_two_watchdogs_end_a_job_once(settings: Settings) -> None:
    _job(settings, JobStatus.RUNNING, beat_age=500)
    assert len(sweep(settings)) == 1
    assert sweep(settings) == []
