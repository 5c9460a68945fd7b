"""Progress, heartbeat and cancellation plumbing, against a real SQLite file."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import col

from tasks import jobs
from tasks.db import session_scope
from tasks.jobs import MAX_RUNNING_PROGRESS, job_progress
from tasks.models import Job, JobStatus, JobTask, Project
from tasks.progress import StageTracker
from tasks.settings import Settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(render_storage=tmp_path, auth_token="t", progress_interval=0.5)


@pytest.fixture
def job_id(settings: Settings) -> str:
    with session_scope(settings.db_url) as session:
        session.add(Project(id="p1"))
        session.flush()
        job = jobs.create_job(
            session, project_id="p1", output_name="v.mp4", options={}, scene_count=2
        )
        for label in ("VALIDATE", "AUDIO_PREP", "SCENE_BUILD[0]", "SCENE_BUILD[1]", "CONCAT"):
            claim = jobs.claim_stage(
                session,
                job.id,
                label,
                worker="w1",
                pid=1,
                max_attempts=3,
                lost_after=timedelta(seconds=30),
            )
            assert claim is not None and claim.attempt == 1
        return job.id


def record_progress(settings: Settings, job_id: str, label: str, fraction: float) -> float:
    with session_scope(settings.db_url) as session:
        return jobs.record_progress(session, job_id, label, 1, fraction)


def _job(settings: Settings, job_id: str) -> Job:
    with session_scope(settings.db_url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def test_job_progress_is_a_weighted_mean_capped_below_one() -> None:
    assert job_progress([(1.0, 1.0), (3.0, 0.0)]) == pytest.approx(0.25)
    assert job_progress([(1.0, 1.0)]) == MAX_RUNNING_PROGRESS
    assert job_progress([]) == 0.0


def test_record_progress_never_moves_backwards(settings: Settings, job_id: str) -> None:
    first = record_progress(settings, job_id, "SCENE_BUILD[0]", 0.8)
    second = record_progress(settings, job_id, "SCENE_BUILD[0]", 0.2)
    assert first > 0
    assert second == pytest.approx(first)
    with session_scope(settings.db_url) as session:
        row = session.get(JobTask, (job_id, "SCENE_BUILD[0]"))
        assert row is not None and row.progress == 0.8 and row.heartbeat_at is not None
    assert _job(settings, job_id).progress == pytest.approx(first)


def test_record_progress_leaves_a_finished_job_alone(settings: Settings, job_id: str) -> None:
    with session_scope(settings.db_url) as session:
        jobs.transition(session, job_id, JobStatus.FAILED, error="x")
    record_progress(settings, job_id, "VALIDATE", 1.0)
    assert _job(settings, job_id).progress == 0.0


def test_tracker_throttles_writes_and_flushes_the_last(settings: Settings, job_id: str) -> None:
    clock = FakeClock()
    published: list[float] = []
    tracker = StageTracker(
        settings,
        job_id,
        "AUDIO_PREP",
        1,
        publish=lambda _s, f, _o: published.append(f),
        clock=clock,
    )
    tracker.progress(0.1)  # first write goes through
    tracker.progress(0.2)
    tracker.progress(0.3)  # same instant: throttled
    assert published == [0.1]
    clock.now = 0.6
    tracker.progress(0.4)
    assert published == [0.1, 0.4]
    tracker.progress(0.9)
    tracker.flush()  # the stage's end writes what is pending
    assert published == [0.1, 0.4, 0.9]


def test_tracker_sees_a_cancel_request(settings: Settings, job_id: str) -> None:
    clock = FakeClock()
    tracker = StageTracker(settings, job_id, "CONCAT", 1, clock=clock)
    assert tracker.should_cancel() is False
    with session_scope(settings.db_url) as session:
        jobs.request_cancel(session, job_id, timedelta(seconds=3))
    assert tracker.should_cancel() is False  # throttled: no database read yet
    clock.now = 1.0
    assert tracker.should_cancel() is True


def test_tracker_stops_when_the_job_failed_elsewhere(settings: Settings, job_id: str) -> None:
    tracker = StageTracker(settings, job_id, "SCENE_BUILD[1]", 1, clock=FakeClock())
    with session_scope(settings.db_url) as session:
        jobs.transition(session, job_id, JobStatus.FAILED, error="scene 0 broke")
    assert tracker.should_cancel() is True


def test_tracker_appends_to_the_job_log(settings: Settings, job_id: str) -> None:
    tracker = StageTracker(settings, job_id, "VALIDATE", 1)
    tracker.log("ffmpeg -i a.jpg")
    tracker.log("done")
    lines = (settings.render_storage / "logs" / f"{job_id}.log").read_text().splitlines()
    assert len(lines) == 2
    assert "[VALIDATE] ffmpeg -i a.jpg" in lines[0]


def test_a_tracker_whose_stage_was_taken_over_stops(settings: Settings, job_id: str) -> None:
    tracker = StageTracker(settings, job_id, "SCENE_BUILD[0]", 1, clock=FakeClock())
    tracker.beat()
    assert not tracker.superseded and not tracker.should_cancel()
    with session_scope(settings.db_url) as session:  # another worker's attempt 2
        session.execute(
            update(JobTask)
            .where(col(JobTask.job_id) == job_id, col(JobTask.name) == "SCENE_BUILD[0]")
            .values(attempts=2)
        )
    tracker.beat()
    assert tracker.superseded and tracker.should_cancel()
    assert _job(settings, job_id).status == "RUNNING"  # the job is the new holder's


def test_beating_keeps_the_stage_fresh_while_the_body_runs(settings: Settings, job_id: str) -> None:
    fast = settings.model_copy(update={"heartbeat_interval": 0.05})
    tracker = StageTracker(fast, job_id, "SCENE_BUILD[1]", 1)
    with session_scope(settings.db_url) as session:
        row = session.get(JobTask, (job_id, "SCENE_BUILD[1]"))
        assert row is not None
        before = row.heartbeat_at
    with tracker.beating():
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with session_scope(settings.db_url) as session:
                row = session.get(JobTask, (job_id, "SCENE_BUILD[1]"))
                assert row is not None
                if row.heartbeat_at != before:
                    break
            time.sleep(0.01)
    assert row.heartbeat_at != before
