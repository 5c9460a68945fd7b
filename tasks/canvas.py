"""Builds and sends one job's Celery canvas. (Filled in by the orchestration work.)"""

from __future__ import annotations


def enqueue_render(job_id: str, scene_count: int) -> None:
    """Send the job's chain to the broker. Raises if the broker cannot be reached."""
    raise NotImplementedError("orchestration lands in issue 5")
