"""The job state machine against a real SQLite file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlmodel import Session, SQLModel

from tasks import jobs
from tasks.db import get_engine, session_scope
from tasks.models import Job, JobStatus, JobTask, Project

# SQLite always; PostgreSQL too when TEST_DB_URL names one (e.g. postgresql://127.0.0.1/test).
BACKENDS = ["sqlite"] + (["server"] if os.environ.get("TEST_DB_URL") else [])


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    else:
        url = os.environ["TEST_DB_URL"]
        engine = get_engine(url)
        SQLModel.metadata.drop_all(engine)
        SQLModel.metadata.create_all(engine)
    with session_scope(url) as session:
        session.add(Project(id="p1"))
    return url


def _new_job(db_url: str, scenes: int = 2) -> str:
    with session_scope(db_url) as session:
        job = jobs.create_job(
            session, project_id="p1", output_name="v.mp4", options={}, scene_count=scenes
        )
        return job.id


def _status(db_url: str, job_id: str) -> str:
    with session_scope(db_url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.status


def test_create_job_makes_one_row_per_stage_in_order(db_url: str) -> None:
    job_id = _new_job(db_url, scenes=3)
    with session_scope(db_url) as session:
        names = [row.name for row in jobs.job_tasks(session, job_id)]
    assert names == [
        "VALIDATE",
        "AUDIO_PREP",
        "SCENE_BUILD[0]",
        "SCENE_BUILD[1]",
        "SCENE_BUILD[2]",
        "CONCAT",
        "FINALIZE",
    ]


def test_stage_weights_split_scenes_by_frames() -> None:
    weights = jobs.stage_weights(2, [100, 300])
    assert weights["SCENE_BUILD[1]"] == pytest.approx(3 * weights["SCENE_BUILD[0]"])
    assert sum(weights.values()) == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ([JobStatus.RUNNING, JobStatus.SUCCEEDED], [True, True]),
        ([JobStatus.RUNNING, JobStatus.FAILED, JobStatus.RUNNING], [True, True, False]),
        ([JobStatus.SUCCEEDED], [False]),
        ([JobStatus.CANCELLED, JobStatus.RUNNING, JobStatus.FAILED], [True, False, False]),
        ([JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.SUCCEEDED], [True, True, False]),
    ],
)
def test_transitions_are_guarded(db_url: str, path: list[JobStatus], expected: list[bool]) -> None:
    job_id = _new_job(db_url)
    moved = []
    for target in path:
        with session_scope(db_url) as session:
            moved.append(jobs.transition(session, job_id, target))
    assert moved == expected


def test_finished_job_keeps_its_state_and_fields(db_url: str) -> None:
    job_id = _new_job(db_url)
    with session_scope(db_url) as session:
        jobs.transition(session, job_id, JobStatus.RUNNING)
        jobs.transition(session, job_id, JobStatus.FAILED, stage="CONCAT", error="boom")
    with session_scope(db_url) as session:
        assert not jobs.transition(session, job_id, JobStatus.SUCCEEDED, error=None)
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.status, job.stage, job.error) == ("FAILED", "CONCAT", "boom")
        assert job.finished_at is not None and job.started_at is not None


def test_succeeded_sets_progress_to_one(db_url: str) -> None:
    job_id = _new_job(db_url)
    with session_scope(db_url) as session:
        jobs.transition(session, job_id, JobStatus.RUNNING)
        jobs.transition(session, job_id, JobStatus.SUCCEEDED)
    with session_scope(db_url) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.progress == 1.0


def test_cancel_of_queued_job_ends_it_at_once(db_url: str) -> None:
    job_id = _new_job(db_url)
    with session_scope(db_url) as session:
        job = jobs.request_cancel(session, job_id)
        assert job is not None and job.status == "CANCELLED" and job.cancel_requested


def test_cancel_of_running_job_only_flags_it(db_url: str) -> None:
    job_id = _new_job(db_url)
    with session_scope(db_url) as session:
        jobs.transition(session, job_id, JobStatus.RUNNING)
    with session_scope(db_url) as session:
        job = jobs.request_cancel(session, job_id)
        assert job is not None and job.status == "RUNNING" and job.cancel_requested


def test_cancel_of_finished_job_changes_nothing(db_url: str) -> None:
    job_id = _new_job(db_url)
    with session_scope(db_url) as session:
        jobs.transition(session, job_id, JobStatus.RUNNING)
        jobs.transition(session, job_id, JobStatus.SUCCEEDED)
    with session_scope(db_url) as session:
        job = jobs.request_cancel(session, job_id)
        assert job is not None and job.status == "SUCCEEDED" and not job.cancel_requested


def test_cancel_of_unknown_job_is_none(db_url: str) -> None:
    with session_scope(db_url) as session:
        assert jobs.request_cancel(session, "nope") is None


def test_sqlite_runs_in_wal_mode_with_busy_timeout(tmp_path: Path) -> None:
    with Session(get_engine(f"sqlite:///{tmp_path / 'wal.sqlite3'}")) as session:
        conn = session.connection()
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_last_succeeded_output(db_url: str) -> None:
    first, second = _new_job(db_url), _new_job(db_url)
    with session_scope(db_url) as session:
        for job_id, name in ((first, "a.mp4"), (second, "b.mp4")):
            session.get(Job, job_id).output_name = name  # type: ignore[union-attr]
        jobs.transition(session, first, JobStatus.RUNNING)
        jobs.transition(session, first, JobStatus.SUCCEEDED)
    with session_scope(db_url) as session:
        assert jobs.last_succeeded_output(session, "p1") == "a.mp4"
        assert session.get(JobTask, (first, "VALIDATE")) is not None
