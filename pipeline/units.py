"""Units of work: what one run of a stage is about, and what follows from it, written down once.

A `Unit` is a small value: its kind, and the scene and chunk it is of. Everything else follows
from its kind (`Kind`): its label after the stage's name (`NAME`, `NAME[n]`, `NAME[n/c]`), its
frames (its share of its stage's progress weight), and, for a unit that makes one of the clips
the video is joined from, that clip's file, its cache key's inputs, the scenes whose prepared
stills it draws from and its place in the join. The registry, the canvas, concat, progress and
the API's per-scene view read these from here; none re-spells them.

- `ONCE`: the run of a stage that runs once per job.
- `scene_unit(n)`: scene n's run: SPEECH for a spoken scene, or the clip of a scene built in
  one piece (`work/scenes/scene_NNN.mp4`).
- `chunk_unit(n, c)`: chunk c of the clip of a scene built in chunks (`pipeline.chunks`,
  `work/scenes/scene_NNN_partCCC.mp4`).
- `transition_unit(k, half)`: a half of the transition from scene k into k + 1
  (`pipeline.transitions`): half 0, `NAME[k~]`, its frames before the cut (part of scene k's
  clip, `work/scenes/transition_KKK_out.mp4`); half 1, `NAME[~k+1]`, those after it (part of
  scene k + 1's, `transition_KKK_in.mp4`). Both are drawn from both scenes.

The plan's *segments* are the clips the video is joined from, in order: every registered
kind's segments of the plan, sorted by their place. A new kind of clip (a transition between
scenes k and k+1, say: its place after scene k's clips, drawing from both scenes) is one more
`Kind` in `KINDS`: the stage that builds the segments, the canvas, the weights and the join
pick it up from there.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.cache import VERSION, clip_key
from pipeline.chunks import Span, chunk_spans
from pipeline.plan import Plan
from pipeline.project import ProjectDir
from pipeline.scene import scene_args, transition_args
from pipeline.transitions import TransitionPlan

Place = tuple[int, int, int]  # (scene, slot, chunk): a slot 1 sits between scene and scene + 1


@dataclass(frozen=True)
class Unit:
    """One run of a stage: a `kind` (a name in `KINDS`) and the scene and chunk it is of."""

    kind: str = "once"
    scene: int | None = None
    chunk: int | None = None

    @property
    def made(self) -> Kind:
        """The unit's kind, where everything that follows from it is written."""
        try:
            return KINDS[self.kind]
        except KeyError:
            raise ValueError(f"no unit kind {self.kind!r}") from None

    def label(self, stage: str) -> str:
        """The stage's label for this run: `NAME`, `NAME[n]`, `NAME[n/c]`."""
        return stage + self.made.suffix(self)

    def frames(self, plan: Plan) -> int:
        """The frames this run is about: its share of its stage's weight (0 for a scene the
        plan does not have: a render of part of the timeline)."""
        return self.made.frames(plan, self)

    def piece(self, plan: Plan) -> Span | None:
        """The frames of its scene a clip unit draws, or None for the whole scene."""
        return self.made.piece(plan, self)

    def span(self, plan: Plan) -> Span:
        """The frames of its scene a clip unit holds, from the scene's first frame."""
        return self.piece(plan) or (0, plan.scenes[self.scene_index].frames)

    def clip(self, project: ProjectDir) -> Path:
        """The clip file this unit makes."""
        return self.made.clip(project, self)

    def key(self, plan: Plan, ffmpeg_version: str) -> str:
        """The render cache's key for this unit's clip."""
        return self.made.key(plan, self, ffmpeg_version)

    def draws(self) -> tuple[int, ...]:
        """The scenes whose prepared stills this unit's clip is drawn from."""
        return self.made.draws(self)

    def part_of(self) -> int | None:
        """The scene whose clip (scene_NN.mp4, the API's per-scene view) this unit is part
        of; None for a unit of no one scene."""
        return self.made.part_of(self)

    def place(self) -> Place:
        """Where the unit comes among its stage's runs, and its clip in the join."""
        return self.made.place(self)

    def args(
        self,
        plan: Plan,
        prepared: Mapping[int, Sequence[Path]],
        out: Path,
        work: Path,
        root: Path | None = None,
    ) -> list[str]:
        """The FFmpeg command encoding this unit's clip into `out`, from the prepared visuals
        of the scenes it draws from (`prepared`, by scene index) and the files read where they
        are (video clips, under the project's `root`)."""
        return self.made.args(plan, self, prepared, out, work, root)

    def describe(self) -> str:
        """What its clip is, for an error: 'the clip', 'the transition into scene 3'."""
        return self.made.describe(self)

    @property
    def scene_index(self) -> int:
        if self.scene is None:
            raise ValueError("a per-scene stage ran without a scene")
        return self.scene


