"""A database made by an earlier release: the columns added since are added in place, filled
with their defaults, and the job state machine works on the old rows."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import String, inspect, text
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from tasks import db, jobs
from tasks.db import SchemaError, add_missing_columns, make_engine, session_scope
from tasks.models import Job, JobStatus, JobTask

BACKENDS = ["sqlite"] + (["server"] if os.environ.get("TEST_DB_URL") else [])
# Columns later releases added to job_tasks: a holder's pid, how a clip came to be.
LATER = ("pid", "clip", "clip_bytes")


@pytest.fixture(params=BACKENDS)
def old_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database whose job_tasks lacks LATER, holding a project, a job and its stage rows."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    else:
        url = os.environ["TEST_DB_URL"]
    engine = make_engine(url)
    SQLModel.metadata.drop_all(engine)
    SQLModel.metadata.create_all(engine)
    with engine.begin() as connection:
        for column in LATER:
            connection.execute(text(f"ALTER TABLE job_tasks DROP COLUMN {column}"))
        connection.execute(
            text(
                "INSERT INTO projects (id, scene_count, created_at, updated_at) "
                "VALUES ('p1', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO jobs (id, project_id, status, progress, output_name, options, "
                "scene_count, cancel_requested, held, created_at) VALUES ('j1', 'p1', "
                "'QUEUED', 0, 'v.mp4', '{}', 1, false, false, CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO job_tasks (job_id, name, status, progress, weight, attempts) "
                "VALUES ('j1', 'VALIDATE', 'PENDING', 0, 2, 0)"
            )
        )
    engine.dispose()
    db._engines.pop(url, None)
    yield url
    db._engines.pop(url, None)


def _columns(engine: Engine, table: str) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns(table)}


def test_the_columns_added_since_are_added_with_their_defaults(old_db: str) -> None:
    engine = make_engine(old_db)
    assert not set(LATER) & _columns(engine, "job_tasks")
    assert add_missing_columns(engine) == [f"job_tasks.{c}" for c in LATER]
    assert set(LATER) <= _columns(engine, "job_tasks")
    assert add_missing_columns(engine) == []  # a second start finds nothing to add
    with session_scope(old_db) as session:
        row = session.get(JobTask, ("j1", "VALIDATE"))
        assert row is not None and (row.pid, row.clip, row.clip_bytes) == (None, None, 0)


def test_the_state_machine_works_on_an_upgraded_database(old_db: str) -> None:
    with session_scope(old_db) as session:  # the first session upgrades the schema
        claim = jobs.claim_stage(
            session,
            "j1",
            "VALIDATE",
            worker="w1",
            pid=os.getpid(),
            max_attempts=3,
            lost_after=timedelta(seconds=30),
        )
        assert claim is not None and claim.attempt == 1
    with session_scope(old_db) as session:
        assert jobs.finish_stage(session, "j1", "VALIDATE", 1, clip="encoded", clip_bytes=7)
        row = session.get(JobTask, ("j1", "VALIDATE"))
        assert row is not None and (row.pid, row.clip_bytes) == (os.getpid(), 7)


def test_a_column_without_a_default_is_refused_saying_which(
    old_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A required column with nothing to fill old rows with cannot be added in place.
    column = JobTask.__table__.columns["clip_bytes"]  # type: ignore[attr-defined]
    monkeypatch.setattr(column, "default", None)
    with pytest.raises(SchemaError, match="job_tasks has no column clip_bytes"):
        add_missing_columns(make_engine(old_db))


# The string columns a stage label goes into, 32 characters wide before they were widened.
LABELS = (("job_tasks", "name"), ("jobs", "stage"))


@pytest.fixture(params=BACKENDS)
def narrow_db(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A database made when the stage-label columns were VARCHAR(32), holding a project."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'narrow.sqlite3'}"
    else:
        url = os.environ["TEST_DB_URL"]
    engine = make_engine(url)
    SQLModel.metadata.drop_all(engine)
    with monkeypatch.context() as narrowed:
        for table, column in LABELS:
            narrowed.setattr(SQLModel.metadata.tables[table].c[column], "type", String(32))
        SQLModel.metadata.create_all(engine)
    assert _lengths(engine) == [32, 32]
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO projects (id, scene_count, created_at, updated_at) "
                "VALUES ('p1', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    engine.dispose()
    db._engines.pop(url, None)
    yield url
    db._engines.pop(url, None)


def _lengths(engine: Engine) -> list[int | None]:
    found = {
        (table, column["name"]): getattr(column["type"], "length", None)
        for table in {table for table, _ in LABELS}
        for column in inspect(engine).get_columns(table)
    }
    return [found[label] for label in LABELS]


def test_the_stage_label_columns_are_widened_in_place(narrow_db: str) -> None:
    engine = make_engine(narrow_db)
    widened = db.widen_columns(engine)
    if engine.dialect.name == "sqlite":
        # SQLite keeps a VARCHAR's length as a name only: nothing to alter.
        assert widened == [] and _lengths(engine) == [32, 32]
    else:
        assert sorted(widened) == ["job_tasks.name", "jobs.stage"]
        assert _lengths(engine) == [128, 128]
    assert db.widen_columns(engine) == []  # a second start finds nothing to widen
    # Either way a label longer than 32 characters goes into both columns and comes back
    # (on PostgreSQL, before the widening: "value too long for type character varying(32)").
    label = "SCENE_BUILD[" + "/".join(["9999"] * 20) + "]"
    assert 32 < len(label) <= 128
    with session_scope(narrow_db) as session:
        session.add(Job(id="j1", project_id="p1", output_name="v.mp4"))
        session.flush()
        session.add(JobTask(job_id="j1", name=label, weight=1.0))
        session.flush()
        assert jobs.end_job(session, "j1", label, JobStatus.FAILED, "gave up")
    with session_scope(narrow_db) as session:
        assert session.get(JobTask, ("j1", label)) is not None
        job = session.get(Job, "j1")
        assert job is not None and job.stage == label


def test_a_dialect_not_known_to_widen_in_place_names_the_column() -> None:
    column = JobTask.__table__.columns["name"]  # type: ignore[attr-defined]
    with pytest.raises(SchemaError, match="job_tasks's column name is narrower than"):
        db._widen_column(mssql.dialect(), "job_tasks", column)
