"""One job's Celery canvas, read off the stage registry: a chain of its steps, where a step of
per-scene runs is a chord whose body is the next step.

Today that is validate → audio_prep → chord(scene_build × n → concat) → finalize. Task ids are
derived from the job id and the stage label, so the API can revoke every task of a job without
having stored them, and a log line or Flower row names its job at a glance.
"""

from __future__ import annotations

from celery import chain, chord, group
from celery.canvas import Signature

from pipeline import registry
from tasks.app import app
from tasks.stages import TASKS


def task_id(job_id: str, label: str) -> str:
    return f"{job_id}.{label}"


def parse_task_id(value: str) -> tuple[str, str] | None:
    """'<job>.<label>' → (job id, label), or None for a task id that is not a stage's."""
    job_id, _, label = value.partition(".")
    return (job_id, label) if job_id and label else None


def build_canvas(job_id: str, scene_count: int) -> Signature:
    def sig(stage: registry.Stage, scene: int | None) -> Signature:
        args = (job_id,) if scene is None else (job_id, scene)
        return TASKS[stage.name].si(*args).set(task_id=task_id(job_id, stage.label(scene)))

    links: list[Signature] = []
    pending: list[Signature] | None = None  # a group waiting for its chord body
    for step in registry.steps(scene_count):
        signatures = [sig(stage, scene) for stage, scene in step]
        if len(step) == 1 and not step[0][0].per_scene:
            if pending is not None:
                links.append(chord(group(pending), signatures[0]))
                pending = None
            else:
                links.append(signatures[0])
        else:
            if pending is not None:  # two per-scene steps in a row: the first must finish
                links.append(group(pending))
            pending = signatures
    if pending is not None:
        links.append(group(pending))
    return chain(*links)


def enqueue_render(job_id: str, scene_count: int) -> None:
    """Send the job's chain to the broker. Raises if the broker cannot be reached."""
    build_canvas(job_id, scene_count).apply_async()


def revoke_job(job_id: str, scene_count: int) -> None:
    """Revoke every not-yet-started task of the job; running ones stop on their own.

    Running stages poll the job row and kill their FFmpeg within a second of a cancel, so no
    `terminate=True` (which would signal only the pool child and could orphan FFmpeg).
    """
    app.control.revoke([task_id(job_id, label) for label in registry.labels(scene_count)])
