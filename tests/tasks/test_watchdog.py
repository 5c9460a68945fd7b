"""The watchdog: cancels nobody honours, lost stages requeued, jobs nobody can run failed."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import fakeredis
import pytest
from sqlalchemy import update
from sqlmodel import col

from tasks import jobs
from tasks.app import BATCH_QUEUE
from tasks.db import session_scope
from tasks.models import Job, JobStatus, JobTask, Project, StageStatus, utcnow
from tasks.settings import Settings
from tasks.watchdog import (
    QUEUE_KEY,
    UNACKED_INDEX_KEY,
    UNACKED_KEY,
    restore,
    sweep,
    waiting_in_broker,
    waiting_reason,
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(
        render_storage=tmp_path,
        auth_token="t",
        stale_after=120,
        stage_lost_after=30,
        heartbeat_interval=1,
        worker_wait_timeout=600,
    )
    with session_scope(s.db_url) as session:
        session.add(Project(id="p1"))
        jobs.worker_beat(session, "w-alive")
    return s


@pytest.fixture
def broker() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def _job(
    settings: Settings,
    status: JobStatus,
    beat_age: float,
    cancel: bool = False,
    stage_status: StageStatus | None = None,
) -> str:
    """A one-scene job at SCENE_BUILD[0]; `stage_status` sets that stage's row, same age."""
    with session_scope(settings.db_url) as session:
        job = jobs.create_job(
            session, project_id="p1", output_name="v.mp4", options={}, scene_count=1
        )
        if status is not JobStatus.QUEUED:
            jobs.transition(session, job.id, JobStatus.RUNNING, stage="SCENE_BUILD[0]")
        if status.finished:
            jobs.transition(session, job.id, status)
        beat = utcnow() - timedelta(seconds=beat_age)
        session.execute(
            update(Job)
            .where(col(Job.id) == job.id)
            .values(heartbeat_at=beat, cancel_requested=cancel, stage="SCENE_BUILD[0]")
        )
        if stage_status is not None:
            session.execute(
                update(JobTask)
                .where(col(JobTask.job_id) == job.id, col(JobTask.name) == "SCENE_BUILD[0]")
                .values(status=str(stage_status), heartbeat_at=beat, attempts=1)
            )
        return job.id


