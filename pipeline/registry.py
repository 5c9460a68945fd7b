"""The stage registry: every stage of a render, in running order, written down once.

The command line's orchestrator (`pipeline.render`), the Celery canvas and task registration
(`tasks/`), the job's stage names and progress weights, and the API's per-scene view are all read
from `STAGES`. Adding a stage is one entry here, its body, and its tests.

A stage runs once, once per scene, or (SCENE_BUILD, `per_segment`) once per segment of the
plan: each clip the video is joined from, a scene's or a chunk of one (`pipeline.units`: a
long scene's clip is built in several units, each run on any worker). A run's *label* is its
stage's name followed by its unit's (`NAME`, `NAME[i]`, `NAME[i/c]`): the names the job row,
the logs, the task ids and the API show. The segments follow from the plan, so they are known
once the stage that lays out the timeline (VALIDATE) has run; until then the job has one
`NAME[i]` per scene.

Before the plan, the units follow from the job's `Outline`: how many scenes the spec has and
which of them TTS speaks. A per-scene stage may run for some scenes only (SPEECH: the spoken
ones), so a job with nothing to speak has no SPEECH unit at all and starts with VALIDATE.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline import stages, units
from pipeline.cache import ClipCache, ClipReport
from pipeline.errors import PipelineError
from pipeline.ffmpeg import Runner
from pipeline.limits import Limits, check_narration
from pipeline.options import RenderOptions
from pipeline.plan import Plan, load_spec, make_plan, read_plan, write_plan
from pipeline.project import ProjectDir
from pipeline.spec import ProjectSpec
from pipeline.tts import cache as speech_cache
from pipeline.units import ONCE, Unit, scene_unit, segments


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
    unit: Unit = ONCE  # which run of the stage: once, a scene's, a chunk of a scene's clip
    # libx264 threads and rc-lookahead, fixed into the plan by the stage that makes it.
    threads: int = 0
    lookahead: int = 0
    # libx264 threads of this unit's encode instead of the plan's (0: the plan's): the command
    # line gives the unit it starts last every core, since nothing is left to run beside it.
    unit_threads: int = 0
    # The shared clip store (None: encode every scene), and who is told how each clip came
    # to be (encoded, cached, or skipped by a part-of-the-timeline render).
    cache: ClipCache | None = None
    on_clip: Callable[[ClipReport], None] | None = None
    # How much work the render may order (SPEECH and VALIDATE check it).
    limits: Limits = field(default_factory=Limits)
    # Who makes a finished scene's files (`build_scene_outputs`), given how to make them with
    # a runner: None, the unit that finished the scene, at once; the command line hands them
    # to work it runs beside the next units (`pipeline.render`).
    later: Callable[[Callable[[Runner], object]], None] | None = None

    def plan(self) -> Plan:
        return read_plan(self.project)

    @property
    def scene(self) -> int | None:
        return self.unit.scene

    @property
    def scene_index(self) -> int:
        return self.unit.scene_index


# A body returns the Plan when it laid out the timeline, what to publish when it made the
# outputs (FINALIZE), else None.
Body = Callable[[StageRun], Plan | stages.Publication | None]


@dataclass(frozen=True)
class Stage:
    """One stage: its name, its share of the progress bar, its body, and what it runs for.

    A body that returns a Plan has laid out the timeline (`lays_out`): per-scene weights and
    the segments follow it. A per-scene stage runs for every scene of the outline, or for
    those `only` picks; a `per_segment` one, once the plan is laid out, for each of those
    scenes' segments (`pipeline.units.segments`).
    """

    name: str
    weight: float
    body: Body
    per_scene: bool = False
    per_segment: bool = False  # builds the plan's segments (implies per_scene)
    lays_out: bool = False
    only: Callable[[Outline], tuple[int, ...]] | None = None
    # The files the body reads and the ones it writes for later stages, as patterns under
    # the project folder (`located`): `work/` is the run's own work folder, and a `*` spans
    # folders. Files a body makes and removes (or only reads back) itself are not listed.
    # The task layer fetches the reads into a local folder before the body runs and
    # publishes the writes after, when the storage is not that folder itself.
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    # Files the body prepares for itself, named by what they are made from, that its other
    # units may take as they are (`prepare_stills`) and that are never published: where the
    # storage is not the work folder, the task layer shares them between the units of one
    # host (its scratch), never through the storage.
    host_shared: tuple[str, ...] = ()

    def label(self, unit: Unit = ONCE) -> str:
        """This stage's label for `unit`; a ValueError for a unit it does not run."""
        if self.per_scene == (unit.scene is None):
            raise ValueError(f"{self.name} runs {'per scene' if self.per_scene else 'once'}")
        plain = unit.scene is None or unit == scene_unit(unit.scene)
        if not plain and not (self.per_segment and unit.made.segment):
            raise ValueError(f"{self.name} does not run in {unit.kind}s")
        return unit.label(self.name)

    def scenes(self, outline: Outline) -> tuple[int, ...]:
        """The scenes a per-scene stage runs for: every one of the outline's, or `only`'s."""
        return self.only(outline) if self.only is not None else tuple(range(outline.scenes))

    def units(self, outline: Outline, plan: Plan | None = None) -> list[Unit]:
        """The stage's runs: once, once per scene it runs for, or (per segment, with a plan)
        once per segment of those scenes; a scene the plan does not have (a render of part
        of the timeline) keeps its one run."""
        if not self.per_scene:
            return [ONCE]
        chosen = self.scenes(outline)
        if not self.per_segment or plan is None:
            return [scene_unit(scene) for scene in chosen]
        picked = set(chosen)
        found = [unit for unit in segments(plan) if unit.scene in picked]
        return found + [scene_unit(scene) for scene in chosen if scene >= len(plan.scenes)]

    def labels(self, outline: Outline, plan: Plan | None = None) -> list[str]:
        return [self.label(unit) for unit in self.units(outline, plan)]


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
        log=run.runner.log,
    )
    write_plan(run.project, plan)
    if run.runner.log is not None:
        count = len(segments(plan))
        run.runner.log(
            f"plan: {len(plan.scenes)} scenes built in {count} units, {plan.total_frames} "
            f"frames at {plan.fps} fps, {plan.width}x{plan.height}"
        )
    return plan


