"""How much work one render may order: bounds checked before a job is queued, and again in
VALIDATE with what the files and the speech turned out to be.

The work a render orders follows from the spec and the options alone (scene lengths, shot
lengths, fps, size, chunks), so it is counted here with the timeline's own arithmetic, scene by
scene, without laying out a single shot: a request for billions of shots is refused in
microseconds instead of exhausting a worker's memory. Each bound is a setting
(`tasks/settings.py`, the names in capitals in the messages); `Limits()` holds the defaults,
which the command line uses too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av

from pipeline import timeline
from pipeline.errors import PipelineError
from pipeline.options import RenderOptions
from pipeline.probe import AUDIO_DEMUXERS, MAX_PIXELS, open_user_media
from pipeline.spec import MAX_SCENES, ProjectSpec

# The words a minute a narration is assumed to be spoken at when its `tts.rate` is not set:
# brisk speech, so that the estimate is on the short side and only a narration certainly too
# long is refused before it is spoken (VALIDATE checks the speech's real length).
ESTIMATE_WORDS_PER_MINUTE = 200


@dataclass(frozen=True)
class Limits:
    """The bounds on one render. Defaults allow two hours of 1080p60 (or one of 4K30) in
    scenes of up to an hour, and refuse what would take a worker's memory or disk."""

    max_scenes: int = MAX_SCENES
    # A scene's length, whatever sets it: its duration, its voiceover or its spoken narration.
    max_scene_seconds: float = 3600.0
    # A video clip's length (the whole file, not only the part a scene uses).
    max_video_seconds: float = 600.0
    # Characters of narration one scene may have spoken (renderOptions.tts).
    max_narration_chars: int = 5000
    # The shortest minShot and maxShot, seconds (a shot is also at least one frame).
    min_shot_seconds: float = 0.1
    max_job_frames: int = 432_000
    # width × height × frames of the whole video, in billions.
    max_job_gigapixels: float = 1000.0
    max_job_shots: int = 20_000
    # Stage runs (tasks) of one job: each scene's speech and build, each chunk, the rest.
    max_job_units: int = 5000
    # Width × height of any image, refused from its header (MAX_IMAGE_PIXELS).
    max_image_pixels: int = MAX_PIXELS


class OverLimit(PipelineError):
    """A render asks for more than a limit allows; `field` is where, as the API names it
    (`renderOptions.minShot`, `scenes[2].voiceover`). The message names the field and the
    setting, so a copy located at its stage (which keeps no `field`) still says both."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        stage: str = "",
        scene: int | None = None,
        scene_id: str | None = None,
        stderr_tail: str = "",
    ) -> None:
        super().__init__(
            message, stage=stage, scene=scene, scene_id=scene_id, stderr_tail=stderr_tail
        )
        self.field = field


@dataclass(frozen=True)
class SceneWork:
    """What one scene orders: its frames (lengthened where minShot asks), shots and units."""

    frames: int
    shots: int
    chunks: int


@dataclass(frozen=True)
class Work:
    scenes: tuple[SceneWork, ...]
    width: int
    height: int
    # Transitions between scenes: each is built in two units (pipeline/transitions.py).
    transitions: int = 0

    @property
    def frames(self) -> int:
        return sum(scene.frames for scene in self.scenes)

    @property
    def shots(self) -> int:
        return sum(scene.shots for scene in self.scenes)

    @property
    def gigapixels(self) -> float:
        return self.width * self.height * self.frames / 1e9


def _setting(name: str, value: float) -> str:
    return f"{name.upper()} ({value:g})"


def check_options(options: RenderOptions, limits: Limits) -> None:
    """minShot and maxShot are at least MIN_SHOT_SECONDS (RenderOptions itself asks for at
    least a frame)."""
    floor = limits.min_shot_seconds
    for alias, value in (("maxShot", options.max_shot), ("minShot", options.min_shot)):
        if value < floor:
            raise OverLimit(
                f"renderOptions.{alias}: {value:g} s is shorter than the shortest shot this "
                f"service renders, {_setting('min_shot_seconds', floor)} s",
                field=f"renderOptions.{alias}",
            )


def check_spec(spec: ProjectSpec, options: RenderOptions, limits: Limits) -> None:
    """The spec's size: its scenes, its durations, the narration to be spoken."""
    if len(spec.scenes) > limits.max_scenes:
        raise OverLimit(
            f"scenes: {len(spec.scenes)} scenes, over {_setting('max_scenes', limits.max_scenes)}",
            field="scenes",
        )
    for index, scene in enumerate(spec.scenes):
        if scene.seconds is not None and scene.seconds > limits.max_scene_seconds:
            raise scene_too_long(index, "duration", scene.seconds, limits)
        check_narration(spec, options, index, limits)


