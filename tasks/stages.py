"""The Celery tasks: one per registry stage, all run by `StageTask`.

Delivery is at least once (acks late, requeue on worker loss), so every stage is idempotent:
it rewrites its own work file atomically, a stage already DONE is not run again, and a stage
another live worker holds is retried later rather than run twice. Claiming, heartbeats,
progress, failure and cancellation are `StageTask`'s; the bodies are the pipeline's.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from datetime import timedelta
from typing import Any

from celery import Task
from celery.exceptions import Ignore, SoftTimeLimitExceeded

from pipeline import registry
from pipeline.errors import Cancelled, PipelineError
from pipeline.ffmpeg import Runner, find_ffmpeg
from pipeline.options import RenderOptions
from pipeline.registry import Stage, StageRun
from tasks import jobs
from tasks.app import app
from tasks.db import session_scope
from tasks.models import Job, JobStatus
from tasks.progress import StageTracker
from tasks.settings import Settings, get_settings
from tasks.storage import Storage

log = logging.getLogger("render.tasks")


class StageFailed(Exception):
    """What a failed task raises to Celery: one plain message, so it survives JSON results."""


def task_name(stage: Stage) -> str:
    return f"render.{stage.name.lower()}"


class StageTask(Task):
    """Claim the stage, run its body with heartbeats and progress, record how it ended."""

    stage: Stage
    # A stage held by another live worker is retried until that holder finishes or is lost:
    # the holder's heartbeat bounds the wait, not a count.
    max_retries = None

    def run_stage(self, job_id: str, scene: int | None) -> None:
        settings = get_settings()
        label = self.stage.label(scene)
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
        tracker.log(f"started on {worker} (attempt {claim.attempt})")
        started = time.monotonic()
        try:
            with tracker.beating():
                plan = registry.run_stage(
                    self.stage, _stage_run(settings, claim.job, tracker, scene)
                )
            tracker.flush()
        except Exception as exc:
            self._ended(settings, tracker, exc)
        with session_scope(settings.db_url) as session:
            if plan is not None:  # the timeline is laid out: scenes weigh by their frames
                frames = [s.frames for s in plan.scenes]
                jobs.reweigh(session, job_id, registry.weights(len(frames), frames))
            finished = jobs.finish_stage(session, job_id, label, claim.attempt)
            succeeded = finished and self.stage is registry.LAST
        if not finished:
            tracker.log("finished, but another worker had taken the stage over")
            raise Ignore()
        tracker.log(f"done in {time.monotonic() - started:.2f} s")
        if succeeded:
            # Work files are kept for debugging a failure; a success has nothing left to debug.
            shutil.rmtree(_project(settings, claim.job).work, ignore_errors=True)

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
        if isinstance(exc, Cancelled):
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
        if status is JobStatus.CANCELLED:
            raise Ignore() from None
        raise StageFailed(message) from None


def _project(settings: Settings, job: Job) -> Any:
    return Storage(settings.render_storage).project(job.project_id).for_run(job.id)


def _stage_run(settings: Settings, job: Job, tracker: StageTracker, scene: int | None) -> StageRun:
    runner = Runner(
        ffmpeg=find_ffmpeg(settings.ffmpeg_binary or None),
        on_progress=tracker.progress,
        should_cancel=tracker.should_cancel,
        log=tracker.log,
    )
    return StageRun(
        project=_project(settings, job),
        options=RenderOptions.model_validate(job.options),
        output_name=job.output_name,
        runner=runner,
        scene=scene,
        threads=settings.x264_threads,
        lookahead=settings.x264_lookahead,
    )


def _expected_failure(label: str, exc: Exception, settings: Settings) -> str | None:
    """The job row's error for a failure we can explain; None for a bug (an internal error)."""
    if isinstance(exc, PipelineError):
        return str(exc)
    if isinstance(exc, SoftTimeLimitExceeded):
        return f"{label}: exceeded the time limit of {settings.task_time_limit} s (TASK_TIME_LIMIT)"
    # The storage refused a file (full, read-only, a directory in the way): say which.
    # OSErrors without a file (sockets, pipes) are internal errors.
    if isinstance(exc, OSError) and (where := exc.filename2 or exc.filename) is not None:
        return f"{label}: file system error on {where}: {exc.strerror or exc}"
    return None


def _register(stage: Stage) -> Any:
    @app.task(bind=True, base=StageTask, name=task_name(stage), stage=stage)
    def stage_task(self: StageTask, job_id: str, scene: int | None = None) -> None:
        self.run_stage(job_id, scene)

    return stage_task


# One Celery task per stage of the registry, by stage name.
TASKS: dict[str, Any] = {stage.name: _register(stage) for stage in registry.STAGES}