def _audio_prep(run: StageRun) -> None:
    stages.prepare_audio(run.project, run.plan(), run.runner, cache=_cache(run))


def _scene_build(run: StageRun) -> None:
    plan = run.plan()
    if run.unit_threads:
        plan = dataclasses.replace(
            plan, encoder=dataclasses.replace(plan.encoder, threads=run.unit_threads)
        )
    if run.scene_index >= len(plan.scenes):
        # The job was queued with a run per scene of the spec; a render of part of the
        # timeline (renderOptions.scenes or .range) has fewer.
        if run.on_clip is not None:
            run.on_clip(ClipReport("skipped"))
        return
    stages.build_unit(
        run.project, plan, run.unit, run.runner, cache=_cache(run), report=run.on_clip
    )
    # A scene's files are made where its clip is finished: by its one build, or by whichever
    # of its chunks' builds (on whichever worker) finds the others already there.
    scene = run.unit.part_of()
    if scene is None or plan.draft or not stages.scene_complete(run.project, plan, scene):
        return

    def outputs(runner: Runner) -> None:
        stages.build_scene_outputs(run.project, plan, scene, runner, _cache(run))

    if run.later is None:
        outputs(run.runner)
    else:
        run.later(outputs)


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
_RUN_SPEC = "work/scenes.json"  # a job's own resolved spec (ProjectDir.own_spec)
# Work files there before any stage runs: the job's spec, written from its row by the task
# layer (tasks/stages.py `_pin_spec`).
PINNED: tuple[str, ...] = (_RUN_SPEC,)
_INPUTS = "input/*"  # the spec, images, voiceovers and music
_SPEECH = "cache/speech/*"  # what SPEECH synthesised (a shared cache of the project)
_ALIGNED = "cache/align/*"  # narrations aligned to their voiceovers (a shared cache too)
_HEARD = "cache/asr/*"  # what speech recognition heard in voiceovers (captions.transcribe)
_PLAN = "work/plan.json"
_MASTER = ("work/audio.wav", "work/audio.wav.sha256")
_MASTER_AAC = "work/audio.m4a"
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
        reads=(_SPEC, _RUN_SPEC, _SPEECH),
        writes=(_SPEECH,),
    ),
    Stage(
        "VALIDATE",
        2.0,
        _validate,
        lays_out=True,
        reads=(_INPUTS, _RUN_SPEC, _SPEECH, _ALIGNED, _HEARD),
        writes=(_PLAN, _ALIGNED, _HEARD),
    ),
    Stage(
        "AUDIO_PREP",
        4.0,
        _audio_prep,
        reads=(_PLAN, _INPUTS, _SPEECH),
        writes=(*_MASTER, _MASTER_AAC),
    ),
    Stage(
        "SCENE_BUILD",
        85.0,
        _scene_build,
        per_scene=True,
        per_segment=True,
        reads=(_PLAN, _INPUTS, *_MASTER, _CLIPS),
        writes=(_CLIPS, _SCENE_OUTPUTS),
        # Its stills are shared by a scene's chunks: in the work folder where the storage is
        # that folder, else among the chunks that run on one host.
        host_shared=("work/stills/*",),
    ),
    Stage(
        "CONCAT",
        3.0,
        _concat,
        reads=(_PLAN, _MASTER_AAC, _CLIPS),
        writes=("work/joined.mp4",),
    ),
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
_LABEL = re.compile(r"^([A-Z_]+)(?:\[([^\]]*)\])?$")