class Kind:
    """A kind of unit: how its label reads, what it weighs, what clip it makes and from what.

    `segment` kinds make clips the video is joined from; the stage that builds the plan's
    segments (`Stage.per_segment`) runs units of them.
    """

    name = ""
    segment = False

    def suffix(self, unit: Unit) -> str:
        raise NotImplementedError

    def parse(self, inside: str | None) -> Unit | None:
        """A label's text between its brackets (None: no brackets) as a unit of this kind,
        or None when it is not one."""
        raise NotImplementedError

    def segments(self, plan: Plan) -> list[Unit]:
        """The plan's clips of this kind (in any order: `segments` sorts them by place)."""
        return []

    def frames(self, plan: Plan, unit: Unit) -> int:
        return 1

    def piece(self, plan: Plan, unit: Unit) -> Span | None:
        return None

    def clip(self, project: ProjectDir, unit: Unit) -> Path:
        raise ValueError(f"a {self.name} unit makes no clip")

    def key(self, plan: Plan, unit: Unit, ffmpeg_version: str) -> str:
        raise ValueError(f"a {self.name} unit makes no clip")

    def draws(self, unit: Unit) -> tuple[int, ...]:
        return ()

    def part_of(self, unit: Unit) -> int | None:
        return unit.scene

    def place(self, unit: Unit) -> Place:
        return (-1, 0, 0)

    def args(
        self,
        plan: Plan,
        unit: Unit,
        prepared: Mapping[int, Sequence[Path]],
        out: Path,
        work: Path,
        root: Path | None = None,
    ) -> list[str]:
        raise ValueError(f"a {self.name} unit makes no clip")

    def describe(self, unit: Unit) -> str:
        return "the clip"


class Once(Kind):
    name = "once"

    def suffix(self, unit: Unit) -> str:
        return ""

    def parse(self, inside: str | None) -> Unit | None:
        return ONCE if inside is None else None


class _OwnFrames(Kind):
    """A kind whose clip is frames of its own scene (`piece`: which), drawn by that scene's
    graph alone."""

    def args(
        self,
        plan: Plan,
        unit: Unit,
        prepared: Mapping[int, Sequence[Path]],
        out: Path,
        work: Path,
        root: Path | None = None,
    ) -> list[str]:
        scene = plan.scenes[unit.scene_index]
        span = self.piece(plan, unit)
        return scene_args(plan, scene, prepared[scene.index], out, span=span, work=work, root=root)


class SceneClip(_OwnFrames):
    """A scene's run; as a clip, the whole scene's, for a scene built in one piece."""

    name = "scene"
    segment = True
    _TEXT = re.compile(r"\d+")

    def suffix(self, unit: Unit) -> str:
        return f"[{unit.scene_index}]"

    def parse(self, inside: str | None) -> Unit | None:
        if inside is None or not self._TEXT.fullmatch(inside):
            return None
        return scene_unit(int(inside))

    def segments(self, plan: Plan) -> list[Unit]:
        return [
            scene_unit(scene.index) for scene in plan.scenes if len(chunk_spans(plan, scene)) == 1
        ]

    def frames(self, plan: Plan, unit: Unit) -> int:
        index = unit.scene_index
        if index >= len(plan.scenes):
            return 0
        first, end = self._body(plan, unit) or (0, plan.scenes[index].frames)
        return end - first

    def piece(self, plan: Plan, unit: Unit) -> Span | None:
        return self._body(plan, unit)

    def clip(self, project: ProjectDir, unit: Unit) -> Path:
        return project.work / "scenes" / f"scene_{unit.scene_index:03d}.mp4"

    def key(self, plan: Plan, unit: Unit, ffmpeg_version: str) -> str:
        scene = plan.scenes[unit.scene_index]
        return clip_key(plan, scene, ffmpeg_version, self._body(plan, unit))

    @staticmethod
    def _body(plan: Plan, unit: Unit) -> Span | None:
        """The frames of a scene built in one piece its clip holds, when its transitions take
        some (None: all of them)."""
        scene = plan.scenes[unit.scene_index]
        return None if scene.body == (0, scene.frames) else scene.body

    def draws(self, unit: Unit) -> tuple[int, ...]:
        return (unit.scene_index,)

    def place(self, unit: Unit) -> Place:
        return (unit.scene_index, 0, 0)


