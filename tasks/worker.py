"""Hooks into the Celery worker's life: the watchdog runs in each worker's main process, which
also beats on the `workers` table while it lives, so a job can tell it has nobody to run it."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    worker_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from pipeline.capabilities import UnfitFFmpeg, require_ffmpeg
from pipeline.ffmpeg import find_ffmpeg

# Imported here, in the main process before it forks its pool: the children share its page.
from tasks import events, jobs, logs, metrics, shutdown
from tasks.blobstore import StoreRefused
from tasks.db import session_scope
from tasks.settings import get_settings
from tasks.storage import require_store
from tasks.watchdog import start_thread

log = logging.getLogger("render.worker")

_running: list[tuple[Any, str]] = []


@worker_init.connect
def _require_ffmpeg(**_: Any) -> None:
    try:
        ffmpeg = require_ffmpeg(find_ffmpeg(get_settings().ffmpeg_binary or None))
    except (FileNotFoundError, UnfitFFmpeg) as exc:
        # Celery logs an Exception from a signal handler and starts the worker anyway;
        # SystemExit is no Exception, so it ends the start-up with this line on stderr.
        raise SystemExit(f"error: {exc}") from None
    log.info("FFmpeg %s at %s", ffmpeg.release, ffmpeg.binary)
    try:
        require_store(get_settings())  # STORAGE_URL: the bucket and the credentials
    except StoreRefused as exc:
        raise SystemExit(f"error: {exc}") from None
    # Before the pool forks: its processes inherit where to publish job change notices and
    # where to write their metrics.
    events.configure(get_settings().redis_url)
    metrics.setup(get_settings())


@after_setup_logger.connect
@after_setup_task_logger.connect
def _log_format(logger: logging.Logger | None = None, **_: Any) -> None:
    logs.configure(get_settings().log_format, logger)
    logs.configure(get_settings().log_format)


@worker_ready.connect
def _start_watchdog(sender: Any = None, **_: Any) -> None:
    hostname = str(getattr(sender, "hostname", None) or "worker")
    _running.append((start_thread(get_settings(), hostname=hostname), hostname))


@worker_shutting_down.connect
def _shutting_down(sig: str | None = None, how: str | None = None, **_: Any) -> None:
    # A warm shutdown (SIGTERM): running stages get SHUTDOWN_GRACE, then hand themselves back.
    shutdown.begin()
    log.warning(
        "%s shutdown (%s): running stages have %g s (SHUTDOWN_GRACE) to finish",
        how,
        sig,
        get_settings().shutdown_grace,
    )


@worker_shutdown.connect
def _stop_watchdog(**_: Any) -> None:
    settings = get_settings()
    for stop, hostname in _running:
        stop.set()
        try:
            with session_scope(settings.db_url) as session:
                jobs.worker_gone(session, hostname)
        except Exception:
            log.exception("could not sign worker %s off", hostname)
