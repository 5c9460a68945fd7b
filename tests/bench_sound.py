"""`make bench`'s sound section: where a render's time goes with the sound features on.

Three cases, each timed in one command:
- the bench project (6 scenes, voiceovers) with a looped music bed, ducking and -16 LUFS:
  AUDIO_PREP's share of the wall time (aim: under 5%);
- AUDIO_PREP alone, on that project at -16 and -10 LUFS and on issue 21's clicky mix at the
  same length (where the limiter works): its gain passes, and its time against two baselines
  run beside it: the mix alone (no loudness) and the previous design (one unmeasured gain
  pass, no correction);
- a long narrated project (50 scenes by default) spoken by espeak-ng: SPEECH's share, and the
  time per synthesis (a cold cache; then a second, cached run).
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from pipeline import audio, stages
from pipeline.atomic import atomic_path
from pipeline.ffmpeg import Runner, find_ffmpeg
from pipeline.fixtures import (
    ImageFixture,
    MusicFixture,
    SceneFixture,
    VoiceFixture,
    bench_scenes,
    make_bench_project,
    make_music,
    write_project,
)
from pipeline.options import RenderOptions
from pipeline.plan import Plan, make_plan
from pipeline.project import ProjectDir
from pipeline.render import render
from pipeline.stages import prepare_audio

ROOT = Path(".bench")
SENTENCES = [
    "The harbour wakes before the sun, and the first boats slip out past the breakwater.",
    "Gulls follow them, calling over the grey water.",
    "By noon the market is loud with voices, and the smell of the catch drifts up the hill.",
    "In the evening the lights come on one by one along the quay.",
]


class StageClock:
    """Wall time of each stage of one `render`, from its `on_stage` calls."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []

    def enter(self, stage: str) -> None:
        self.marks.append((stage, time.monotonic()))

    def run(self, action: Callable[[Callable[[str], None]], object]) -> dict[str, float]:
        started = time.monotonic()
        action(self.enter)
        ended = time.monotonic()
        times: dict[str, float] = {}
        for (stage, at), (_, after) in zip(
            self.marks, [*self.marks[1:], ("end", ended)], strict=True
        ):
            times[stage] = times.get(stage, 0.0) + after - at
        times["total"] = ended - started
        return times


def _print(title: str, times: dict[str, float]) -> None:
    total = times["total"]
    print(f"\n{title}")
    print(f"{'stage':<14} {'wall s':>8} {'share':>7}")
    for stage, seconds in times.items():
        if stage != "total":
            print(f"{stage:<14} {seconds:8.2f} {seconds / total:7.1%}")
    print(f"{'total':<14} {total:8.2f}")


def bed_case(preset: str, resolution: str) -> dict[str, float]:
    ffmpeg = find_ffmpeg()
    root = ROOT / "project"
    if not (root / "input" / "scenes.json").exists():
        make_bench_project(root, ffmpeg)
    project = ProjectDir(root.resolve())
    bed = project.asset("music", "bench-bed.mp3")
    if not bed.exists():
        make_music(bed, MusicFixture(bed.name, 20.0), ffmpeg)
    options = RenderOptions.model_validate(
        {
            "preset": preset,
            "resolution": resolution,
            "music": bed.name,
            "ducking": True,
            "loudness": -16,
            "cache": False,  # every scene encoded: the share is of a whole render
        }
    )
    times = StageClock().run(
        lambda on_stage: render(
            project, options, "bench-sound.mp4", Runner(ffmpeg), on_stage=on_stage
        )
    )
    for folder in ("scenes", "stills"):
        shutil.rmtree(project.work / folder, ignore_errors=True)
    return times


def _single_pass(project: ProjectDir, plan: Plan, runner: Runner) -> None:
    """The previous design's AUDIO_PREP, step for step: the mix measured, one gain pass
    (unmeasured, uncorrected), each file renamed into place, the master's digest written."""
    target = stages.master_audio(project)
    (project.work / stages.MASTER_DIGEST).unlink(missing_ok=True)
    mix, stats = project.work / audio.MIX_FILE, project.work / audio.STATS_FILE
    stats.unlink(missing_ok=True)
    with atomic_path(mix) as tmp:
        runner.run(audio.master_track_args(project.root, plan, tmp, stats), expected_seconds=0)
    measured = audio.read_loudness(stats.read_text("utf-8"))
    assert measured is not None
    gain = audio.gain_for(measured, plan.loudness or 0)
    with atomic_path(target) as tmp:
        runner.run(audio.gain_args(mix, tmp, gain, plan.sample_rate), expected_seconds=0)
    mix.unlink(missing_ok=True)
    stats.unlink(missing_ok=True)
    stages._write_master_digest(project)


def clicky_project() -> ProjectDir:
    """The bench project's six voice lengths (40.5 s) as issue 21's mix: a quiet tone
    (-34 LUFS) with 2 ms clicks near -6 dBFS in every other scene. The limiter must work."""
    root = ROOT / "clicky"
    if (root / "input" / "scenes.json").exists():
        return ProjectDir(root.resolve())
    scenes = [
        SceneFixture(
            (ImageFixture(f"k{n}.png", 64, 36, "color:gray"),),
            VoiceFixture(
                f"k{n}.wav",
                scene.voiceover.seconds,
                440,
                48_000,
                2,
                level=0.028,
                clicks=0.5 * (n % 2),
            ),
        )
        for n, scene in enumerate(bench_scenes())
        if scene.voiceover is not None
    ]
    return ProjectDir(write_project(root, scenes).root.resolve())


