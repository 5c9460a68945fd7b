"""Timeline arithmetic: scene lengths, shots and frame boundaries. Pure functions, no I/O.

All boundaries are computed exactly (fractions) and rounded to whole frames cumulatively, so the
frame counts add up to round(total seconds × fps) and no frame is dropped or doubled at a seam.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

SAMPLE_RATE = 48_000


def exact(value: float) -> Fraction:
    """A float as the decimal the user meant (2.5, 0.1), not its binary approximation."""
    return Fraction(value).limit_denominator(1_000_000)


def round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def merge_spans(spans: Iterable[tuple[float, float]], bridge: float) -> list[tuple[float, float]]:
    """Time spans in order of start, those overlapping or at most `bridge` apart made one."""
    merged: list[list[float]] = []
    for a, b in spans:
        if merged and a - merged[-1][1] <= bridge:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def scene_seconds(voiceover: float | None, duration: float | None) -> float | None:
    """The voiceover's length, else `duration`; with both, the longer; None when neither."""
    known = [d for d in (voiceover, duration) if d is not None]
    return max(known) if known else None


def shot_count(seconds: Fraction | float, visuals: int, max_shot: float) -> int:
    """k = max(n, ceil(D / maxShot)): every visual (image) at least once, no shot longer than
    maxShot."""
    return max(visuals, math.ceil(Fraction(seconds) / exact(max_shot)))


def min_shot_frames(min_shot: float, fps: int) -> int:
    return math.ceil(exact(min_shot) * fps)


def overlap_frames(xfade: float, fps: int) -> int:
    """Frames of a cross-fade; added to the outgoing shot so fades do not change scene length."""
    return round_half_up(exact(xfade) * fps)


def split_frames(frames: int, parts: int) -> tuple[int, ...]:
    """Split `frames` into `parts` lengths that differ by at most one and add up exactly."""
    bounds = [round_half_up(Fraction(frames * i, parts)) for i in range(parts + 1)]
    return tuple(b - a for a, b in itertools.pairwise(bounds))


def sample_at(frame: int, fps: int, rate: int = SAMPLE_RATE) -> int:
    """The audio sample where `frame` starts (exact at 48 kHz for 24/25/30/50/60 fps)."""
    return round_half_up(Fraction(frame * rate, fps))


@dataclass(frozen=True)
class SceneTiming:
    start_frame: int
    frames: int
    shot_frames: tuple[int, ...]
    lengthened: bool  # stretched so that no shot is shorter than minShot; audio gets padded

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.frames


def layout(
    durations: Sequence[float],
    visual_counts: Sequence[int],
    *,
    fps: int,
    min_shot: float,
    max_shot: float,
    whole: Sequence[bool] = (),
) -> tuple[SceneTiming, ...]:
    """Frame boundaries of every scene and shot. A scene marked `whole` (one with a video
    clip) has one shot per visual, however long or short: neither maxShot nor minShot applies.

    A scene whose shots would come out shorter than minShot (in whole frames) is lengthened to
    k·minShot, rounded up to whole frames, so its shots are never shorter than minShot.
    """
    if len(durations) != len(visual_counts):
        raise ValueError("one visual count per scene duration")
    min_frames = min_shot_frames(min_shot, fps)
    clock = Fraction(0)  # exact seconds at the start of the scene
    start = 0
    timings: list[SceneTiming] = []
    for index, (seconds, visuals) in enumerate(zip(durations, visual_counts, strict=True)):
        length = exact(seconds)
        one_each = index < len(whole) and whole[index]
        k = visuals if one_each else shot_count(length, visuals, max_shot)
        end = round_half_up((clock + length) * fps)
        # minShot is for pictures: a clip is as long as its scene says (a frame at least).
        shortest = k if one_each else k * min_frames
        lengthened = end - start < shortest
        if lengthened:
            end = start + shortest
            length = Fraction(end, fps) - clock
        timings.append(SceneTiming(start, end - start, split_frames(end - start, k), lengthened))
        clock += length
        start = end
    return tuple(timings)
