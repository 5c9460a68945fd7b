"""The render plan: a validated, frame-exact timeline of the whole video (VALIDATE stage).

Each Celery task loads it from `work/plan.json`, so it is plain frozen data with a JSON round
trip; paths in it are relative to the project root, so a plan survives moving the folder.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from pydantic import TypeAdapter

from pipeline import align, asr, captions, fonts, layers, limits, timeline, transitions, visuals
from pipeline.atomic import file_sha256, write_text_atomic
from pipeline.capabilities import UnfitFFmpeg, require_ffmpeg
from pipeline.captions import Cue
from pipeline.encoder import Encoder
from pipeline.errors import PipelineError
from pipeline.layers import LayerPlan
from pipeline.limits import Limits
from pipeline.motion import STILL, Move, kenburns
from pipeline.options import Fit, Motion, RenderOptions
from pipeline.probe import (
    AudioScan,
    scan_audio,
)
from pipeline.problems import unknown_scenes
from pipeline.project import ProjectDir
from pipeline.sound import captions_without_narration
from pipeline.spec import ProjectSpec, SceneSpec, read_spec
from pipeline.transitions import TransitionPlan
from pipeline.tts import Word
from pipeline.tts import cache as speech_cache
from pipeline.visuals import Visual, VisualPlan

PLAN_FILE = "plan.json"
__all__ = ["file_sha256"]  # long imported from here


@dataclass(frozen=True)
class ShotPlan:
    # The visual it shows, by kind and the sha256 of its file: one of the scene's `visuals`.
    kind: str
    digest: str
    frames: int  # frames the shot owns on the timeline
    overlap: int  # extra frames rendered into the next shot's cross-fade
    move: Move


@dataclass(frozen=True)
class MusicPlan:
    """The music bed (renderOptions.music), as the mix plays it."""

    path: str  # relative to the project root
    seconds: float  # the file's own length
    volume: float  # dB
    fade_in: float
    fade_out: float
    loop: bool


@dataclass(frozen=True)
class SceneVoice:
    """What VALIDATE learned of a scene's voice: a voiceover file or speech the engine made."""

    path: str  # relative to the project root
    seconds: float
    speech: tuple[tuple[float, float], ...]  # where it sounds, seconds from its start
    # Word timings: the engine's, for speech it made; for a voiceover, the narration aligned
    # to it (pipeline/align.py) when captions are on. Empty: spread over `speech`.
    words: tuple[Word, ...] = ()
    # What speech recognition heard in a voiceover without narration (captions.transcribe).
    transcript: str | None = None


@dataclass(frozen=True)
class ScenePlan:
    index: int
    id: str | None
    start_frame: int
    frames: int
    # What its shots show (pipeline/visuals/), each file once, in the order first named.
    visuals: tuple[VisualPlan, ...]
    shots: tuple[ShotPlan, ...]
    voiceover: str | None  # relative path
    voiceover_seconds: float | None
    fit: Fit
    motion: Motion
    lengthened: bool
    # Where the voice sounds, seconds from the scene's start (what the music ducks under).
    speech: tuple[tuple[float, float], ...] = ()
    # The scene's captions (frames from its first frame): the video's subtitle track, and
    # drawn into its picture by a BurntCaptions layer.
    captions: tuple[Cue, ...] = ()
    # Drawn over the picture after its shots, in order (pipeline/layers/).
    layers: tuple[LayerPlan, ...] = ()
    # The transition into the next scene (None: a cut), and the frames at this scene's start
    # that the transition from the one before draws over (pipeline/transitions.py).
    transition: TransitionPlan | None = None
    head: int = 0

    @property
    def tail(self) -> int:
        """The frames at its end its transition into the next scene draws over."""
        return self.transition.before if self.transition is not None else 0

    @property
    def body(self) -> tuple[int, int]:
        """Its frames [first, end) no transition draws over: what its own clip holds."""
        return self.head, self.frames - self.tail

    @property
    def burn_in(self) -> bool:
        """Whether its captions (if it has any) are drawn into its picture."""
        return any(layer.kind == "captions" for layer in self.layers)

    def visual(self, shot: ShotPlan) -> Visual:
        """The visual `shot` shows."""
        for visual in self.visuals:
            if (visual.kind, visual.sha256) == (shot.kind, shot.digest):
                return visual
        raise ValueError(f"scene {self.label} has no {shot.kind} {shot.digest[:12]}")

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.frames

    @property
    def label(self) -> str:
        return self.id if self.id is not None else str(self.index)


