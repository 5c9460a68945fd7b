"""The watchdog: no job is left RUNNING for ever, and a lost stage runs again within a minute.

Every worker's main process runs it, and so does the API; transitions are compare-and-set and a
broker message is restored at most once (a Redis transaction), so several watchdogs agree.
Each sweep, in order:

1. **Cancels no one is left to honour** end CANCELLED: the job is flagged, and no stage of it
   beat within a few heartbeats.
2. **Lost stages go back to the queue.** A started stage whose holder stopped beating for
   `STAGE_LOST_AFTER`, or a stage whose message a worker reserved that long ago without starting
   it, had its worker die (OOM kill, container or host lost). Its message is still in the
   broker's unacked hash, where Redis would leave it for `VISIBILITY_TIMEOUT`; the watchdog puts
   it back on the queue now, and the next worker claims the stage as a new attempt.
3. **Jobs no worker can run fail** after `WORKER_WAIT_TIMEOUT` without a live worker, saying so.
4. **Jobs whose messages are gone fail**: RUNNING, no heartbeat for `STALE_AFTER`, and no task
   of theirs queued or held in the broker (a Redis that lost its data, say).
5. **Batches' held jobs are sent** as far as BATCH_CONCURRENCY allows (tasks/batches.py).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlmodel import Session, col, select

from tasks import batches, jobs
from tasks.app import QUEUES
from tasks.broker import redis_client_url
from tasks.canvas import enqueue_batch_render, parse_task_id
from tasks.db import session_scope
from tasks.models import Job, JobStatus, JobTask, StageStatus, utcnow
from tasks.settings import Settings

log = logging.getLogger("render.watchdog")

# kombu's Redis transport keeps a queue as a list named after it, the messages workers hold
# unacknowledged in a hash (delivery tag → [message, exchange, routing key]), and when each was
# delivered in a sorted set.
QUEUE_KEY = "celery"
UNACKED_KEY = "unacked"
UNACKED_INDEX_KEY = "unacked_index"
# A stage that beat within this many heartbeats has a holder that will honour a cancel.
LIVE_BEATS = 3


def cancel_live_within(settings: Settings) -> timedelta:
    return timedelta(seconds=LIVE_BEATS * settings.heartbeat_interval)


@dataclass(frozen=True)
class Held:
    """A stage's message as the broker holds it for a worker."""

    tag: str
    job_id: str
    label: str
    delivered_at: datetime | None


