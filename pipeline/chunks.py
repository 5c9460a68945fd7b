"""Work units smaller than a scene: a long scene's clip is encoded as chunks of whole GOPs.

Each chunk is its own x264 run (so it opens on a keyframe) with the plan's encoder, and draws
exactly its frames of the scene's graph (`pipeline.scene`), so the chunks of every scene join
by stream copy into the video an unchunked render draws. A boundary between two chunks never
falls inside a cross-fade: both shots of a fade are drawn by one chunk. A scene with transitions
(`pipeline.transitions`) is chunked over its body, the frames its transitions leave it; an edge
of the body may fall inside a fade, which its chunk then draws whole and trims.

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
    """The frame ranges of the scene's chunks, in order; one span (the scene's body: the
    whole scene, less what its transitions draw over) when the scene is short or chunking is
    off (`chunk_frames` 0).

    The body is split evenly, and a boundary that would cut a cross-fade moves to the nearer
    end of it (staying inside the body).
    """
    first, end = scene.body
    count = _even_count(plan, end - first)
    if count == 1:
        return ((first, end),)
    cross_fades = fades(plan, scene)
    bounds = {first, end}
    for k in range(1, count):
        bound = _outside(first + round_half_up(Fraction(k * (end - first), count)), cross_fades)
        if first < bound < end:
            bounds.add(bound)
    return tuple(itertools.pairwise(sorted(bounds)))


def _even_count(plan: Plan, frames: int) -> int:
    if plan.chunk_frames <= 0:
        return 1
    return max(1, round_half_up(Fraction(frames, plan.chunk_frames)))


def fades(plan: Plan, scene: ScenePlan) -> list[Span]:
    """Where the scene's cross-fades are: frames [start, end) shared by two shots."""
    fade = plan.xfade_frames
    starts = itertools.accumulate(shot.frames for shot in scene.shots[:-1])
    return [(start, start + fade) for start in starts] if fade > 0 else []


def _outside(frame: int, fades: list[Span]) -> int:
    for start, end in fades:
        if start < frame < end:
            return start if frame - start <= end - frame else end
    return frame
