"""Cleaning up after old jobs (RETENTION_DAYS): what a failed render left for debugging, and
logs, once nobody will debug them any more.

- the work folder `projects/<id>/work/<jobId>/` of a FAILED or CANCELLED job (a SUCCEEDED
  job's is removed when it succeeds);
- `logs/<jobId>.log` of any ended job, and a log whose job is not in the database;
- `Idempotency-Key`s of those jobs (a client retrying after two weeks is not retrying).

Everything is measured from the job's `finishedAt` (a log without a job: its mtime). Outputs
are never touched. The API runs it hourly.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete
from sqlmodel import col, select

from tasks import joblog
from tasks.blobstore import key_of
from tasks.db import session_scope
from tasks.models import FINISHED, IdempotencyKey, Job, JobStatus, utcnow
from tasks.settings import Settings
from tasks.storage import JOB_ID, Storage, blob_store

log = logging.getLogger("render.retention")

INTERVAL = 3600.0
_KEEP_WORK = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})


def clean(settings: Settings, now: datetime | None = None) -> list[Path]:
    """One pass; the paths removed."""
    if settings.retention_days <= 0:
        return []
    now = now or utcnow()
    before = now - timedelta(days=settings.retention_days)
    storage = Storage(settings.render_storage)
    store = blob_store(settings)
    removed: list[Path] = []
    with session_scope(settings.db_url) as session:
        old = session.exec(
            select(Job.id, Job.project_id, Job.status).where(
                col(Job.status).in_([str(s) for s in FINISHED]),
                col(Job.finished_at) < before,
            )
        ).all()
        known = set(session.exec(select(Job.id)).all())
        old_ids = [job_id for job_id, _, _ in old]
        if old_ids:
            session.execute(delete(IdempotencyKey).where(col(IdempotencyKey.job_id).in_(old_ids)))
    for job_id, project_id, status in old:
        if JobStatus(status) in _KEEP_WORK:
            try:
                work = storage.project(project_id).for_run(job_id).work
            except ValueError:
                continue
            key = key_of(storage.root, work)
            if work.is_dir() or store.local_path(key) is None:  # the folder, or a bucket
                store.delete_prefix(key)
                removed.append(work)
        path = storage.log_path(job_id)
        if path.exists():
            path.unlink(missing_ok=True)
            removed.append(path)
        if not joblog.shared(store):  # its attempts' lines in the bucket (tasks/joblog.py)
            store.delete_prefix(f"logs/{job_id}/")
    if storage.logs.is_dir():
        cutoff = before.timestamp()
        for path in storage.logs.glob("*.log"):
            if JOB_ID.fullmatch(path.stem) and path.stem not in known:
                try:
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed.append(path)
                except FileNotFoundError:
                    continue
    if removed:
        log.info("retention: removed %d old work folder(s) and log(s)", len(removed))
    return removed


def run_forever(settings: Settings, stop: threading.Event, interval: float) -> None:
    while not stop.is_set():
        try:
            clean(settings)
        except Exception:
            log.exception("retention pass failed; retrying in %s s", interval)
        stop.wait(interval)


def start_thread(settings: Settings, interval: float = INTERVAL) -> threading.Event:
    stop = threading.Event()
    threading.Thread(
        target=run_forever, args=(settings, stop, interval), name="render-retention", daemon=True
    ).start()
    return stop
