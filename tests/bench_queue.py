"""Queue overhead benchmark (`make bench`, after the pipeline bench).

Renders the bench fixture three times in one command: with the pipeline's CLI (the baseline),
then through the API and one Celery worker on an embedded Redis, first with one worker process
(the same sequential work as the CLI, so the difference is the queue's overhead), then with
one process per core (scenes in parallel, the default). Prints the walls, the time from
POST /render to the first task, the gaps between consecutive stages, and the latency of
GET /v1/jobs/{id} polled while each render runs.
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.fixtures import bench_scenes, write_project
from tasks.settings import Settings
from tests.e2e import Api, running_stack

PRESET = "veryfast"


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


@dataclass
class ApiRun:
    processes: int
    nice: int
    wall: float
    first_task: float
    gaps: list[float]
    latencies: list[float]


def run_cli(root: Path) -> float:
    project = write_project(root / "cli", bench_scenes())
    started = time.monotonic()
    subprocess.run(
        # One job: the same sequential work as the API with one worker process.
        [
            *(sys.executable, "-m", "pipeline", str(project.root), "-o", "cli.mp4"),
            *("--preset", PRESET, "--jobs", "1"),
        ],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    return time.monotonic() - started


def run_api(root: Path, processes: int, nice: int | None = None) -> ApiRun:
    """`nice`: FFMPEG_NICE for the run; None keeps the service's default."""
    nice = Settings.model_fields["ffmpeg_nice"].default if nice is None else nice
    storage = root / f"storage-{processes}-{nice}"
    with running_stack(
        storage,
        workers=1,
        DEFAULT_RESOLUTION="1920x1080",
        DEFAULT_FPS="30",
        WORKER_CONCURRENCY=str(processes),
        # The service's own default, not the tests' faster one: each progress write costs the
        # worker a few ms of CPU that the render would otherwise have.
        PROGRESS_INTERVAL=str(Settings.model_fields["progress_interval"].default),
        FFMPEG_NICE=str(nice),
    ) as stack:
        api = Api(stack.base_url)
        api.upload_project("bench", bench_scenes(), root / f"staging-{processes}-{nice}")
        latencies: list[float] = []
        done = threading.Event()

        # Ten status requests a second: a busy dashboard, not a load test. More would take
        # CPU from the render being measured (every request reads the job and its log tail).
        def poll(job_id: str) -> None:
            while not done.is_set():
                t0 = time.perf_counter()
                api.job(job_id)
                latencies.append(time.perf_counter() - t0)
                time.sleep(0.1)

        posted = time.time()
        job_id = api.render("bench", preset=PRESET, cache=False)
        poller = threading.Thread(target=poll, args=(job_id,), daemon=True)
        poller.start()
        job = api.wait(job_id, timeout=1800, poll=0.5)
        done.set()
        poller.join()
    assert job["status"] == "SUCCEEDED", job
    # From the POST to the job row's own finish time: the waiting loop's polling interval
    # is not part of the render.
    wall = _ts(job["finishedAt"]) - posted
    ordered = sorted(job["stages"], key=lambda s: _ts(s["startedAt"]))
    # With one process the stages run one after another, so each gap is pure hand-off.
    gaps = [
        _ts(after["startedAt"]) - _ts(before["finishedAt"])
        for before, after in itertools.pairwise(ordered)
    ]
    return ApiRun(processes, nice, wall, _ts(ordered[0]["startedAt"]) - posted, gaps, latencies)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="render-bench-queue-"))
    cli_wall = run_cli(root)
    cores = os.cpu_count() or 1
    # The last two differ only in FFMPEG_NICE: the API's latency while x264 fills every core,
    # with FFmpeg below the service's processes (the default) and beside them (0).
    runs = [run_api(root, 1), run_api(root, cores), run_api(root, cores, nice=0)]
    print(f"\nqueue overhead: bench fixture, 1080p30, preset {PRESET}, {os.cpu_count()} cores")
    print(f"  CLI render (jobs 1)                  {cli_wall:7.2f} s")
    for run in runs:
        lat = sorted(run.latencies)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(
            f"  API + worker, {run.processes} process(es), nice {run.nice:<2}  {run.wall:7.2f} s  "
            f"{run.wall / cli_wall:.3f}× CLI ({run.wall - cli_wall:+.2f} s)"
        )
        print(f"    POST → first task started          {run.first_task:7.3f} s")
        if run.processes == 1:
            print(
                f"    hand-offs between stages           sum {sum(run.gaps):.3f} s, "
                f"max {max(run.gaps):.3f} s over {len(run.gaps)}"
            )
        print(
            f"    GET /v1/jobs/{{id}} while rendering   p50 {statistics.median(lat) * 1000:.1f} ms,"
            f" p99 {p99 * 1000:.1f} ms over {len(lat)} requests"
        )


if __name__ == "__main__":
    main()
