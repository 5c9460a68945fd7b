"""One job's Celery canvas, read off the stage registry: a chain of its steps, where a step of
per-scene runs is a chord whose body is the next step.

A job is sent in two parts. At submission: chord(speech × spoken scenes → validate), or
validate alone when no scene is spoken (a chord over no tasks is never made). VALIDATE lays out
the timeline, which decides how many units each scene's build is (a long scene is built in chunks,
`pipeline.chunks`), so its task sends the rest once the plan exists: audio_prep →
chord(scene_build × units → concat) → finalize. Task ids are derived from the job id and the
stage label, so a log line or Flower row names its job at a glance and the API can revoke a
job's tasks from its stage rows.
"""

from __future__ import annotations

from collections.abc import Iterable

from celery import chain, chord, group
from celery.canvas import Signature

from pipeline import registry
from pipeline.plan import Plan
from pipeline.units import Unit
from tasks.app import BATCH_QUEUE, QUEUE, app
from tasks.models import Job


def task_id(job_id: str, label: str) -> str:
    return f"{job_id}.{label}"


def parse_task_id(value: str) -> tuple[str, str] | None:
    """'<job>.<label>' → (job id, label), or None for a task id that is not a stage's."""
    job_id, _, label = value.partition(".")
    return (job_id, label) if job_id and label else None


def task_name(stage: registry.Stage) -> str:
    return f"render.{stage.name.lower()}"


def queue_of(job: Job) -> str:
    """The queue a job's tasks go to: a batch's jobs wait behind single renders (tasks/app.py
    makes every worker take from QUEUE first)."""
    return BATCH_QUEUE if job.batch_id is not None else QUEUE


def _signature(job_id: str, stage: registry.Stage, unit: Unit, queue: str) -> Signature:
    """The task of one unit: its label is its argument (a stage that runs once has none) and
    the rest of its task id."""
    label = stage.label(unit)
    args = (job_id,) if unit.scene is None else (job_id, label)
    return app.signature(
        task_name(stage), args=args, immutable=True, task_id=task_id(job_id, label), queue=queue
    )


def build_canvas(
    job_id: str, outline: registry.Outline, plan: Plan | None = None, queue: str = QUEUE
) -> Signature:
    """The job's steps up to the one that lays out the timeline; with its `plan`, the rest;
    every task on `queue`."""
    links: list[Signature] = []
    pending: list[Signature] | None = None  # a group waiting for its chord body
    for step in registry.steps(outline, plan):
        signatures = [_signature(job_id, stage, unit, queue) for stage, unit in step]
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
    return links[0] if len(links) == 1 else chain(*links)


def enqueue_render(job_id: str, outline: registry.Outline) -> None:
    """Send the job's first part to the broker. Raises if the broker cannot be reached."""
    build_canvas(job_id, outline).apply_async()


def enqueue_batch_render(job_id: str, outline: registry.Outline) -> None:
    """Send a batch job's first part to the batch queue."""
    build_canvas(job_id, outline, queue=BATCH_QUEUE).apply_async()


def enqueue_rest(job_id: str, outline: registry.Outline, plan: Plan, queue: str = QUEUE) -> None:
    """Send the steps after the timeline's layout, with the units its `plan` decides."""
    build_canvas(job_id, outline, plan, queue).apply_async()


def revoke_job(job_id: str, labels: Iterable[str]) -> None:
    """Revoke every not-yet-started task of the job (its stage rows' `labels`); running ones
    stop on their own.

    Running stages poll the job row and kill their FFmpeg within a second of a cancel, so no
    `terminate=True` (which would signal only the pool child and could orphan FFmpeg).
    """
    app.control.revoke([task_id(job_id, label) for label in labels])