# Marks a Plan field that shapes every clip's pixels: each clip's cache key holds them all
# (pipeline/cache.py), so a new one (a caption style, say) is marked, not added there by hand.
PICTURE = MappingProxyType({"picture": True})


@dataclass(frozen=True)
class Plan:
    fps: int = field(metadata=PICTURE)
    width: int = field(metadata=PICTURE)
    height: int = field(metadata=PICTURE)
    encoder: Encoder = field(metadata=PICTURE)
    xfade_frames: int = field(metadata=PICTURE)
    sample_rate: int
    scenes: tuple[ScenePlan, ...]
    # A draft (renderOptions.preview): smaller picture, faster preset, same timeline and audio.
    preview: bool = False
    # Part of the timeline (renderOptions.range or .scenes): the spec's indices of the scenes
    # rendered, which are re-numbered from 0 and start at frame 0 here. None: every scene.
    part: tuple[int, ...] | None = None
    # Sound (pipeline/audio.py): the bed, how far it ducks under speech (0: not at all), the
    # integrated loudness the mix is brought to (None: left alone).
    music: MusicPlan | None = None
    ducking_db: float = 0.0
    loudness: float | None = None
    # Captions' language (options.captions.language); None: no captions.
    caption_language: str | None = None
    # A scene's clip is encoded in chunks of about this many frames (pipeline/chunks.py);
    # 0: in one piece.
    chunk_frames: int = 0
    # The image pixel cap VALIDATE checked every image against; FFmpeg's decoders get it too
    # (pipeline/scene.py). 0: none (a plan written before there was one). Not part of any
    # clip's key: it refuses images, it never changes a picture.
    max_pixels: int = 0

    @property
    def has_captions(self) -> bool:
        return self.caption_language is not None and any(s.captions for s in self.scenes)

    @property
    def draft(self) -> bool:
        """A preview or a part: published as <name>.mp4 and <name>.jpg only, so it never
        replaces the full render's per-scene files."""
        return self.preview or self.part is not None

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
        return _ADAPTER.dump_json(self, indent=1).decode()

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        return _ADAPTER.validate_python(_upgraded(data) if _before_kinds(data) else data)


# The plan's JSON, from its types: nested dataclasses, and visuals and layers told apart by
# their `kind`.
_ADAPTER: TypeAdapter[Plan] = TypeAdapter(Plan)


def _before_kinds(data: dict[str, Any]) -> bool:
    return any("images" in scene for scene in data.get("scenes", ()))


def _upgraded(data: dict[str, Any]) -> dict[str, Any]:
    """A plan.json written before visuals and layers had kinds (a job VALIDATEd by the
    previous release) in today's shape: its images are stills, its shots name them by digest,
    and `burn_in` is a captions layer."""
    scenes = []
    for scene in data["scenes"]:
        scene = dict(scene)
        images = [{**image, "kind": "still"} for image in scene.pop("images")]
        digests = {image["path"]: image.get("sha256") or image["path"] for image in images}
        scene["visuals"] = [{**image, "sha256": digests[image["path"]]} for image in images]
        scene["shots"] = [
            {"kind": "still", "digest": digests[shot.pop("image")], **shot}
            for shot in (dict(s) for s in scene["shots"])
        ]
        scene["layers"] = [{"kind": "captions"}] if scene.pop("burn_in", False) else []
        scenes.append(scene)
    return {**data, "scenes": scenes}


def plan_path(project: ProjectDir) -> Path:
    return project.work / PLAN_FILE


