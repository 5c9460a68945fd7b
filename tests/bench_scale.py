"""Scale-out benchmark (`make bench`): how much faster does one video get on N hosts?

Renders a 12-scene fixture through the API and ONE worker process (so each stage has the
host's cores to itself, as it would on a host of its own), reads every stage's start and end
from the job document, and places those measured times on N simulated hosts: the serial stages
run one after another, the stages of a per-scene step go longest first onto the host that frees
up first. Prints the speedup and efficiency for 1, 2, 4, 8 and 12 hosts.

    python -m tests.bench_scale [--scenes 12] [--seconds 5] [--preset medium]
"""

from __future__ import annotations

import argparse
import heapq
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline import registry
from pipeline.fixtures import ImageFixture, SceneFixture
from tests.e2e import Api, running_stack

HOSTS = (1, 2, 4, 8, 12)
SOURCES = ("testsrc2", "mandelbrot", "smptehdbars", "gradients")


def scenes(count: int, seconds: float) -> list[SceneFixture]:
    # Every scene's picture differs (source and size), so no scene is another's cached clip.
    return [
        SceneFixture(
            (ImageFixture(f"s{i}.jpg", 2400 + 16 * i, 1600, SOURCES[i % len(SOURCES)]),),
            duration=seconds,
        )
        for i in range(count)
    ]


def stage_seconds(job: dict[str, Any]) -> list[tuple[str, float]]:
    """(label, wall seconds) of every stage of a finished job, in running order."""
    out = []
    for stage in job["stages"]:
        start = datetime.fromisoformat(stage["startedAt"])
        end = datetime.fromisoformat(stage["finishedAt"])
        out.append((stage["name"], (end - start).total_seconds()))
    return out


def makespan(durations: Sequence[float], hosts: int) -> float:
    """Longest-processing-time-first placement of parallel units on `hosts` hosts."""
    free = [0.0] * hosts
    for duration in sorted(durations, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + duration)
    return max(free)


def simulate(stages: list[tuple[str, float]], hosts: int) -> float:
    """Wall time on `hosts` hosts: serial stages in turn, each per-scene step spread out."""
    total = 0.0
    parallel: dict[str, list[float]] = {}
    for label, seconds in stages:
        stage, scene = registry.parse_label(label)
        if scene is None:
            total += seconds
        else:
            parallel.setdefault(stage.name, []).append(seconds)
    return total + sum(makespan(units, hosts) for units in parallel.values())


def report(stages: list[tuple[str, float]]) -> None:
    serial = [(label, s) for label, s in stages if registry.scene_of(label) is None]
    steps: dict[str, list[float]] = {}
    for label, seconds in stages:
        if registry.scene_of(label) is not None:
            steps.setdefault(registry.parse_label(label)[0].name, []).append(seconds)
    print(
        f"\nserial stages {sum(s for _, s in serial):.1f} s: "
        + ", ".join(f"{label} {s:.1f}" for label, s in serial)
    )
    for name, units in steps.items():
        print(
            f"{name}: {len(units)} units of {min(units):.1f}–{max(units):.1f} s, "
            f"{sum(units):.1f} s in all"
        )
    one = simulate(stages, 1)
    print(f"\n{'hosts':>5} {'wall s':>8} {'speedup':>8} {'efficiency':>10}")
    for hosts in HOSTS:
        wall = simulate(stages, hosts)
        print(f"{hosts:>5} {wall:8.1f} {one / wall:8.2f} {one / wall / hosts:10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench_scale")
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--resolution", default="1920x1080")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(tmp)
        with running_stack(root / "storage", workers=1, WORKER_CONCURRENCY="1") as stack:
            api = Api(stack.base_url)
            api.upload_project("scale", scenes(args.scenes, args.seconds), root / "staging")
            options = {"preset": args.preset, "resolution": args.resolution, "fps": 30}
            job = api.wait(api.render("scale", **options), timeout=3600, poll=0.5)
            if job["status"] != "SUCCEEDED":
                raise SystemExit(f"the render ended {job['status']}: {job['error']}")
    print(
        f"scale-out: {args.scenes} scenes of {args.seconds:g} s at {args.resolution} "
        f"preset {args.preset}, one worker process"
    )
    report(stage_seconds(job))


if __name__ == "__main__":
    main()