def loudness_case(
    project: ProjectDir, sound: dict[str, object], repeats: int
) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """AUDIO_PREP at `sound`'s options: the median wall and FFmpeg CPU time of the mix alone,
    of the previous single pass and of the measured passes, interleaved `repeats` times; and
    the passes' log lines."""
    ffmpeg = find_ffmpeg()
    plan = make_plan(project, RenderOptions.model_validate({**sound, "cache": False}), ffmpeg)
    runner = Runner(ffmpeg)
    lines: list[str] = []
    ways: dict[str, Callable[[], object]] = {
        "mix alone": lambda: prepare_audio(
            project, dataclasses.replace(plan, loudness=None), runner
        ),
        "single pass": lambda: _single_pass(project, plan, runner),
        "measured passes": lambda: prepare_audio(
            project, plan, dataclasses.replace(runner, log=lines.append)
        ),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    for _ in range(repeats):
        for name, way in ways.items():
            lines.clear()
            started, cpu = time.monotonic(), _children_cpu()
            way()
            times[name].append((time.monotonic() - started, _children_cpu() - cpu))
    passes = [line for line in lines if line.startswith("loudness")]
    medians = {
        name: (statistics.median(w for w, _ in spent), statistics.median(c for _, c in spent))
        for name, spent in times.items()
    }
    return medians, passes


def _children_cpu() -> float:
    """CPU seconds used by finished child processes (FFmpeg): steadier than wall time on a
    busy machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def narrated_case(
    scenes: int, preset: str, resolution: str
) -> tuple[dict[str, float], dict[str, float]]:
    ffmpeg = find_ffmpeg()
    root = ROOT / f"narrated-{scenes}"
    shutil.rmtree(root, ignore_errors=True)
    sources = ["photo:dawn", "photo:noon", "photo:dusk", "photo:night"]
    project = write_project(
        root,
        [
            SceneFixture(
                (ImageFixture(f"n{i % 4}.jpg", 1280, 720, sources[i % 4]),),
                narration=f"Scene {i + 1}. {SENTENCES[i % 4]}",
            )
            for i in range(scenes)
        ],
        ffmpeg,
    )
    options = RenderOptions.model_validate(
        {
            "preset": preset,
            "resolution": resolution,
            "tts": "espeak-ng",
            "captions": True,
            "cache": False,
        }
    )

    def once(on_stage: Callable[[str], None]) -> object:
        return render(project, options, "narrated.mp4", Runner(ffmpeg), on_stage=on_stage)

    cold = StageClock().run(once)
    warm = StageClock().run(once)  # the speech cache is full now
    return cold, warm


def main(args: argparse.Namespace) -> None:
    bed = bed_case(args.sound_preset, args.resolution)
    _print(
        f"sound: the bench project with a looped bed, ducking and -16 LUFS "
        f"({args.sound_preset}, {args.resolution}); target AUDIO_PREP < 5%",
        bed,
    )
    print(f"AUDIO_PREP share: {bed['AUDIO_PREP'] / bed['total']:.1%}")
    bed_sound = {"music": "bench-bed.mp3", "ducking": True}
    cases = [
        (
            "the bench project, its bed, -16 LUFS",
            ProjectDir((ROOT / "project").resolve()),
            {**bed_sound, "loudness": -16},
        ),
        (
            "the bench project, its bed, -10 LUFS",
            ProjectDir((ROOT / "project").resolve()),
            {**bed_sound, "loudness": -10},
        ),
        ("issue 21's clicks at the bench's length, -16 LUFS", clicky_project(), {"loudness": -16}),
    ]
    for title, project, sound in cases:
        spent, passes = loudness_case(project, sound, args.loudness_repeats)
        print(f"\nAUDIO_PREP, {title} (median of {args.loudness_repeats}):")
        for line in passes:
            print(f"  {line}")
        (base, base_cpu), (single, single_cpu) = spent["mix alone"], spent["single pass"]
        print(
            f"  {'':<16} {'wall s':>7} {'÷ mix':>6} {'÷ single':>8}   "
            f"{'cpu s':>6} {'÷ mix':>6} {'÷ single':>8}"
        )
        for name, (wall, cpu) in spent.items():
            print(
                f"  {name:<16} {wall:7.2f} {wall / base:6.2f} {wall / single:8.2f}   "
                f"{cpu:6.2f} {cpu / base_cpu:6.2f} {cpu / single_cpu:8.2f}"
            )
    if args.narrated:
        cold, warm = narrated_case(args.narrated, args.sound_preset, args.narrated_resolution)
        _print(f"{args.narrated} narrated scenes, espeak-ng, cold speech cache", cold)
        _print(f"{args.narrated} narrated scenes, the same again (speech cached)", warm)
        print(
            f"SPEECH: {cold['SPEECH'] / args.narrated * 1000:.0f} ms a scene cold, "
            f"{warm['SPEECH'] / args.narrated * 1000:.1f} ms cached"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip-sound", action="store_true", help="no sound section")
    parser.add_argument("--sound-only", action="store_true", help="only the sound section")
    parser.add_argument("--sound-preset", default="veryfast")
    parser.add_argument(
        "--narrated", type=int, default=50, help="scenes of the narrated case (0: none)"
    )
    parser.add_argument("--narrated-resolution", default="640x360")
    parser.add_argument(
        "--loudness-repeats", type=int, default=3, help="AUDIO_PREP runs per way (median)"
    )
