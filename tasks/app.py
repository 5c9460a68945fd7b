"""The Celery application, configured for at-least-once delivery that never strands a job.

- acks_late + reject_on_worker_lost: a task whose worker process dies goes back to the queue.
- prefetch 1: a worker holds no more than the task it runs, so scenes spread over workers.
- visibility_timeout > task_time_limit: Redis redelivers an unacked task only after the
  longest legal run, so a live task never gets a twin; the restore sweep runs every 10 s.
- result_backend_always_retry: a Redis restart mid-job delays progress writes, not the job.
- two queues, QUEUE for single renders and BATCH_QUEUE for batches' jobs, taken in that order
  (`queue_order_strategy: priority`: kombu's Redis transport BRPOPs the queues in the order
  the worker lists them, instead of rotating): a worker process that finishes a unit takes a
  single render's task before any batch's, so a render sent while a batch runs starts after
  at most one unit of work on a free process, not after the batch. With prefetch 1 and
  acks_late a busy process holds no reserved batch task that would go first.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from tasks.settings import Settings, get_settings

QUEUE = "celery"  # Celery's default queue: single renders
BATCH_QUEUE = "batch"
QUEUES = (QUEUE, BATCH_QUEUE)  # in the order a worker takes from them


def celery_config(settings: Settings) -> dict[str, Any]:
    transport = {
        "visibility_timeout": settings.visibility_timeout,
        "unacked_restore_interval": 10,
        "unacked_restore_throttle": 1,
    }
    broker_transport = {**transport, "queue_order_strategy": "priority"}
    return dict(
        broker_url=settings.redis_url or None,
        result_backend=settings.redis_url or None,
        broker_transport_options=broker_transport,
        task_default_queue=QUEUE,
        # A worker started without --queues (`make worker`) takes from both, in this order.
        task_queues=[Queue(name) for name in QUEUES],
        result_backend_transport_options=transport,
        broker_connection_retry_on_startup=True,
        result_backend_always_retry=True,
        result_backend_max_retries=30,
        result_expires=7 * 24 * 3600,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_track_started=True,
        task_time_limit=settings.task_time_limit,
        task_soft_time_limit=max(1, settings.task_time_limit - 5),
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.concurrency,
        worker_send_task_events=True,
        task_send_sent_event=True,
        # The pipeline logs through `logging`; keep Celery from hijacking the root logger.
        worker_hijack_root_logger=False,
    )


def make_celery(settings: Settings | None = None) -> Celery:
    """The app; its configuration is read from the settings on first use, not at import, so
    importing the API or the tasks never reads the environment by itself."""
    app = Celery("render", include=["tasks.stages", "tasks.worker"])
    app.add_defaults(lambda: celery_config(settings or get_settings()))
    return app


app = make_celery()


def worker_argv(settings: Settings, hostname: str | None = None) -> list[str]:
    """The command line of one worker: used by `make serve`, the tests and the compose file."""
    argv = [
        "-m",
        "celery",
        "-A",
        "tasks.app",
        "worker",
        "--loglevel=INFO",
        f"--concurrency={settings.concurrency}",
        "--without-gossip",
        "--without-mingle",
        f"--queues={','.join(QUEUES)}",
    ]
    if hostname:
        argv.append(f"--hostname={hostname}")
    return argv
