"""Hand-built plans for tests that need a laid-out timeline but no media."""

from __future__ import annotations

from pipeline.encoder import Encoder
from pipeline.motion import STILL
from pipeline.plan import ImageInfo, Plan, ScenePlan, ShotPlan


def still_plan(*frames: int, chunk_frames: int = 75) -> Plan:
    """Scenes of one still shot each, `frames` long, at 30 fps; chunks of about
    `chunk_frames` (0: none)."""
    image = ImageInfo("input/images/a.jpg", 64, 64)
    scenes, start = [], 0
    for index, count in enumerate(frames):
        shot = ShotPlan(image.path, count, 0, STILL)
        scenes.append(
            ScenePlan(
                index, None, start, count, (image,), (shot,), None, None, "cover", "none", False
            )
        )
        start += count
    return Plan(30, 64, 64, Encoder(), 0, 48000, tuple(scenes), chunk_frames=chunk_frames)
