"""Work units smaller than a scene: a long scene's clip is encoded as chunks of whole GOPs.

Each chunk is its own x264 run (so it opens on a keyframe) with the plan's encoder, and draws
exactly its frames of the scene's graph (`pipeline.scene`), so the chunks of every scene join
by stream copy into the video an unchunked render draws. A chunk boundary never falls inside a
cross-fade: both shots of a fade are drawn by one chunk.

How many chunks a scene has follows from the plan alone (its frames, shots and
`Plan.chunk_frames`), never from how many workers are up: the same job always has the same
units, and the clip cache can key on them.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

from pipeline.plan import Plan, ScenePlan
from pipeline.timeline import round_half_up

Span = tuple[int, int]  # frames [first, end) of a scene, from the scene's first frame


def chunk_count(plan: Plan, scene: ScenePlan) -> int:
    """The units the scene is built in: round(frames / chunk_frames), at least one, or fewer
    where boundaries moved out of one cross-fade meet (chunks shorter than a fade)."""
    return len(chunk_spans(plan, scene))


def chunk_spans(plan: Plan, scene: ScenePlan) -> tuple[Span, ...]:
    """The frame ranges of the scene's chunks, in order; one span (the whole scene) when the
    scene is short or chunking is off (`chunk_frames` 0).

    The scene is split evenly, and a boundary that would cut a cross-fade moves to the nearer
    end of it.
    """
    count = _even_count(plan, scene)
    if count == 1:
        return ((0, scene.frames),)
    fades = _fades(plan, scene)
    bounds = {0, scene.frames}
    for k in range(1, count):
        bounds.add(_outside(round_half_up(Fraction(k * scene.frames, count)), fades))
    return tuple(itertools.pairwise(sorted(bounds)))


def _even_count(plan: Plan, scene: ScenePlan) -> int:
    if plan.chunk_frames <= 0:
        return 1
    return max(1, round_half_up(Fraction(scene.frames, plan.chunk_frames)))


def _fades(plan: Plan, scene: ScenePlan) -> list[Span]:
    """Where the scene's cross-fades are: frames [start, end) shared by two shots."""
    fade = plan.xfade_frames
    starts = itertools.accumulate(shot.frames for shot in scene.shots[:-1])
    return [(start, start + fade) for start in starts] if fade > 0 else []


def _outside(frame: int, fades: list[Span]) -> int:
    for start, end in fades:
        if start < frame < end:
            return start if frame - start <= end - frame else end
    return frame