def _get(settings: Settings, job_id: str) -> Job:
    with session_scope(settings.db_url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _message(job_id: str, label: str) -> bytes:
    # The shape kombu keeps in its unacked hash: [message, exchange, routing key].
    payload = {
        "body": "e30=",
        "headers": {"id": f"{job_id}.{label}", "task": "render.scene_build"},
        "properties": {"delivery_info": {"exchange": "", "routing_key": "celery"}},
    }
    return json.dumps([payload, "", "celery"]).encode()


def _hold(broker: fakeredis.FakeRedis, tag: str, job_id: str, label: str, age: float) -> None:
    broker.hset(UNACKED_KEY, tag, _message(job_id, label))
    broker.zadd(UNACKED_INDEX_KEY, {tag: time.time() - age})


# --- cancels ------------------------------------------------------------------------------


def test_a_cancel_no_live_stage_honours_ends_cancelled(settings: Settings) -> None:
    orphan = _job(settings, JobStatus.RUNNING, 5, cancel=True, stage_status=StageStatus.RUNNING)
    live = _job(settings, JobStatus.RUNNING, 0, cancel=True, stage_status=StageStatus.RUNNING)
    assert sweep(settings) == [(orphan, JobStatus.CANCELLED)]
    assert _get(settings, orphan).error == "cancelled by request (no worker was running it)"
    assert _get(settings, live).status == "RUNNING"


# --- lost stages --------------------------------------------------------------------------


def test_a_silent_started_stage_goes_back_to_the_head_of_the_queue(
    settings: Settings, broker: fakeredis.FakeRedis
) -> None:
    lost = _job(settings, JobStatus.RUNNING, 40, stage_status=StageStatus.RUNNING)
    alive = _job(settings, JobStatus.RUNNING, 2, stage_status=StageStatus.RUNNING)
    _hold(broker, "tag-lost", lost, "SCENE_BUILD[0]", age=60)
    _hold(broker, "tag-alive", alive, "SCENE_BUILD[0]", age=60)
    broker.lpush(QUEUE_KEY, b"someone else's task")
    assert sweep(settings, broker=broker) == []
    assert broker.hkeys(UNACKED_KEY) == [b"tag-alive"]
    assert broker.zrange(UNACKED_INDEX_KEY, 0, -1) == [b"tag-alive"]
    head = json.loads(broker.rpop(QUEUE_KEY))  # what the next worker takes
    assert head["headers"]["id"] == f"{lost}.SCENE_BUILD[0]"
    assert head["headers"]["redelivered"] is True
    # A tag of its own: the old holder, if it comes back, acknowledges only the old one.
    assert head["properties"]["delivery_tag"] not in {"tag-lost", "tag-alive"}
    assert _get(settings, lost).status == "RUNNING"


def test_a_message_reserved_long_ago_and_never_started_is_requeued(
    settings: Settings, broker: fakeredis.FakeRedis
) -> None:
    idle = _job(settings, JobStatus.RUNNING, 0)
    fresh = _job(settings, JobStatus.RUNNING, 0)
    _hold(broker, "tag-idle", idle, "SCENE_BUILD[0]", age=40)
    _hold(broker, "tag-fresh", fresh, "SCENE_BUILD[0]", age=5)
    sweep(settings, broker=broker)
    assert broker.hkeys(UNACKED_KEY) == [b"tag-fresh"]
    assert broker.llen(QUEUE_KEY) == 1


def test_a_message_is_restored_once_however_many_watchdogs_try(
    broker: fakeredis.FakeRedis,
) -> None:
    _hold(broker, "t", "j1", "CONCAT", age=100)
    assert restore(broker, "t") is True
    assert restore(broker, "t") is False
    assert broker.llen(QUEUE_KEY) == 1


# --- jobs that cannot go on ---------------------------------------------------------------


def test_a_job_with_no_worker_alive_waits_then_fails_saying_why(settings: Settings) -> None:
    with session_scope(settings.db_url) as session:
        jobs.worker_gone(session, "w-alive")
    recent = _job(settings, JobStatus.QUEUED, 0)
    old = _job(settings, JobStatus.QUEUED, 0)
    with session_scope(settings.db_url) as session:
        session.execute(
            update(Job)
            .where(col(Job.id) == old)
            .values(created_at=utcnow() - timedelta(seconds=700), heartbeat_at=None)
        )
        job = session.get(Job, recent)
        assert job is not None
        reason = waiting_reason(session, settings, job)
        assert reason is not None and "no worker is running" in reason
    assert sweep(settings) == [(old, JobStatus.FAILED)]
    error = _get(settings, old).error
    assert error is not None and "WORKER_WAIT_TIMEOUT" in error and "600 s" in error
    assert _get(settings, recent).status == "QUEUED"


def test_a_stale_job_with_nothing_left_in_the_broker_fails_naming_its_stage(
    settings: Settings, broker: fakeredis.FakeRedis
) -> None:
    gone = _job(settings, JobStatus.RUNNING, 200)
    queued = _job(settings, JobStatus.RUNNING, 200)
    fresh = _job(settings, JobStatus.RUNNING, 5)
    broker.lpush(QUEUE_KEY, _message(queued, "CONCAT"))
    assert sweep(settings, broker=broker) == [(gone, JobStatus.FAILED)]
    error = _get(settings, gone).error
    assert error is not None and "SCENE_BUILD[0]" in error and "120 s" in error
    assert _get(settings, queued).status == "RUNNING"
    assert _get(settings, fresh).status == "RUNNING"


def test_queued_and_finished_jobs_are_left_alone(settings: Settings) -> None:
    _job(settings, JobStatus.QUEUED, beat_age=10_000)
    _job(settings, JobStatus.SUCCEEDED, beat_age=10_000)
    assert sweep(settings) == []


def test_two_watchdogs_end_a_job_once(settings: Settings) -> None:
    _job(settings, JobStatus.RUNNING, beat_age=500)
    assert len(sweep(settings)) == 1
    assert sweep(settings) == []


def test_waiting_in_broker_matches_only_the_given_jobs(broker: fakeredis.FakeRedis) -> None:
    broker.rpush(QUEUE_KEY, _message("a1", "VALIDATE"))
    broker.hset(UNACKED_KEY, "t", _message("b2", "FINALIZE"))
    # A batch's job waiting its turn in the batch queue is waiting, not lost.
    broker.rpush(BATCH_QUEUE, _message("d4", "CONCAT"))
    assert waiting_in_broker(broker, ["a1", "b2", "c3", "d4"]) == {"a1", "b2", "d4"}
    assert waiting_in_broker(broker, []) == set()
