"""The Celery tasks: one per pipeline stage, each a thin wrapper run by `run_stage`.

Delivery is at least once (acks late, requeue on worker loss), so every stage is idempotent:
it rewrites its own work file atomically, and a stage already DONE is not run again.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from celery import Task
from celery.exceptions import Ignore, SoftTimeLimitExceeded
from sqlalchemy import update
from sqlmodel import col

from pipeline import stages as pipeline_stages
from pipeline.errors import Cancelled, PipelineError
from pipeline.ffmpeg import Runner, find_ffmpeg
from pipeline.options import RenderOptions
from pipeline.plan import make_plan, read_plan, write_plan
from pipeline.probe import probe
from pipeline.project import ProjectDir
from tasks import jobs
from tasks.app import app
from tasks.db import session_scope
from tasks.models import Artifact, Job, JobStatus, JobTask, utcnow
from tasks.progress import StageTracker
from tasks.settings import Settings, get_settings
from tasks.storage import Storage

log = logging.getLogger("render.tasks")


class StageFailed(Exception):
    """What a failed task raises to Celery: one plain message, so it survives JSON results."""


class StageContext:
    """What a stage body gets: the job, its project folder, options, and a ready Runner."""

    def __init__(self, settings: Settings, job: Job, tracker: StageTracker) -> None:
        self.settings = settings
        self.job = job
        self.tracker = tracker
        project = Storage(settings.render_storage).project(job.project_id)
        self.project: ProjectDir = project.for_run(job.id)
        self.options = RenderOptions.model_validate(job.options)
        self.runner = Runner(
            ffmpeg=find_ffmpeg(settings.ffmpeg_binary or None),
            on_progress=tracker.progress,
            should_cancel=tracker.should_cancel,
            log=tracker.log,
            threads=settings.x264_threads,
            lookahead=settings.x264_lookahead,
        )


class Claim(NamedTuple):
    job: Job
    attempt: int
    # The stage already ran to the end: a redelivery after success, so skip the work and let
    # the canvas go on.
    done: bool


def _begin(settings: Settings, job_id: str, stage: str, worker: str) -> Claim | None:
    """Claim the stage for this attempt, or None: do not run it (the job row says why)."""
    with session_scope(settings.db_url) as session:
        job = session.get(Job, job_id)
        if job is None:
            log.warning("job=%s stage=%s: no such job, dropping the task", job_id, stage)
            return None
        if job.cancel_requested and not JobStatus(job.status).finished:
            jobs.transition(
                session, job_id, JobStatus.CANCELLED, stage=stage, error="cancelled by request"
            )
            return None
        if JobStatus(job.status).finished:
            return None
        row = session.get(JobTask, (job_id, stage))
        if row is None:
            raise RuntimeError(f"job {job_id} has no stage {stage}")
        if row.status == "DONE":
            return Claim(job, row.attempts, done=True)
        if row.attempts >= settings.max_task_attempts:
            jobs.transition(
                session,
                job_id,
                JobStatus.FAILED,
                stage=stage,
                error=(
                    f"{stage}: started {row.attempts} times and its worker died each time; "
                    "giving up (see the worker logs)"
                ),
            )
            return None
        now = utcnow()
        row.attempts += 1
        row.status = "RUNNING"
        row.worker = worker
        row.started_at = now
        row.heartbeat_at = now
        jobs.transition(session, job_id, JobStatus.RUNNING, worker=worker)
        session.execute(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.status) == JobStatus.RUNNING)
            .values(stage=stage, worker=worker, heartbeat_at=now)
        )
        session.flush()
        session.refresh(job)
        return Claim(job, row.attempts, done=False)


def _finish_stage(settings: Settings, job_id: str, stage: str) -> None:
    with session_scope(settings.db_url) as session:
        session.execute(
            update(JobTask)
            .where(col(JobTask.job_id) == job_id, col(JobTask.name) == stage)
            .values(status="DONE", progress=1.0, finished_at=utcnow(), heartbeat_at=utcnow())
        )


def _end_job(settings: Settings, job_id: str, stage: str, status: JobStatus, error: str) -> None:
    with session_scope(settings.db_url) as session:
        session.execute(
            update(JobTask)
            .where(col(JobTask.job_id) == job_id, col(JobTask.name) == stage)
            .values(status=str(status), finished_at=utcnow())
        )
        jobs.transition(session, job_id, status, stage=stage, error=error)


def run_stage(task: Task, job_id: str, stage: str, body: Callable[[StageContext], None]) -> None:
    """The one wrapper every stage runs in: claim, run, report, and end the job on failure."""
    settings = get_settings()
    worker = str(task.request.hostname or "worker")
    claim = _begin(settings, job_id, stage, worker)
    if claim is None:
        raise Ignore()  # the job is over (or unknown): stop this branch of the canvas
    if claim.done:
        return

    def publish(name: str, fraction: float, overall: float) -> None:
        task.update_state(
            state="PROGRESS",
            meta={"jobId": job_id, "stage": name, "fraction": fraction, "progress": overall},
        )

    tracker = StageTracker(settings, job_id, stage, publish=publish)
    ctx = StageContext(settings, claim.job, tracker)
    started = time.monotonic()
    tracker.log(f"started on {worker} (attempt {claim.attempt})")
    try:
        body(ctx)
    except Cancelled:
        tracker.log("stopped: the job was cancelled or failed elsewhere")
        _end_job(settings, job_id, stage, JobStatus.CANCELLED, "cancelled by request")
        raise Ignore() from None
    except Exception as exc:
        message = _expected_failure(stage, exc, settings)
        if message is None:
            message = f"{stage}: internal error: {type(exc).__name__}: {exc}"
            log.exception("job=%s stage=%s crashed", job_id, stage)
        tracker.log(f"failed: {message}")
        _end_job(settings, job_id, stage, JobStatus.FAILED, message)
        raise StageFailed(message) from None
    tracker.flush()
    _finish_stage(settings, job_id, stage)
    tracker.log(f"done in {time.monotonic() - started:.2f} s")


def _expected_failure(stage: str, exc: Exception, settings: Settings) -> str | None:
    """The job row's error for a failure we can explain; None for a bug (an internal error)."""
    if isinstance(exc, PipelineError):
        return str(exc)
    if isinstance(exc, SoftTimeLimitExceeded):
        return f"{stage}: exceeded the time limit of {settings.task_time_limit} s"
    # The storage refused a file (full, read-only, a directory in the way): say which.
    # OSErrors without a file (sockets, pipes) are internal errors.
    if isinstance(exc, OSError) and (where := exc.filename2 or exc.filename) is not None:
        return f"{stage}: file system error on {where}: {exc.strerror or exc}"
    return None


