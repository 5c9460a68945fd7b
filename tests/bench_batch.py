"""Batch benchmark (`make bench`): a batch of a 6-scene template whose rows differ in one
scene's narration and in the title, against one full render of a row.

    python -m tests.bench_batch [--rows 50] [--resolution 1920x1080] [--preset medium]

Prints: one full render's wall (cache off: every scene encoded), the batch's wall and its ratio
to rows × that render (the issue's target is ≤ 0.3× at 50 rows, 1080p medium), the encodes per
row and cache hits, the time from POST .../batches to its answer (every job created and queued),
and the wait of a single render sent while the batch runs (its createdAt to its first unit's
start). One worker with a process per core, an embedded Redis, real FFmpeg.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.fixtures import bench_scenes
from tests.e2e import Api, running_stack

NARRATED = 2  # the scene whose narration differs between rows


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def template(spec: dict[str, Any]) -> dict[str, Any]:
    scenes = [dict(scene) for scene in spec["scenes"]]
    scenes[NARRATED].pop("voiceover", None)
    scenes[NARRATED]["narration"] = "{{line}}"
    return {**spec, "title": "{{title}}", "scenes": scenes}


def row(index: int) -> dict[str, str]:
    # Narrations of different lengths: the narrated scene's clip differs between rows (a
    # narration of the same length would give the same pictures, so the same clip).
    return {
        "title": f"Edition {index}",
        "line": f"This is edition number {index}." + " Here is more news." * (index % 5),
    }


def wait_job(api: Api, job_id: str) -> dict[str, Any]:
    job = api.wait(job_id, timeout=7200, poll=0.5)
    if job["status"] != "SUCCEEDED":
        raise SystemExit(f"job {job_id} ended {job['status']}: {job['error']}")
    return job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_BATCH_ROWS", 50)))
    parser.add_argument(
        "--resolution", default=os.environ.get("BENCH_BATCH_RESOLUTION", "1920x1080")
    )
    parser.add_argument("--preset", default=os.environ.get("BENCH_BATCH_PRESET", "medium"))
    args = parser.parse_args()
    processes = os.cpu_count() or 1
    options = {"tts": "espeak-ng", "preset": args.preset, "resolution": args.resolution}
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        with running_stack(
            root / "storage",
            workers=1,
            WORKER_CONCURRENCY=str(processes),
            DEFAULT_FPS="30",
            PROGRESS_INTERVAL="1.0",
        ) as stack:
            api = Api(stack.base_url)
            api.upload_project("bench", bench_scenes(), root / "staging")
            spec = json.loads((root / "staging" / "bench" / "input" / "scenes.json").read_text())
            api._check(api.http.put("/v1/projects/bench/scenes", json=template(spec)))

            # One full render of a row, every scene encoded: the unit the batch is compared to.
            body = {
                "outputName": "one.mp4",
                "data": row(-1),
                "renderOptions": {**options, "cache": False},
            }
            started = time.monotonic()
            one = api._check(api.http.post("/v1/projects/bench/render", json=body)).json()
            wait_job(api, one["jobId"])
            single = time.monotonic() - started

            batch_body = {
                "rows": [row(i) for i in range(args.rows)],
                "outputName": "edition-{{_row}}.mp4",
                "renderOptions": options,
            }
            started = time.monotonic()
            accepted = api._check(api.http.post("/v1/projects/bench/batches", json=batch_body))
            queued = time.monotonic() - started
            batch_id = accepted.json()["batchId"]

            # A single render sent once the batch keeps every process busy.
            mid_wait = None
            while mid_wait is None:
                view = api._check(api.http.get(f"/v1/batches/{batch_id}?limit=1000")).json()
                if view["counts"]["RUNNING"] >= 1 or view["status"] != "RUNNING":
                    # Cache off: it must not warm the cache for the batch's rows.
                    body = {
                        "outputName": "mid.mp4",
                        "data": row(-2),
                        "renderOptions": {**options, "cache": False},
                    }
                    mid = api._check(api.http.post("/v1/projects/bench/render", json=body))
                    job = wait_job(api, mid.json()["jobId"])
                    first = min(_ts(s["startedAt"]) for s in job["stages"] if s["startedAt"])
                    mid_wait = first - _ts(job["createdAt"])
                time.sleep(0.2)
            while (view := api._check(api.http.get(f"/v1/batches/{batch_id}")).json())[
                "status"
            ] == "RUNNING":
                time.sleep(0.5)
            wall = time.monotonic() - started
    if view["status"] != "SUCCEEDED":
        raise SystemExit(f"batch ended {view['status']}: {view['counts']}")
    print(
        f"batch benchmark: {args.rows} rows, 6 scenes, {args.resolution} {args.preset}, "
        f"{processes} worker processes"
    )
    print(f"  one full render (cache off)   {single:8.1f} s")
    print(
        f"  the batch, POST to last job   {wall:8.1f} s   "
        f"{wall / (args.rows * single):.2f}× rows × one render (target ≤ 0.3× at 50 rows)"
    )
    print(
        f"  encodes per row               {view['encodesPerRow']:8.2f}   "
        f"(cache hits {view['cache']['hits']}, encoded {view['cache']['encoded']})"
    )
    print(f"  POST to all jobs queued       {queued:8.2f} s")
    print(f"  single render's wait mid-batch {mid_wait:7.2f} s (its creation to its first unit)")


if __name__ == "__main__":
    main()
