"""`make bench`'s sound section: where a render's time goes with the sound features on.

Two cases, each timed stage by stage in one command:
- the bench project (6 scenes, voiceovers) with a looped music bed, ducking and -16 LUFS:
  AUDIO_PREP's share of the wall time (aim: under 5%);
- a long narrated project (50 scenes by default) spoken by espeak-ng: SPEECH's share, and the
  time per synthesis (a cold cache; then a second, cached run).
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.ffmpeg import Runner, find_ffmpeg
from pipeline.fixtures import (
    ImageFixture,
    MusicFixture,
    SceneFixture,
    make_bench_project,
    make_music,
    write_project,
)
from pipeline.options import RenderOptions
from pipeline.project import ProjectDir
from pipeline.render import render

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
