"""The command line's orchestrator: every stage of the registry in order, in this process.

The service runs the same stages as Celery tasks (tasks/canvas.py); both read `STAGES`.

With several jobs, the command line overlaps what the registry lets it: a stage that runs once
and writes named files only (AUDIO_PREP: the master track) runs beside the per-scene stage after
it, whose FFmpeg commands wait only where they name one of those files (a scene's published
`scene_NN.mp4`, muxed with its cut of the master), and the stages after both wait for it. A
per-scene stage's units start longest first, so that the last one left running alone is short.

What runs beside the units (that stage, and each finished scene's published files, which no
unit waits for) runs at a lower CPU priority: it takes the core the last unit leaves idle
instead of sharing the cores with the encodes before it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from pipeline import registry, stages
from pipeline.errors import PipelineError
from pipeline.ffmpeg import Runner
from pipeline.options import RenderOptions
from pipeline.plan import Plan, load_spec
from pipeline.project import ProjectDir
from pipeline.registry import Stage, StageRun
from pipeline.units import ONCE, Unit

# Added to FFmpeg's niceness for what runs beside a per-scene stage's units (`_Beside`). At 19
# the kernel gives it about 1.5% of a core an encode also wants, so nearly all of it waits for
# a core with nothing else to do: the bench project's last unit ran 4.4 s alone while AUDIO_PREP
# and the scene files, 8 s of CPU, had run earlier at the encodes' expense.
BESIDE_NICE = 19


class _Progress:
    """The weighted progress of every label, reported as one fraction 0..1."""

    def __init__(self, report: Callable[[float], None] | None) -> None:
        self._report = report
        self._lock = threading.Lock()
        self._weights = registry.weights(registry.Outline(1))
        self._done: dict[str, float] = {}

    def replan(self, outline: registry.Outline, plan: Plan | None = None) -> None:
        with self._lock:
            self._weights = registry.weights(outline, plan)

    def reporter(self, label: str) -> Callable[[float], None] | None:
        if self._report is None:
            return None

        def update(fraction: float) -> None:
            with self._lock:
                self._done[label] = fraction
                total = sum(self._weights.values())
                overall = sum(self._weights.get(k, 0.0) * f for k, f in self._done.items())
            assert self._report is not None
            self._report(overall / total)

        return update


def render(
    project: ProjectDir,
    options: RenderOptions,
    output_name: str,
    runner: Runner,
    jobs: int = 1,
    *,
    threads: int = 0,
    lookahead: int = 0,
    on_stage: Callable[[str], None] | None = None,
    on_stage_done: Callable[[str, float], None] | None = None,
) -> Path:
    """All stages in order, `jobs` runs of a per-scene stage at a time; on_progress sees 0..1.

    With several scene builds at once, each x264 gets its share of the usable cores unless
    `threads` says otherwise: x264 alone already fills every core it is given, so more threads
    than cores only add frames in flight (memory) and contention.

    `on_stage` hears of each stage as it starts; a stage run beside the next one (see the
    module's docstring) is not started in turn, and `on_stage_done` hears of it when it ends,
    with its seconds.
    """
    progress = _Progress(runner.on_progress)
    cores = usable_cpus()
    share = max(1, cores // jobs) if jobs > 1 else 0
    base = StageRun(
        project, options, output_name, runner, threads=threads or share, lookahead=lookahead
    )
    # The unit started last runs alone once the one before it ends: it gets every core
    # (unless the caller chose the threads).
    last = cores if share and not threads and share < cores else 0
    # The stages before VALIDATE run for the spec's scenes (SPEECH: its spoken ones).
    outline = _spec_outline(project, options)
    progress.replan(outline)
    _clear_clips(project)
    deferred: list[Stage] = []  # a stage waiting to run beside the next one
    known: list[Plan | None] = [None]  # the plan, once VALIDATE has laid it out

    def starting(stage: Stage) -> None:
        if on_stage is not None:
            on_stage(stage.name)
        if runner.log is not None:
            runner.log(f"stage {stage.name} at {time.strftime('%H:%M:%S')}")

    def run_once(stage: Stage, nice: int = 0) -> Plan | None:
        reporter = progress.reporter(stage.label())
        lower = dataclasses.replace(runner, on_progress=reporter, nice=runner.nice + nice)
        run = dataclasses.replace(base, runner=lower)
        laid_out = run_here(stage, run)
        if reporter is not None:  # a stage that ran no FFmpeg (VALIDATE) still counts as done
            reporter(1.0)
        return laid_out

    def in_turn(stage: Stage) -> Plan | None:
        starting(stage)
        return run_once(stage)

    def execute(stage: Stage, units: list[Unit]) -> Plan | None:
        if deferred and stage.per_scene:
            starting(stage)
            beside = _Beside(deferred.pop(), project, run_once, on_stage_done, jobs)
            with beside:
                _run_units(stage, beside.gated(base), units, jobs, progress, known[0], last)
            return None
        if deferred:  # the stage it would have run beside has nothing to run
            in_turn(deferred.pop())
        if jobs > 1 and units == [ONCE] and _may_run_beside_next(stage):
            deferred.append(stage)
            return None
        if stage.per_scene:
            starting(stage)
            _run_units(stage, base, units, jobs, progress, known[0], last)
            return None
        return in_turn(stage)

    def planned(outline: registry.Outline, plan: Plan) -> None:
        known[0] = plan
        progress.replan(outline, plan)

    run_stages(outline, execute, on_plan=planned)
    if deferred:
        in_turn(deferred.pop())
    return project.output / output_name


def _may_run_beside_next(stage: Stage) -> bool:
    """Whether a stage that runs once may run beside the per-scene stage after it: it lays
    out nothing, it writes named files only (which the next stage's commands can wait for),
    and it reads nothing that stage writes."""
    index = registry.STAGES.index(stage)
    after = registry.STAGES[index + 1] if index + 1 < len(registry.STAGES) else None
    return (
        after is not None
        and after.per_scene
        and not stage.per_scene
        and not stage.lays_out
        and bool(stage.writes)
        and not any("*" in pattern for pattern in stage.writes)
        and not set(stage.reads) & set(after.writes)
    )


@dataclass
class _Beside:
    """Work run beside a per-scene stage's units (`with`), `BESIDE_NICE` below them: a stage
    that may run beside them, in a thread of its own, and each finished scene's published
    files (`StageRun.later`), on `jobs` threads. FFmpeg commands that name one of that stage's
    files, the units' and the scene files' alike, wait until it is done (`gated`).

    Leaving waits for all of it. The stage's error, if any, is the one raised: a unit that
    waited for it failed only because it did; else a scene file's."""

    stage: Stage
    project: ProjectDir
    body: Callable[[Stage, int], object]
    on_done: Callable[[str, float], None] | None
    jobs: int = 1
    error: BaseException | None = None
    _done: threading.Event = field(default_factory=threading.Event)
    _later: list[Future[object]] = field(default_factory=list)

    def __post_init__(self) -> None:
        located = (registry.located(self.project, p) for p in self.stage.writes)
        self.files = frozenset(str(self.project.root / path) for path in located)
        self._thread = threading.Thread(target=self._run, name=self.stage.name, daemon=True)
        self._pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="later")

    def _run(self) -> None:
        began = time.monotonic()
        try:
            self.body(self.stage, BESIDE_NICE)
        except BaseException as exc:  # raised in the orchestrator's thread, on leaving
            self.error = exc
        finally:
            self._done.set()
        if self.error is None and self.on_done is not None:
            self.on_done(self.stage.name, time.monotonic() - began)

    def __enter__(self) -> _Beside:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join()
        # After a unit failed, what has not started of the scene files is not made.
        self._pool.shutdown(wait=True, cancel_futures=exc[0] is not None)
        if self.error is not None:
            raise self.error
        for future in self._later:
            if not future.cancelled():
                future.result()

    def gated(self, run: StageRun) -> StageRun:
        fields = {f.name: getattr(run.runner, f.name) for f in dataclasses.fields(run.runner)}
        runner = _GatedRunner(**fields, beside=self)
        lower = dataclasses.replace(runner, nice=runner.nice + BESIDE_NICE, on_progress=None)
        return dataclasses.replace(run, runner=runner, later=partial(self._submit, lower))

    def _submit(self, runner: Runner, make: Callable[[Runner], object]) -> None:
        self._later.append(self._pool.submit(make, runner))

    def wait_for(self, args: list[str]) -> None:
        """Return once the files of this stage's that `args` name are written (at once if
        none); once it has failed, no command starts."""
        if not self.files.isdisjoint(args):
            self._done.wait()
        if self._done.is_set() and self.error is not None:
            raise PipelineError(f"{self.stage.name} failed", stage=self.stage.name)


@dataclass
class _GatedRunner(Runner):
    """A Runner whose commands wait for the files of the stage running beside (`_Beside`)."""

    beside: _Beside | None = None

    def run(self, args: list[str], *, expected_seconds: float, scene: int | None = None) -> None:
        if self.beside is not None:
            self.beside.wait_for(args)
        super().run(args, expected_seconds=expected_seconds, scene=scene)


Execute = Callable[[Stage, list[Unit]], Plan | None]


def run_stages(
    outline: registry.Outline,
    execute: Execute,
    on_plan: Callable[[registry.Outline, Plan], None] | None = None,
) -> None:
    """The one stage loop: every stage of the registry in order, `execute`d with its units
    (the plan's, once VALIDATE has laid it out: a chunked scene's chunks); a stage with none
    is skipped (SPEECH where nothing is spoken). `on_plan` hears of the laid-out plan."""
    plan: Plan | None = None
    for stage in registry.STAGES:
        units = stage.units(outline, plan)
        if not units:
            continue
        laid_out = execute(stage, units)
        if laid_out is not None:
            plan = laid_out
            # Built from here on: the plan's scenes (a part of the timeline has fewer).
            outline = dataclasses.replace(outline, scenes=len(plan.scenes))
            if on_plan is not None:
                on_plan(outline, plan)


RunOne = Callable[[Stage, StageRun], Plan | None]


def run_in_order(base: StageRun, run_one: RunOne | None = None) -> None:
    """Every unit of every stage one after another, as separate workers would run them
    (`run_one`, by default `run_here`: in this folder, publishing its outputs)."""
    run = run_one or run_here

    def execute(stage: Stage, units: list[Unit]) -> Plan | None:
        laid_out = None
        for unit in units:
            laid_out = run(stage, dataclasses.replace(base, unit=unit)) or laid_out
        return laid_out

    run_stages(_spec_outline(base.project, base.options), execute)


def run_here(stage: Stage, run: StageRun) -> Plan | None:
    """Run one stage on the folder and publish what it made into its output/ (the service
    publishes through its storage instead); the plan when the stage laid out the timeline."""
    result = registry.run_stage(stage, run)
    if isinstance(result, stages.Publication):
        stages.publish_here(run.project.output, result)
        return None
    return result


def usable_cpus() -> int:
    """The cores this process may run on: its affinity mask (which `taskset`, a container's
    cpuset or a batch scheduler narrow), not every core of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity masks (macOS, Windows)
        return os.cpu_count() or 1


def _spec_outline(project: ProjectDir, options: RenderOptions) -> registry.Outline:
    try:
        return registry.outline(load_spec(project), options)
    except PipelineError:
        return registry.Outline(0)  # VALIDATE says what is wrong with the spec


def _clear_clips(project: ProjectDir) -> None:
    """The clips and stills an earlier run of this folder left: a scene's outputs are made
    once all its clip files are there, so none may be left over from another plan."""
    for folder in ("scenes", "stills"):
        shutil.rmtree(project.work / folder, ignore_errors=True)


def _run_units(
    stage: Stage,
    base: StageRun,
    units: list[Unit],
    jobs: int,
    progress: _Progress,
    plan: Plan | None = None,
    last_threads: int = 0,
) -> None:
    """The stage's units, `jobs` at a time, longest first; the one started last with
    `last_threads` x264 threads (0: the plan's)."""

    def run_one(unit: Unit, threads: int = 0) -> None:
        runner = dataclasses.replace(base.runner, on_progress=progress.reporter(stage.label(unit)))
        run = dataclasses.replace(base, unit=unit, runner=runner, unit_threads=threads)
        run_here(stage, run)

    jobs = max(1, min(jobs, len(units)))
    if jobs == 1:
        for unit in units:
            run_one(unit)
        return
    ordered = longest_first(units, plan)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [
            pool.submit(run_one, unit, last_threads if n == len(ordered) - 1 else 0)
            for n, unit in enumerate(ordered)
        ]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def longest_first(units: list[Unit], plan: Plan | None) -> list[Unit]:
    """The units by their frames, most first (ties in running order): with a unit per core at
    a time, the last one left running alone, with cores idle beside it, is one of the shortest.
    Without a plan (a stage before VALIDATE), as they are."""
    if plan is None:
        return units
    return sorted(units, key=lambda unit: -unit.frames(plan))