def write_plan(project: ProjectDir, plan: Plan) -> Path:
    path = plan_path(project)
    write_text_atomic(path, plan.to_json())
    return path


def read_plan(project: ProjectDir) -> Plan:
    return Plan.from_json(plan_path(project).read_text("utf-8"))


def load_spec(project: ProjectDir) -> ProjectSpec:
    spec = read_spec(project.spec_file)
    if spec is None:
        raise PipelineError(f"{project.spec_file} does not exist")
    return spec


def _scene_error(index: int, scene: SceneSpec, message: str) -> PipelineError:
    return PipelineError(message, scene=index, scene_id=scene.id)


def _scanned(path: Path) -> AudioScan | str:
    """The file's scan, or what is wrong with it as a voice or a bed."""
    try:
        scan = scan_audio(path)
    except Exception as exc:  # PyAV raises many kinds; the user needs the file name
        message = str(exc)
        if path.stat().st_size == 0:
            return "is empty"
        return message if message.startswith("has no") else f"is not a readable audio file: {exc}"
    if scan.silent:
        return f"is silent from start to end (peak {scan.peak_db:.0f} dBFS)"
    return scan


def _scene_voice(
    project: ProjectDir,
    options: RenderOptions,
    index: int,
    scene: SceneSpec,
    bounds: Limits,
    ffmpeg: str,
    log: Callable[[str], None] | None = None,
) -> SceneVoice | None:
    """The scene's voiceover file, or the speech SPEECH made of its narration, or None; either
    no longer than MAX_SCENE_SECONDS."""
    if scene.voiceover is None:
        spoken = speech_cache.lookup(project, options, index, scene)
        if spoken is None:
            return None
        if spoken.seconds > bounds.max_scene_seconds:
            raise limits.scene_too_long(index, "narration", spoken.seconds, bounds)
        return SceneVoice(
            str(spoken.wav.relative_to(project.root)),
            spoken.seconds,
            _spans(spoken.words) or ((0.0, spoken.seconds),),
            spoken.words,
        )
    path = project.asset(options.voice_dir, scene.voiceover)
    if not path.is_file():
        raise _scene_error(index, scene, f"voiceover {scene.voiceover!r} does not exist")
    # By its header first: a long file is refused before it is decoded, then by its samples.
    limits.check_voiceover(index, limits.voiceover_seconds(path), bounds)
    scan = _scanned(path)
    if isinstance(scan, str):
        raise _scene_error(index, scene, f"voiceover {scene.voiceover!r} {scan}")
    limits.check_voiceover(index, scan.seconds, bounds)
    transcript = _transcript(project, options, index, scene, path, ffmpeg, log)
    return SceneVoice(
        str(path.relative_to(project.root)),
        scan.seconds,
        scan.speech or ((0.0, scan.seconds),),
        _aligned(project, options, index, scene, path, ffmpeg, log, transcript),
        transcript,
    )


def _transcript(
    project: ProjectDir,
    options: RenderOptions,
    index: int,
    scene: SceneSpec,
    path: Path,
    ffmpeg: str,
    log: Callable[[str], None] | None,
) -> str | None:
    """What speech recognition hears in the voiceover of a scene without narration, when
    captions.transcribe asks for it; None (no captions for the scene) when it hears nothing."""
    if not options.captions.enabled or not options.captions.transcribe:
        return None
    if (scene.narration or "").strip():
        return None
    try:
        return asr.transcript(project.root, ffmpeg, path, options.captions.language)
    except asr.AsrNotInstalled as exc:
        raise _scene_error(index, scene, f"captions.transcribe: {exc}") from None
    except align.AlignmentFailed as exc:
        if log is not None:
            log(f"captions: scene {scene.id or index}: no captions from {scene.voiceover} ({exc})")
        return None


