"""The job state machine against a real SQLite file."""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import Session, SQLModel, col

from pipeline import registry
from pipeline.registry import Outline
from tasks import jobs
from tasks.db import get_engine, session_scope
from tasks.models import Job, JobStatus, JobTask, Project, StageStatus, utcnow
from tests.plans import still_plan

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


def _new_job(db_url: str, scenes: int = 2, spoken: tuple[int, ...] = ()) -> str:
    with session_scope(db_url) as session:
        job = jobs.create_job(
            session,
            project_id="p1",
            output_name="v.mp4",
            options={},
            scene_count=scenes,
            spoken=spoken,
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
        job = session.get(Job, job_id)
        assert job is not None and jobs.outline(job) == Outline(3)
    # Nothing spoken: the seed's stages.
    assert names == [
        "VALIDATE",
        "AUDIO_PREP",
        "SCENE_BUILD[0]",
        "SCENE_BUILD[1]",
        "SCENE_BUILD[2]",
        "CONCAT",
        "FINALIZE",
    ]


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


LIVE = timedelta(seconds=3)
LOST = timedelta(seconds=30)


def _claim(db_url: str, job_id: str, label: str, worker: str = "w1", pid: int = 1) -> Any:
    with session_scope(db_url) as session:
        return jobs.claim_stage(
            session, job_id, label, worker=worker, pid=pid, max_attempts=3, lost_after=LOST
        )


def _age_stage(db_url: str, job_id: str, label: str, seconds: float) -> None:
    with session_scope(db_url) as session:
        session.execute(
            update(JobTask)
            .where(col(JobTask.job_id) == job_id, col(JobTask.name) == label)
            .values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )


def test_cancel_of_queued_job_ends_it_at_once(db_url: str) -> None:
    job_id = _new_job(db_url)
    with session_scope(db_url) as session:
        job = jobs.request_cancel(session, job_id, LIVE)
        assert job is not None and job.status == "CANCELLED" and job.cancel_requested


def test_cancel_of_a_job_with_a_live_stage_flags_it_for_that_stage(db_url: str) -> None:
    job_id = _new_job(db_url)
    _claim(db_url, job_id, "VALIDATE")
    with session_scope(db_url) as session:
        job = jobs.request_cancel(session, job_id, LIVE)
        assert job is not None and job.status == "RUNNING" and job.cancel_requested


def test_cancel_between_stages_ends_the_job_at_once(db_url: str) -> None:
    # AUDIO_PREP done, no scene build claimed yet: nobody would see a flag.
    job_id = _new_job(db_url)
    claim = _claim(db_url, job_id, "AUDIO_PREP")
    with session_scope(db_url) as session:
        assert jobs.finish_stage(session, job_id, "AUDIO_PREP", claim.attempt)
    with session_scope(db_url) as session:
        job = jobs.request_cancel(session, job_id, LIVE)
        assert job is not None and job.status == "CANCELLED"
        assert (job.stage, job.error) == ("AUDIO_PREP", "cancelled by request")


def test_cancel_of_a_job_whose_stage_went_silent_ends_it_at_once(db_url: str) -> None:
    job_id = _new_job(db_url)
    _claim(db_url, job_id, "SCENE_BUILD[0]")
    _age_stage(db_url, job_id, "SCENE_BUILD[0]", 10)
    with session_scope(db_url) as session:
        job = jobs.request_cancel(session, job_id, LIVE)
        assert job is not None and job.status == "CANCELLED"
        row = session.get(JobTask, (job_id, "SCENE_BUILD[0]"))
        assert row is not None and row.status == StageStatus.CANCELLED


# --- claims -------------------------------------------------------------------------------


def test_first_claim_starts_the_job(db_url: str) -> None:
    job_id = _new_job(db_url)
    claim = _claim(db_url, job_id, "VALIDATE", worker="w1@host", pid=42)
    assert claim is not None and claim.attempt == 1 and not claim.done
    with session_scope(db_url) as session:
        job, row = session.get(Job, job_id), session.get(JobTask, (job_id, "VALIDATE"))
        assert job is not None and row is not None
        assert (job.status, job.stage, job.worker) == ("RUNNING", "VALIDATE", "w1@host")
        assert (row.status, row.worker, row.pid) == (StageStatus.RUNNING, "w1@host", 42)
        assert job.started_at is not None and job.heartbeat_at is not None


def test_a_redelivered_finished_stage_is_skipped(db_url: str) -> None:
    job_id = _new_job(db_url)
    claim = _claim(db_url, job_id, "AUDIO_PREP")
    with session_scope(db_url) as session:
        jobs.finish_stage(session, job_id, "AUDIO_PREP", claim.attempt)
    again = _claim(db_url, job_id, "AUDIO_PREP", worker="w2")
    assert again is not None and again.done


def test_a_stage_another_live_worker_holds_is_not_started_twice(db_url: str) -> None:
    job_id = _new_job(db_url)
    _claim(db_url, job_id, "SCENE_BUILD[1]", worker="w1", pid=os.getpid())
    with pytest.raises(jobs.Held):
        _claim(db_url, job_id, "SCENE_BUILD[1]", worker="w2")
    with pytest.raises(jobs.Held):  # the same worker, its holder process alive
        _claim(db_url, job_id, "SCENE_BUILD[1]", worker="w1")


def test_a_dead_pool_process_of_the_same_worker_is_taken_over_at_once(db_url: str) -> None:
    job_id = _new_job(db_url)
    dead = subprocess.Popen(["true"])
    dead.wait()
    _claim(db_url, job_id, "SCENE_BUILD[1]", worker="w1", pid=dead.pid)
    claim = _claim(db_url, job_id, "SCENE_BUILD[1]", worker="w1", pid=os.getpid())
    assert claim is not None and claim.attempt == 2


def test_a_silent_holder_is_taken_over_and_can_no_longer_beat_or_finish(db_url: str) -> None:
    job_id = _new_job(db_url)
    first = _claim(db_url, job_id, "SCENE_BUILD[0]", worker="w1", pid=os.getpid())
    _age_stage(db_url, job_id, "SCENE_BUILD[0]", LOST.total_seconds() + 1)
    second = _claim(db_url, job_id, "SCENE_BUILD[0]", worker="w2")
    assert second is not None and second.attempt == 2
    with session_scope(db_url) as session:
        assert not jobs.beat(session, job_id, "SCENE_BUILD[0]", first.attempt)
        assert not jobs.finish_stage(session, job_id, "SCENE_BUILD[0]", first.attempt)
        assert not jobs.end_job(
            session, job_id, "SCENE_BUILD[0]", JobStatus.FAILED, "x", attempt=first.attempt
        )
        assert jobs.beat(session, job_id, "SCENE_BUILD[0]", second.attempt)
    assert _status(db_url, job_id) == "RUNNING"


def test_a_stage_redelivered_too_often_fails_the_job(db_url: str) -> None:
    job_id = _new_job(db_url)
    for attempt in (1, 2, 3):  # each worker died before the stage finished
        claim = _claim(db_url, job_id, "SCENE_BUILD[1]", worker=f"w{attempt}")
        assert claim is not None and claim.attempt == attempt
        _age_stage(db_url, job_id, "SCENE_BUILD[1]", LOST.total_seconds() + 1)
    assert _claim(db_url, job_id, "SCENE_BUILD[1]", worker="w4") is None
    with session_scope(db_url) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "FAILED" and job.stage == "SCENE_BUILD[1]"
        assert job.error is not None and "started 3 times" in job.error


def test_a_cancelled_job_runs_no_further_stage(db_url: str) -> None:
    job_id = _new_job(db_url)
    _claim(db_url, job_id, "VALIDATE")
    with session_scope(db_url) as session:
        jobs.request_cancel(session, job_id, LIVE)  # VALIDATE is live: only flagged
    assert _claim(db_url, job_id, "AUDIO_PREP") is None
    with session_scope(db_url) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "CANCELLED"
        assert job.error == "cancelled by request"
        row = session.get(JobTask, (job_id, "AUDIO_PREP"))
        assert row is not None and row.attempts == 0


def test_a_finished_job_runs_no_further_stage(db_url: str) -> None:
    job_id = _new_job(db_url)
    _claim(db_url, job_id, "VALIDATE")
    with session_scope(db_url) as session:
        jobs.transition(session, job_id, JobStatus.FAILED, error="scene 0 broke")
    assert _claim(db_url, job_id, "SCENE_BUILD[1]") is None
    assert _status(db_url, job_id) == "FAILED"


def test_unknown_job_is_dropped(db_url: str) -> None:
    assert _claim(db_url, "nope", "VALIDATE") is None


def test_finishing_the_last_stage_is_the_jobs_success(db_url: str) -> None:
    job_id = _new_job(db_url, scenes=1, spoken=(0,))
    for label in registry.labels(Outline(1, (0,))):
        claim = _claim(db_url, job_id, label)
        assert _status(db_url, job_id) == "RUNNING"
        with session_scope(db_url) as session:
            assert jobs.finish_stage(session, job_id, label, claim.attempt)
    assert _status(db_url, job_id) == "SUCCEEDED"


def test_cancel_of_finished_job_changes_nothing(db_url: str) -> None:
    job_id = _new_job(db_url)
    with session_scope(db_url) as session:
        jobs.transition(session, job_id, JobStatus.RUNNING)
        jobs.transition(session, job_id, JobStatus.SUCCEEDED)
    with session_scope(db_url) as session:
        job = jobs.request_cancel(session, job_id, LIVE)
        assert job is not None and job.status == "SUCCEEDED" and not job.cancel_requested


def test_cancel_of_unknown_job_is_none(db_url: str) -> None:
    with session_scope(db_url) as session:
        assert jobs.request_cancel(session, "nope", LIVE) is None


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


def test_a_table_another_process_creates_meanwhile_does_not_stop_start_up(
    tmp_path: Path,
) -> None:
    # The API and the workers create the tables of a new database at once: between
    # create_all's check and its CREATE, another process may have made the table.
    from sqlalchemy import event

    from tasks.db import create_tables, make_engine

    url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    engine, other = make_engine(url), make_engine(url)
    table = Project.__table__  # type: ignore[attr-defined]
    raced: list[bool] = []

    def meanwhile(target: Any, connection: Any, **_: Any) -> None:
        if not raced:
            raced.append(True)
            with other.begin() as conn:
                table.create(conn)

    event.listen(table, "before_create", meanwhile)
    try:
        create_tables(engine)
    finally:
        event.remove(table, "before_create", meanwhile)
    assert raced
    with Session(engine) as session:
        assert session.get(Project, "nope") is None  # the tables are there and usable


def test_lay_out_gives_a_chunked_scene_a_row_per_chunk_weighed_by_frames(db_url: str) -> None:
    job_id = _new_job(db_url, scenes=2)
    plan = still_plan(30, 150)  # scene 1: two chunks
    with session_scope(db_url) as session:
        jobs.lay_out(session, job_id, registry.weights(Outline(2), plan))
    with session_scope(db_url) as session:
        rows = jobs.job_tasks(session, job_id)
    names = [row.name for row in rows]
    assert names == registry.labels(Outline(2), plan)
    assert "SCENE_BUILD[1]" not in names
    assert names[names.index("SCENE_BUILD[0]") :][:3] == [
        "SCENE_BUILD[0]",
        "SCENE_BUILD[1/0]",
        "SCENE_BUILD[1/1]",
    ]
    weight = {row.name: row.weight for row in rows}
    assert weight["SCENE_BUILD[1/0]"] == pytest.approx(weight["SCENE_BUILD[0]"] * 75 / 30)
    assert sum(weight.values()) == pytest.approx(sum(registry.weights(Outline(2)).values()))


def test_lay_out_again_keeps_rows_that_have_started(db_url: str) -> None:
    # A redelivered VALIDATE lays the job out again while a chunk already runs: that row stays.
    job_id = _new_job(db_url, scenes=1)
    plan = still_plan(150)
    with session_scope(db_url) as session:
        jobs.lay_out(session, job_id, registry.weights(Outline(1), plan))
    assert _claim(db_url, job_id, "SCENE_BUILD[0/0]", pid=os.getpid()) is not None
    with session_scope(db_url) as session:
        jobs.lay_out(session, job_id, registry.weights(Outline(1), plan))
        row = session.get(JobTask, (job_id, "SCENE_BUILD[0/0]"))
        assert row is not None and (row.status, row.attempts) == ("RUNNING", 1)
        assert [r.name for r in jobs.job_tasks(session, job_id)] == registry.labels(
            Outline(1), plan
        )


def test_a_job_speaks_only_its_spoken_scenes_and_keeps_that_through_the_lay_out(
    db_url: str,
) -> None:
    job_id = _new_job(db_url, scenes=3, spoken=(2,))
    with session_scope(db_url) as session:
        job = session.get(Job, job_id)
        assert job is not None and jobs.outline(job) == Outline(3, (2,))
        names = [row.name for row in jobs.job_tasks(session, job_id)]
    assert names[:2] == ["SPEECH[2]", "VALIDATE"]
    assert [name for name in names if name.startswith("SPEECH")] == ["SPEECH[2]"]
    # VALIDATE's lay-out (as the task does it, from the job's own outline) adds no SPEECH row.
    plan = still_plan(30, 30, 150)
    with session_scope(db_url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        jobs.lay_out(session, job_id, registry.weights(jobs.outline(job), plan))
    with session_scope(db_url) as session:
        rows = jobs.job_tasks(session, job_id)
    assert [row.name for row in rows] == registry.labels(Outline(3, (2,)), plan)
    assert [row.name for row in rows if row.name.startswith("SPEECH")] == ["SPEECH[2]"]
    speech = next(row for row in rows if row.name == "SPEECH[2]")
    assert speech.weight == pytest.approx(registry.BY_NAME["SPEECH"].weight)


def test_a_job_queued_by_an_earlier_release_speaks_every_scene(db_url: str) -> None:
    # Its rows were made with a SPEECH run per scene, before the job row said which speak.
    job_id = _new_job(db_url, scenes=2)
    with session_scope(db_url) as session:
        session.execute(update(Job).where(col(Job.id) == job_id).values(spoken_scenes=None))
    with session_scope(db_url) as session:
        job = session.get(Job, job_id)
        assert job is not None and jobs.outline(job) == Outline(2, (0, 1))


def test_without_speech_validate_runs_first_and_progress_counts_without_it(db_url: str) -> None:
    job_id = _new_job(db_url, scenes=2)
    claim = _claim(db_url, job_id, "VALIDATE")
    assert claim is not None and claim.job.stage == "VALIDATE"
    with session_scope(db_url) as session:
        overall = jobs.record_progress(session, job_id, "VALIDATE", claim.attempt, 1.0)
    weights = registry.weights(Outline(2))
    assert overall == pytest.approx(weights["VALIDATE"] / sum(weights.values()))
    # A cancel while VALIDATE runs (no SPEECH row to hold it up) ends the job at VALIDATE.
    with session_scope(db_url) as session:
        assert jobs.end_job(session, job_id, "VALIDATE", JobStatus.CANCELLED, "cancelled")
        job = session.get(Job, job_id)
        assert job is not None and (job.status, job.stage) == ("CANCELLED", "VALIDATE")
