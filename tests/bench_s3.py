"""Object storage benchmark (`make bench`): the bench job on a local folder against the same
job through an S3 bucket (SeaweedFS's `weed mini` on this machine, tests/s3server.py).

Both run every unit of the registry one after another through the task layer's
`workspace.run_unit`, as one worker process does: on the folder (the baseline: the work
folder is the storage, nothing moves), and on the bucket, where each unit fetches its declared
reads into the worker's scratch and uploads its writes. The render cache is off in both, so
each does all its encoding. Rounds alternate (local, bucket, local, …) so load on the shared
machine falls on both; the figures are medians. Bytes moved are the store's own counts, by
direction and kind of key, for one job, inputs published by the API included.

The defaults are the bench job's own (1080p, preset medium, as `python -m tests.bench`
renders it); a small fast job (`--resolution 640x360 --preset veryfast`) shows the bucket's
fixed cost per job at its largest share.

    python -m tests.bench_s3 [--resolution 1920x1080] [--preset medium] [--rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from pipeline.ffmpeg import Runner, find_ffmpeg
from pipeline.fixtures import bench_scenes, write_project
from pipeline.options import RenderOptions
from pipeline.probe import probe
from pipeline.project import ProjectDir
from pipeline.registry import StageRun
from pipeline.render import run_in_order
from tasks import workspace
from tasks.blobstore import LocalBlobStore
from tasks.s3store import S3BlobStore
from tasks.scratch import Scratch
from tests.s3server import S3Server, s3_server


def _options(args: argparse.Namespace) -> RenderOptions:
    return RenderOptions(resolution=args.resolution, preset=args.preset, fps=30, cache=False)


def run_local(root: Path, source: ProjectDir, args: argparse.Namespace) -> float:
    """The job on a folder that is the storage: the baseline."""
    store = LocalBlobStore(root)
    project = ProjectDir(root / "projects" / "bench")
    shutil.copytree(source.input, project.input)
    run = StageRun(project.for_run("j1"), _options(args), "video.mp4", Runner(find_ffmpeg()))
    started = time.monotonic()
    run_in_order(run, lambda stage, unit: workspace.run_unit(store, stage, unit))
    wall = time.monotonic() - started
    assert store.exists("projects/bench/output/video.mp4")
    return wall


def run_bucket(
    root: Path, source: ProjectDir, args: argparse.Namespace, server: S3Server, prefix: str
) -> tuple[float, dict[str, int], Path]:
    """The same job through the bucket, a fresh scratch: its wall time and bytes moved."""
    store = S3BlobStore(
        server.bucket,
        prefix,
        endpoint_url=server.endpoint,
        scratch=Scratch(root / "scratch"),
        client=_client(server),
    )
    api_host = ProjectDir(root / "api-host" / "projects" / "bench")
    shutil.copytree(source.input, api_host.input)
    workspace.publish_inputs(store, api_host)  # what the API does on upload
    project = ProjectDir(root / "worker-host" / "projects" / "bench").for_run("j1")
    run = StageRun(project, _options(args), "video.mp4", Runner(find_ffmpeg()))
    started = time.monotonic()
    run_in_order(run, lambda stage, unit: workspace.run_unit(store, stage, unit, root / "scratch"))
    wall = time.monotonic() - started
    moved = dict(store.moved)  # the job's, not the fetch below for the probe
    out = root / "video.mp4"
    store.fetch("projects/bench/output/video.mp4", out)
    return wall, moved, out


def _client(server: S3Server) -> object:
    import boto3

    return boto3.client("s3", **server.client_args())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", default="1920x1080")
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="render-bench-s3-"))
    source = write_project(root / "source", bench_scenes())
    local: list[float] = []
    bucket: list[float] = []
    moved: dict[str, int] = {}
    with s3_server(root / "s3") as server:
        for n in range(args.rounds):
            local.append(run_local(root / f"local-{n}", source, args))
            wall, moved, out = run_bucket(root / f"bucket-{n}", source, args, server, f"r{n}")
            bucket.append(wall)
    info = probe(out)
    shutil.rmtree(root, ignore_errors=True)
    a, b = statistics.median(local), statistics.median(bucket)
    print(
        f"\nobject storage: bench job ({info.duration:.1f} s of video), {args.resolution} "
        f"preset {args.preset}, cache off, units one after another, medians of {args.rounds}"
    )
    print(f"  local folder (baseline)     {a:7.2f} s   runs {', '.join(f'{x:.2f}' for x in local)}")
    print(
        f"  S3 bucket (weed mini)       {b:7.2f} s   runs {', '.join(f'{x:.2f}' for x in bucket)}"
        f"   ratio {b / a:.3f}× (target ≤ 1.10×)"
    )
    pairs = ", ".join(f"{y / x:.3f}" for x, y in zip(local, bucket, strict=True))
    print(f"  each round's pair (bucket ÷ local): {pairs}")
    print("  bytes moved for one job through the bucket:")
    for name in sorted(moved):
        direction, kind = name.split(":")
        print(f"    {direction:<10} {kind:<8} {moved[name] / 2**20:9.2f} MiB")
    up = sum(v for k, v in moved.items() if k.startswith("uploaded"))
    down = sum(v for k, v in moved.items() if k.startswith("downloaded"))
    print(f"    total      uploaded {up / 2**20:.2f} MiB, downloaded {down / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
