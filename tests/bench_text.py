"""`make bench`'s text section: what two animated text layers cost a scene's build.

One scene (a textured picture under Ken Burns) built by SCENE_BUILD, in one piece, with no text
and with two animated layers (a title fading in and out, a lower third sliding up and typed
out), the two alternated so that the machine's load falls on both alike; the median of each
and their ratio are printed. 1080p at preset medium by default: `--resolution`, `--preset`,
`--seconds` and `--repeats` make it smaller on a busy machine.

    python -m tests.bench_text [--resolution 1920x1080] [--preset medium] [--seconds 6]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import time
from pathlib import Path

from pipeline import stages
from pipeline.ffmpeg import Runner, find_ffmpeg
from pipeline.fixtures import ImageFixture, SceneFixture, write_project
from pipeline.options import RenderOptions
from pipeline.plan import make_plan
from pipeline.project import ProjectDir

ROOT = Path(".bench") / "text"
LAYERS = [
    {
        "text": "The harbour at dawn",
        "style": "title",
        "animation": {"in": "fade", "out": "fade", "seconds": 0.8},
    },
    {
        "text": "Ana Lima\nHarbour master since 1998",
        "style": "lowerThird",
        "start": 1.0,
        "animation": {"in": "slideUp", "out": "typewriter", "seconds": 0.8},
    },
]


def _project(root: Path, seconds: float, text: list[dict[str, object]]) -> ProjectDir:
    shutil.rmtree(root, ignore_errors=True)
    image = ImageFixture("harbour.jpg", 2400, 1600, "testsrc2")
    project = write_project(root, [SceneFixture((image,), duration=seconds)])
    spec = json.loads(project.spec_file.read_text())
    spec["scenes"][0]["text"] = text
    project.spec_file.write_text(json.dumps(spec))
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", default="1920x1080")
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ffmpeg = find_ffmpeg()
    options = RenderOptions(resolution=args.resolution, preset=args.preset, chunk_seconds=0)
    cases = {
        "no text": _project(ROOT / "plain", args.seconds, []),
        "two animated layers": _project(ROOT / "text", args.seconds, LAYERS),
    }
    plans = {name: make_plan(project, options, ffmpeg) for name, project in cases.items()}
    times: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, project in cases.items():
            started, used = time.monotonic(), _children_cpu()
            stages.build_scene(project, plans[name], 0, Runner(ffmpeg))
            times[name].append(time.monotonic() - started)
            cpu[name].append(_children_cpu() - used)
    frames = plans["no text"].scenes[0].frames
    print(
        f"\nSCENE_BUILD of one {args.seconds:g} s scene ({frames} frames) at "
        f"{args.resolution}, preset {args.preset}, median of {args.repeats}"
    )
    base = statistics.median(times["no text"])
    for name, runs in times.items():
        median = statistics.median(runs)
        print(
            f"  {name:<20} {median:7.2f} s  {frames / median:6.1f} fps  "
            f"{median / base:5.2f}x  (runs: {', '.join(f'{t:.2f}' for t in runs)})"
        )
    # Each text run against the plain run just before it: steadier than the medians' ratio
    # when the machine's load changes during the bench.
    pairs = [t / p for t, p in zip(times["two animated layers"], times["no text"], strict=True)]
    # FFmpeg's own CPU seconds: what the text costs, whatever else the machine runs.
    plain, text = (statistics.median(cpu[name]) for name in cases)
    print(
        f"  FFmpeg CPU s (median): no text {plain:.1f}, two animated layers {text:.1f}: "
        f"{text / plain:.2f}x"
    )
    print(
        f"  ratio of each pair: median {statistics.median(pairs):.2f}x "
        f"({', '.join(f'{r:.2f}' for r in pairs)})"
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
