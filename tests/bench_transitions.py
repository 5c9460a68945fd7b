"""`make bench`'s transitions section: what an edit costs when every scene has a transition.

The bench project (6 scenes, 3–12 s voiceovers) with a 1 s transition between every two scenes
is rendered as the workers render it (every unit in turn, the render cache on), cold; then one
scene's picture is replaced and it is rendered again. Reported: the encodes (libx264 runs) and
the wall time of the re-render as a ratio to the full render of the same run (the aim: at most
0.35×, and exactly the edited scene and the two transitions touching it encoded). Beside it,
the same project with cuts, rendered in the same command: its total frames and its A/V
difference, which the render with transitions must equal.

Runnable alone: `python -m tests.bench_transitions [--resolution WxH] [--preset P] [--scene N]`.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from pipeline.cache import ClipCache
from pipeline.ffmpeg import Runner, find_ffmpeg
from pipeline.fixtures import make_bench_project
from pipeline.options import RenderOptions
from pipeline.plan import Plan, read_plan
from pipeline.probe import probe
from pipeline.project import ProjectDir
from pipeline.registry import Stage, StageRun
from pipeline.render import run_here, run_in_order
from pipeline.units import segments

ROOT = Path(".bench") / "transitions"
TYPES = ("fade", "wipeleft", "slideup", "circleopen", "dissolve")
SECONDS = 1.0


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu: float  # FFmpeg's CPU seconds (user + system): the work, whatever else the box runs
    stages: dict[str, float]  # wall seconds by stage
    encodes: int
    encoded: tuple[str, ...]  # the labels of the units encoded
    frames: int
    av_gap: float  # video length less audio length, seconds


def _render(project: ProjectDir, options: RenderOptions, cache: ClipCache, ffmpeg: str) -> Run:
    log: list[str] = []
    reports: list[str] = []
    runner = Runner(ffmpeg, log=log.append)
    base = StageRun(
        project,
        options,
        "video.mp4",
        runner,
        cache=cache,
        on_clip=lambda report: reports.append(report.outcome),
    )
    stages: dict[str, float] = {}

    def timed(stage: Stage, run: StageRun) -> Plan | None:
        began = time.perf_counter()
        try:
            return run_here(stage, run)
        finally:
            stages[stage.name] = stages.get(stage.name, 0.0) + time.perf_counter() - began

    cpu = _children_cpu()
    start = time.perf_counter()
    run_in_order(base, timed)
    seconds = time.perf_counter() - start
    cpu = _children_cpu() - cpu
    plan = read_plan(project)
    labels = [unit.label("SCENE_BUILD") for unit in segments(plan)]
    encoded = tuple(
        label for label, outcome in zip(labels, reports, strict=True) if outcome == "encoded"
    )
    info = probe(project.output / "video.mp4", count_frames=True)
    assert info.video is not None and info.audio is not None
    return Run(
        seconds,
        cpu,
        stages,
        sum("libx264" in line for line in log if " -i " in line),
        encoded,
        info.video.frames,
        info.video.duration - info.audio.duration,
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _with_transitions(project: ProjectDir, on: bool) -> None:
    spec = json.loads(project.spec_file.read_text("utf-8"))
    for index, scene in enumerate(spec["scenes"][:-1]):
        scene.pop("transition", None)
        if on:
            scene["transition"] = {"type": TYPES[index % len(TYPES)], "duration": SECONDS}
    project.spec_file.write_text(json.dumps(spec, indent=2), "utf-8")


def _edit(project: ProjectDir, scene: int) -> str:
    """Replace the scene's first picture with its negative; the file's name."""
    spec = json.loads(project.spec_file.read_text("utf-8"))
    name = str(spec["scenes"][scene]["images"][0])
    path = project.asset("images", name)
    with Image.open(path) as image:
        edited = ImageOps.invert(image.convert("RGB"))
    edited.save(path, format="PNG" if path.suffix == ".png" else "JPEG", quality=92)
    return name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench_transitions")
    parser.add_argument("--resolution", default="1920x1080")
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--scene", type=int, default=3, help="the scene edited (0-5)")
    args = parser.parse_args(argv)
    ffmpeg = find_ffmpeg()
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    options = RenderOptions.model_validate(
        {"resolution": args.resolution, "preset": args.preset, "cache": True}
    )
    source = make_bench_project(ROOT / "source", ffmpeg)
    runs: dict[str, Run] = {}
    for name, on in (("cuts", False), ("transitions", True)):
        project = ProjectDir(ROOT / name)
        shutil.copytree(source.input, project.input)
        _with_transitions(project, on)
        cache = ClipCache(ROOT / f"cache-{name}")
        runs[name] = _render(project, options, cache, ffmpeg)
        if on:
            edited = _edit(project, args.scene)
            runs["edit"] = _render(project, options, cache, ffmpeg)
    full, edit, cuts = runs["transitions"], runs["edit"], runs["cuts"]
    units = len(segments(read_plan(ProjectDir(ROOT / "transitions"))))
    print(
        f"\nTransitions ({args.resolution}, preset {args.preset}; a {SECONDS:g} s transition "
        f"between every two of the 6 scenes: {units} units)"
    )
    print(
        "| render | wall | / full | FFmpeg CPU | / full | encodes | units encoded | frames | A/V |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, run in (
        ("with cuts, cold cache", cuts),
        ("with transitions, cold cache", full),
        (f"scene {args.scene} edited ({edited})", edit),
    ):
        encoded = ", ".join(run.encoded) if len(run.encoded) < 8 else str(len(run.encoded))
        print(
            f"| {label} | {run.seconds:.1f} s | {run.seconds / full.seconds:.2f} | "
            f"{run.cpu:.1f} s | {run.cpu / full.cpu:.2f} | {run.encodes} | {encoded} | "
            f"{run.frames} | {run.av_gap * 1000:+.1f} ms |"
        )
    for label, run in (("full", full), ("edit", edit)):
        shares = ", ".join(f"{name} {secs:.1f} s" for name, secs in run.stages.items())
        print(f"{label} render by stage: {shares}")
    same = cuts.frames == full.frames and abs(cuts.av_gap - full.av_gap) < 1e-9
    print(
        f"frames and A/V gap with transitions {'equal' if same else 'DIFFER FROM'} those with "
        f"cuts; the edit encoded {edit.encodes} clip(s) at {edit.seconds / full.seconds:.2f}× "
        "the full render (aim ≤ 0.35×)"
    )


if __name__ == "__main__":
    main()
