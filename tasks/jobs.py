"""The job and stage state machine: the one module that changes a job's or a stage's state.

Create, claim, beat, progress, finish, fail, cancel: every change is a compare-and-set UPDATE
(`... WHERE status IN allowed sources`), so API processes, workers and watchdogs can race and a
finished job still never changes again. A stage's claim counts an attempt; the holder's later
writes carry that attempt, so a stage taken over by another worker cannot be finished, failed
or kept alive by the holder it was taken from.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, insert, update
from sqlmodel import Session, col, select

from pipeline import registry
from tasks import events
from tasks.models import FINISHED, Job, JobStatus, JobTask, StageStatus, Worker, utcnow
from tasks.processes import pid_alive

ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}
UNFINISHED = [str(JobStatus.QUEUED), str(JobStatus.RUNNING)]
# Below 1.0 until the job has SUCCEEDED: the bar must never say "done" before the file is there.
MAX_RUNNING_PROGRESS = 0.99


def sources_of(target: JobStatus) -> list[str]:
    return [str(src) for src, targets in ALLOWED.items() if target in targets]


def new_job_id() -> str:
    return uuid.uuid4().hex


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every timestamp we store is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


# --- the job ------------------------------------------------------------------------------


def create_job(
    session: Session,
    *,
    project_id: str,
    output_name: str,
    options: dict[str, Any],
    scene_count: int,
    spoken: Sequence[int] = (),
    job_id: str | None = None,
) -> Job:
    """A QUEUED job with a stage row per unit its outline gives it: `scene_count` scenes, of
    which `spoken` are spoken by TTS (`registry.outline`)."""
    job = Job(
        id=job_id or new_job_id(),
        project_id=project_id,
        output_name=output_name,
        options=options,
        scene_count=scene_count,
        spoken_scenes=sorted(spoken),
        status=JobStatus.QUEUED,
    )
    session.add(job)
    for name, weight in registry.weights(outline(job)).items():
        session.add(JobTask(job_id=job.id, name=name, weight=weight))
    session.flush()
    events.changed(session, job.id)
    return job


def create_jobs(session: Session, specs: Sequence[dict[str, Any]]) -> list[Job]:
    """Many QUEUED jobs at once (a batch's rows), each as `create_job` makes one, from its
    `Job` fields (`spoken`: the scenes TTS speaks): the jobs flushed together and every stage
    row in one INSERT, not a flush a job."""
    made = []
    for fields in specs:
        values = dict(fields)
        spoken = sorted(values.pop("spoken", ()))
        job = Job(id=new_job_id(), spoken_scenes=spoken, status=JobStatus.QUEUED, **values)
        session.add(job)
        made.append(job)
    session.flush()
    rows = [
        {
            "job_id": job.id,
            "name": name,
            "weight": weight,
            "status": str(StageStatus.PENDING),
            "progress": 0.0,
            "attempts": 0,
            "clip_bytes": 0,
        }
        for job in made
        for name, weight in registry.weights(outline(job)).items()
    ]
    if rows:
        session.execute(insert(JobTask), rows)
    for job in made:
        events.changed(session, job.id)
    return made


def outline(job: Job) -> registry.Outline:
    """The job's outline, as it was queued with."""
    if job.spoken_scenes is None:  # queued before SPEECH ran for spoken scenes only
        return registry.Outline(job.scene_count, tuple(range(job.scene_count)))
    return registry.Outline(job.scene_count, tuple(job.spoken_scenes))


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
    if result.rowcount:  # type: ignore[attr-defined]
        events.changed(session, job_id)  # SSE watchers; webhooks once the job has ended
    return bool(result.rowcount)  # type: ignore[attr-defined]


def end_job(
    session: Session,
    job_id: str,
    label: str | None,
    target: JobStatus,
    error: str | None,
    *,
    attempt: int | None = None,
) -> bool:
    """Fail or cancel the job at `label`, whose stage row takes the same state.

    With `attempt`, only while that attempt still holds the stage: a holder whose stage was
    taken over ends nothing.
    """
    if label is None:
        return transition(session, job_id, target, error=error)
    held = [col(JobTask.job_id) == job_id, col(JobTask.name) == label]
    if attempt is None:
        held.append(col(JobTask.status).in_([StageStatus.PENDING, StageStatus.RUNNING]))
    else:
        held += [col(JobTask.attempts) == attempt, col(JobTask.status) == StageStatus.RUNNING]
    moved = session.execute(
        update(JobTask).where(*held).values(status=str(target), finished_at=utcnow())
    )
    if attempt is not None and not moved.rowcount:  # type: ignore[attr-defined]
        return False
    if moved.rowcount:  # type: ignore[attr-defined]
        events.changed(session, job_id)
    return transition(session, job_id, target, stage=label, error=error)


def live_stages(session: Session, job_id: str, within: timedelta) -> list[JobTask]:
    """The job's RUNNING stages whose holder beat within `within`."""
    return list(
        session.exec(
            select(JobTask).where(
                JobTask.job_id == job_id,
                JobTask.status == StageStatus.RUNNING,
                col(JobTask.heartbeat_at) >= utcnow() - within,
            )
        ).all()
    )


def request_cancel(session: Session, job_id: str, live_within: timedelta) -> Job | None:
    """Cancel the job: at once when no stage is running it, else flag it for that stage.

    A running stage polls the flag, kills its FFmpeg and ends the job itself, so a CANCELLED
    job has no FFmpeg left. A stage whose holder has not beaten within `live_within` is taken
    as gone: nobody would honour the flag. Returns the job as it now is, or None if unknown; a
    finished job is returned unchanged (the caller reports a conflict).
    """
    job = session.get(Job, job_id)
    if job is None or JobStatus(job.status).finished:
        return job
    # The flag first: a stage claimed after this sees it; one claimed before is live below.
    session.execute(update(Job).where(col(Job.id) == job_id).values(cancel_requested=True))
    events.changed(session, job_id)
    if job.status == JobStatus.QUEUED:
        transition(session, job_id, JobStatus.CANCELLED, error="cancelled before it started")
    elif not live_stages(session, job_id, live_within):
        end_job(session, job_id, job.stage, JobStatus.CANCELLED, "cancelled by request")
    session.flush()
    session.refresh(job)
    return job


# --- a stage ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    job: Job
    attempt: int
    # The stage already ran to the end: a redelivery after success, so skip the work and let
    # the canvas go on.
    done: bool = False


class Held(Exception):
    """Another live worker holds the stage: try again later rather than run it twice."""


def _holder_gone(row: JobTask, worker: str, lost_after: timedelta) -> bool:
    beat = as_utc(row.heartbeat_at)
    if beat is None or beat < utcnow() - lost_after:
        return True
    # A pool process of this very worker that died (its redelivery comes back at once).
    return row.worker == worker and row.pid is not None and not pid_alive(row.pid)


def claim_stage(
    session: Session,
    job_id: str,
    label: str,
    *,
    worker: str,
    pid: int,
    max_attempts: int,
    lost_after: timedelta,
) -> Claim | None:
    """Claim the stage for this attempt, or None: do not run it (the job row says why).

    Raises Held when another worker's live process holds it.
    """
    job = session.get(Job, job_id)
    if job is None or JobStatus(job.status).finished:
        return None
    if job.cancel_requested:
        end_job(session, job_id, label, JobStatus.CANCELLED, "cancelled by request")
        return None
    row = session.get(JobTask, (job_id, label))
    if row is None:
        raise RuntimeError(f"job {job_id} has no stage {label}")
    if row.status == StageStatus.DONE:
        return Claim(job, row.attempts, done=True)
    if row.status == StageStatus.RUNNING and not _holder_gone(row, worker, lost_after):
        raise Held(f"{label} is held by {row.worker} (attempt {row.attempts})")
    attempts = row.attempts  # the updates below refresh `row` in the session
    if attempts >= max_attempts:
        end_job(
            session,
            job_id,
            label,
            JobStatus.FAILED,
            f"{label}: started {attempts} times and its worker died each time; "
            "giving up (see the worker logs)",
        )
        return None
    now = utcnow()
    # Compare-and-set on the job: a cancel that landed since the read above wins.
    moved = session.execute(
        update(Job)
        .where(
            col(Job.id) == job_id,
            col(Job.status).in_(UNFINISHED),
            col(Job.cancel_requested).is_(False),
        )
        .values(
            status=str(JobStatus.RUNNING),
            started_at=job.started_at or now,
            stage=label,
            worker=worker,
            heartbeat_at=now,
        )
    )
    if not moved.rowcount:  # type: ignore[attr-defined]
        return None
    claimed = session.execute(
        update(JobTask)
        .where(
            col(JobTask.job_id) == job_id,
            col(JobTask.name) == label,
            col(JobTask.attempts) == attempts,
        )
        .values(
            status=str(StageStatus.RUNNING),
            attempts=attempts + 1,
            worker=worker,
            pid=pid,
            started_at=now,
            finished_at=None,
            heartbeat_at=now,
        )
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        raise Held(f"{label} was claimed by another worker at the same time")
    events.changed(session, job_id)
    session.flush()
    session.refresh(job)
    return Claim(job, attempts + 1)


def _held(job_id: str, label: str, attempt: int) -> Any:
    return (
        col(JobTask.job_id) == job_id,
        col(JobTask.name) == label,
        col(JobTask.attempts) == attempt,
        col(JobTask.status) == StageStatus.RUNNING,
    )


def beat(session: Session, job_id: str, label: str, attempt: int) -> bool:
    """The holder is alive; False when the stage is no longer this attempt's."""
    now = utcnow()
    held = session.execute(
        update(JobTask).where(*_held(job_id, label, attempt)).values(heartbeat_at=now)
    )
    session.execute(
        update(Job)
        .where(col(Job.id) == job_id, col(Job.status) == JobStatus.RUNNING)
        .values(heartbeat_at=now)
    )
    return bool(held.rowcount)  # type: ignore[attr-defined]


def job_progress(rows: Iterable[tuple[float, float]]) -> float:
    """Weighted mean of (weight, progress) pairs, capped below 1.0."""
    pairs = list(rows)
    total = sum(weight for weight, _ in pairs)
    if total <= 0:
        return 0.0
    done = sum(weight * min(max(progress, 0.0), 1.0) for weight, progress in pairs)
    return min(done / total, MAX_RUNNING_PROGRESS)


def record_progress(
    session: Session, job_id: str, label: str, attempt: int, fraction: float
) -> float:
    """Store the stage's progress and the job's weighted progress (never moving backwards)."""
    now = utcnow()
    session.execute(
        update(JobTask)
        .where(*_held(job_id, label, attempt))
        .values(
            progress=case((col(JobTask.progress) < fraction, fraction), else_=JobTask.progress),
            heartbeat_at=now,
        )
    )
    overall = job_progress(
        session.exec(select(JobTask.weight, JobTask.progress).where(JobTask.job_id == job_id)).all()
    )
    session.execute(
        update(Job)
        .where(col(Job.id) == job_id, col(Job.status) == JobStatus.RUNNING)
        .values(
            progress=case((col(Job.progress) < overall, overall), else_=Job.progress),
            heartbeat_at=now,
        )
    )
    events.changed(session, job_id)
    return overall


def lay_out(session: Session, job_id: str, weights: dict[str, float]) -> None:
    """The job's stages as its plan has them (`weights`: every label's progress weight): new
    weights once each scene's length is known, and a scene built in chunks has a row per
    chunk instead of one for the whole scene. Only rows of stages yet to start are replaced;
    a rerun (a redelivered VALIDATE) changes nothing more.
    """
    rows = {row.name: row for row in session.exec(select(JobTask).where(JobTask.job_id == job_id))}
    for name, row in rows.items():
        if name not in weights and row.status == StageStatus.PENDING and row.attempts == 0:
            session.delete(row)
    for name, weight in weights.items():
        if name in rows:
            rows[name].weight = weight
        else:
            session.add(JobTask(job_id=job_id, name=name, weight=weight))
    session.flush()
    events.changed(session, job_id)


def finish_stage(
    session: Session,
    job_id: str,
    label: str,
    attempt: int,
    *,
    clip: str | None = None,
    clip_bytes: int = 0,
) -> bool:
    """The stage is DONE; the last stage's finish is the job's success. False when the stage
    was no longer this attempt's (another worker took it over).

    A scene's build says how its clip came to be (`clip`: encoded, cached or skipped).
    """
    now = utcnow()
    done = session.execute(
        update(JobTask)
        .where(*_held(job_id, label, attempt))
        .values(
            status=str(StageStatus.DONE),
            progress=1.0,
            finished_at=now,
            heartbeat_at=now,
            clip=clip,
            clip_bytes=clip_bytes,
        )
    )
    if not done.rowcount:  # type: ignore[attr-defined]
        return False
    events.changed(session, job_id)
    if registry.parse_label(label)[0] is registry.LAST:
        transition(session, job_id, JobStatus.SUCCEEDED, stage=label, error=None)
    return True


def stop_requested(session: Session, job_id: str) -> bool:
    job = session.get(Job, job_id)
    return job is None or job.cancel_requested or JobStatus(job.status).finished


def release_stage(session: Session, job_id: str, label: str, attempt: int) -> bool:
    """Hand a running stage back (its worker is shutting down): PENDING again, for the next
    worker to claim. The attempt is not counted against MAX_TASK_ATTEMPTS: nothing crashed.
    False when the stage was no longer this attempt's."""
    released = session.execute(
        update(JobTask)
        .where(*_held(job_id, label, attempt))
        .values(
            status=str(StageStatus.PENDING),
            attempts=attempt - 1,
            worker=None,
            pid=None,
            started_at=None,
            heartbeat_at=None,
        )
    )
    if released.rowcount:  # type: ignore[attr-defined]
        events.changed(session, job_id)
    return bool(released.rowcount)  # type: ignore[attr-defined]


# --- workers ------------------------------------------------------------------------------


def worker_beat(session: Session, hostname: str) -> None:
    row = session.get(Worker, hostname)
    now = utcnow()
    if row is None:
        session.add(Worker(hostname=hostname, started_at=now, heartbeat_at=now))
    else:
        row.heartbeat_at = now


def worker_gone(session: Session, hostname: str) -> None:
    row = session.get(Worker, hostname)
    if row is not None:
        session.delete(row)


def last_worker_beat(session: Session) -> datetime | None:
    rows = session.exec(select(Worker.heartbeat_at)).all()
    beats = [as_utc(beat) for beat in rows]
    return max((b for b in beats if b is not None), default=None)


# --- reading ------------------------------------------------------------------------------


def job_tasks(session: Session, job_id: str) -> list[JobTask]:
    """The job's stage rows in running order (stage, scene, chunk)."""
    rows = session.exec(select(JobTask).where(JobTask.job_id == job_id)).all()
    return sorted(rows, key=lambda row: registry.order_key(row.name))


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