def labels(outline: Outline, plan: Plan | None = None) -> list[str]:
    """Every stage label of a job of this `outline` (and, once it is laid out, its `plan`'s
    segments), in running order."""
    return [label for stage in STAGES for label in stage.labels(outline, plan)]


def parse_unit(label: str) -> tuple[Stage, Unit]:
    """'NAME[3/1]' → (NAME, chunk 1 of scene 3); 'NAME[3]' → (NAME, scene 3); 'NAME' →
    (NAME, ONCE): whichever unit kind reads it, for a stage that runs it."""
    match = _LABEL.fullmatch(label)
    stage = BY_NAME.get(match[1]) if match else None
    unit = units.parse(match[2]) if match else None
    if stage is None or unit is None:
        raise ValueError(f"{label!r} is not a stage label")
    try:
        stage.label(unit)
    except ValueError:
        raise ValueError(f"{label!r} is not a stage label") from None
    return stage, unit


def parse_label(label: str) -> tuple[Stage, int | None]:
    """'NAME[3]' or 'NAME[3/1]' → (the per-scene stage NAME, 3); 'NAME' → (NAME, None)."""
    stage, unit = parse_unit(label)
    return stage, unit.scene


def scene_of(label: str) -> int | None:
    """The scene a label is about, or None for a stage that runs once."""
    return parse_label(label)[1]


def clip_scene_of(label: str) -> int | None:
    """The scene whose clip a label builds (part of) (the API's per-scene view): its unit's,
    for the stage that builds the segments; None for any other label, per-scene (SPEECH) or
    not."""
    stage, unit = parse_unit(label)
    return unit.part_of() if stage.per_segment else None


def order_key(label: str) -> tuple[int, int, int, int]:
    """Where a label comes in running order: stage, then its unit's place (scene, chunk)."""
    stage, unit = parse_unit(label)
    return (STAGES.index(stage), *unit.place())


def weights(outline: Outline, plan: Plan | None = None) -> dict[str, float]:
    """Each label's share of the progress bar. A stage that runs has its whole weight, split
    over its units by their frames once there is a plan (SPEECH by its scenes', the segments
    by theirs), evenly before; a stage with no runs has none."""
    shares: dict[str, float] = {}
    for stage in STAGES:
        runs = stage.units(outline, plan)
        frames = [unit.frames(plan) if plan is not None else 1 for unit in runs]
        total = sum(frames) or 1
        for unit, count in zip(runs, frames, strict=True):
            shares[stage.label(unit)] = stage.weight * (count / total)
    return shares


Step = list[tuple[Stage, Unit]]
# The stage that lays out the timeline: the units after it follow from its plan.
LAYOUT = next(index for index, stage in enumerate(STAGES) if stage.lays_out)


def steps(outline: Outline, plan: Plan | None = None) -> list[Step]:
    """The stages as the canvas runs them: one step at a time, a per-scene step's runs in
    parallel. Without a plan, the steps up to the one that lays out the timeline; with one,
    the steps after it. A stage with no runs (SPEECH with nothing to speak) is no step."""
    chosen = STAGES[: LAYOUT + 1] if plan is None else STAGES[LAYOUT + 1 :]
    found = [[(stage, unit) for unit in stage.units(outline, plan)] for stage in chosen]
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