def _aligned(
    project: ProjectDir,
    options: RenderOptions,
    index: int,
    scene: SceneSpec,
    path: Path,
    ffmpeg: str,
    log: Callable[[str], None] | None,
    transcript: str | None = None,
) -> tuple[Word, ...]:
    """The scene's narration (or the transcript of its voiceover) aligned to its voiceover,
    when it has captions to time; () (today's spreading over the detected speech) when
    alignment fails, with a log line."""
    text = (scene.narration or "").strip() or transcript or ""
    if not options.captions.enabled or not text:
        return ()
    try:
        return align.align_voiceover(project.root, ffmpeg, path, text)
    except align.AlignmentFailed as exc:
        if log is not None:
            log(
                f"captions: scene {scene.id or index}: the narration could not be aligned to "
                f"{scene.voiceover} ({exc}); its words are spread over the detected speech"
            )
        return ()


def _spans(words: Sequence[Word], bridge: float = 0.3) -> tuple[tuple[float, float], ...]:
    """Word times merged into the stretches of speech they make."""
    return tuple(timeline.merge_spans(((w.start, w.end) for w in words), bridge))


def _inspect_music(project: ProjectDir, options: RenderOptions) -> MusicPlan | None:
    music = options.music
    if music is None:
        return None
    path = project.asset("music", music.file)
    if not path.is_file():
        raise PipelineError(f"music {music.file!r} does not exist in input/music/")
    scan = _scanned(path)
    if isinstance(scan, str):
        raise PipelineError(f"music {music.file!r} {scan}")
    return MusicPlan(
        str(path.relative_to(project.root)),
        scan.seconds,
        music.volume,
        music.fade_in,
        music.fade_out,
        music.loop,
    )


def check_ffmpeg(ffmpeg: str) -> None:
    """The binary runs and has every encoder, filter and format a render uses."""
    try:
        require_ffmpeg(ffmpeg)
    except UnfitFFmpeg as exc:
        raise PipelineError(str(exc)) from None


class SceneInputs(NamedTuple):
    """What VALIDATE learns of one scene's files."""

    visuals: tuple[Visual, ...]
    voiceover: str | None  # relative path
    voiceover_seconds: float | None
    seconds: float  # the scene's length


# From this many scenes on, VALIDATE inspects scenes on several threads.
PARALLEL_FROM = 8


def _inspect_scene(
    project: ProjectDir,
    options: RenderOptions,
    index: int,
    scene: SceneSpec,
    bounds: Limits,
    ffmpeg: str,
    log: Callable[[str], None] | None = None,
) -> tuple[SceneInputs, SceneVoice | None]:
    """Inspect the scene's visuals, probe its voice, and settle its length."""
    try:
        found = tuple(
            _inspect_visual(project, entry, bounds) for entry in dict.fromkeys(scene.images)
        )
    except visuals.VisualError as exc:
        raise _scene_error(index, scene, str(exc)) from None
    voice = _scene_voice(project, options, index, scene, bounds, ffmpeg, log)
    voice_seconds = voice.seconds if voice is not None else None
    given = scene.seconds
    if scene.duration == "clip":  # the spec allows it for a scene of one clip only
        given = next(v.own_seconds for v in found if v.own_seconds is not None)
        if given > bounds.max_scene_seconds:
            raise limits.scene_too_long(index, "duration", given, bounds)
    seconds = timeline.scene_seconds(voice_seconds, given)
    if seconds is None:
        problem = "has neither a voiceover nor a duration"
        if scene.narration and options.tts is None:
            problem += " (renderOptions.tts would speak its narration)"
        raise _scene_error(index, scene, problem)
    return SceneInputs(found, voice.path if voice else None, voice_seconds, seconds), voice


def _inspect_visual(project: ProjectDir, entry: Any, bounds: Limits) -> Visual:
    """The visual a spec entry names: an image's file name, or a kind's object."""
    kind, name = visuals.named_by(entry)
    use = None if isinstance(entry, str) else entry
    found = visuals.inspect(kind, project, name, bounds.max_image_pixels, use)
    refused = found.refused(bounds)
    if refused is not None:
        raise visuals.VisualError(refused)
    return found


