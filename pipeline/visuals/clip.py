"""Video clips: a stretch of a user's video (`in` to `out`), put on the plan's frame grid and
fitted like a still (cover, or contain over a blurred copy of itself).

Nothing is prepared ahead: the scene's drawing command reads the clip itself, once per shot
that shows it, decoding only the stretch the unit of work draws (a chunk seeks into it). Its
frames reach the grid by their timestamps, not by their count: frame n of a shot (n/fps
seconds after `in`) shows the last source frame whose timestamp rounds to n or before, so a
25 fps, a 60 fps or a variable-rate source lands on the same grid without drift, and a chunk
that starts at frame n draws exactly what the whole scene draws there. Past the clip's end a
shot holds its last frame (`fill: "hold"`) or plays it again from `in` (`"loop"`: the clip is
read again for each round, rather than held in memory, ~3 MB a frame at 1080p).

Every read of the file names its demuxer and allows the `file` protocol alone
(`probe.input_guard`): the bytes were sniffed at upload and again in VALIDATE.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.assets import VIDEOS, Refers
from pipeline.atomic import file_sha256
from pipeline.graph import Filter, Graph, Stream
from pipeline.motion import oversampled, zoompan_filter
from pipeline.names import check_safe_name
from pipeline.options import Motion
from pipeline.probe import clip_info, input_guard, open_user_media
from pipeline.visuals.base import Sound, VisualError
from pipeline.visuals.still import fitted

if TYPE_CHECKING:
    from pipeline.limits import Limits
    from pipeline.plan import Plan, ScenePlan, ShotPlan
    from pipeline.project import ProjectDir
    from pipeline.scene import Piece

# The display rotation (degrees counter-clockwise) as the EXIF orientation that turns a
# picture the same way: stills and clips are turned upright by the same filters.
_ORIENTATION = {0: 1, 90: 8, 180: 3, 270: 6}


Fill = Literal["hold", "loop"]
# File name endings of pictures: a clip object naming one has video options on an image.
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic")


class ClipAudio(BaseModel):
    """A clip's own sound, mixed under the narration (and ducked like the music bed)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    volume: float = Field(-12.0, ge=-60, le=12, description="dB")


