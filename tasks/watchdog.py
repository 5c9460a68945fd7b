"""The watchdog: a RUNNING job whose tasks stopped heartbeating is ended, never left RUNNING.

Redelivery (acks late + visibility timeout) restarts a task whose worker died; the watchdog
is the bound behind it, for what redelivery cannot fix: a message lost with a Redis that had
no append-only file, a task that kills its worker every time, a cancel no worker is left to
honour. A job whose next task is still waiting in the broker (queued behind other jobs, or
reserved by a busy worker) is not stale: it is only waiting its turn. Every worker runs the
watchdog, and so does the API: transitions are compare-and-set, so several watchdogs agree.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta

import redis
from sqlmodel import Session, col, select

from tasks import jobs
from tasks.broker import redis_client_url
from tasks.db import session_scope
from tasks.models import Job, JobStatus, JobTask, utcnow
from tasks.settings import Settings

log = logging.getLogger("render.watchdog")

# A cancel is honoured within a second by a live task; after this, nobody is left to honour it.
CANCEL_GRACE_SECONDS = 30


# kombu's Redis transport keeps a queue as a list named after it, and the messages workers
# hold unacknowledged in this hash.
QUEUE_KEY = "celery"
UNACKED_KEY = "unacked"


def waiting_in_broker(client: redis.Redis, job_ids: Iterable[str]) -> set[str]:
    """The ids among `job_ids` with a task message still queued or reserved in the broker.

    Task ids start with the job id (tasks/canvas.py), and a message carries its task id.
    """
    wanted = {job_id.encode() for job_id in job_ids}
    if not wanted:
        return set()
    found: set[str] = set()
    messages = [*client.lrange(QUEUE_KEY, 0, -1), *client.hvals(UNACKED_KEY)]
    for message in messages:
        for job_id in wanted:
            if job_id in message:
                found.add(job_id.decode())
    return found


def sweep(
    settings: Settings,
    now: datetime | None = None,
    broker: redis.Redis | None = None,
) -> list[tuple[str, JobStatus]]:
    """End every stale RUNNING job; return (job id, new status) for each one ended."""
    now = now or utcnow()
    stale_before = now - timedelta(seconds=settings.stale_after)
    cancel_before = now - timedelta(seconds=CANCEL_GRACE_SECONDS)
    ended: list[tuple[str, JobStatus]] = []
    candidates: list[tuple[str, JobStatus, str]] = []
    with session_scope(settings.db_url) as session:
        running = session.exec(
            select(Job).where(
                Job.status == JobStatus.RUNNING,
                col(Job.heartbeat_at) < max(stale_before, cancel_before),
            )
        ).all()
        for job in running:
            beat = jobs.as_utc(job.heartbeat_at)
            assert beat is not None
            if job.cancel_requested and beat < cancel_before:
                target, error = (
                    JobStatus.CANCELLED,
                    "cancelled by request (no worker was running it)",
                )
            elif beat < stale_before:
                target = JobStatus.FAILED
                error = (
                    f"{job.stage or 'job'}: no worker reported on this job for "
                    f"{settings.stale_after} s; its worker was probably lost"
                )
            else:
                continue
            candidates.append((job.id, target, error))
        # A stage that started and went silent lost its worker. Otherwise the job may only be
        # waiting its turn: its next task queued, or reserved by a worker busy with another.
        silent = _silent_stage_jobs(session, [c[0] for c in candidates], stale_before)
        waiting = _waiting(settings, broker, [c[0] for c in candidates if c[0] not in silent])
        for job_id, target, error in candidates:
            if target is JobStatus.FAILED and job_id in waiting:
                continue
            if jobs.transition(session, job_id, target, error=error):
                log.warning("job=%s ended %s by the watchdog: %s", job_id, target, error)
                ended.append((job_id, target))
    return ended


def _silent_stage_jobs(session: Session, job_ids: list[str], before: datetime) -> set[str]:
    if not job_ids:
        return set()
    rows = session.exec(
        select(JobTask.job_id).where(
            col(JobTask.job_id).in_(job_ids),
            JobTask.status == "RUNNING",
            col(JobTask.heartbeat_at) < before,
        )
    ).all()
    return set(rows)


def _waiting(settings: Settings, broker: redis.Redis | None, job_ids: list[str]) -> set[str]:
    if not job_ids:
        return set()
    try:
        if broker is not None:
            return waiting_in_broker(broker, job_ids)
        client = redis.Redis.from_url(redis_client_url(settings.redis_url), socket_timeout=5)
        try:
            return waiting_in_broker(client, job_ids)
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        # Without the broker nothing can run anyway: the stale jobs are ended, not kept.
        log.warning("watchdog could not look into the broker: %s", exc)
        return set()


def run_forever(settings: Settings, stop: threading.Event) -> None:
    while not stop.wait(settings.watchdog_interval):
        try:
            sweep(settings)
        except Exception:  # a database hiccup must not kill the watchdog thread
            log.exception("watchdog sweep failed; retrying in %s s", settings.watchdog_interval)


def start_thread(settings: Settings) -> threading.Event:
    stop = threading.Event()
    thread = threading.Thread(
        target=run_forever, args=(settings, stop), name="render-watchdog", daemon=True
    )
    thread.start()
    return stop