def _pick(found: Sequence[Visual], entry: Any) -> Visual:
    """The inspected visual a spec entry names."""
    kind, name = visuals.named_by(entry)
    for visual in found:
        if visual.kind == kind and visual.name == name and visual.used_as(entry):
            return visual
    raise ValueError(f"no visual inspected for {entry!r}")


def make_plan(
    project: ProjectDir,
    options: RenderOptions,
    ffmpeg: str,
    *,
    threads: int = 0,
    lookahead: int = 0,
    bounds: Limits | None = None,
    log: Callable[[str], None] | None = None,
) -> Plan:
    """Read and check the project's inputs, then lay out the whole timeline in frames.

    `threads` and `lookahead` are libx264's (0: its own choice, the preset's lookahead).
    The work is checked against `bounds` (default: `Limits()`) before anything is laid out;
    an image of more than `bounds.max_image_pixels` is refused, by its header, before it is
    decoded. `log` is told what was done otherwise than asked (a narration that could not be
    aligned to its voiceover).
    """
    check_ffmpeg(ffmpeg)
    spec = load_spec(project)
    bounds = bounds or Limits()
    limits.check_options(options, bounds)
    limits.check_spec(spec, options, bounds)

    def inspect(index: int) -> tuple[SceneInputs, SceneVoice | None]:
        return _inspect_scene(project, options, index, spec.scenes[index], bounds, ffmpeg, log)

    count = len(spec.scenes)
    if count >= PARALLEL_FROM:
        # PyAV decodes with the GIL released: one scene's image decodes while another's
        # voiceover is scanned. Results (and the first error) come in scene order.
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            inspected = list(pool.map(inspect, range(count)))
    else:
        inspected = [inspect(index) for index in range(count)]
    inputs = [scene_inputs for scene_inputs, _ in inspected]
    voices = [voice for _, voice in inspected]
    if problem := captions_without_narration(spec, options):
        raise problem.error()
    found = fonts.catalogue(project.input / "fonts")
    for index, scene in enumerate(spec.scenes):
        context = _context(index, scene, options, found, inputs[index].seconds, project.root)
        if bad := layers.problem(context):
            raise _scene_error(index, scene, bad.sentence)
    limits.check(spec, options, [i.seconds for i in inputs], picture_size(options), bounds)
    plan = build_plan(
        spec,
        options,
        inputs,
        threads=threads,
        lookahead=lookahead,
        voices=voices,
        music=_inspect_music(project, options),
        catalogue=found,
        root=project.root,
    )
    return replace(plan, max_pixels=bounds.max_image_pixels)


