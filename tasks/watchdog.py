"""The watchdog: a RUNNING job whose tasks stopped heartbeating is ended, never left RUNNING.

Redelivery (acks late + visibility timeout) restarts a task whose worker died; the watchdog
is the bound behind it, for what redelivery cannot fix: a message lost with a Redis that had
no append-only file, a task that kills its worker every time, a cancel no worker is left to
honour. Every worker runs it (and the API may too): transitions are compare-and-set, so
several watchdogs agree.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlmodel import col, select

from tasks import jobs
from tasks.db import session_scope
from tasks.models import Job, JobStatus, utcnow
from tasks.settings import Settings

log = logging.getLogger("render.watchdog")

# A cancel is honoured within a second by a live task; after this, nobody is left to honour it.
CANCEL_GRACE_SECONDS = 30


def sweep(settings: Settings, now: datetime | None = None) -> list[tuple[str, JobStatus]]:
    """End every stale RUNNING job; return (job id, new status) for each one ended."""
    now = now or utcnow()
    stale_before = now - timedelta(seconds=settings.stale_after)
    cancel_before = now - timedelta(seconds=CANCEL_GRACE_SECONDS)
    ended: list[tuple[str, JobStatus]] = []
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
            if jobs.transition(session, job.id, target, error=error):
                log.warning("job=%s ended %s by the watchdog: %s", job.id, target, error)
                ended.append((job.id, target))
    return ended


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