def check_narration(spec: ProjectSpec, options: RenderOptions, index: int, limits: Limits) -> None:
    """Scene `index`'s narration, if it is to be spoken: not longer than MAX_NARRATION_CHARS,
    nor (estimated) longer to say than MAX_SCENE_SECONDS."""
    scene = spec.scenes[index]
    text = spoken(scene.narration, scene.voiceover, options)
    if text is None:
        return
    field = f"scenes[{index}].narration"
    if len(text) > limits.max_narration_chars:
        raise OverLimit(
            f"{field}: {len(text)} characters to speak, over "
            f"{_setting('max_narration_chars', limits.max_narration_chars)}",
            field=field,
        )
    seconds = speech_seconds(text, options.tts.rate if options.tts else None)
    if seconds > limits.max_scene_seconds:
        raise scene_too_long(index, "narration", seconds, limits, estimated=True)


def spoken(narration: str | None, voiceover: str | None, options: RenderOptions) -> str | None:
    """The text the engine will say for a scene (as `pipeline.tts.cache.spoken_text`)."""
    if options.tts is None or voiceover is not None or narration is None:
        return None
    return narration.strip() or None


def speech_seconds(text: str, rate: int | None) -> float:
    """About how long `text` takes to say at `rate` words a minute (brisk when None): on the
    short side, so that only a narration certainly too long is refused before it is spoken."""
    return len(text.split()) * 60 / (rate or ESTIMATE_WORDS_PER_MINUTE)


def scene_too_long(
    index: int, what: str, seconds: float, limits: Limits, *, estimated: bool = False
) -> OverLimit:
    field = f"scenes[{index}].{what}"
    kind = {"duration": "duration", "voiceover": "voiceover", "narration": "speech"}[what]
    about = "about " if estimated else ""
    return OverLimit(
        f"{field}: the scene's {kind} is {about}{seconds:.0f} s, over "
        f"{_setting('max_scene_seconds', limits.max_scene_seconds)} s",
        field=field,
    )


def voiceover_seconds(path: Path) -> float | None:
    """The length an audio file's header gives, without decoding it; None when it gives none.

    Cheap enough for an upload or a render request; VALIDATE decodes the file and checks its
    real length again.
    """
    try:
        with open_user_media(path, formats=AUDIO_DEMUXERS) as container:
            streams = container.streams.audio
            if streams and streams[0].duration is not None and streams[0].time_base is not None:
                return float(streams[0].duration * streams[0].time_base)
            if container.duration is not None:
                return container.duration / av.time_base
    except (OSError, ValueError, av.FFmpegError):
        return None
    return None


def voiceover_problem(path: Path, limits: Limits, name: str | None = None) -> str | None:
    """What is wrong with an audio file (called `name`, else by its file name) as a scene's
    voiceover, by its header: too long for MAX_SCENE_SECONDS; None when nothing is (or its
    header does not say). For an upload to refuse at once what VALIDATE would refuse."""
    seconds = voiceover_seconds(path)
    if seconds is not None and seconds > limits.max_scene_seconds:
        return (
            f"{name or path.name} is {seconds:.0f} s long, over "
            f"{_setting('max_scene_seconds', limits.max_scene_seconds)} s for a scene"
        )
    return None


def check_voiceover(index: int, seconds: float | None, limits: Limits) -> None:
    if seconds is not None and seconds > limits.max_scene_seconds:
        raise scene_too_long(index, "voiceover", seconds, limits)