def build_plan(
    spec: ProjectSpec,
    options: RenderOptions,
    inputs: Sequence[SceneInputs],
    *,
    threads: int = 0,
    lookahead: int = 0,
    voices: Sequence[SceneVoice | None] = (),
    music: MusicPlan | None = None,
    catalogue: dict[str, fonts.Font] | None = None,
    root: Path | None = None,
) -> Plan:
    """The pure half of make_plan: checked inputs (visuals, voiceover, its length, D) → Plan.

    `voices` (one per scene, or none at all) says where each voice sounds and, for speech an
    engine made, its words' times: the ducking and the captions follow them. `catalogue` (fonts by
    family, lower case: the packaged default when not given) draw the scenes' text layers;
    uploaded ones are named relative to `root`.
    """
    fps = options.fps
    timings = timeline.layout(
        # Each scene rounded to whole frames on its own: then a scene's frames depend on its
        # own length only, and a longer voiceover in one scene re-renders that scene alone.
        [whole_frames(i.seconds, fps) for i in inputs],
        [len(scene.images) for scene in spec.scenes],
        fps=fps,
        min_shot=options.min_shot,
        max_shot=options.max_shot,
        # A scene with a clip has a shot per visual: maxShot never cuts a clip short.
        whole=[any(v.own_seconds is not None for v in i.visuals) for i in inputs],
    )
    xfade = timeline.overlap_frames(options.xfade, fps)
    width, height = picture_size(options)
    scenes: list[ScenePlan] = []
    found_fonts = catalogue if catalogue is not None else fonts.catalogue()
    for index, (scene, timing, found) in enumerate(zip(spec.scenes, timings, inputs, strict=True)):
        motion = scene.motion or options.motion
        shown = [_pick(found.visuals, entry) for entry in scene.images]
        # The moves follow the scene's content, not its place in the video.
        seed = "|".join(visual.sha256 or visual.path for visual in shown)
        shots = []
        count = len(timing.shot_frames)
        for shot, frames in enumerate(timing.shot_frames):
            visual = shown[shot % len(shown)]
            # A clip moves only when its own entry asks (`motion` of the clip object).
            moves = visual.moves(motion)
            move = kenburns(seed, shot) if moves == "kenburns" else STILL
            overlap = xfade if shot < count - 1 else 0
            shots.append(ShotPlan(visual.kind, visual.sha256, frames, overlap, move))
        sound = voices[index] if index < len(voices) else None
        cues = _captions(scene, sound, timing.frames, options)
        scenes.append(
            ScenePlan(
                index=index,
                id=scene.id,
                start_frame=timing.start_frame,
                frames=timing.frames,
                visuals=found.visuals,  # type: ignore[arg-type]  # every kind is a VisualPlan
                shots=tuple(shots),
                voiceover=found.voiceover,
                voiceover_seconds=found.voiceover_seconds,
                fit=scene.fit or options.fit,
                motion=motion,
                lengthened=timing.lengthened,
                speech=sound.speech if sound is not None else (),
                captions=cues,
                layers=layers.planned(
                    _context(index, scene, options, found_fonts, timing.frames / fps, root),
                    timing.frames,
                ),
                transition=transitions.planned(
                    scene.transition.type, scene.transition.duration, fps
                )
                if scene.transition is not None
                else None,
            )
        )
    if problem := transitions.check(spec, fps, [scene.frames for scene in scenes]):
        raise problem.error()
    encoder = Encoder(
        preset=options.preset,
        crf=options.crf,
        threads=threads,
        lookahead=lookahead,
        # crf 0 is lossless, which x264 encodes only in the High 4:4:4 Predictive profile.
        profile="high444" if options.crf == 0 else "high",
    )
    part = _chosen_scenes(options, scenes)
    return Plan(
        fps=fps,
        width=width,
        height=height,
        encoder=_preview_encoder(encoder) if options.preview else encoder,
        xfade_frames=xfade,
        sample_rate=timeline.SAMPLE_RATE,
        scenes=_linked(_renumbered(scenes, part) if part is not None else tuple(scenes), part),
        preview=options.preview,
        part=part,
        music=music,
        ducking_db=options.ducking.amount if music is not None or _clip_sound(scenes) else 0.0,
        loudness=options.loudness.target,
        caption_language=options.captions.language if options.captions.enabled else None,
        chunk_frames=_chunk_frames(options, fps),
    )


def _context(
    index: int,
    scene: SceneSpec,
    options: RenderOptions,
    found: dict[str, fonts.Font],
    seconds: float,
    root: Path | None,
) -> layers.SceneContext:
    return layers.SceneContext(f"scenes[{index}]", scene, options, found, seconds, root)


def _clip_sound(scenes: Sequence[ScenePlan]) -> bool:
    """Whether some clip's own sound is in the mix (and so ducks under the voice)."""
    return any(v.sound() is not None for s in scenes for v in s.visuals)


def _chunk_frames(options: RenderOptions, fps: int) -> int:
    """The chunk length in frames, or 0 for a scene per unit. A preview is never chunked: its
    frames are about a ninth of the work, and on one host chunks made it 1.13× slower (the
    bench project, median of 4 runs) for little to spread."""
    if options.preview:
        return 0
    return timeline.round_half_up(timeline.exact(options.chunk_seconds) * fps)


