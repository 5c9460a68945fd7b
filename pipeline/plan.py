"""The render plan: a validated, frame-exact timeline of the whole video (VALIDATE stage).

Each Celery task loads it from `work/plan.json`, so it is plain frozen data with a JSON round
trip; paths in it are relative to the project root, so a plan survives moving the folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import ValidationError

from pipeline import timeline
from pipeline.atomic import write_text_atomic
from pipeline.capabilities import UnfitFFmpeg, require_ffmpeg
from pipeline.encoder import Encoder
from pipeline.errors import PipelineError
from pipeline.motion import STILL, Move, kenburns
from pipeline.options import Fit, Motion, RenderOptions
from pipeline.probe import audio_seconds, image_size
from pipeline.project import ProjectDir
from pipeline.spec import ProjectSpec, SceneSpec

PLAN_FILE = "plan.json"
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageInfo:
    path: str  # relative to the project root
    width: int  # as stored, before EXIF rotation
    height: int
    orientation: int = 1  # EXIF orientation tag, 1..8

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclass(frozen=True)
class ShotPlan:
    image: str  # relative path, one of the scene's `images`
    frames: int  # frames the shot owns on the timeline
    overlap: int  # extra frames rendered into the next shot's cross-fade
    move: Move


@dataclass(frozen=True)
class ScenePlan:
    index: int
    id: str | None
    start_frame: int
    frames: int
    images: tuple[ImageInfo, ...]  # distinct images, each decoded once per clip
    shots: tuple[ShotPlan, ...]
    voiceover: str | None  # relative path
    voiceover_seconds: float | None
    fit: Fit
    motion: Motion
    lengthened: bool

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.frames

    @property
    def label(self) -> str:
        return self.id if self.id is not None else str(self.index)


@dataclass(frozen=True)
class Plan:
    fps: int
    width: int
    height: int
    encoder: Encoder
    xfade_frames: int
    sample_rate: int
    scenes: tuple[ScenePlan, ...]

    @property
    def total_frames(self) -> int:
        return self.scenes[-1].end_frame if self.scenes else 0

    @property
    def duration_seconds(self) -> float:
        return self.total_frames / self.fps

    def scene_seconds(self, index: int) -> float:
        return self.scenes[index].frames / self.fps

    def sample_range(self, index: int) -> tuple[int, int]:
        """[start, end) audio samples of a scene: exactly its frames, in the master track."""
        scene = self.scenes[index]
        return (
            timeline.sample_at(scene.start_frame, self.fps, self.sample_rate),
            timeline.sample_at(scene.end_frame, self.fps, self.sample_rate),
        )

    @property
    def total_samples(self) -> int:
        return timeline.sample_at(self.total_frames, self.fps, self.sample_rate)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        scenes = tuple(_scene_from_dict(s) for s in data.pop("scenes"))
        return cls(encoder=Encoder(**data.pop("encoder")), scenes=scenes, **data)


def _scene_from_dict(data: dict[str, Any]) -> ScenePlan:
    images = tuple(ImageInfo(**i) for i in data.pop("images"))
    shots = tuple(
        ShotPlan(move=Move(**s.pop("move")), **s) for s in (dict(x) for x in data.pop("shots"))
    )
    return ScenePlan(images=images, shots=shots, **data)


def plan_path(project: ProjectDir) -> Path:
    return project.work / PLAN_FILE


def write_plan(project: ProjectDir, plan: Plan) -> Path:
    path = plan_path(project)
    write_text_atomic(path, plan.to_json())
    return path


def read_plan(project: ProjectDir) -> Plan:
    return Plan.from_json(plan_path(project).read_text("utf-8"))


def load_spec(project: ProjectDir) -> ProjectSpec:
    try:
        text = project.spec_file.read_text("utf-8")
    except FileNotFoundError:
        raise PipelineError(f"{project.spec_file} does not exist") from None
    try:
        return ProjectSpec.model_validate_json(text)
    except ValidationError as exc:
        raise PipelineError(f"input/scenes.json is invalid: {exc}") from None


def _scene_error(index: int, scene: SceneSpec, message: str) -> PipelineError:
    return PipelineError(message, scene=index, scene_id=scene.id)


def _inspect_image(project: ProjectDir, index: int, scene: SceneSpec, name: str) -> ImageInfo:
    path = project.asset("images", name)
    if not path.is_file():
        raise _scene_error(index, scene, f"image {name!r} does not exist")
    try:
        width, height = image_size(path)
    except Exception as exc:  # PyAV raises many kinds; the user needs the file name
        raise _scene_error(index, scene, f"image {name!r} could not be decoded: {exc}") from None
    orientation = 1
    try:
        with Image.open(path) as img:
            orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # FFmpeg decodes it; Pillow may not (e.g. an odd format): no rotation
        orientation = 1
    if orientation not in range(1, 9):
        orientation = 1
    return ImageInfo(str(path.relative_to(project.root)), width, height, orientation)


def _inspect_voiceover(
    project: ProjectDir, index: int, scene: SceneSpec, voice_dir: str
) -> tuple[str, float] | tuple[None, None]:
    if scene.voiceover is None:
        return None, None
    path = project.asset(voice_dir, scene.voiceover)
    if not path.is_file():
        raise _scene_error(index, scene, f"voiceover {scene.voiceover!r} does not exist")
    try:
        seconds = audio_seconds(path)
    except Exception as exc:
        raise _scene_error(
            index, scene, f"voiceover {scene.voiceover!r} is not a readable audio file: {exc}"
        ) from None
    return str(path.relative_to(project.root)), seconds


def check_ffmpeg(ffmpeg: str) -> None:
    """The binary runs and has every encoder, filter and format a render uses."""
    try:
        require_ffmpeg(ffmpeg)
    except UnfitFFmpeg as exc:
        raise PipelineError(str(exc)) from None


def make_plan(
    project: ProjectDir,
    options: RenderOptions,
    ffmpeg: str,
    *,
    threads: int = 0,
    lookahead: int = 0,
) -> Plan:
    """Read and check the project's inputs, then lay out the whole timeline in frames.

    `threads` and `lookahead` are libx264's (0: its own choice, the preset's lookahead).
    """
    check_ffmpeg(ffmpeg)
    spec = load_spec(project)
    inputs: list[tuple[tuple[ImageInfo, ...], str | None, float | None, float]] = []
    for index, scene in enumerate(spec.scenes):
        images = tuple(
            _inspect_image(project, index, scene, name) for name in dict.fromkeys(scene.images)
        )
        voice, voice_seconds = _inspect_voiceover(project, index, scene, options.voice_dir)
        seconds = timeline.scene_seconds(voice_seconds, scene.duration)
        if seconds is None:
            raise _scene_error(index, scene, "has neither a voiceover nor a duration")
        inputs.append((images, voice, voice_seconds, seconds))
    return build_plan(spec, options, inputs, threads=threads, lookahead=lookahead)


def build_plan(
    spec: ProjectSpec,
    options: RenderOptions,
    inputs: list[tuple[tuple[ImageInfo, ...], str | None, float | None, float]],
    *,
    threads: int = 0,
    lookahead: int = 0,
) -> Plan:
    """The pure half of make_plan: checked inputs (images, voiceover, its length, D) → Plan."""
    fps = options.fps
    timings = timeline.layout(
        [seconds for *_, seconds in inputs],
        [len(scene.images) for scene in spec.scenes],
        fps=fps,
        min_shot=options.min_shot,
        max_shot=options.max_shot,
    )
    xfade = timeline.overlap_frames(options.xfade, fps)
    width, height = options.size
    scenes: list[ScenePlan] = []
    global_shot = 0
    for index, (scene, timing, (images, voice, voice_seconds, _)) in enumerate(
        zip(spec.scenes, timings, inputs, strict=True)
    ):
        motion = scene.motion or options.motion
        by_name = {info.name: info for info in images}
        shots = []
        count = len(timing.shot_frames)
        for shot, frames in enumerate(timing.shot_frames):
            image = by_name[scene.images[shot % len(scene.images)]]
            move = kenburns(index, shot, global_shot) if motion == "kenburns" else STILL
            overlap = xfade if shot < count - 1 else 0
            shots.append(ShotPlan(image.path, frames, overlap, move))
            global_shot += 1
        scenes.append(
            ScenePlan(
                index=index,
                id=scene.id,
                start_frame=timing.start_frame,
                frames=timing.frames,
                images=images,
                shots=tuple(shots),
                voiceover=voice,
                voiceover_seconds=voice_seconds,
                fit=scene.fit or options.fit,
                motion=motion,
                lengthened=timing.lengthened,
            )
        )
    return Plan(
        fps=fps,
        width=width,
        height=height,
        encoder=Encoder(
            preset=options.preset, crf=options.crf, threads=threads, lookahead=lookahead
        ),
        xfade_frames=xfade,
        sample_rate=timeline.SAMPLE_RATE,
        scenes=tuple(scenes),
    )
