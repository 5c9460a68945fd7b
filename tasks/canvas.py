"""One job's Celery canvas: validate → audio_prep → chord(scene_build × n → concat) → finalize.

Task ids are derived from the job id, so the API can revoke every task of a job without
having stored them, and a log line or Flower row names its job at a glance.
"""

from __future__ import annotations

from celery import chain, chord, group
from celery.canvas import Signature

from tasks.app import app
from tasks.jobs import stage_names
from tasks.stages import audio_prep, concat, finalize, scene_build, validate


def task_id(job_id: str, stage: str) -> str:
    return f"{job_id}.{stage}"


def build_canvas(job_id: str, scene_count: int) -> Signature:
    def sig(task: Signature, stage: str) -> Signature:
        return task.set(task_id=task_id(job_id, stage))

    scenes = group(sig(scene_build.si(job_id, i), f"SCENE_BUILD[{i}]") for i in range(scene_count))
    return chain(
        sig(validate.si(job_id), "VALIDATE"),
        sig(audio_prep.si(job_id), "AUDIO_PREP"),
        chord(scenes, sig(concat.si(job_id), "CONCAT")),
        sig(finalize.si(job_id), "FINALIZE"),
    )


def enqueue_render(job_id: str, scene_count: int) -> None:
    """Send the job's chain to the broker. Raises if the broker cannot be reached."""
    build_canvas(job_id, scene_count).apply_async()


def revoke_job(job_id: str, scene_count: int) -> None:
    """Revoke every not-yet-started task of the job; running ones stop on their own.

    Running stages poll the job row and kill their FFmpeg within a second of a cancel, so no
    `terminate=True` (which would signal only the pool child and could orphan FFmpeg).
    """
    app.control.revoke([task_id(job_id, stage) for stage in stage_names(scene_count)])
