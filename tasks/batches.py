"""A batch's jobs past its concurrency cap (BATCH_CONCURRENCY) are created held: QUEUED, with no
message in the broker. Whenever a job of the batch ends (a worker's last stage or failure, the
watchdog's sweep), `feed` sends the next held ones, in row order, so that at most the cap are
in the broker or running. The cap keeps one batch from holding every worker process and every
job of it from starting at once, and its rows come out in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from pipeline import registry
from tasks import jobs
from tasks.db import session_scope
from tasks.models import Job, JobStatus

log = logging.getLogger("render.batches")

Enqueuer = Callable[[str, registry.Outline], None]


def release(session: Session, batch_id: str, cap: int) -> list[Job]:
    """Un-hold the batch's next jobs so that at most `cap` are in flight (0: all); each is
    taken by a compare-and-set, so two feeders never release the same job. The caller
    commits, then sends them."""
    held = (
        select(Job)
        .where(col(Job.batch_id) == batch_id, col(Job.held), Job.status == JobStatus.QUEUED)
        .order_by(col(Job.batch_row))
    )
    if cap > 0:
        in_flight = session.exec(
            select(func.count())
            .select_from(Job)
            .where(
                col(Job.batch_id) == batch_id,
                col(Job.held).is_(False),
                col(Job.status).in_(jobs.UNFINISHED),
            )
        ).one()
        room = cap - in_flight
        if room <= 0:
            return []
        held = held.limit(room)
    released = []
    for job in session.exec(held).all():
        taken = session.execute(
            update(Job)
            .where(col(Job.id) == job.id, col(Job.held))
            .values(held=False)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount:  # type: ignore[attr-defined]
            released.append(job)
    return released


def feed(db_url: str, batch_id: str, cap: int, enqueue: Enqueuer) -> int:
    """Send the batch's next held jobs (`release`); how many were sent.

    They are sent before the release commits: a broker that cannot be reached leaves them
    held for the next feed (a message sent before a later one failed is sent again then; its
    stages, done or held, do not run twice)."""
    with session_scope(db_url) as session:
        released = release(session, batch_id, cap)
        outlines = [(job.id, jobs.outline(job)) for job in released]
        for job_id, outline in outlines:
            enqueue(job_id, outline)
    if outlines:
        log.info("batch %s: sent %d more job(s)", batch_id, len(outlines))
    return len(outlines)


def waiting_batches(session: Session) -> list[str]:
    """The batches with held jobs."""
    rows = session.exec(
        select(Job.batch_id)
        .where(col(Job.held), Job.status == JobStatus.QUEUED, col(Job.batch_id).is_not(None))
        .distinct()
    ).all()
    return [batch_id for batch_id in rows if batch_id is not None]