class Chunk(_OwnFrames):
    """Chunk c of the clip of a scene built in chunks: whole GOPs, its own x264 run."""

    name = "chunk"
    segment = True
    _TEXT = re.compile(r"(\d+)/(\d+)")

    def suffix(self, unit: Unit) -> str:
        return f"[{unit.scene_index}/{self._chunk(unit)}]"

    def parse(self, inside: str | None) -> Unit | None:
        found = self._TEXT.fullmatch(inside) if inside is not None else None
        return chunk_unit(int(found[1]), int(found[2])) if found else None

    def segments(self, plan: Plan) -> list[Unit]:
        found = []
        for scene in plan.scenes:
            spans = chunk_spans(plan, scene)
            if len(spans) > 1:
                found += [chunk_unit(scene.index, c) for c in range(len(spans))]
        return found

    def frames(self, plan: Plan, unit: Unit) -> int:
        first, end = self._span(plan, unit)
        return end - first

    def piece(self, plan: Plan, unit: Unit) -> Span | None:
        return self._span(plan, unit)

    def clip(self, project: ProjectDir, unit: Unit) -> Path:
        name = f"scene_{unit.scene_index:03d}_part{self._chunk(unit):03d}.mp4"
        return project.work / "scenes" / name

    def key(self, plan: Plan, unit: Unit, ffmpeg_version: str) -> str:
        scene = plan.scenes[unit.scene_index]
        return clip_key(plan, scene, ffmpeg_version, self._span(plan, unit))

    def draws(self, unit: Unit) -> tuple[int, ...]:
        return (unit.scene_index,)

    def place(self, unit: Unit) -> Place:
        return (unit.scene_index, 0, self._chunk(unit))

    def _span(self, plan: Plan, unit: Unit) -> Span:
        return chunk_spans(plan, plan.scenes[unit.scene_index])[self._chunk(unit)]

    @staticmethod
    def _chunk(unit: Unit) -> int:
        if unit.chunk is None:
            raise ValueError(f"a chunk of scene {unit.scene} without its number")
        return unit.chunk


