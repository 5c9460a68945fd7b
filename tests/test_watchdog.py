"""The watchdog ends RUNNING jobs that stopped heartbeating, and nothing else."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import fakeredis
import pytest
from sqlalchemy import update
from sqlmodel import col

from tasks import jobs
from tasks.db import session_scope
from tasks.models import Job, JobStatus, JobTask, Project, utcnow
from tasks.settings import Settings
from tasks.watchdog import (
    CANCEL_GRACE_SECONDS,
    QUEUE_KEY,
    UNACKED_KEY,
    sweep,
    waiting_in_broker,
)


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


@pytest.fixture
def broker() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def _message(job_id: str, stage: str) -> bytes:
    # The shape kombu stores: a JSON envelope whose headers carry the task id.
    return json.dumps({"headers": {"id": f"{job_id}.{stage}", "task": "render.concat"}}).encode()


def test_job_whose_next_task_waits_in_the_queue_is_kept(
    settings: Settings, broker: fakeredis.FakeRedis
) -> None:
    queued = _job(settings, JobStatus.RUNNING, beat_age=500)
    lost = _job(settings, JobStatus.RUNNING, beat_age=500)
    broker.rpush(QUEUE_KEY, _message("someone-else", "VALIDATE"), _message(queued, "CONCAT"))
    assert sweep(settings, broker=broker) == [(lost, JobStatus.FAILED)]
    assert _get(settings, queued).status == "RUNNING"


def test_job_whose_task_a_busy_worker_reserved_is_kept(
    settings: Settings, broker: fakeredis.FakeRedis
) -> None:
    reserved = _job(settings, JobStatus.RUNNING, beat_age=500)
    broker.hset(UNACKED_KEY, "tag-1", _message(reserved, "SCENE_BUILD[0]"))
    assert sweep(settings, broker=broker) == []


def test_a_started_stage_gone_silent_fails_even_if_its_message_is_unacked(
    settings: Settings, broker: fakeredis.FakeRedis
) -> None:
    dead = _job(settings, JobStatus.RUNNING, beat_age=500)
    with session_scope(settings.db_url) as session:
        session.execute(
            update(JobTask)
            .where(col(JobTask.job_id) == dead, col(JobTask.name) == "SCENE_BUILD[0]")
            .values(status="RUNNING", heartbeat_at=utcnow() - timedelta(seconds=500))
        )
    # The killed worker's message stays unacked until a live worker restores it.
    broker.hset(UNACKED_KEY, "tag-2", _message(dead, "SCENE_BUILD[0]"))
    assert sweep(settings, broker=broker) == [(dead, JobStatus.FAILED)]


def test_waiting_in_broker_matches_only_the_given_jobs(broker: fakeredis.FakeRedis) -> None:
    broker.rpush(QUEUE_KEY, _message("a1", "VALIDATE"))
    broker.hset(UNACKED_KEY, "t", _message("b2", "FINALIZE"))
    assert waiting_in_broker(broker, ["a1", "b2", "c3"]) == {"a1", "b2"}
    assert waiting_in_broker(broker, []) == set()
