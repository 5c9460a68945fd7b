"""The job state machine: the one place that moves a job between states.

Every transition is a compare-and-set UPDATE (`... WHERE status IN allowed sources`), so API
processes, workers and the watchdog can race and a finished job still never changes again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from tasks.models import FINISHED, Job, JobStatus, JobTask, utcnow

ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def sources_of(target: JobStatus) -> list[str]:
    return [str(src) for src, targets in ALLOWED.items() if target in targets]


def new_job_id() -> str:
    return uuid.uuid4().hex


def stage_names(scene_count: int) -> list[str]:
    """Stage names of a job in running order, as the job row and the API show them."""
    scenes = [scene_stage(i) for i in range(scene_count)]
    return ["VALIDATE", "AUDIO_PREP", *scenes, "CONCAT", "FINALIZE"]


# Rough shares of a render's wall time; libx264 in the scene builds is nearly all of it.
FIXED_WEIGHTS = {"VALIDATE": 2.0, "AUDIO_PREP": 4.0, "CONCAT": 3.0, "FINALIZE": 6.0}
SCENES_WEIGHT = 85.0


def stage_weights(scene_count: int, scene_frames: list[int] | None = None) -> dict[str, float]:
    """Each stage's share of the progress bar; scenes split theirs by frame count when known."""
    frames = scene_frames or [1] * scene_count
    total = sum(frames) or 1
    weights = {name: FIXED_WEIGHTS.get(name, 0.0) for name in stage_names(scene_count)}
    for i, count in enumerate(frames):
        weights[scene_stage(i)] = SCENES_WEIGHT * count / total
    return weights


def scene_stage(index: int) -> str:
    return f"SCENE_BUILD[{index}]"


def create_job(
    session: Session,
    *,
    project_id: str,
    output_name: str,
    options: dict[str, Any],
    scene_count: int,
    job_id: str | None = None,
) -> Job:
    job = Job(
        id=job_id or new_job_id(),
        project_id=project_id,
        output_name=output_name,
        options=options,
        scene_count=scene_count,
        status=JobStatus.QUEUED,
    )
    session.add(job)
    for name, weight in stage_weights(scene_count).items():
        session.add(JobTask(job_id=job.id, name=name, weight=weight))
    session.flush()
    return job


def transition(session: Session, job_id: str, target: JobStatus, **fields: Any) -> bool:
    """Move the job to `target` if its current state allows it; return whether it moved."""
    now = utcnow()
    values: dict[str, Any] = {"status": str(target), **fields}
    if target is JobStatus.RUNNING:
        values.setdefault("started_at", now)
        values.setdefault("heartbeat_at", now)
    if target in FINISHED:
        values.setdefault("finished_at", now)
    if target is JobStatus.SUCCEEDED:
        values["progress"] = 1.0
    result = session.execute(
        update(Job)
        .where(col(Job.id) == job_id, col(Job.status).in_(sources_of(target)))
        .values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def request_cancel(session: Session, job_id: str) -> Job | None:
    """Cancel a queued job outright, or flag a running one for its worker to stop.

    Returns the job as it now is, or None if unknown. A finished job is returned unchanged;
    the caller reports that as a conflict.
    """
    job = session.get(Job, job_id)
    if job is None or JobStatus(job.status).finished:
        return job
    session.execute(update(Job).where(col(Job.id) == job_id).values(cancel_requested=True))
    if job.status == JobStatus.QUEUED:
        transition(session, job_id, JobStatus.CANCELLED, error="cancelled before it started")
    session.flush()
    session.refresh(job)
    return job


def job_tasks(session: Session, job_id: str) -> list[JobTask]:
    rows = session.exec(select(JobTask).where(JobTask.job_id == job_id)).all()
    order = {name: i for i, name in enumerate(_ordering(rows))}
    return sorted(rows, key=lambda row: order[row.name])


def _ordering(rows: Iterable[JobTask]) -> list[str]:
    scenes = sum(1 for row in rows if row.name.startswith("SCENE_BUILD["))
    return stage_names(scenes)


def latest_jobs(session: Session, project_id: str, limit: int = 10) -> list[Job]:
    return list(
        session.exec(
            select(Job)
            .where(Job.project_id == project_id)
            .order_by(col(Job.created_at).desc())
            .limit(limit)
        ).all()
    )


def last_succeeded_output(session: Session, project_id: str) -> str | None:
    job = session.exec(
        select(Job)
        .where(Job.project_id == project_id, Job.status == JobStatus.SUCCEEDED)
        .order_by(col(Job.finished_at).desc())
        .limit(1)
    ).first()
    return job.output_name if job else None


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every timestamp we store is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    from datetime import UTC

    return value.replace(tzinfo=UTC)
