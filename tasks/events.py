"""Change notices: "job X changed", published on Redis pub/sub after the change is committed.

tasks/jobs.py marks each job it changes (`changed(session, job_id)`); once that session's
transaction commits, the ids are published on one channel, `CHANNEL`. The API subscribes once
(api/routes/events.py) and reads a job's document once per notice for every client watching
it, so no client polls the database.

A notice is a hint, not a record: it is fire-and-forget (pub/sub has no memory), published
only from processes that called `configure(redis_url)` (the API and the workers), and dropped
when the broker is unreachable; the database stays the truth. Progress writes are already
throttled to PROGRESS_INTERVAL, so a running stage publishes at most that often.
"""

from __future__ import annotations

import logging
import os
import threading

import redis
from sqlalchemy import event
from sqlalchemy.orm import Session

from tasks.broker import redis_client_url

log = logging.getLogger("render.events")

CHANNEL = "render:jobs"
_KEY = "render_changed_jobs"

_lock = threading.Lock()
_url: str | None = None
_client: redis.Redis | None = None
_client_pid: int | None = None


def configure(redis_url: str | None) -> None:
    """Publish this process's notices to `redis_url` (None or empty: publish nothing)."""
    global _url, _client
    with _lock:
        _url = redis_url or None
        _client = None


def changed(session: Session, job_id: str) -> None:
    """Job `job_id` changed in this transaction: say so once it commits."""
    session.info.setdefault(_KEY, set()).add(job_id)


def publish(job_ids: set[str] | list[str]) -> None:
    client = _publisher()
    if client is None:
        return
    try:
        with client.pipeline(transaction=False) as pipe:
            for job_id in sorted(job_ids):
                pipe.publish(CHANNEL, job_id)
            pipe.execute()
    except (redis.RedisError, OSError) as exc:
        # A notice missed is a watcher updated at the next change, never a job affected.
        log.debug("could not publish change notices: %s", exc)


def _publisher() -> redis.Redis | None:
    global _client, _client_pid
    with _lock:
        if _url is None:
            return None
        # A pooled connection must not cross a fork (prefork workers).
        if _client is None or _client_pid != os.getpid():
            _client = redis.Redis.from_url(
                redis_client_url(_url), socket_timeout=1, socket_connect_timeout=1
            )
            _client_pid = os.getpid()
        return _client


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    ids = session.info.pop(_KEY, None)
    if ids:
        publish(ids)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_KEY, None)
