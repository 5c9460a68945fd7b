"""The Celery tasks: one per registry stage, all run by `StageTask`.

Delivery is at least once (acks late, requeue on worker loss), so every stage is idempotent:
it rewrites its own work file atomically, a stage already DONE is not run again, and a stage
another live worker holds is retried later rather than run twice. Claiming, heartbeats,
progress, failure and cancellation are `StageTask`'s; the bodies are the pipeline's.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Task
from celery.exceptions import Ignore, SoftTimeLimitExceeded

from pipeline import registry
from pipeline.cache import ClipCache, ClipReport
from pipeline.errors import Cancelled, PipelineError
from pipeline.ffmpeg import Runner, find_ffmpeg
from pipeline.options import RenderOptions
from pipeline.plan import PLAN_FILE, Plan
from pipeline.project import RUN_SPEC
from pipeline.registry import Stage, StageRun
from pipeline.units import ONCE, Unit, chunk_unit, scene_unit
from tasks import batches, canvas, joblog, jobs, logs, metrics, shutdown
from tasks.app import app
from tasks.blobstore import BlobStore, StoreUnavailable, output_key
from tasks.bucket_cache import BucketCache
from tasks.db import session_scope
from tasks.jobs import as_utc
from tasks.models import Job, JobStatus, utcnow
from tasks.progress import StageTracker
from tasks.settings import Settings, get_settings
from tasks.storage import Storage, blob_store, space_shortfall
from tasks.workspace import run_unit, work_prefix

log = logging.getLogger("render.tasks")


class StageFailed(Exception):
    """What a failed task raises to Celery: one plain message, so it survives JSON results."""


class StageTask(Task):
    """Claim the stage, run its body with heartbeats and progress, record how it ended."""

    stage: Stage
    # A stage held by another live worker is retried until that holder finishes or is lost:
    # the holder's heartbeat bounds the wait, not a count.
    max_retries = None

    def run_stage(self, job_id: str, unit: Unit) -> None:
        settings = get_settings()
        label = self.stage.label(unit)
        worker = str(self.request.hostname or "worker")
        try:
            with session_scope(settings.db_url) as session:
                claim = jobs.claim_stage(
                    session,
                    job_id,
                    label,
                    worker=worker,
                    pid=os.getpid(),
                    max_attempts=settings.max_task_attempts,
                    lost_after=timedelta(seconds=settings.stage_lost_after),
                )
        except jobs.Held as held:
            log.info("job=%s stage=%s: %s; retrying later", job_id, label, held)
            raise self.retry(countdown=settings.heartbeat_interval * 2) from None
        if claim is None:
            raise Ignore()  # the job is over (or unknown): stop this branch of the canvas
        if claim.done:
            return
        tracker = StageTracker(settings, job_id, label, claim.attempt, publish=self._publish)
        with joblog.shipping(_store(settings), job_id, label, claim.attempt, tracker.kept):
            self._run_claimed(settings, claim, tracker, unit, worker)

    def _run_claimed(
        self,
        settings: Settings,
        claim: jobs.Claim,
        tracker: StageTracker,
        unit: Unit,
        worker: str,
    ) -> None:
        job_id, label = tracker.job_id, tracker.label
        tracker.log(f"started on {worker} (attempt {claim.attempt})")
        started = time.monotonic()
        clips: list[ClipReport] = []
        try:
            require_free_space(settings, label)
            with tracker.beating():
                run = _stage_run(settings, claim.job, tracker, unit, on_clip=clips.append)
                _pin_spec(_store(settings), claim.job)
                plan = run_unit(_store(settings), self.stage, run, settings.scratch_path)
                if plan is not None:
                    _send_rest(settings, claim.job, plan)
            tracker.flush()
        except Exception as exc:
            self._ended(settings, tracker, exc)
        with session_scope(settings.db_url) as session:
            finished = jobs.finish_stage(
                session,
                job_id,
                label,
                claim.attempt,
                clip=clips[-1].outcome if clips else None,
                clip_bytes=clips[-1].size if clips else 0,
            )
            succeeded = finished and self.stage is registry.LAST
        if not finished:
            tracker.log("finished, but another worker had taken the stage over")
            raise Ignore()
        elapsed = time.monotonic() - started
        tracker.log(f"done in {elapsed:.2f} s")
        metrics.stage_finished(self.stage.name, elapsed)
        for clip in clips[-1:]:
            metrics.clip_made(clip.outcome, clip.size)
        if succeeded:
            _feed_batch(settings, claim.job)
            store = _store(settings)
            _job_metrics(store, claim.job)
            # Work files are kept for debugging a failure; a success has nothing left to debug.
            store.delete_prefix(work_prefix(claim.job.project_id, claim.job.id))

    def _publish(self, label: str, fraction: float, overall: float) -> None:
        meta = {"jobId": self.request.id.split(".")[0], "stage": label}
        self.update_state(
            state="PROGRESS", meta={**meta, "fraction": fraction, "progress": overall}
        )

    def _ended(self, settings: Settings, tracker: StageTracker, exc: Exception) -> None:
        """The body raised: stop this branch, and end the job unless the stage was taken over."""
        if tracker.superseded:
            tracker.log("stopped: another worker took the stage over")
            raise Ignore() from None
        if tracker.handing_back and isinstance(exc, Cancelled):
            self._hand_back(settings, tracker)
        if tracker.short_of_space is not None and isinstance(exc, Cancelled):
            status, message = JobStatus.FAILED, tracker.short_of_space
            tracker.log(f"failed: {message}")
        elif isinstance(exc, Cancelled):
            status, message = JobStatus.CANCELLED, "cancelled by request"
            tracker.log("stopped: the job was cancelled or failed elsewhere")
        else:
            status = JobStatus.FAILED
            explained = _expected_failure(tracker.label, exc, settings)
            if explained is None:
                log.error("job=%s stage=%s crashed", tracker.job_id, tracker.label, exc_info=exc)
            message = explained or f"{tracker.label}: internal error: {type(exc).__name__}: {exc}"
            tracker.log(f"failed: {message}")
        with session_scope(settings.db_url) as session:
            ended = jobs.end_job(
                session, tracker.job_id, tracker.label, status, message, attempt=tracker.attempt
            )
        if not ended:  # taken over by another worker, or the job had already ended
            raise Ignore() from None
        _feed_batch(settings, tracker.job_id)
        if status is JobStatus.CANCELLED:
            raise Ignore() from None
        raise StageFailed(message) from None

    def _hand_back(self, settings: Settings, tracker: StageTracker) -> None:
        """The worker is shutting down and the stage outlasted SHUTDOWN_GRACE: give the stage
        back and its message to the head of the queue, for another worker to take at once."""
        with session_scope(settings.db_url) as session:
            released = jobs.release_stage(session, tracker.job_id, tracker.label, tracker.attempt)
        if not released:  # taken over meanwhile: nothing of ours to give back
            raise Ignore() from None
        # Ignore, not Reject: a rejected chord member would fail the chord; an ignored one
        # stores no result, and the requeued message's run counts for it.
        if shutdown.requeue_first(settings, tracker.job_id, tracker.label):
            tracker.log("handed back: first in the queue for another worker")
            raise Ignore() from None
        # Not in the unacked set (a broker hiccup): a new message, at the end of the queue.
        tracker.log("handed back: queued again for another worker")
        raise self.retry(countdown=0) from None


def require_free_space(settings: Settings, label: str) -> None:
    """Before a stage writes anything: with less than MIN_FREE_MB free in RENDER_STORAGE the
    job fails here, naming the stage and the setting, rather than part-way through a file
    with a disk full; what the stages before it wrote (and the outputs published before) is
    left as it is. While the stage runs, its tracker watches the same (`StageTracker`)."""
    shortfall = space_shortfall(settings.render_storage, settings.min_free_mb)
    if shortfall is not None:
        raise PipelineError(
            f"not started: {shortfall}; earlier stages' files and published outputs are "
            "kept. Free some space and render again",
            stage=label,
        )


def _send_rest(settings: Settings, job: Job, plan: Plan) -> None:
    """The timeline is laid out: the job's rows become the plan's units (weighed by their
    frames, a long scene's build one row per chunk), then the steps after the layout go to
    the broker. Before this stage is marked done, so a worker lost in between reruns it and
    sends them again: a second copy of a step finds its stages done or held, and does nothing.
    """
    with session_scope(settings.db_url) as session:
        jobs.lay_out(session, job.id, registry.weights(jobs.outline(job), plan))
    canvas.enqueue_rest(job.id, jobs.outline(job), plan, canvas.queue_of(job))


def _feed_batch(settings: Settings, job: Job | str) -> None:
    """A job ended: if it is a batch's, send the batch's next held jobs (tasks/batches.py).
    A failure here is the watchdog's to make up for, never the job's."""
    try:
        if isinstance(job, str):
            with session_scope(settings.db_url) as session:
                found = session.get(Job, job)
            if found is None:
                return
            job = found
        if job.batch_id is not None:
            batches.feed(
                settings.db_url,
                job.batch_id,
                settings.batch_concurrency,
                canvas.enqueue_batch_render,
            )
    except Exception as exc:
        log.warning("job=%s: could not send its batch's next jobs: %s", job, exc)


def _job_metrics(store: BlobStore, job: Job) -> None:
    """A succeeded job's render time per second of video and the bytes it wrote."""
    try:
        with store.open(f"{work_prefix(job.project_id, job.id)}/{PLAN_FILE}") as fh:
            video = Plan.from_json(fh.read().decode("utf-8")).duration_seconds
        output = store.stat(output_key(job.project_id, job.output_name))
        if output is None:
            raise FileNotFoundError(job.output_name)
        size = output.size
    except (OSError, ValueError) as exc:
        log.warning("job=%s: no render metrics: %s", job.id, exc)
        return
    began = as_utc(job.started_at) or as_utc(job.created_at) or utcnow()
    metrics.job_succeeded((utcnow() - began).total_seconds(), video, size)


def _project(settings: Settings, job: Job) -> Any:
    project = Storage(settings.render_storage).project(job.project_id)
    return project.for_run(job.id, own_spec=job.spec is not None)


def _pin_spec(store: BlobStore, job: Job) -> None:
    """A job pinned to a spec of its own (`Job.spec`, its template resolved at submission)
    renders it from `work/<jobId>/scenes.json`: written from the row before the stage that
    first reads it, once (every later stage, on any worker, finds it)."""
    if job.spec is None:
        return
    key = f"{work_prefix(job.project_id, job.id)}/{RUN_SPEC}"
    if store.exists(key):
        return
    with tempfile.TemporaryDirectory(prefix="render-spec-") as scratch:
        path = Path(scratch) / RUN_SPEC
        path.write_text(json.dumps(job.spec, indent=2) + "\n", encoding="utf-8")
        store.save(key, path)


def _store(settings: Settings) -> BlobStore:
    return blob_store(settings)


def _stage_run(
    settings: Settings,
    job: Job,
    tracker: StageTracker,
    unit: Unit,
    on_clip: Callable[[ClipReport], None] | None = None,
) -> StageRun:
    runner = Runner(
        ffmpeg=find_ffmpeg(settings.ffmpeg_binary or None),
        on_progress=tracker.progress,
        should_cancel=tracker.should_cancel,
        log=tracker.log,
        nice=settings.ffmpeg_nice,
        max_memory_mb=settings.ffmpeg_max_memory_mb,
    )
    return StageRun(
        project=_project(settings, job),
        options=RenderOptions.model_validate(job.options),
        output_name=job.output_name,
        runner=runner,
        unit=unit,
        threads=settings.x264_threads,
        lookahead=settings.x264_lookahead,
        cache=_clip_cache(settings),
        on_clip=on_clip,
        limits=settings.limits(),
    )


def _clip_cache(settings: Settings) -> ClipCache | None:
    """The render cache every job and worker shares; None when CACHE_MAX_GB is 0."""
    if settings.cache_max_gb <= 0:
        return None
    store = _store(settings)
    if store.local_path("") is None:  # an object store: the bucket's copy is the shared one
        return BucketCache(settings.cache_dir, settings.cache_max_bytes, store=store)
    return ClipCache(settings.cache_dir, settings.cache_max_bytes)


def _expected_failure(label: str, exc: Exception, settings: Settings) -> str | None:
    """The job row's error for a failure we can explain; None for a bug (an internal error)."""
    if isinstance(exc, PipelineError):
        return str(exc)
    if isinstance(exc, StoreUnavailable):  # retried with backoff for S3_RETRY_SECONDS first
        return f"{label}: {exc}"
    if isinstance(exc, SoftTimeLimitExceeded):
        return f"{label}: exceeded the time limit of {settings.task_time_limit} s (TASK_TIME_LIMIT)"
    # The storage refused a file (full, read-only, a directory in the way): say which.
    # OSErrors without a file (sockets, pipes) are internal errors.
    if isinstance(exc, OSError) and (where := exc.filename2 or exc.filename) is not None:
        return f"{label}: file system error on {where}: {exc.strerror or exc}"
    return None


def task_unit(stage: Stage, unit: str | int | None, chunk: int | None = None) -> Unit:
    """The unit a task's arguments name: its label (`canvas`), none for a stage that runs
    once, or the scene and chunk numbers a message sent before units were labels carries."""
    if unit is None:
        return ONCE
    if isinstance(unit, int):
        return scene_unit(unit) if chunk is None else chunk_unit(unit, chunk)
    named, found = registry.parse_unit(unit)
    if named is not stage:
        raise ValueError(f"{unit!r} is not a unit of {stage.name}")
    return found


def _register(stage: Stage) -> Any:
    @app.task(bind=True, base=StageTask, name=canvas.task_name(stage), stage=stage)
    def stage_task(
        self: StageTask, job_id: str, unit: str | int | None = None, chunk: int | None = None
    ) -> None:
        run = task_unit(self.stage, unit, chunk)
        worker = str(self.request.hostname or "worker")
        with logs.stage_context(job_id, self.stage.label(run), worker):
            self.run_stage(job_id, run)

    return stage_task


# One Celery task per stage of the registry, by stage name.
TASKS: dict[str, Any] = {stage.name: _register(stage) for stage in registry.STAGES}
