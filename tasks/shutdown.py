"""A worker being stopped (SIGTERM: `docker stop`, a redeploy), as its pool processes see it.

Celery answers SIGTERM with a warm shutdown: it takes no new task and waits for the running
ones. A stage then has `SHUTDOWN_GRACE` seconds to finish; past that it stops its FFmpeg,
hands its stage back (the row goes back to PENDING, the attempt uncounted) and puts its
message back at the head of the queue, so another worker takes it over at once rather than
after Docker's SIGKILL and `STAGE_LOST_AFTER`.

The main process learns of the signal (Celery's `worker_shutting_down`); the task runs in a
forked pool process. The instant is passed through a page of anonymous shared memory mapped
here, at import, in the main process before it forks its pool: each child inherits the same
page and reads it with no system call.
"""

from __future__ import annotations

import logging
import mmap
import struct
import time

import redis

from tasks.broker import redis_client_url
from tasks.settings import Settings
from tasks.watchdog import held_messages, restore

log = logging.getLogger("render.shutdown")

_FORMAT = "d"
_shared = mmap.mmap(-1, struct.calcsize(_FORMAT))


def begin(at: float | None = None) -> None:
    """The worker was told to stop (wall-clock `at`, now by default)."""
    _shared[:] = struct.pack(_FORMAT, time.time() if at is None else at)


def began() -> float | None:
    """When this worker was told to stop, or None while it runs normally."""
    (at,) = struct.unpack(_FORMAT, _shared[:])
    return at or None


def reset() -> None:
    _shared[:] = struct.pack(_FORMAT, 0.0)


def past_grace(settings: Settings) -> bool:
    """True once the worker has been stopping for longer than SHUTDOWN_GRACE."""
    at = began()
    return at is not None and time.time() - at >= settings.shutdown_grace


def requeue_first(
    settings: Settings, job_id: str, label: str, client: redis.Redis | None = None
) -> bool:
    """Move the stage's message from the broker's unacked set to the head of its queue.

    The watchdog's restore, which gives the message a delivery tag of its own: this worker
    still acknowledges the old one when its task returns.
    """
    own = client is None
    if client is None:
        if not settings.redis_url:
            return False
        client = redis.Redis.from_url(redis_client_url(settings.redis_url), socket_timeout=5)
    try:
        for held in held_messages(client):
            if held.job_id == job_id and held.label == label:
                return restore(client, held.tag)
        return False
    except (redis.RedisError, OSError, ValueError) as exc:
        log.warning("job=%s stage=%s: could not requeue its message: %s", job_id, label, exc)
        return False
    finally:
        if own:
            client.close()
