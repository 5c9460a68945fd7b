"""Transitions between scenes: their types, the rule that places them, and their xfade drawing.

A scene may name its transition into the next (`SceneSpec.transition`: a type and a duration).
A transition never shortens the timeline or moves the narration: the video keeps exactly the
frames the timeline gives each scene, and a transition of d frames is drawn *over* the cut
between scene k and k + 1, centred on it: its first d // 2 frames are scene k's last ones, its
other d - d // 2 are scene k + 1's first ones. Across the whole window scene k's picture is
drawn past its end (its last frame held) and scene k + 1's before its start (its first frame
held), and FFmpeg's `xfade` blends the two.

It is built as two clips of its own (`pipeline.units`: a transition's halves, each its own
x264 run like a chunk, so each opens on a keyframe and every join stays a stream copy): the
half before the cut is part of scene k's `scene_NN.mp4`, the half after it of scene k + 1's.
A scene's own clip is then its *body*: its frames less those its transitions draw over
(`ScenePlan.head`, `ScenePlan.tail`).

Pure: no I/O. `pipeline.scene` composes a half's graph from both scenes' drawings and `draw`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from pipeline import timeline
from pipeline.graph import Filter, Graph, Stream
from pipeline.problems import Problem

if TYPE_CHECKING:
    from pipeline.spec import ProjectSpec

# `cut` is no transition at all; every other is an xfade transition of the same name.
TransitionType = Literal[
    "cut",
    "fade",
    "fadeblack",
    "fadewhite",
    "dissolve",
    "wipeleft",
    "wiperight",
    "wipeup",
    "wipedown",
    "slideleft",
    "slideright",
    "slideup",
    "slidedown",
    "circleopen",
    "circleclose",
    "zoomin",
]
TYPES: tuple[str, ...] = get_args(TransitionType)
CUT = "cut"
# The longest a transition may be asked for, seconds (its neighbours bound it further).
MAX_SECONDS = 10.0
DEFAULT_SECONDS = 0.5
# Fewer frames than this would be a cut with a frame of one of the pictures in it.
MIN_FRAMES = 2
# The FFmpeg filters a transition draws with (besides the scenes' own).
FILTERS = ("tpad", "xfade", "format", "trim", "setpts")
_YUV420P = Filter.of("format", "yuv420p")


@dataclass(frozen=True)
class TransitionPlan:
    """A transition as the plan renders it: its xfade type and its length in frames."""

    type: str
    frames: int

    @property
    def before(self) -> int:
        """Its frames before the cut: the outgoing scene's last ones."""
        return self.frames // 2

    @property
    def after(self) -> int:
        """Its frames after the cut: the incoming scene's first ones."""
        return self.frames - self.before


def frames_of(seconds: float, fps: int) -> int:
    """A transition's length in whole frames (half up)."""
    return timeline.round_half_up(timeline.exact(seconds) * fps)


def planned(type_: str, seconds: float, fps: int) -> TransitionPlan | None:
    """The transition a spec's (type, duration) renders, or None for a cut."""
    return None if type_ == CUT else TransitionPlan(type_, frames_of(seconds, fps))


def check(spec: ProjectSpec, fps: int, frames: Sequence[int | None]) -> Problem | None:
    """The first transition its neighbours cannot give room to, or None.

    `frames` is each scene's length in frames (None: not known yet, as for speech not made
    yet; VALIDATE checks again with every length known). A transition may last at most half
    of either scene it joins, and at least MIN_FRAMES; none leads out of the last scene.
    """
    last = len(spec.scenes) - 1
    for index, scene in enumerate(spec.scenes):
        wanted = scene.transition
        if wanted is None or wanted.type == CUT:
            continue
        if index == last:
            return last_scene(index)
        field = f"scenes[{index}].transition.duration"
        count = frames_of(wanted.duration, fps)
        asked = f"{wanted.duration:g} s ({count} frame{'s' if count != 1 else ''} at {fps} fps)"
        if count < MIN_FRAMES:
            return Problem(
                "validation_error",
                f"{field}: {asked} is shorter than a transition can be ({MIN_FRAMES} frames)",
                field,
            )
        for neighbour in (index, index + 1):
            length = frames[neighbour]
            if length is not None and 2 * count > length:
                return Problem(
                    "validation_error",
                    f"{field}: {asked} is longer than half of scene {neighbour} ({length} "
                    "frames), the most a transition may draw over one of the scenes it joins",
                    field,
                )
    return None


LAST_SCENE = "the last scene has no next scene to make a transition into (only 'cut')"


def last_scene(index: int) -> Problem:
    field = f"scenes[{index}].transition"
    return Problem("validation_error", f"{field}: {LAST_SCENE}", field)


def draw(
    graph: Graph,
    outgoing: Stream,
    incoming: Stream,
    transition: TransitionPlan,
    fps: int,
    window: tuple[int, int],
) -> Stream:
    """Frames [first, end) of the transition's window, drawn from `outgoing` (the outgoing
    scene's last `before` frames) and `incoming` (the incoming scene's first `after`).

    Each side is padded to the whole window with its edge frame (the outgoing scene's last
    held after its end, the incoming's first held before its start), then xfade blends them
    over every frame of it. xfade works in 4:4:4, so the blend is brought back to 4:2:0.
    """
    before, after = transition.before, transition.after
    out = graph.apply(Filter.of("tpad", stop=after, stop_mode="clone"), outgoing)
    into = graph.apply(Filter.of("tpad", start=before, start_mode="clone"), incoming)
    blend = Filter.of(
        "xfade",
        transition=transition.type,
        duration=f"{transition.frames / fps:.6f}",
        offset=0,
    )
    picture = graph.chain(graph.apply(blend, out, into), (_YUV420P,))
    first, end = window
    if (first, end) == (0, transition.frames):
        return picture
    return graph.chain(
        picture,
        (
            Filter.of("trim", start_frame=first, end_frame=end),
            Filter.of("setpts", "PTS-STARTPTS"),
        ),
    )
