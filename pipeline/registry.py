"""The stage registry: every stage of a render, in running order, written down once.

The command line's orchestrator (`pipeline.render`), the Celery canvas and task registration
(`tasks/`), the job's stage names and progress weights, and the API's per-scene view are all read
from `STAGES`. Adding a stage is one entry here, its body, and its tests.

A stage's *label* is its name, or `NAME[i]` for the run of a per-scene stage on scene i, or
`NAME[i/c]` for chunk c of scene i of a chunked stage (`pipeline.chunks`: a long scene's clip
is built in several units, each run on any worker): the names the job row, the logs and the
API show. A chunked stage's units follow from the plan, so they are known once the stage that
lays out the timeline (VALIDATE) has run; until then the job has one `NAME[i]` per scene.

Before the plan, the units follow from the job's `Outline`: how many scenes the spec has and
which of them TTS speaks. A per-scene stage may run for some scenes only (SPEECH: the spoken
ones), so a job with nothing to speak has no SPEECH unit at all and starts with VALIDATE.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline import stages
from pipeline.cache import ClipCache, ClipReport
from pipeline.chunks import chunk_count, chunk_spans
from pipeline.errors import PipelineError
from pipeline.ffmpeg import Runner
from pipeline.limits import Limits, check_narration
from pipeline.options import RenderOptions
from pipeline.plan import Plan, load_spec, make_plan, read_plan, write_plan
from pipeline.probe import MAX_PIXELS
from pipeline.project import ProjectDir
from pipeline.spec import ProjectSpec
from pipeline.tts import cache as speech_cache


@dataclass(frozen=True)
class Outline:
    """What a job's units follow from before its timeline is laid out: the spec's scene
    count, and the scenes whose narration TTS speaks (indices from 0, ascending)."""

    scenes: int
    spoken: tuple[int, ...] = ()


def outline(spec: ProjectSpec, options: RenderOptions) -> Outline:
    """The job's outline from its spec and options: a scene is spoken when TTS says its
    narration (`speech_cache.spoken_text`, the one rule for it)."""
    spoken = tuple(
        index
        for index, scene in enumerate(spec.scenes)
        if speech_cache.spoken_text(scene, options) is not None
    )
    return Outline(len(spec.scenes), spoken)


def _spoken(outline: Outline) -> tuple[int, ...]:
    return outline.spoken


@dataclass(frozen=True)
class StageRun:
    """What a stage body gets: the project, the options, a Runner bound to this stage."""

    project: ProjectDir
    options: RenderOptions
    output_name: str
    runner: Runner
    scene: int | None = None
    chunk: int | None = None  # of a chunked stage's scene built in chunks
    # libx264 threads and rc-lookahead, fixed into the plan by the stage that makes it.
    threads: int = 0
    lookahead: int = 0
    # The image pixel cap VALIDATE checks against (the service's MAX_IMAGE_PIXELS).
    max_pixels: int = MAX_PIXELS
    # The shared clip store (None: encode every scene), and who is told how each clip came
    # to be (encoded, cached, or skipped by a part-of-the-timeline render).
    cache: ClipCache | None = None
    on_clip: Callable[[ClipReport], None] | None = None
    # How much work the render may order (SPEECH and VALIDATE check it).
    limits: Limits = field(default_factory=Limits)

    def plan(self) -> Plan:
        return read_plan(self.project)

    @property
    def scene_index(self) -> int:
        if self.scene is None:
            raise ValueError("a per-scene stage ran without a scene")
        return self.scene


# A body returns the Plan when it laid out the timeline, what to publish when it made the
# outputs (FINALIZE), else None.
Body = Callable[[StageRun], Plan | stages.Publication | None]
Unit = tuple[int | None, int | None]  # (scene, chunk) of one run of a stage


@dataclass(frozen=True)
class Stage:
    """One stage: its name, its share of the progress bar, its body, once per scene or not.

    A body that returns a Plan has laid out the timeline (`lays_out`): per-scene weights and
    a chunked stage's units follow it. A per-scene stage runs for every scene of the outline,
    or for those `only` picks.
    """

    name: str
    weight: float
    body: Body
    per_scene: bool = False
    chunked: bool = False  # a long scene's run is split into chunks (implies per_scene)
    lays_out: bool = False
    only: Callable[[Outline], tuple[int, ...]] | None = None
    # The files the body reads and the ones it writes for later stages, as patterns under
    # the project folder (`located`): `work/` is the run's own work folder, and a `*` spans
    # folders. Files a body makes and removes (or only reads back) itself are not listed.
    # The task layer fetches the reads into a local folder before the body runs and
    # publishes the writes after, when the storage is not that folder itself.
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()

    def label(self, scene: int | None = None, chunk: int | None = None) -> str:
        if self.per_scene != (scene is not None):
            raise ValueError(f"{self.name} runs {'per scene' if self.per_scene else 'once'}")
        if chunk is not None and not self.chunked:
            raise ValueError(f"{self.name} does not run in chunks")
        if scene is None:
            return self.name
        return f"{self.name}[{scene}/{chunk}]" if chunk is not None else f"{self.name}[{scene}]"

    def scenes(self, outline: Outline) -> tuple[int, ...]:
        """The scenes a per-scene stage runs for: every one of the outline's, or `only`'s."""
        return self.only(outline) if self.only is not None else tuple(range(outline.scenes))

    def units(self, outline: Outline, plan: Plan | None = None) -> list[Unit]:
        """The stage's runs: once, once per scene it runs for, or (chunked, with a plan) once
        per chunk of each scene the plan builds in chunks."""
        if not self.per_scene:
            return [(None, None)]
        found: list[Unit] = []
        for scene in self.scenes(outline):
            chunks = 1
            if self.chunked and plan is not None and scene < len(plan.scenes):
                chunks = chunk_count(plan, plan.scenes[scene])
            found += [(scene, c) for c in range(chunks)] if chunks > 1 else [(scene, None)]
        return found

    def labels(self, outline: Outline, plan: Plan | None = None) -> list[str]:
        return [self.label(*unit) for unit in self.units(outline, plan)]


def _speech(run: StageRun) -> None:
    # Before VALIDATE, once per spoken scene of the spec: each scene's narration is spoken by
    # its own task, so a long narrated project is not synthesised on one process.
    spec = load_spec(run.project)
    if run.scene_index < len(spec.scenes):  # not a narration longer than it may be
        check_narration(spec, run.options, run.scene_index, run.limits)
    spoken = speech_cache.speak_scene(run.project, run.options, spec, run.scene_index)
    if spoken is not None and run.runner.log is not None:
        run.runner.log(f"speech: {spoken.relative_to(run.project.root)}")
    if run.runner.on_progress is not None:  # no FFmpeg ran to say so
        run.runner.on_progress(1.0)


def _validate(run: StageRun) -> Plan:
    run.project.work.mkdir(parents=True, exist_ok=True)
    plan = make_plan(
        run.project,
        run.options,
        run.runner.ffmpeg,
        threads=run.threads,
        lookahead=run.lookahead,
        bounds=run.limits,
        max_pixels=run.max_pixels,
    )
    write_plan(run.project, plan)
    if run.runner.log is not None:
        units = sum(chunk_count(plan, scene) for scene in plan.scenes)
        run.runner.log(
            f"plan: {len(plan.scenes)} scenes built in {units} units, {plan.total_frames} "
            f"frames at {plan.fps} fps, {plan.width}x{plan.height}"
        )
    return plan


def _audio_prep(run: StageRun) -> None:
    stages.prepare_audio(run.project, run.plan(), run.runner)


def _scene_build(run: StageRun) -> None:
    plan = run.plan()
    if run.scene_index >= len(plan.scenes):
        # The job was queued with a run per scene of the spec; a render of part of the
        # timeline (renderOptions.scenes or .range) has fewer.
        if run.on_clip is not None:
            run.on_clip(ClipReport("skipped"))
        return
    stages.build_scene(
        run.project,
        plan,
        run.scene_index,
        run.runner,
        chunk=run.chunk,
        cache=_cache(run),
        report=run.on_clip,
    )
    # A scene's files are made where its clip is finished: by its one build, or by whichever
    # of its chunks' builds (on whichever worker) finds the others already there.
    if not plan.draft and stages.scene_complete(run.project, plan, run.scene_index):
        stages.build_scene_outputs(run.project, plan, run.scene_index, run.runner, _cache(run))


def _cache(run: StageRun) -> ClipCache | None:
    """The render cache, unless this render bypasses it (renderOptions.cache: false)."""
    return run.cache if run.options.cache else None


def _concat(run: StageRun) -> None:
    stages.concat(run.project, run.plan(), run.runner, cache=_cache(run))


def _finalize(run: StageRun) -> stages.Publication:
    return stages.finalize(
        run.project,
        run.plan(),
        run.output_name,
        run.runner,
        poster_time=run.options.poster_time,
        cache=_cache(run),
    )


_SPEC = "input/scenes.json"
_INPUTS = "input/*"  # the spec, images, voiceovers and music
_SPEECH = "cache/speech/*"  # what SPEECH synthesised (a shared cache of the project)
_PLAN = "work/plan.json"
_MASTER = ("work/audio.wav", "work/audio.wav.sha256")
_CLIPS = "work/scenes/*"  # every clip and chunk (a scene's chunks may be built anywhere)
_SCENE_OUTPUTS = "work/outputs/*"

# Weights are rough shares of a render's wall time: libx264 in the scene builds is nearly all.
STAGES: tuple[Stage, ...] = (
    Stage(
        "SPEECH",
        1.0,
        _speech,
        per_scene=True,
        only=_spoken,
        reads=(_SPEC, _SPEECH),
        writes=(_SPEECH,),
    ),
    Stage("VALIDATE", 2.0, _validate, lays_out=True, reads=(_INPUTS, _SPEECH), writes=(_PLAN,)),
    Stage("AUDIO_PREP", 4.0, _audio_prep, reads=(_PLAN, _INPUTS, _SPEECH), writes=_MASTER),
    Stage(
        "SCENE_BUILD",
        85.0,
        _scene_build,
        per_scene=True,
        chunked=True,
        # Its stills (work/stills/) are shared by a scene's chunks where the storage is the
        # work folder; elsewhere each chunk prepares its own.
        reads=(_PLAN, _INPUTS, *_MASTER, _CLIPS),
        writes=(_CLIPS, _SCENE_OUTPUTS),
    ),
    Stage("CONCAT", 3.0, _concat, reads=(_PLAN, *_MASTER, _CLIPS), writes=("work/joined.mp4",)),
    Stage(
        "FINALIZE",
        6.0,
        _finalize,
        # The clips for a poster at posterTime; the master for scene outputs not made yet.
        reads=(_PLAN, *_MASTER, _CLIPS, _SCENE_OUTPUTS, "work/joined.mp4"),
        writes=(f"work/{stages.FINAL_DIR}/*",),
    ),
)
BY_NAME = {stage.name: stage for stage in STAGES}
LAST = STAGES[-1]
_LABEL = re.compile(r"^([A-Z_]+)(?:\[(\d+)(?:/(\d+))?\])?$")


def labels(outline: Outline, plan: Plan | None = None) -> list[str]:
    """Every stage label of a job of this `outline` (and, once it is laid out, its `plan`'s
    chunks), in running order."""
    return [label for stage in STAGES for label in stage.labels(outline, plan)]


def parse_unit(label: str) -> tuple[Stage, int | None, int | None]:
    """'NAME[3/1]' → (the chunked stage NAME, 3, 1); 'NAME[3]' → (NAME, 3, None); 'NAME' →
    (NAME, None, None)."""
    match = _LABEL.fullmatch(label)
    stage = BY_NAME.get(match[1]) if match else None
    if (
        match is None
        or stage is None
        or stage.per_scene != (match[2] is not None)
        or (match[3] is not None and not stage.chunked)
    ):
        raise ValueError(f"{label!r} is not a stage label")
    scene = int(match[2]) if match[2] is not None else None
    return stage, scene, int(match[3]) if match[3] is not None else None


def parse_label(label: str) -> tuple[Stage, int | None]:
    """'NAME[3]' or 'NAME[3/1]' → (the per-scene stage NAME, 3); 'NAME' → (NAME, None)."""
    stage, scene, _ = parse_unit(label)
    return stage, scene


def scene_of(label: str) -> int | None:
    """The scene a label is about, or None for a stage that runs once."""
    return parse_label(label)[1]


def clip_scene_of(label: str) -> int | None:
    """The scene a SCENE_BUILD label builds (part of) the clip of (the API's per-scene view);
    None for any other label, per-scene (SPEECH) or not."""
    stage, scene = parse_label(label)
    return scene if stage is BY_NAME["SCENE_BUILD"] else None


def order_key(label: str) -> tuple[int, int, int]:
    """Where a label comes in running order: stage, then scene, then chunk."""
    stage, scene, chunk = parse_unit(label)
    return STAGES.index(stage), scene if scene is not None else -1, chunk or 0


def weights(outline: Outline, plan: Plan | None = None) -> dict[str, float]:
    """Each label's share of the progress bar. A stage that runs has its whole weight, a
    per-scene one split over the scenes it runs for by their frames (once there is a plan;
    evenly before), a chunked one by its chunks' frames; a stage with no runs has none."""
    frames: dict[Unit, int] = {}
    for index in range(outline.scenes):
        if plan is None:
            frames[(index, None)] = 1
        elif index < len(plan.scenes):
            frames[(index, None)] = plan.scenes[index].frames
            spans = chunk_spans(plan, plan.scenes[index])
            if len(spans) > 1:
                frames.update({(index, c): b - a for c, (a, b) in enumerate(spans)})
        else:
            frames[(index, None)] = 0  # not in this part of the timeline
    shares: dict[str, float] = {}
    for stage in STAGES:
        units = stage.units(outline, plan)
        total = sum(frames.get((scene, None), 0) for scene in {s for s, _ in units}) or 1
        for unit in units:
            share = frames.get(unit, 0) / total if unit[0] is not None else 1.0
            shares[stage.label(*unit)] = stage.weight * share
    return shares


Step = list[tuple[Stage, int | None, int | None]]
# The stage that lays out the timeline: the units after it follow from its plan.
LAYOUT = next(index for index, stage in enumerate(STAGES) if stage.lays_out)


def steps(outline: Outline, plan: Plan | None = None) -> list[Step]:
    """The stages as the canvas runs them: one step at a time, a per-scene step's runs in
    parallel. Without a plan, the steps up to the one that lays out the timeline; with one,
    the steps after it. A stage with no runs (SPEECH with nothing to speak) is no step."""
    chosen = STAGES[: LAYOUT + 1] if plan is None else STAGES[LAYOUT + 1 :]
    found = [[(stage, s, c) for s, c in stage.units(outline, plan)] for stage in chosen]
    return [step for step in found if step]


def located(project: ProjectDir, pattern: str) -> str:
    """A stage's file pattern under the project folder, its `work/` made the run's own work
    folder ('work/plan.json' → 'work/<run>/plan.json' for a named run)."""
    if pattern.startswith("work/"):
        work = project.work.relative_to(project.root).as_posix()
        return f"{work}/{pattern.removeprefix('work/')}"
    return pattern


def run_stage(stage: Stage, run: StageRun) -> Plan | stages.Publication | None:
    """Run one stage's body with the runner bound to it; its errors name the stage and scene."""
    runner = dataclasses.replace(run.runner, stage=stage.name, scene=run.scene)
    try:
        return stage.body(dataclasses.replace(run, runner=runner))
    except PipelineError as exc:
        located = exc.located(stage.name, run.scene)
        if located is exc:
            raise
        raise located from exc
