"""tasks/retention.py: old failed jobs' work folders and old logs go; everything else stays."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update
from sqlmodel import col, select

from tasks import jobs, retention
from tasks.db import session_scope
from tasks.models import IdempotencyKey, Job, JobStatus, Project, utcnow
from tasks.settings import Settings
from tasks.storage import Storage


def job(settings: Settings, status: JobStatus, age_days: float) -> tuple[str, Path, Path]:
    """A job ended `age_days` ago, with a work folder, a log and an output."""
    with session_scope(settings.db_url) as session:
        if session.get(Project, "p1") is None:
            session.add(Project(id="p1"))
            session.flush()
        row = jobs.create_job(
            session, project_id="p1", output_name="v.mp4", options={}, scene_count=1
        )
        if status is not JobStatus.QUEUED:
            jobs.transition(session, row.id, JobStatus.RUNNING)
            if status.finished:
                jobs.transition(session, row.id, status)
        session.execute(
            update(Job)
            .where(col(Job.id) == row.id)
            .values(finished_at=utcnow() - timedelta(days=age_days) if status.finished else None)
        )
        session.add(IdempotencyKey(key=row.id, project_id="p1", body_sha256="x", job_id=row.id))
        job_id = row.id
    storage = Storage(settings.render_storage)
    work = storage.project("p1").for_run(job_id).work
    (work / "scenes").mkdir(parents=True)
    (work / "plan.json").write_text("{}")
    storage.append_log(job_id, "a line")
    return job_id, work, storage.log_path(job_id)


def test_old_failures_are_cleaned_and_the_rest_kept(tmp_path: Path) -> None:
    settings = Settings(render_storage=tmp_path, auth_token="t", retention_days=14)
    old_failed = job(settings, JobStatus.FAILED, 15)
    old_cancelled = job(settings, JobStatus.CANCELLED, 30)
    old_succeeded = job(settings, JobStatus.SUCCEEDED, 20)
    new_failed = job(settings, JobStatus.FAILED, 13)
    running = job(settings, JobStatus.RUNNING, 0)
    output = tmp_path / "projects" / "p1" / "output" / "v.mp4"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(b"video")
    orphan_old = Storage(tmp_path).logs / "deadbeef.log"
    orphan_old.write_text("old")
    month_ago = (utcnow() - timedelta(days=30)).timestamp()
    os.utime(orphan_old, (month_ago, month_ago))
    orphan_new = Storage(tmp_path).logs / "cafe.log"
    orphan_new.write_text("new")

    removed = set(retention.clean(settings))

    assert removed == {
        old_failed[1],
        old_failed[2],
        old_cancelled[1],
        old_cancelled[2],
        old_succeeded[2],
        orphan_old,
    }
    assert not old_failed[1].exists() and not old_succeeded[2].exists()
    # A succeeded job's work folder is not retention's (success removes it): left alone here.
    assert old_succeeded[1].exists()
    for kept in (new_failed, running):
        assert kept[1].exists() and kept[2].exists()
    assert output.exists() and orphan_new.exists()
    with session_scope(settings.db_url) as session:
        keys = set(session.exec(select(IdempotencyKey.job_id)).all())
    assert keys == {new_failed[0], running[0]}  # the old jobs' keys went with them


def test_zero_keeps_everything(tmp_path: Path) -> None:
    settings = Settings(render_storage=tmp_path, auth_token="t", retention_days=0)
    _, work, log = job(settings, JobStatus.FAILED, 400)
    assert retention.clean(settings) == []
    assert work.exists() and log.exists()
