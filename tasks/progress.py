"""Progress, heartbeat, cancellation and log plumbing shared by every stage task.

A `StageTracker` is what a task hands the pipeline's Runner: throttled progress writes to
the job row (and the Celery task state), a throttled check for cancellation, and log lines
appended to `logs/<jobId>.log`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import case, update
from sqlmodel import col, select

from tasks.db import session_scope
from tasks.models import Job, JobStatus, JobTask, utcnow
from tasks.settings import Settings
from tasks.storage import Storage

log = logging.getLogger("render.tasks")

# Below 1.0 until the job has SUCCEEDED: the bar must never say "done" before the file is there.
MAX_RUNNING_PROGRESS = 0.99


def job_progress(rows: list[tuple[float, float]]) -> float:
    """Weighted mean of (weight, progress) pairs, capped below 1.0."""
    total = sum(weight for weight, _ in rows)
    if total <= 0:
        return 0.0
    done = sum(weight * min(max(progress, 0.0), 1.0) for weight, progress in rows)
    return min(done / total, MAX_RUNNING_PROGRESS)


def record_progress(db_url: str, job_id: str, stage: str, fraction: float) -> float:
    """Store a stage's progress and the job's weighted progress (never moving backwards)."""
    now = utcnow()
    with session_scope(db_url) as session:
        session.execute(
            update(JobTask)
            .where(col(JobTask.job_id) == job_id, col(JobTask.name) == stage)
            .values(
                progress=case((col(JobTask.progress) < fraction, fraction), else_=JobTask.progress),
                heartbeat_at=now,
            )
        )
        rows = session.exec(
            select(JobTask.weight, JobTask.progress).where(JobTask.job_id == job_id)
        ).all()
        overall = job_progress([(w, p) for w, p in rows])
        session.execute(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.status) == JobStatus.RUNNING)
            .values(
                progress=case((col(Job.progress) < overall, overall), else_=Job.progress),
                heartbeat_at=now,
            )
        )
    return overall


class StageTracker:
    """Everything a running stage reports, throttled to `settings.progress_interval`."""

    def __init__(
        self,
        settings: Settings,
        job_id: str,
        stage: str,
        publish: Callable[[str, float, float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.job_id = job_id
        self.stage = stage
        self.storage = Storage(settings.render_storage)
        self._publish = publish
        self._clock = clock
        self._last_write = float("-inf")
        self._last_check = float("-inf")
        self._cancel = False
        self._pending: float | None = None

    def progress(self, fraction: float) -> None:
        self._pending = fraction
        now = self._clock()
        if now - self._last_write >= self.settings.progress_interval:
            self.flush()

    def flush(self) -> None:
        if self._pending is None:
            return
        fraction, self._pending = self._pending, None
        self._last_write = self._clock()
        overall = record_progress(self.settings.db_url, self.job_id, self.stage, fraction)
        if self._publish is not None:
            self._publish(self.stage, fraction, overall)

    def should_cancel(self) -> bool:
        """True once the job was cancelled or has finished elsewhere (another scene failed)."""
        if self._cancel:
            return True
        now = self._clock()
        if now - self._last_check < self.settings.progress_interval:
            return False
        self._last_check = now
        self._cancel = stop_requested(self.settings.db_url, self.job_id)
        return self._cancel

    def log(self, line: str) -> None:
        stamp = datetime.now().astimezone().isoformat(timespec="seconds")
        self.storage.append_log(self.job_id, f"{stamp} [{self.stage}] {line}")
        log.info("job=%s stage=%s %s", self.job_id, self.stage, line)


def stop_requested(db_url: str, job_id: str) -> bool:
    with session_scope(db_url) as session:
        job = session.get(Job, job_id)
        return job is None or job.cancel_requested or JobStatus(job.status).finished