def count_work(
    scenes: Sequence[tuple[float, int]], options: RenderOptions, size: tuple[int, int]
) -> Work:
    """The frames, shots and units of scenes of these (seconds, images), as `build_plan`
    would lay them out (every scene, whatever part of the timeline is rendered: the whole
    timeline is laid out), counted without making a shot."""
    fps = options.fps
    min_frames = timeline.min_shot_frames(options.min_shot, fps)
    chunk = (
        0
        if options.preview
        else timeline.round_half_up(timeline.exact(options.chunk_seconds) * fps)
    )
    counted = []
    for seconds, images in scenes:
        # As build_plan: the scene rounded to whole frames, then cut into shots.
        frames = max(timeline.round_half_up(timeline.exact(seconds) * fps), 1)
        shots = timeline.shot_count(Fraction(frames, fps), images, options.max_shot)
        frames = max(frames, shots * min_frames)
        chunks = max(1, timeline.round_half_up(Fraction(frames, chunk))) if chunk else 1
        counted.append(SceneWork(frames, shots, chunks))
    return Work(tuple(counted), *size)


def check_work(
    work: Work, options: RenderOptions, limits: Limits, spoken: Sequence[int] | None = None
) -> None:
    """The whole job's frames, pixels × frames, shots and units, each within its limit
    (`spoken`: the scenes TTS speaks; None counts every scene, an upper bound)."""
    seconds = work.frames / options.fps
    if work.frames > limits.max_job_frames:
        raise OverLimit(
            f"scenes: the video would be {work.frames} frames ({seconds:.0f} s at "
            f"{options.fps} fps), over {_setting('max_job_frames', limits.max_job_frames)}",
            field="scenes",
        )
    if work.gigapixels > limits.max_job_gigapixels:
        raise OverLimit(
            f"renderOptions.resolution: {work.width}x{work.height} × {work.frames} frames is "
            f"{work.gigapixels:.0f} billion pixels, over "
            f"{_setting('max_job_gigapixels', limits.max_job_gigapixels)} billion",
            field="renderOptions.resolution",
        )
    if work.shots > limits.max_job_shots:
        raise OverLimit(
            f"renderOptions.maxShot: {work.shots} shots of at most {options.max_shot:g} s, over "
            f"{_setting('max_job_shots', limits.max_job_shots)}",
            field="renderOptions.maxShot",
        )
    units = unit_count(work, spoken)
    if units > limits.max_job_units:
        raise OverLimit(
            f"renderOptions.chunkSeconds: {units} tasks (scenes built in chunks of "
            f"{options.chunk_seconds:g} s), over {_setting('max_job_units', limits.max_job_units)}",
            field="renderOptions.chunkSeconds",
        )


def unit_count(work: Work, spoken: Sequence[int] | None = None) -> int:
    """The stage runs the job's rows will be: the registry's units, with `work`'s chunks
    (`spoken`: the scenes TTS speaks; None counts every scene, an upper bound)."""
    from pipeline import registry  # registry → plan → this module: imported when counting

    everyone = tuple(range(len(work.scenes)))
    outline = registry.Outline(len(work.scenes), everyone if spoken is None else tuple(spoken))
    total = 0
    for stage in registry.STAGES:
        if not stage.per_scene:
            total += 1
        elif stage.per_segment:
            total += sum(work.scenes[index].chunks for index in stage.scenes(outline))
            total += 2 * work.transitions
        else:
            total += len(stage.scenes(outline))
    return total


def check(
    spec: ProjectSpec,
    options: RenderOptions,
    seconds: Sequence[float | None],
    size: tuple[int, int],
    limits: Limits,
) -> Work:
    """Every limit, for a spec whose scenes last `seconds` (None: not known yet, counted as
    a frame) rendered at `size`; raises OverLimit naming the first limit exceeded."""
    check_options(options, limits)
    check_spec(spec, options, limits)
    counted = [
        (s if s is not None else 0.0, len(scene.images))
        for s, scene in zip(seconds, spec.scenes, strict=True)
    ]
    work = count_work(counted, options, size)
    joined = [s.transition for s in spec.scenes[:-1]]
    work = replace(work, transitions=sum(t is not None and t.type != "cut" for t in joined))
    from pipeline import registry  # registry → plan → this module: imported when counting

    check_work(work, options, limits, registry.outline(spec, options).spoken)
    return work
