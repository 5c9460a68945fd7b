"""Hooks into the Celery worker's life: the watchdog runs in each worker's main process, which
also beats on the `workers` table while it lives, so a job can tell it has nobody to run it."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_init, worker_ready, worker_shutdown

from pipeline.capabilities import UnfitFFmpeg, require_ffmpeg
from pipeline.ffmpeg import find_ffmpeg
from tasks import jobs
from tasks.db import session_scope
from tasks.settings import get_settings
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


@worker_ready.connect
def _start_watchdog(sender: Any = None, **_: Any) -> None:
    hostname = str(getattr(sender, "hostname", None) or "worker")
    _running.append((start_thread(get_settings(), hostname=hostname), hostname))


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