class TransitionHalf(Kind):
    """A half of the transition from scene k into k + 1: its frames before the cut (half 0,
    part of scene k's clip) or after it (half 1, part of scene k + 1's). Each is its own x264
    run, so each opens on a keyframe and joins by stream copy, and a scene's `scene_NN.mp4`
    is its halves and its body, joined."""

    name = "transition"
    segment = True
    _OUT = re.compile(r"(\d+)~")
    _IN = re.compile(r"~(\d+)")
    _SIDES = ("out", "in")

    def suffix(self, unit: Unit) -> str:
        index = unit.scene_index
        return f"[{index}~]" if self._half(unit) == 0 else f"[~{index + 1}]"

    def parse(self, inside: str | None) -> Unit | None:
        if inside is None:
            return None
        if found := self._OUT.fullmatch(inside):
            return transition_unit(int(found[1]), 0)
        if (found := self._IN.fullmatch(inside)) and int(found[1]) > 0:
            return transition_unit(int(found[1]) - 1, 1)
        return None

    def segments(self, plan: Plan) -> list[Unit]:
        return [
            transition_unit(scene.index, half)
            for scene in plan.scenes[:-1]
            if scene.transition is not None
            for half in (0, 1)
        ]

    def frames(self, plan: Plan, unit: Unit) -> int:
        first, end = self._window(plan, unit)
        return end - first

    def piece(self, plan: Plan, unit: Unit) -> Span | None:
        transition = self._transition(plan, unit)
        if self._half(unit) == 0:
            frames = plan.scenes[unit.scene_index].frames
            return (frames - transition.before, frames)
        return (0, transition.after)

    def clip(self, project: ProjectDir, unit: Unit) -> Path:
        side = self._SIDES[self._half(unit)]
        return project.work / "scenes" / f"transition_{unit.scene_index:03d}_{side}.mp4"

    def key(self, plan: Plan, unit: Unit, ffmpeg_version: str) -> str:
        """Keyed by both sides' frames it draws (each scene's own key for those frames: its
        picture, the video's, the encoder, FFmpeg), the transition and the half."""
        transition = self._transition(plan, unit)
        outgoing, incoming = plan.scenes[unit.scene_index], plan.scenes[unit.scene_index + 1]
        document = {
            "version": VERSION,
            "kind": "transition",
            "transition": {"type": transition.type, "frames": transition.frames},
            "window": list(self._window(plan, unit)),
            "out": clip_key(
                plan,
                outgoing,
                ffmpeg_version,
                (outgoing.frames - transition.before, outgoing.frames),
            ),
            "in": clip_key(plan, incoming, ffmpeg_version, (0, transition.after)),
        }
        text = json.dumps(document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def draws(self, unit: Unit) -> tuple[int, ...]:
        return (unit.scene_index, unit.scene_index + 1)

    def part_of(self, unit: Unit) -> int | None:
        return unit.scene_index + self._half(unit)

    def place(self, unit: Unit) -> Place:
        return (unit.scene_index, 1, self._half(unit))

    def args(
        self,
        plan: Plan,
        unit: Unit,
        prepared: Mapping[int, Sequence[Path]],
        out: Path,
        work: Path,
        root: Path | None = None,
    ) -> list[str]:
        window = self._window(plan, unit)
        return transition_args(plan, unit.scene_index, window, prepared, out, work, root)

    def describe(self, unit: Unit) -> str:
        index = unit.scene_index
        side = "before" if self._half(unit) == 0 else "after"
        return f"the transition from scene {index} into scene {index + 1} ({side} the cut)"

    def _window(self, plan: Plan, unit: Unit) -> Span:
        """The half's frames of the transition's window (from its first frame)."""
        transition = self._transition(plan, unit)
        if self._half(unit) == 0:
            return (0, transition.before)
        return (transition.before, transition.frames)

    @staticmethod
    def _transition(plan: Plan, unit: Unit) -> TransitionPlan:
        transition = plan.scenes[unit.scene_index].transition
        if transition is None:
            raise ValueError(f"scene {unit.scene_index} has no transition into the next")
        return transition

    @staticmethod
    def _half(unit: Unit) -> int:
        if unit.chunk is None or unit.chunk not in (0, 1):
            raise ValueError(f"a transition out of scene {unit.scene} without its half")
        return unit.chunk


# Every kind of unit, by name: a label is parsed by each in turn, a plan's segments are theirs.
KINDS: dict[str, Kind] = {
    kind.name: kind for kind in (Once(), SceneClip(), Chunk(), TransitionHalf())
}
ONCE = Unit("once")


def scene_unit(index: int) -> Unit:
    """Scene `index`'s run (`NAME[n]`)."""
    return Unit("scene", index)


def chunk_unit(index: int, chunk: int) -> Unit:
    """Chunk `chunk` of scene `index`'s clip (`NAME[n/c]`)."""
    return Unit("chunk", index, chunk)


def transition_unit(index: int, half: int) -> Unit:
    """Half `half` (0: before the cut, 1: after it) of the transition from scene `index` into
    the next (`NAME[k~]`, `NAME[~k+1]`)."""
    return Unit("transition", index, half)


def parse(inside: str | None) -> Unit | None:
    """A label's text between its brackets (None: none) as a unit of whichever kind reads it."""
    for kind in KINDS.values():
        if (unit := kind.parse(inside)) is not None:
            return unit
    return None


def segments(plan: Plan) -> list[Unit]:
    """The clips the video is joined from, in order: each scene's clip or chunks, scene by
    scene (and whatever other kinds place between them)."""
    found = [unit for kind in KINDS.values() for unit in kind.segments(plan)]
    return sorted(found, key=Unit.place)


def segments_of(plan: Plan, index: int) -> list[Unit]:
    """Scene `index`'s clip in order: its one clip, or its chunks."""
    return [unit for unit in segments(plan) if unit.part_of() == index]
