"""Database tables (SQLModel). What the API accepts and returns lives in api/schemas.py."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(**kw: Any) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), **kw))


class JobStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class StageStatus(enum.StrEnum):
    """A stage's state; a stage that ended the job takes the job's final state."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class Project(SQLModel, table=True):
    __tablename__ = "projects"

    id: str = Field(primary_key=True, max_length=64)
    title: str | None = None
    scene_count: int = 0
    created_at: datetime = _ts(nullable=False, default=utcnow)
    updated_at: datetime = _ts(nullable=False, default=utcnow)


class Job(SQLModel, table=True):
    __tablename__ = "jobs"

    id: str = Field(primary_key=True, max_length=64)
    project_id: str = Field(index=True, foreign_key="projects.id", max_length=64)
    status: str = Field(default=JobStatus.QUEUED, index=True, max_length=16)
    stage: str | None = Field(default=None, max_length=128)  # a JobTask.name
    progress: float = 0.0
    error: str | None = None
    output_name: str = Field(max_length=255)
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    scene_count: int = 0
    # The scenes whose narration TTS speaks (registry.Outline.spoken): SPEECH runs for these
    # alone. None in a job queued by a release before that, which spoke every scene.
    spoken_scenes: list[int] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    cancel_requested: bool = False
    worker: str | None = Field(default=None, max_length=255)
    created_at: datetime = _ts(nullable=False, default=utcnow)
    started_at: datetime | None = _ts(nullable=True)
    finished_at: datetime | None = _ts(nullable=True)
    # Touched by every running task; the watchdog fails RUNNING jobs where it goes stale.
    heartbeat_at: datetime | None = _ts(nullable=True)
    # What the job renders, pinned at submission (api/service.py): the spec its template and
    # data resolved to, the project version it came from, the data, and the sha256 of every
    # file it reads ('images/a.jpg' → digest), so a rerender is the same video. None in a job
    # queued by a release before templates (it rendered input/scenes.json).
    spec: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    version: int | None = None
    data: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    assets: dict[str, str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # A job of a batch: the batch and the row it renders.
    batch_id: str | None = Field(default=None, index=True, max_length=64)
    batch_row: int | None = None
    # A batch's job not sent to the broker yet: past BATCH_CONCURRENCY, it waits until an
    # earlier job of its batch ends (tasks/batches.py).
    held: bool = False


class ProjectVersion(SQLModel, table=True):
    """One PUT of a project's scenes, never changed afterwards: its number (1, 2, ...), the
    sha256 of its canonical JSON and the spec (a template, maybe) as stored."""

    __tablename__ = "project_versions"

    project_id: str = Field(primary_key=True, foreign_key="projects.id", max_length=64)
    number: int = Field(primary_key=True)
    sha256: str = Field(max_length=64)
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts(nullable=False, default=utcnow)


class Batch(SQLModel, table=True):
    """Many renders of one project version, one per row of data (api/routes/batches.py). Its
    jobs carry its id; its counts and progress are read off them."""

    __tablename__ = "batches"

    id: str = Field(primary_key=True, max_length=64)
    project_id: str = Field(index=True, foreign_key="projects.id", max_length=64)
    version: int | None = None
    output_pattern: str = Field(max_length=255)
    rows: int = 0
    # The rows refused at submission: [{"index", "field", "message"}].
    invalid: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    callback_url: str | None = Field(default=None, max_length=2048)
    cancel_requested: bool = False
    created_at: datetime = _ts(nullable=False, default=utcnow)
    finished_at: datetime | None = _ts(nullable=True)


class JobTask(SQLModel, table=True):
    """One stage run of one job, named by its registry label: its state, progress, attempts."""

    __tablename__ = "job_tasks"

    job_id: str = Field(primary_key=True, foreign_key="jobs.id", max_length=64)
    # The run's label (`pipeline.units`: `NAME`, `NAME[n]`, `NAME[n/c]`, and a new unit kind's).
    # It was 32 characters: tasks/db.py widens a database made before in place (PostgreSQL
    # enforces the length; SQLite does not). A unit kind must keep its labels within it
    # (tests/pipeline/test_units.py checks the longest).
    name: str = Field(primary_key=True, max_length=128)
    status: str = Field(default=StageStatus.PENDING, max_length=16)
    progress: float = 0.0
    # Share of the job's progress bar; scene weights follow their frame counts once planned.
    weight: float = 1.0
    # Each claim increments it; heartbeats and the finish carry it, so a stage taken over by
    # another worker can tell its old holder apart.
    attempts: int = 0
    worker: str | None = Field(default=None, max_length=255)
    pid: int | None = None
    started_at: datetime | None = _ts(nullable=True)
    finished_at: datetime | None = _ts(nullable=True)
    heartbeat_at: datetime | None = _ts(nullable=True)
    # How a scene's clip came to be (pipeline.cache.ClipReport): "encoded", "cached" (taken
    # from the render cache, no FFmpeg) or "skipped" (not in a part-of-the-timeline render);
    # None for the other stages. `clip_bytes` is the clip's size: on a hit, the bytes saved.
    clip: str | None = Field(default=None, max_length=16)
    clip_bytes: int = 0


class Worker(SQLModel, table=True):
    """A worker's main process, beating while it lives: tells a waiting job whether anyone can
    run it."""

    __tablename__ = "workers"

    hostname: str = Field(primary_key=True, max_length=255)
    started_at: datetime = _ts(nullable=False, default=utcnow)
    heartbeat_at: datetime = _ts(nullable=False, default=utcnow)


class WebhookStatus(enum.StrEnum):
    PENDING = "PENDING"  # the job has not ended yet, or the next attempt is due
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"  # every attempt failed, or the receiver refused it for good


class Webhook(SQLModel, table=True):
    """A job's `callbackUrl` and how its delivery went (tasks/webhooks.py). A table of its
    own: a job without a callback has no row."""

    __tablename__ = "job_webhooks"

    job_id: str = Field(primary_key=True, foreign_key="jobs.id", max_length=64)
    url: str = Field(max_length=2048)
    status: str = Field(default=WebhookStatus.PENDING, index=True, max_length=16)
    attempts: int = 0
    # One entry per attempt: the HTTP status, or None when no answer came.
    status_codes: list[int | None] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    last_error: str | None = None
    # The job's final status as the delivery reported it.
    event: str | None = Field(default=None, max_length=16)
    # Not before this instant: the backoff after a failure, or the lease of an attempt that
    # is being made (a deliverer that dies mid-request is retried when it runs out).
    next_at: datetime | None = _ts(nullable=True)
    first_attempt_at: datetime | None = _ts(nullable=True)
    delivered_at: datetime | None = _ts(nullable=True)


class BatchWebhook(SQLModel, table=True):
    """A batch's `callbackUrl`: delivered once, when every job of the batch has ended, by the
    same deliverers and rules as a job's (tasks/webhooks.py)."""

    __tablename__ = "batch_webhooks"

    batch_id: str = Field(primary_key=True, foreign_key="batches.id", max_length=64)
    url: str = Field(max_length=2048)
    status: str = Field(default=WebhookStatus.PENDING, index=True, max_length=16)
    attempts: int = 0
    status_codes: list[int | None] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    last_error: str | None = None
    event: str | None = Field(default=None, max_length=16)
    next_at: datetime | None = _ts(nullable=True)
    first_attempt_at: datetime | None = _ts(nullable=True)
    delivered_at: datetime | None = _ts(nullable=True)


class IdempotencyKey(SQLModel, table=True):
    """`Idempotency-Key` of a `POST /render`: the same key and body give the same job."""

    __tablename__ = "idempotency_keys"

    # The key scoped to the token that sent it: a digest of both (api/service.py scoped_key).
    key: str = Field(primary_key=True, max_length=255)
    project_id: str = Field(primary_key=True, max_length=64)
    body_sha256: str = Field(max_length=64)
    job_id: str = Field(foreign_key="jobs.id", max_length=64)
    created_at: datetime = _ts(nullable=False, default=utcnow)