def _task_id(raw: bytes | str) -> str | None:
    try:
        message = json.loads(raw)[0]
        headers = message.get("headers") or {}
        return str(headers.get("id") or message["properties"]["correlation_id"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def held_messages(client: redis.Redis) -> list[Held]:
    """Every stage message in the unacked hash, with the time it was delivered."""
    found = []
    for tag, raw in client.hgetall(UNACKED_KEY).items():
        parsed = parse_task_id(_task_id(raw) or "")
        if parsed is None:
            continue
        job_id, label = parsed
        score = client.zscore(UNACKED_INDEX_KEY, tag)
        delivered = datetime.fromtimestamp(score, UTC) if score is not None else None
        name = tag.decode() if isinstance(tag, bytes) else str(tag)
        found.append(Held(name, job_id, label, delivered))
    return found


def waiting_in_broker(client: redis.Redis, job_ids: Iterable[str]) -> set[str]:
    """The ids among `job_ids` with a task message still queued or reserved in the broker.

    Task ids start with the job id (tasks/canvas.py), and a message carries its task id.
    """
    wanted = {job_id.encode() for job_id in job_ids}
    if not wanted:
        return set()
    found: set[str] = set()
    # A batch's job waits in the batch queue, behind every single render (tasks/app.py).
    queued = [message for queue in QUEUES for message in client.lrange(queue, 0, -1)]
    messages = [*queued, *client.hvals(UNACKED_KEY)]
    for message in messages:
        for job_id in wanted:
            if job_id in message:
                found.add(job_id.decode())
    return found


def restore(client: redis.Redis, tag: str) -> bool:
    """Put an unacked message back on its queue, first in line, as kombu does after the
    visibility timeout; in one transaction, so of several watchdogs only one restores it.

    kombu publishes with LPUSH and consumes with BRPOP, so RPUSH is the head of the queue.
    The message gets a delivery tag of its own: its old holder, if it was only paused (or is
    a worker handing the stage back), still acknowledges the old tag when its task returns,
    and under the same tag that would delete the new holder's unacked entry (no redelivery
    if the new holder then died).
    """
    restored = False

    def move(pipe: Any) -> None:
        nonlocal restored
        raw = pipe.hget(UNACKED_KEY, tag)
        pipe.multi()
        pipe.zrem(UNACKED_INDEX_KEY, tag)
        pipe.hdel(UNACKED_KEY, tag)
        if raw:
            payload, _exchange, routing_key = json.loads(raw)
            payload.setdefault("headers", {})["redelivered"] = True
            properties = payload.setdefault("properties", {})
            properties["delivery_tag"] = str(uuid.uuid4())
            properties.setdefault("delivery_info", {})["redelivered"] = True
            pipe.rpush(routing_key or QUEUE_KEY, json.dumps(payload))
            restored = True

    client.transaction(move, UNACKED_KEY)
    return restored


def lost(session: Session, settings: Settings, messages: list[Held], now: datetime) -> list[Held]:
    """The messages whose stage lost its worker: started and silent, or reserved and idle."""
    before = now - timedelta(seconds=settings.stage_lost_after)
    out = []
    for held in messages:
        row = session.get(JobTask, (held.job_id, held.label))
        job = session.get(Job, held.job_id)
        if row is None or job is None or JobStatus(job.status).finished:
            continue
        beat = jobs.as_utc(row.heartbeat_at)
        if (row.status == StageStatus.RUNNING and (beat is None or beat < before)) or (
            row.status == StageStatus.PENDING
            and held.delivered_at is not None
            and held.delivered_at < before
        ):
            out.append(held)
    return out


def _settle_cancels(session: Session, settings: Settings) -> list[tuple[str, JobStatus]]:
    ended = []
    flagged = session.exec(
        select(Job).where(Job.status == JobStatus.RUNNING, col(Job.cancel_requested).is_(True))
    ).all()
    for job in flagged:
        if jobs.live_stages(session, job.id, cancel_live_within(settings)):
            continue
        error = "cancelled by request (no worker was running it)"
        if jobs.end_job(session, job.id, job.stage, JobStatus.CANCELLED, error):
            log.warning("job=%s cancelled by the watchdog: no live stage", job.id)
            ended.append((job.id, JobStatus.CANCELLED))
    return ended


def _fail_unrunnable(
    session: Session, settings: Settings, now: datetime
) -> list[tuple[str, JobStatus]]:
    """Jobs that waited WORKER_WAIT_TIMEOUT with no worker alive to run them."""
    limit = timedelta(seconds=settings.worker_wait_timeout)
    last_worker = jobs.last_worker_beat(session)
    if last_worker is not None and last_worker >= now - limit:
        return []
    ended = []
    waiting = session.exec(select(Job).where(col(Job.status).in_(jobs.UNFINISHED))).all()
    for job in waiting:
        signs = [jobs.as_utc(job.heartbeat_at), jobs.as_utc(job.created_at), last_worker]
        latest = max((s for s in signs if s is not None), default=now)
        if latest >= now - limit:
            continue
        error = (
            f"{job.stage or 'job'}: no worker was alive to run it for "
            f"{settings.worker_wait_timeout} s (WORKER_WAIT_TIMEOUT); start a worker and "
            "render again"
        )
        if jobs.end_job(session, job.id, None, JobStatus.FAILED, error):
            log.warning("job=%s failed: no worker", job.id)
            ended.append((job.id, JobStatus.FAILED))
    return ended


def sweep(
    settings: Settings,
    now: datetime | None = None,
    broker: redis.Redis | None = None,
) -> list[tuple[str, JobStatus]]:
    """One round of the five duties above; returns (job id, new status) for each job ended."""
    now = now or utcnow()
    client = broker or _client(settings)
    try:
        with session_scope(settings.db_url) as session:
            ended = _settle_cancels(session, settings)
        _restore_lost(settings, client, now)
        with session_scope(settings.db_url) as session:
            ended += _fail_unrunnable(session, settings, now)
            ended += _fail_stale(session, settings, client, now)
        _feed_batches(settings)
    finally:
        if broker is None and client is not None:
            client.close()
    return ended


def _feed_batches(settings: Settings) -> None:
    """5. Batches with held jobs get their next ones sent (`tasks.batches`): a job that ended
    where no worker fed its batch (a cancel, this watchdog) does not leave them waiting."""
    with session_scope(settings.db_url) as session:
        waiting = batches.waiting_batches(session)
    for batch_id in waiting:
        try:
            batches.feed(
                settings.db_url, batch_id, settings.batch_concurrency, enqueue_batch_render
            )
        except Exception as exc:
            log.warning("batch %s: could not send its next jobs: %s", batch_id, exc)


def _client(settings: Settings) -> redis.Redis | None:
    if not settings.redis_url:
        return None
    return redis.Redis.from_url(redis_client_url(settings.redis_url), socket_timeout=5)


def _restore_lost(settings: Settings, client: redis.Redis | None, now: datetime) -> None:
    if client is None:
        return
    try:
        messages = held_messages(client)
    except (redis.RedisError, OSError) as exc:
        log.warning("watchdog could not look into the broker: %s", exc)
        return
    with session_scope(settings.db_url) as session:
        gone = lost(session, settings, messages, now)
    for held in gone:
        log.warning("job=%s stage=%s lost its worker; back on the queue", held.job_id, held.label)
        try:
            restore(client, held.tag)
        except (
            redis.RedisError,
            OSError,
            ValueError,
        ) as exc:  # the broker went away mid-sweep: the next sweep retries
            log.warning("could not requeue %s: %s", held.label, exc)


def _fail_stale(
    session: Session, settings: Settings, client: redis.Redis | None, now: datetime
) -> list[tuple[str, JobStatus]]:
    stale_before = now - timedelta(seconds=settings.stale_after)
    stale = session.exec(
        select(Job).where(Job.status == JobStatus.RUNNING, col(Job.heartbeat_at) < stale_before)
    ).all()
    if not stale:
        return []
    waiting = _waiting(client, [job.id for job in stale])
    ended = []
    for job in stale:
        if job.id in waiting:
            continue  # its next task is queued or held: only waiting its turn
        error = (
            f"{job.stage or 'job'}: no worker reported on this job for "
            f"{settings.stale_after} s and none of its tasks is left in the broker; "
            "its worker was probably lost"
        )
        if jobs.end_job(session, job.id, job.stage, JobStatus.FAILED, error):
            log.warning("job=%s ended FAILED by the watchdog: %s", job.id, error)
            ended.append((job.id, JobStatus.FAILED))
    return ended


def _waiting(client: redis.Redis | None, job_ids: list[str]) -> set[str]:
    if client is None:
        return set()
    try:
        return waiting_in_broker(client, job_ids)
    except (redis.RedisError, OSError, ValueError) as exc:
        # Without the broker nothing can run anyway: the stale jobs are ended, not kept.
        log.warning("watchdog could not look into the broker: %s", exc)
        return set()


def run_forever(settings: Settings, stop: threading.Event, hostname: str | None = None) -> None:
    """Sweep every WATCHDOG_INTERVAL; in a worker, beat for it too (`hostname`)."""
    while True:
        if hostname is not None:
            try:
                with session_scope(settings.db_url) as session:
                    jobs.worker_beat(session, hostname)
            except Exception:
                log.exception("worker heartbeat failed")
        try:
            sweep(settings)
        except Exception:  # a database hiccup must not kill the watchdog thread
            log.exception("watchdog sweep failed; retrying in %s s", settings.watchdog_interval)
        if stop.wait(settings.watchdog_interval):
            return


def start_thread(settings: Settings, hostname: str | None = None) -> threading.Event:
    stop = threading.Event()
    thread = threading.Thread(
        target=run_forever, args=(settings, stop, hostname), name="render-watchdog", daemon=True
    )
    thread.start()
    return stop


def waiting_reason(session: Session, settings: Settings, job: Job) -> str | None:
    """Why an unfinished job is not running right now, for the job document; None if it is."""
    if JobStatus(job.status).finished or jobs.live_stages(
        session, job.id, cancel_live_within(settings)
    ):
        return None
    silent = session.exec(
        select(JobTask.name).where(JobTask.job_id == job.id, JobTask.status == StageStatus.RUNNING)
    ).first()
    if silent is not None:
        return (
            f"{silent} stopped reporting: its worker is probably lost; the stage goes back to "
            f"the queue {settings.stage_lost_after:g} s after its last heartbeat "
            "(STAGE_LOST_AFTER)"
        )
    last_worker = jobs.last_worker_beat(session)
    alive_within = timedelta(seconds=LIVE_BEATS * settings.watchdog_interval)
    if last_worker is None or last_worker < utcnow() - alive_within:
        return (
            "no worker is running: the job waits for one, and fails after "
            f"{settings.worker_wait_timeout} s without one (WORKER_WAIT_TIMEOUT)"
        )
    return "queued: waiting for a free worker"
