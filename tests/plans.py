"""Hand-built plans for tests that need a laid-out timeline but no media.

Build them by keyword (`still`, `shot`, `scene_plan`, `plan`): every field has a default
here, so a field added to the plan later breaks no test that does not care about it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any

from pipeline.encoder import Encoder
from pipeline.motion import STILL, Move
from pipeline.plan import Plan, SceneInputs, ScenePlan, ShotPlan
from pipeline.visuals import Still


def still(
    name: str = "a.jpg",
    width: int = 64,
    height: int = 64,
    orientation: int = 1,
    sha256: str | None = None,
) -> Still:
    """A still in input/images/; its digest, unless given, made from its name."""
    path = f"input/images/{name}"
    digest = sha256 if sha256 is not None else hashlib.sha256(path.encode()).hexdigest()
    return Still(path=path, width=width, height=height, orientation=orientation, sha256=digest)


def shot(visual: Still, frames: int, overlap: int = 0, move: Move = STILL) -> ShotPlan:
    """A shot of `visual`, `frames` long on the timeline, `overlap` more into the next fade."""
    return ShotPlan(visual.kind, visual.sha256, frames, overlap, move)


def scene_plan(
    *,
    visuals: Sequence[Still] | None = None,
    shots: Sequence[ShotPlan] | None = None,
    frames: int | None = None,
    **fields: Any,
) -> ScenePlan:
    """A scene: by default one still (a.jpg) held for `frames` (default 30), at index 0 and
    frame 0, cover, no motion; `shots` default to one shot of the first visual, and `frames`
    to the shots' frames. Any other ScenePlan field by keyword."""
    shown = tuple(visuals) if visuals is not None else (still(),)
    if shots is None:
        shots = (shot(shown[0], frames if frames is not None else 30),)
    defaults: dict[str, Any] = {
        "index": 0,
        "id": None,
        "start_frame": 0,
        "voiceover": None,
        "voiceover_seconds": None,
        "fit": "cover",
        "motion": "none",
        "lengthened": False,
    }
    return ScenePlan(
        frames=frames if frames is not None else sum(s.frames for s in shots),
        visuals=shown,
        shots=tuple(shots),
        **(defaults | fields),
    )


def plan(*scenes: ScenePlan, **fields: Any) -> Plan:
    """The scenes back to back (numbered from 0 and starting where the one before ends), at
    30 fps, 64x64, default encoder, no cross-fade, 48 kHz. Any other Plan field by keyword."""
    laid, start = [], 0
    for index, scene in enumerate(scenes):
        laid.append(dataclasses.replace(scene, index=index, start_frame=start))
        start += scene.frames
    defaults: dict[str, Any] = {
        "fps": 30,
        "width": 64,
        "height": 64,
        "encoder": Encoder(),
        "xfade_frames": 0,
        "sample_rate": 48000,
    }
    return Plan(scenes=tuple(laid), **(defaults | fields))


def inputs(visuals: Sequence[Still], seconds: float, voiceover: str | None = None) -> SceneInputs:
    """What VALIDATE would have learnt of a scene's files, for build_plan."""
    voice_seconds = seconds if voiceover is not None else None
    return SceneInputs(tuple(visuals), voiceover, voice_seconds, seconds)


def still_plan(*frames: int, chunk_frames: int = 75) -> Plan:
    """Scenes of one still shot each, `frames` long, at 30 fps; chunks of about
    `chunk_frames` (0: none)."""
    return plan(*(scene_plan(frames=count) for count in frames), chunk_frames=chunk_frames)


def fading_plan(*scenes: tuple[int, ...], chunk_frames: int = 0, fade: int = 0) -> Plan:
    """Still scenes of the given shot frames, each shot fading into the next over `fade`."""
    image = still("a.jpg", 640, 480)
    built = []
    for shot_frames in scenes:
        last = len(shot_frames) - 1
        shots = tuple(
            shot(image, frames, fade if n < last else 0, STILL)
            for n, frames in enumerate(shot_frames)
        )
        built.append(scene_plan(visuals=(image,), shots=shots))
    return plan(*built, width=320, height=180, xfade_frames=fade, chunk_frames=chunk_frames)
