"""`make bench`'s clips section: what a video clip costs a scene's SCENE_BUILD against a still.

One scene of the same length and size, built four ways in one command: from a still with Ken
Burns (the default: the baseline), from the still held, from a 1080p H.264 clip of a busy
moving picture, and from the still made into an H.264 clip (the same picture on every frame:
what reading a clip costs, apart from what its moving content costs x264). Each build
runs in a process of its own, so its peak RSS is that build's FFmpeg processes' alone
(`RUSAGE_CHILDREN` of the process that waited for them). Reported: SCENE_BUILD wall time and
peak RSS, and each as a ratio to the baseline measured in the same run.

    python -m tests.bench_clips                      # 1920x1080, preset medium, 6 s
    python -m tests.bench_clips --seconds 3 --preset veryfast   # reduced
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from pipeline import stages
from pipeline.ffmpeg import Runner, find_ffmpeg
from pipeline.options import RenderOptions
from pipeline.plan import make_plan, write_plan
from pipeline.project import ProjectDir

ROOT = Path(".bench/clips")


def _make_sources(ffmpeg: str, size: str, seconds: float) -> tuple[Path, Path, Path]:
    ROOT.mkdir(parents=True, exist_ok=True)
    clip, still, frozen = ROOT / "clip.mp4", ROOT / "still.jpg", ROOT / "frozen.mp4"
    # A busy picture (moving test pattern, noise): what a phone clip costs to decode.
    source = f"testsrc2=s={size}:r=30:d={seconds + 1},noise=alls=12:allf=t"
    if not clip.is_file():
        subprocess.run(
            [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", source, "-c:v", "libx264",
             "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", str(clip)],
            check=True,
        )  # fmt: skip
    if not still.is_file():
        subprocess.run(
            [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", source, "-frames:v", "1",
             "-q:v", "2", str(still)],
            check=True,
        )  # fmt: skip
    if not frozen.is_file():
        # The still as a clip: the same picture on every frame, so the encode costs what the
        # held still's does and what is left is reading the clip.
        subprocess.run(
            [ffmpeg, "-v", "error", "-y", "-loop", "1", "-framerate", "30", "-i", str(still),
             "-t", str(seconds + 1), "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
             "-pix_fmt", "yuv420p", str(frozen)],
            check=True,
        )  # fmt: skip
    return clip, still, frozen


def _project(
    name: str, entry: Any, files: dict[str, Path], seconds: float, **scene: Any
) -> ProjectDir:
    project = ProjectDir(ROOT / name)
    shutil.rmtree(project.root, ignore_errors=True)
    project.create()
    for where, source in files.items():
        folder, file = where.split("/")
        shutil.copyfile(source, project.asset(folder, file))
    spec = {"scenes": [{"images": [entry], "duration": seconds, **scene}]}
    project.spec_file.write_text(json.dumps(spec), "utf-8")
    return project


def _build(project_root: str, options: dict[str, Any], ffmpeg: str, out: Any) -> None:
    """In a process of its own: VALIDATE, then SCENE_BUILD timed; sends (wall seconds, FFmpeg's
    CPU seconds, its peak KiB)."""
    project = ProjectDir(Path(project_root))
    plan = make_plan(project, RenderOptions.model_validate(options), ffmpeg)
    write_plan(project, plan)
    started = time.monotonic()
    stages.encode_scene(project, plan, 0, Runner(ffmpeg))
    elapsed = time.monotonic() - started
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    out.send((elapsed, used.ru_utime + used.ru_stime, used.ru_maxrss))


def _measure(project: ProjectDir, options: dict[str, Any], ffmpeg: str) -> tuple[float, float, int]:
    receive, send = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(
        target=_build, args=(str(project.root), options, ffmpeg, send)
    )
    child.start()
    result = receive.recv()
    child.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench_clips")
    parser.add_argument("--resolution", default="1920x1080")
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    ffmpeg = find_ffmpeg()
    clip, still, frozen = _make_sources(ffmpeg, args.resolution, args.seconds)
    options = {
        "resolution": args.resolution,
        "preset": args.preset,
        "fps": 30,
        "cache": False,
        "chunkSeconds": 0,
    }
    cases = {
        "still, Ken Burns (baseline)": _project(
            "still_kb", "s.jpg", {"images/s.jpg": still}, args.seconds
        ),
        "still, held": _project(
            "still_held", "s.jpg", {"images/s.jpg": still}, args.seconds, motion="none"
        ),
        "1080p H.264 clip": _project(
            "clip", {"video": "c.mp4"}, {"videos/c.mp4": clip}, args.seconds
        ),
        "the still as an H.264 clip": _project(
            "frozen", {"video": "f.mp4"}, {"videos/f.mp4": frozen}, args.seconds
        ),
    }
    results = {name: _measure(project, options, ffmpeg) for name, project in cases.items()}
    base_time, base_cpu, base_rss = results["still, Ken Burns (baseline)"]
    print(f"SCENE_BUILD of one {args.seconds:g} s scene at {args.resolution}, preset {args.preset}")
    # CPU seconds as well as wall time: on a shared host the wall time follows the neighbours.
    print(
        f"{'visual':<30}{'wall s':>8}{'× base':>8}{'cpu s':>8}{'× base':>8}"
        f"{'peak RSS MB':>13}{'× base':>8}"
    )
    for name, (seconds, cpu, rss) in results.items():
        print(
            f"{name:<30}{seconds:>8.2f}{seconds / base_time:>8.2f}{cpu:>8.2f}{cpu / base_cpu:>8.2f}"
            f"{rss / 1024:>13.0f}{rss / base_rss:>8.2f}"
        )


if __name__ == "__main__":
    main()
