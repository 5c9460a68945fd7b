"""Prometheus metrics, in prometheus-client's multiprocess mode (docs/operations.md).

Counters and histograms are written where they happen (a worker's pool process finishing a
stage, the deliverer sending a webhook) into files under METRICS_DIR (default
`RENDER_STORAGE/metrics`, the volume every container shares), and `GET /metrics` adds them up
across every process that ever wrote one. The gauges are read when scraped instead, from the
database and the broker, so they are right whichever process is alive: jobs by status, the
queue's depth, live workers.

Files are named by host and pid (not pid alone, prometheus-client's default): containers
sharing the volume all have small pids, and two of them with the same one would write into
the same file. prometheus-client reads the folder from PROMETHEUS_MULTIPROC_DIR in the
environment itself; `setup()` exports it from METRICS_DIR (a setting of another name, so that
the export never feeds back into the settings of a process that reads them later).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import col, select

from tasks.broker import redis_client_url
from tasks.db import session_scope
from tasks.models import Job, JobStatus, Worker, utcnow
from tasks.settings import Settings
from tasks.watchdog import QUEUE_KEY

log = logging.getLogger("render.metrics")

ENV = "PROMETHEUS_MULTIPROC_DIR"
STAGE_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 10800)
RATIO_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32)


def _identifier() -> str:
    return f"{socket.gethostname()}_{os.getpid()}"


_set_up: str | None = None


def setup(settings: Settings) -> str:
    """Write this process's metrics under the settings' folder, from now on.

    Once per process in a deployment, before any metric is touched; a second call with
    another folder (tests that start several apps) re-points the metrics made after it.
    """
    global _set_up
    folder = settings.metrics_path
    folder.mkdir(parents=True, exist_ok=True)
    if _set_up != str(folder):
        os.environ[ENV] = str(folder)
        values.ValueClass = values.MultiProcessValue(process_identifier=_identifier)
        _metrics.cache_clear()
        _set_up = str(folder)
    return _set_up


@cache
def _metrics() -> dict[str, Any]:
    # Created on first use, after setup(): a metric takes its value class when it is made.
    # Registered nowhere: GET /metrics reads every process's files, this one's included.
    return {
        "stage": Histogram(
            "render_stage_duration_seconds",
            "Wall time of one stage run that finished, by stage",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=None,
        ),
        "ratio": Histogram(
            "render_seconds_per_output_second",
            "A succeeded job's wall time (first claim to success) per second of video",
            buckets=RATIO_BUCKETS,
            registry=None,
        ),
        "bytes": Counter(
            "render_output_bytes",
            "Bytes of finished videos written to output/",
            registry=None,
        ),
        "clips": Counter(
            "render_scene_clips",
            "Scene clips by how they came to be (encoded, cached, skipped)",
            ["outcome"],
            registry=None,
        ),
        "saved": Counter(
            "render_cache_bytes_saved",
            "Bytes of scene clips served from the render cache instead of encoded",
            registry=None,
        ),
        "webhooks": Counter(
            "render_webhook_deliveries",
            "Webhook delivery attempts, by outcome (delivered, retry, failed)",
            ["outcome"],
            registry=None,
        ),
    }


def stage_finished(stage: str, seconds: float) -> None:
    _metrics()["stage"].labels(stage=stage).observe(seconds)


def job_succeeded(wall_seconds: float, video_seconds: float, output_bytes: int) -> None:
    if video_seconds > 0:
        _metrics()["ratio"].observe(wall_seconds / video_seconds)
    _metrics()["bytes"].inc(output_bytes)


def clip_made(outcome: str, size: int) -> None:
    _metrics()["clips"].labels(outcome=outcome).inc()
    if outcome == "cached":
        _metrics()["saved"].inc(size)


def webhook_delivery(outcome: str) -> None:
    _metrics()["webhooks"].labels(outcome=outcome).inc()


# --- reading, in the API ----------------------------------------------------------------------


class StateCollector(Collector):
    """The gauges read at scrape time: jobs by status, queue depth, live workers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily(
            "render_jobs", "Jobs in the database, by status", labels=["status"]
        )
        live = GaugeMetricFamily(
            "render_workers_live", "Worker processes (main) that beat within 3 sweeps"
        )
        with session_scope(self.settings.db_url) as session:
            counts = dict(
                session.exec(select(Job.status, func.count()).group_by(col(Job.status))).all()
            )
            within = timedelta(seconds=3 * self.settings.watchdog_interval)
            workers = session.exec(
                select(func.count()).where(col(Worker.heartbeat_at) >= utcnow() - within)
            ).one()
        for status in JobStatus:
            jobs.add_metric([str(status)], float(counts.get(str(status), 0)))
        live.add_metric([], float(workers))
        yield jobs
        yield live
        depth = GaugeMetricFamily(
            "render_queue_depth", "Task messages waiting in the broker's queue (not yet taken)"
        )
        up = GaugeMetricFamily("render_broker_up", "1 when the broker answered this scrape")
        try:
            depth.add_metric([], float(self._queue_depth()))
            up.add_metric([], 1.0)
        except (redis.RedisError, OSError) as exc:
            log.warning("metrics: broker unreachable: %s", exc)
            up.add_metric([], 0.0)
        yield depth
        yield up

    def _queue_depth(self) -> int:
        if not self.settings.redis_url:
            raise redis.ConnectionError("REDIS_URL is not set")
        client = redis.Redis.from_url(
            redis_client_url(self.settings.redis_url), socket_timeout=2, socket_connect_timeout=2
        )
        try:
            return int(client.llen(QUEUE_KEY))
        finally:
            client.close()


def registry(settings: Settings) -> CollectorRegistry:
    """What `GET /metrics` serves: every process's files, and the gauges read now."""
    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=str(settings.metrics_path))
    reg.register(StateCollector(settings))
    return reg
