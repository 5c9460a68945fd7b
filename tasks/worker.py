"""Hooks into the Celery worker's life: the watchdog runs in each worker's main process."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_ready, worker_shutdown

from tasks.settings import get_settings
from tasks.watchdog import start_thread

_stop: list[Any] = []


@worker_ready.connect
def _start_watchdog(**_: Any) -> None:
    _stop.append(start_thread(get_settings()))


@worker_shutdown.connect
def _stop_watchdog(**_: Any) -> None:
    for event in _stop:
        event.set()