class ClipSpec(BaseModel):
    """A video clip as a scene visual: an entry of `images` that is an object."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True
    )

    video: Annotated[str, Refers(VIDEOS)] = Field(description="a file in input/videos/")
    trim_in: float = Field(0.0, ge=0, le=86_400, alias="in", description="seconds of the source")
    trim_out: float | None = Field(
        None, gt=0, le=86_400, alias="out", description="seconds of the source; default its end"
    )
    fill: Fill = Field(
        "hold", description="when its shot is longer: hold the last frame, or play it again"
    )
    audio: ClipAudio | None = Field(None, description="its sound under the narration; muted")
    motion: Motion = Field("none", description="Ken Burns over the clip: off unless asked")

    kind: ClassVar[str] = "clip"  # the visual it names
    timed: ClassVar[bool] = True  # it has a length of its own (a scene's duration "clip")

    @field_validator("video")
    @classmethod
    def _video(cls, name: str) -> str:
        name = check_safe_name(name)
        if name.lower().endswith(_IMAGE_SUFFIXES):
            raise ValueError(
                f"{name!r} is an image: in, out, fill, audio and motion are video options; "
                "name an image as a plain string"
            )
        return name

    @model_validator(mode="after")
    def _trim(self) -> ClipSpec:
        if self.trim_out is not None and self.trim_out <= self.trim_in:
            raise ValueError(f"out ({self.trim_out:g}) must be after in ({self.trim_in:g})")
        return self


_UNTAGGED = Filter.of(
    "setparams",
    range="unknown",
    color_primaries="unknown",
    color_trc="unknown",
    colorspace="unknown",
)


@dataclass(frozen=True, kw_only=True)
class Clip:
    path: str  # relative to the project root
    file_sha256: str  # of the file's bytes
    demuxer: str  # the one FFmpeg reads it with ('mov', 'matroska'), from its bytes
    width: int  # as displayed (after its rotation)
    height: int
    rotation: int  # degrees counter-clockwise, 0/90/180/270
    start: float  # the video stream's first timestamp, seconds
    seconds: float  # the video stream's length
    has_audio: bool
    # How a scene uses it (the spec's clip object).
    trim_in: float = 0.0
    trim_out: float | None = None  # None: to its end
    fill: Fill = "hold"
    volume: float | None = None  # dB under the narration; None: muted
    motion: Literal["none", "kenburns"] = "none"
    # What shots and cache keys name it by: its bytes and how it is used.
    sha256: str = ""
    kind: Literal["clip"] = "clip"

    folder: ClassVar[str] = "videos"
    entry: ClassVar[type[ClipSpec] | None] = ClipSpec
    prepares: ClassVar[bool] = False
    # Besides these it joins a loop's rounds with `concat` and untags with `setparams`, which
    # every scene needs anyway (pipeline/capabilities.py).
    filters: ClassVar[tuple[str, ...]] = (
        *("setpts", "trim", "fps", "tpad", "scale", "crop", "split", "gblur", "eq"),
        *("overlay", "format", "transpose", "hflip", "vflip", "zoompan", "settb"),
    )

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def end(self) -> float:
        """Where the used stretch ends, seconds of the source."""
        return self.seconds if self.trim_out is None else self.trim_out

    @property
    def used_seconds(self) -> float:
        return self.end - self.trim_in

    @property
    def own_seconds(self) -> float:
        return self.used_seconds

    def moves(self, scene_motion: str) -> str:
        return self.motion  # its own entry's: off unless asked

    def refused(self, bounds: Limits) -> str | None:
        if self.seconds > bounds.max_video_seconds:
            return (
                f"video {self.name!r} is {self.seconds:.1f} s long, over MAX_VIDEO_SECONDS "
                f"({bounds.max_video_seconds:g} s)"
            )
        return None

    def frames(self, fps: int) -> int:
        """The grid frames the used stretch fills (at least one)."""
        return max(1, math.floor(self.used_seconds * fps + 0.5))

    @classmethod
    def inspect(cls, project: ProjectDir, name: str, max_pixels: int, use: Any = None) -> Clip:
        """The clip `name` in input/videos/, used as `use` says (a spec ClipSpec: trim, fill,
        audio, motion); VisualError naming the file when it cannot be shown so."""
        path = project.asset(cls.folder, name)
        if not path.is_file():
            raise VisualError(f"video {name!r} does not exist")
        try:
            info = clip_info(path, name, max_pixels)
        except Exception as exc:  # PyAV raises many kinds; the user needs the file name
            raise VisualError(f"video {name!r} cannot be used: {exc}") from None
        clip = cls(
            path=str(path.relative_to(project.root)),
            file_sha256=file_sha256(path),
            demuxer=info.demuxer,
            width=info.width,
            height=info.height,
            rotation=info.rotation,
            start=info.start,
            seconds=info.seconds,
            has_audio=info.has_audio,
        )
        if use is not None:
            clip = replace(
                clip,
                trim_in=use.trim_in,
                trim_out=use.trim_out,
                fill=use.fill,
                volume=use.audio.volume if use.audio is not None else None,
                motion=use.motion,
            )
        clip.check()
        return replace(clip, sha256=_digest(clip.identity()))

    def used_as(self, entry: Any) -> bool:
        """Whether this is the clip a spec ClipSpec names, used as it says."""
        volume = entry.audio.volume if entry.audio is not None else None
        return (self.trim_in, self.trim_out, self.fill, self.volume, self.motion) == (
            entry.trim_in,
            entry.trim_out,
            entry.fill,
            volume,
            entry.motion,
        )

    def check(self) -> None:
        """VisualError (naming the field) when its use does not fit the file."""
        if self.trim_in >= self.seconds:
            raise VisualError(
                f"video {self.name!r}: in ({self.trim_in:g} s) is not inside the clip "
                f"({self.seconds:.3f} s)"
            )
        if self.trim_out is not None and self.trim_out > self.seconds + 1e-3:
            raise VisualError(
                f"video {self.name!r}: out ({self.trim_out:g} s) is past the clip's end "
                f"({self.seconds:.3f} s)"
            )
        if self.volume is not None and not self.has_audio:
            raise VisualError(f"video {self.name!r}: audio asked for, and the clip has no sound")

    def identity(self) -> dict[str, Any]:
        return {
            "clip": self.file_sha256,
            "demuxer": self.demuxer,
            "rotation": self.rotation,
            "start": self.start,
            "in": self.trim_in,
            "out": self.end,
            "fill": self.fill,
            "motion": self.motion,
        }

    # Nothing is prepared: the scene's drawing reads the clip.
    def prepared_name(self, stem: str, plan: Plan, scene: ScenePlan) -> str:
        raise NotImplementedError("a clip has no prepared file")

    def prepare_input(self, root: Path, max_pixels: int) -> list[str]:
        raise NotImplementedError("a clip has no prepared file")

    def prepare(self, graph: Graph, source: Stream, plan: Plan, scene: ScenePlan) -> Stream:
        raise NotImplementedError("a clip has no prepared file")

    def prepare_output(self) -> list[str]:
        raise NotImplementedError("a clip has no prepared file")

    def source_input(self, prepared: Path, plan: Plan, scene: ScenePlan) -> list[str]:
        raise NotImplementedError("a clip is read by its segments (`inputs`)")

    def inputs(
        self,
        root: Path | None,
        prepared: Path | None,
        plan: Plan,
        scene: ScenePlan,
        uses: Sequence[Piece],
    ) -> list[list[str]]:
        """One input per stretch of the file the pieces `uses` draw, each seeking to it."""
        path = str((root or Path(".")) / self.path)
        args = []
        for segment in _segments(self, plan, scene, uses):
            seek = segment.seek(self, plan.fps)
            args.append(
                [
                    *input_guard(self.demuxer),
                    # Timestamps as stored, and every frame from the keyframe before the seek
                    # point: frame n of a shot is chosen by its timestamp alone, the same in
                    # a chunk as in the whole scene.
                    *("-noautorotate", "-copyts", "-noaccurate_seek"),
                    # A decoding error fails the command (FFmpeg would conceal it and go on).
                    "-xerror",
                    *("-ss", f"{seek:.6f}"),
                    *("-i", path),
                ]
            )
        return args

    def sources(
        self,
        graph: Graph,
        streams: Sequence[Stream],
        plan: Plan,
        scene: ScenePlan,
        uses: Sequence[Piece],
    ) -> list[Stream]:
        """A stream for each piece in `uses`, fitted, exactly its frames."""
        segments = _segments(self, plan, scene, uses)
        if len(streams) != len(segments):
            raise ValueError(f"{self.name}: {len(segments)} inputs expected, {len(streams)} given")
        out: dict[Piece, Stream] = {}
        size = self.size(plan, scene)
        by_shot: dict[int, list[tuple[_Segment, Stream]]] = {}
        for segment, stream in zip(segments, streams, strict=True):
            by_shot.setdefault(segment.shot, []).append((segment, stream))
        for shot, parts in by_shot.items():
            drawn = [
                graph.chain(stream, segment.filters(self, plan.fps)) for segment, stream in parts
            ]
            joined = (
                drawn[0]
                if len(drawn) == 1
                else graph.apply(Filter.of("concat", n=len(drawn), v=1, a=0), *drawn)
            )
            picture = graph.chain(
                fitted(graph, joined, _ORIENTATION[self.rotation], scene.fit, size, plan.encoder),
                # Untagged, like a still read from its raw frame: FFmpeg would otherwise
                # convert whichever pieces are tagged differently where they are joined.
                (_UNTAGGED,),
            )
            mine = [piece for piece in uses if piece.shot == shot]
            first = parts[0][0].first
            copies = graph.split(picture, len(mine)) if len(mine) > 1 else (picture,)
            for piece, copy in zip(mine, copies, strict=True):
                out[piece] = graph.chain(
                    copy,
                    (
                        Filter.of(
                            "trim", start_frame=piece.first - first, end_frame=piece.end - first
                        ),
                        # Frame n at n/fps whatever time base the join left: what xfade and
                        # concat downstream expect of every piece.
                        Filter.of("settb", f"1/{plan.fps}"),
                        Filter.of("setpts", "N"),
                    ),
                )
        return [out[piece] for piece in uses]

    def size(self, plan: Plan, scene: ScenePlan) -> tuple[int, int]:
        """The size its frames are fitted to: larger when a shot of it moves (Ken Burns)."""
        if self.motion == "kenburns" and not plan.preview:
            return oversampled(plan.width, plan.height)
        return plan.width, plan.height

    def draw(self, shot: ShotPlan, piece: Piece, plan: Plan) -> tuple[Filter, ...]:
        if shot.move.still:
            return ()
        # One output frame for each of the clip's: zoompan moves over the running picture.
        length = shot.frames + shot.overlap
        return (
            zoompan_filter(
                shot.move, length, plan.width, plan.height, plan.fps, first=piece.first, count=1
            ),
        )

    def poster_frame(self, shot: ShotPlan) -> int:
        return 0

    def sound(self) -> Sound | None:
        if self.volume is None:
            return None
        options = tuple(input_guard(self.demuxer))
        return Sound(self.path, options, self.trim_in, self.used_seconds, self.volume)

    def damage(self, root: Path) -> str | None:
        """Where decoding the used stretch fails (after a drawing command failed), or None."""
        last = self.trim_in
        try:
            with open_user_media(root / self.path, self.demuxer) as container:
                stream = container.streams.video[0]
                stream.codec_context.options = {"err_detect": "explode"}
                for frame in container.decode(stream):
                    if frame.time is not None:
                        last = frame.time - self.start
                    if last >= self.end:
                        return None
        except Exception as exc:  # PyAV raises many kinds; the user needs the place
            return f"video {self.name!r} could not be decoded at {max(last, 0.0):.2f} s: {exc}"
        return None


@dataclass(frozen=True)
class _Segment:
    """Frames [first, end) of shot `shot` (from the shot's first frame), drawn from one read
    of the file: its frames [first - offset, end - offset) on the grid from `in` (a loop's
    later rounds have an offset), the last one held past the clip's end."""

    shot: int
    first: int
    end: int
    offset: int

    def seek(self, clip: Clip, fps: int) -> float:
        """Where the read starts, seconds of the file: the keyframe before the first frame
        wanted (held past the end: the last one). The read ends where the graph's `trim`
        stops asking: FFmpeg then stops decoding it."""
        first = min(self.first - self.offset, clip.frames(fps) - 1)
        return clip.start + clip.trim_in + first / fps

    def filters(self, clip: Clip, fps: int) -> tuple[Filter, ...]:
        first, end = self.first - self.offset, self.end - self.offset
        return (
            # Seconds from `in`: grid frame n is n/fps seconds after it.
            Filter.of("setpts", f"PTS-{clip.start + clip.trim_in:.6f}/TB"),
            Filter.of("trim", end=f"{clip.used_seconds:.6f}"),
            Filter.of("fps", fps, start_time=0),
            # The last frame held on past the clip's end (and past a read cut short).
            Filter.of("tpad", stop_mode="clone", stop=-1),
            Filter.of("trim", start_pts=first, end_pts=end),
            Filter.of("setpts", "N"),
        )


def _segments(clip: Clip, plan: Plan, scene: ScenePlan, uses: Sequence[Piece]) -> list[_Segment]:
    """The reads of the file that draw `uses`: for each shot, the frames its pieces span, in
    one read (a loop: one per round)."""
    spans: dict[int, tuple[int, int]] = {}
    for piece in uses:
        first, end = spans.get(piece.shot, (piece.first, piece.end))
        spans[piece.shot] = (min(first, piece.first), max(end, piece.end))
    length = clip.frames(plan.fps)
    found = []
    for shot, (first, end) in spans.items():
        if clip.fill == "hold":
            found.append(_Segment(shot, first, end, 0))
            continue
        for round_ in range(first // length, (end - 1) // length + 1):
            offset = round_ * length
            found.append(_Segment(shot, max(first, offset), min(end, offset + length), offset))
    return found


def _digest(identity: dict[str, Any]) -> str:
    return hashlib.sha256(repr(sorted(identity.items())).encode()).hexdigest()
