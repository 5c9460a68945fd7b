"""Queue overhead benchmark (`make bench`, after the pipeline bench).

Renders the bench fixture twice in one command: with the pipeline's CLI (the baseline), then
through the API and one Celery worker on an embedded Redis. Prints the difference, the time
from POST /render to the first task, the gaps between stages, and the latency of
GET /v1/jobs/{id} polled while the render runs.
"""

from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from pipeline.fixtures import bench_scenes, write_project
from tests.e2e import Api, running_stack

PRESET = "veryfast"


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="render-bench-queue-"))
    project = write_project(root / "cli", bench_scenes())
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "pipeline", str(project.root), "-o", "cli.mp4", "--preset", PRESET],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    cli_wall = time.monotonic() - started

    extra = dict(arg.split("=", 1) for arg in sys.argv[1:])  # e.g. WORKER_CONCURRENCY=1
    with running_stack(
        root / "storage", workers=1, DEFAULT_RESOLUTION="1920x1080", DEFAULT_FPS="30", **extra
    ) as stack:
        api = Api(stack.base_url)
        api.upload_project("bench", bench_scenes(), root / "staging")
        latencies: list[float] = []
        done = threading.Event()

        def poll(job_id: str) -> None:
            while not done.is_set():
                t0 = time.perf_counter()
                api.job(job_id)
                latencies.append(time.perf_counter() - t0)
                time.sleep(0.05)

        posted = time.time()
        t0 = time.monotonic()
        job_id = api.render("bench", preset=PRESET)
        poller = threading.Thread(target=poll, args=(job_id,), daemon=True)
        poller.start()
        job = api.wait(job_id, timeout=1800, poll=0.05)
        api_wall = time.monotonic() - t0
        done.set()
        poller.join()
    assert job["status"] == "SUCCEEDED", job

    stages = job["stages"]
    first_start = min(_ts(s["startedAt"]) for s in stages)
    ordered = sorted(stages, key=lambda s: _ts(s["startedAt"]))
    gaps = []
    for before, after in itertools.pairwise(ordered):
        gap = _ts(after["startedAt"]) - _ts(before["finishedAt"])
        if gap > 0:  # scene builds overlap; only count waits between dependent stages
            gaps.append(gap)
    lat = sorted(latencies)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(
        f"\nqueue overhead (bench fixture, preset {PRESET}, "
        f"1 worker x {stack.settings.concurrency} processes)"
    )
    print(f"  CLI render wall            {cli_wall:8.2f} s")
    print(
        f"  API job (POST→SUCCEEDED)   {api_wall:8.2f} s   ratio {api_wall / cli_wall:.3f}×, "
        f"difference {api_wall - cli_wall:+.2f} s"
    )
    print(f"  POST → first task started  {first_start - posted:8.3f} s")
    print(
        f"  gaps between stages        sum {sum(gaps):.3f} s, max {max(gaps, default=0):.3f} s "
        f"over {len(gaps)} hand-offs"
    )
    print(
        f"  GET /v1/jobs/{{id}} latency  p50 {statistics.median(lat) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms over {len(lat)} requests"
    )


if __name__ == "__main__":
    main()