# --- stage bodies -------------------------------------------------------------------------


def _validate(ctx: StageContext) -> None:
    plan = make_plan(ctx.project, ctx.options, ctx.runner.ffmpeg)
    write_plan(ctx.project, plan)
    weights = jobs.stage_weights(len(plan.scenes), [scene.frames for scene in plan.scenes])
    with session_scope(ctx.settings.db_url) as session:
        for name, weight in weights.items():
            session.execute(
                update(JobTask)
                .where(col(JobTask.job_id) == ctx.job.id, col(JobTask.name) == name)
                .values(weight=weight)
            )
    ctx.tracker.log(
        f"plan: {len(plan.scenes)} scenes, {plan.total_frames} frames at {plan.fps} fps, "
        f"{plan.width}x{plan.height}"
    )


def _audio_prep(ctx: StageContext) -> None:
    pipeline_stages.prepare_audio(ctx.project, read_plan(ctx.project), ctx.runner)


def _scene_build(index: int) -> Callable[[StageContext], None]:
    def body(ctx: StageContext) -> None:
        pipeline_stages.build_scene(ctx.project, read_plan(ctx.project), index, ctx.runner)

    return body


def _concat(ctx: StageContext) -> None:
    pipeline_stages.concat(ctx.project, read_plan(ctx.project), ctx.runner)


def _finalize(ctx: StageContext) -> None:
    if ctx.tracker.should_cancel():
        raise Cancelled("FINALIZE", "cancelled before the output was written")
    plan = read_plan(ctx.project)
    video = pipeline_stages.finalize(ctx.project, plan, ctx.job.output_name, ctx.runner)
    with session_scope(ctx.settings.db_url) as session:
        artifacts = [(video, "video")] + [
            (ctx.project.output / pipeline_stages.scene_output_name(scene.index), "scene")
            for scene in plan.scenes
        ]
        for path, kind in artifacts:
            if path.exists():
                session.add(
                    Artifact(
                        job_id=ctx.job.id,
                        project_id=ctx.job.project_id,
                        name=path.name,
                        kind=kind,
                        size=path.stat().st_size,
                        duration=probe(path).duration if kind == "video" else None,
                    )
                )
        succeeded = jobs.transition(
            session, ctx.job.id, JobStatus.SUCCEEDED, stage="FINALIZE", error=None
        )
    if succeeded:
        # Work files are kept for debugging a failure; a success has nothing left to debug.
        shutil.rmtree(ctx.project.work, ignore_errors=True)


# --- the tasks --------------------------------------------------------------------------


@app.task(bind=True, name="render.validate")
def validate(self: Task, job_id: str) -> None:
    run_stage(self, job_id, "VALIDATE", _validate)


@app.task(bind=True, name="render.audio_prep")
def audio_prep(self: Task, job_id: str) -> None:
    run_stage(self, job_id, "AUDIO_PREP", _audio_prep)


@app.task(bind=True, name="render.scene_build")
def scene_build(self: Task, job_id: str, index: int) -> None:
    run_stage(self, job_id, jobs.scene_stage(index), _scene_build(index))


@app.task(bind=True, name="render.concat")
def concat(self: Task, job_id: str) -> None:
    run_stage(self, job_id, "CONCAT", _concat)


@app.task(bind=True, name="render.finalize")
def finalize(self: Task, job_id: str) -> None:
    run_stage(self, job_id, "FINALIZE", _finalize)


STAGE_TASKS: dict[str, Any] = {
    "validate": validate,
    "audio_prep": audio_prep,
    "scene_build": scene_build,
    "concat": concat,
    "finalize": finalize,
}