def _captions(
    scene: SceneSpec, voice: SceneVoice | None, frames: int, options: RenderOptions
) -> tuple[Cue, ...]:
    """The scene's cues: its narration timed by the engine's words, else spread over where
    its voice sounds (or the whole scene, when it has no voice)."""
    text = (scene.narration or "").strip() or (voice.transcript if voice is not None else None)
    if not options.captions.enabled or not text:
        return ()
    words = voice.words if voice is not None else ()
    if not words:
        spans = voice.speech if voice is not None else ((0.0, frames / options.fps),)
        words = captions.spread_words(text, spans)
    return captions.scene_cues(text, words, frames, options.fps)


def whole_frames(seconds: float, fps: int) -> float:
    """`seconds` rounded to a whole number of frames (half up), as seconds."""
    frames = timeline.round_half_up(timeline.exact(seconds) * fps)
    # k/fps as a float comes back as exactly k/fps through timeline.exact (denominator ≤ 60).
    return float(Fraction(max(frames, 1), fps))


# A preview's picture fits in PREVIEW_SIDE × PREVIEW_SIDE: 640x360 for 1080p, 360x640 for
# 1080x1920, never larger than the target.
PREVIEW_SIDE = 640


def picture_size(options: RenderOptions) -> tuple[int, int]:
    """The rendered picture's width and height: the resolution's, or a preview's."""
    return preview_size(*options.size) if options.preview else options.size


def preview_size(width: int, height: int) -> tuple[int, int]:
    """The draft's size: the target's aspect, at most PREVIEW_SIDE a side, even sides."""
    scale = min(1.0, PREVIEW_SIDE / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


# A preview's encoder: a fast preset (still High profile) and no finer than crf 23.
PREVIEW_PRESET = "superfast"
PREVIEW_CRF = 23


def _preview_encoder(encoder: Encoder) -> Encoder:
    return replace(
        encoder, preset=PREVIEW_PRESET, crf=max(encoder.crf, PREVIEW_CRF), profile="high"
    )


def _chosen_scenes(options: RenderOptions, scenes: list[ScenePlan]) -> tuple[int, ...] | None:
    """The scenes `options.scenes` or `options.range` pick, or None for the whole video."""
    if options.scenes is not None:
        if problem := unknown_scenes(options, len(scenes)):
            raise problem.error()
        return tuple(sorted(set(options.scenes)))
    if options.range is None:
        return None
    fps = options.fps
    first = math.floor(timeline.exact(options.range.start) * fps)
    end = math.ceil(timeline.exact(options.range.end) * fps)
    chosen = tuple(s.index for s in scenes if s.start_frame < end and s.end_frame > first)
    if not chosen:
        total = scenes[-1].end_frame / fps if scenes else 0.0
        raise PipelineError(
            f"renderOptions.range: {options.range.start}–{options.range.end} s is outside the "
            f"video ({total:.3f} s)"
        )
    return chosen


def _linked(scenes: tuple[ScenePlan, ...], part: tuple[int, ...] | None) -> tuple[ScenePlan, ...]:
    """Each scene's transition kept only where its next scene follows it (a part of the
    timeline keeps those between scenes it has side by side), and each scene's `head`: the
    frames the transition into it draws over."""
    spec_index = part if part is not None else tuple(range(len(scenes)))
    linked: list[ScenePlan] = []
    before: TransitionPlan | None = None
    for number, scene in enumerate(scenes):
        follows = number + 1 < len(scenes) and spec_index[number + 1] == spec_index[number] + 1
        transition = scene.transition if follows else None
        head = before.after if before is not None else 0
        linked.append(replace(scene, transition=transition, head=head))
        before = transition
    return tuple(linked)


def _renumbered(scenes: list[ScenePlan], part: tuple[int, ...]) -> tuple[ScenePlan, ...]:
    """The chosen scenes back to back from frame 0, numbered from 0 (the clips are the same:
    neither the number nor the start frame is part of a clip's picture)."""
    chosen: list[ScenePlan] = []
    start = 0
    for number, index in enumerate(part):
        scene = replace(scenes[index], index=number, start_frame=start)
        chosen.append(scene)
        start = scene.end_frame
    return tuple(chosen)
