"""Hosts without a shared folder: STORAGE_URL=s3://… against a real S3-compatible server
(SeaweedFS's `weed mini`, tests/s3server.py), real Redis, Celery workers and the API.

Each "host" is a process with a RENDER_STORAGE of its own; they share only Redis, the
database (a SQLite file outside every host's folder, as a database server would be) and
the bucket.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from api.launch import Stack
from pipeline.ffmpeg import Runner, find_ffmpeg
from pipeline.fixtures import ImageFixture, SceneFixture, write_project
from pipeline.options import RenderOptions
from pipeline.project import ProjectDir
from pipeline.render import render
from tests.e2e import TOKEN, Api, running_stack
from tests.s3server import S3Server, s3_server

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _scenes(pattern: str = "testsrc2") -> list[SceneFixture]:
    return [
        SceneFixture((ImageFixture(f"s{i}.jpg", 480, 360, pattern),), duration=3.0)
        for i in range(2)
    ]


def _frame_hashes(path: Path) -> list[str]:
    with av.open(str(path)) as container:
        return [
            hashlib.md5(b"".join(bytes(plane) for plane in frame.planes)).hexdigest()
            for frame in container.decode(video=0)
        ]


def _hosts(
    tmp_path: Path, s3: S3Server, prefix: str, workers: int, **overrides: str
) -> Iterator[Stack]:
    """The API on a folder of its own and `workers` workers each on another."""
    env = {
        **s3.settings(prefix),
        "DB_URL": f"sqlite:///{tmp_path / 'database' / 'db.sqlite3'}",
        "WORKER_CONCURRENCY": "1",
        **overrides,
    }
    (tmp_path / "database").mkdir(exist_ok=True)
    with running_stack(tmp_path / "api-host", workers=0, **env) as stack:
        for n in range(workers):
            stack.env["RENDER_STORAGE"] = str(tmp_path / f"worker-host{n + 1}")
            stack.start_worker()
        stack.env["RENDER_STORAGE"] = str(tmp_path / "api-host")
        yield stack


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> Iterator[Stack]:
    yield from _hosts(tmp_path_factory.mktemp("hosts"), s3, "two-hosts", workers=2)


OPTIONS: dict[str, Any] = {"fps": 25, "preset": "veryfast", "resolution": "320x180", "crf": 0}


def test_two_hosts_without_a_shared_folder_render_one_chunked_job(
    two_hosts: Stack, tmp_path: Path
) -> None:
    api = Api(two_hosts.base_url)
    api.upload_project("wide", _scenes(), tmp_path)
    job = api.wait(api.render("wide", chunkSeconds=1.0, **OPTIONS), timeout=240)
    assert job["status"] == "SUCCEEDED", job
    chunks = [s for s in job["stages"] if s["name"].startswith("SCENE_BUILD[")]
    assert len(chunks) == 6
    assert {s["worker"].split("@")[0] for s in chunks} == {"worker1", "worker2"}
    # The API, on a host of its own, shows the job's log from the workers' hosts: each stage
    # attempt's lines saved in the bucket when it ended (CONCAT's before FINALIZE began).
    logged = api.job(job["id"])["logs"]
    assert any("[CONCAT] started on worker" in line for line in logged), logged
    assert any("[SCENE_BUILD[" in line for line in logged), logged
    assert logged == sorted(logged, key=lambda line: line.split(" ", 1)[0])

    # No host's folder holds the project's work or output: they are in the bucket only.
    root = Path(two_hosts.settings.render_storage).parent
    for host in ("api-host", "worker-host1", "worker-host2"):
        for folder in ("output", "work"):
            made = root / host / "projects" / "wide" / folder
            assert not [p for p in made.rglob("*") if p.is_file()], (host, folder)
    # Each worker host fetched what it needed into its own scratch.
    for host in ("worker-host1", "worker-host2"):
        assert any((root / host / "scratch" / "blobs").iterdir())

    # The API serves it from the bucket, with Range and HEAD.
    base = f"{two_hosts.base_url}/v1/projects/wide/outputs/video"
    whole = httpx.get(base, headers=AUTH, timeout=30)
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    part = httpx.get(base, headers={**AUTH, "Range": "bytes=100-199"}, timeout=30)
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    assert part.content == whole.content[100:200]
    head = httpx.head(base, headers=AUTH, timeout=30)
    assert int(head.headers["content-length"]) == len(whole.content)
    (tmp_path / "ours.mp4").write_bytes(whole.content)

    # Frame for frame what a render on a local folder makes.
    reference = ProjectDir(tmp_path / "reference")
    write_project(reference.root, _scenes())
    options = RenderOptions.model_validate({**OPTIONS, "chunkSeconds": 1.0})
    render(reference, options, "video.mp4", Runner(ffmpeg=find_ffmpeg()))
    ours = _frame_hashes(tmp_path / "ours.mp4")
    assert len(ours) == 2 * 3 * 25
    assert ours == _frame_hashes(reference.output / "video.mp4")


def test_two_hosts_racing_on_the_cache_leave_one_valid_object(
    two_hosts: Stack, s3: S3Server, tmp_path: Path
) -> None:
    import boto3

    api = Api(two_hosts.base_url)
    # Content no other test renders: every clip key is new to the bucket.
    api.upload_project("race", _scenes("mandelbrot"), tmp_path)
    jobs = [api.render("race", f"v{n}.mp4", chunkSeconds=1.0, **OPTIONS) for n in range(2)]
    finished = [api.wait(job, timeout=300) for job in jobs]
    assert [job["status"] for job in finished] == ["SUCCEEDED", "SUCCEEDED"], finished

    client = boto3.client("s3", **s3.client_args())
    listed = client.list_objects_v2(Bucket=s3.bucket, Prefix="two-hosts/cache/clips/")
    names = sorted(item["Key"].rsplit("/", 1)[1] for item in listed.get("Contents", []))
    records = [name for name in names if name.endswith(".json")]
    assert records, names
    for record in records:  # one object per key, each whole and as its record says
        key = record.removesuffix(".json")
        files = [n for n in names if n.split(".")[0] == key and not n.endswith(".json")]
        assert len(files) == 1, names
        body = client.get_object(Bucket=s3.bucket, Key=f"two-hosts/cache/clips/{files[0]}")
        data = body["Body"].read()
        meta = json.loads(
            client.get_object(Bucket=s3.bucket, Key=f"two-hosts/cache/clips/{record}")[
                "Body"
            ].read()
        )
        assert (len(data), hashlib.sha256(data).hexdigest()) == (meta["size"], meta["sha256"])
    # Both outputs are the same frames.
    for n in range(2):
        api_url = f"{two_hosts.base_url}/v1/projects/race/outputs/video?name=v{n}.mp4"
        (tmp_path / f"v{n}.mp4").write_bytes(httpx.get(api_url, headers=AUTH, timeout=30).content)
    assert _frame_hashes(tmp_path / "v0.mp4") == _frame_hashes(tmp_path / "v1.mp4")


def test_the_store_down_mid_job_then_back_and_down_at_submit(tmp_path: Path) -> None:
    with s3_server(tmp_path / "s3") as server:
        stack_iter = _hosts(tmp_path, server, "outage", workers=1, S3_RETRY_SECONDS="90")
        stack = next(stack_iter)
        try:
            api = Api(stack.base_url)
            api.upload_project("bounce", _scenes(), tmp_path)
            job_id = api.render("bounce", chunkSeconds=1.0, **OPTIONS)
            api.wait(job_id, lambda j: str(j["stage"]).startswith("SCENE_BUILD"), timeout=120)
            server.stop()
            time.sleep(10)  # the outage itself
            server.start()
            job = api.wait(job_id, timeout=240)
            assert job["status"] == "SUCCEEDED", job
            worker_log = (tmp_path / "api-host" / "process-logs" / "worker1.log").read_text()
            assert "retrying in" in worker_log  # the outage was met, and waited out

            server.stop()  # down at submit: 503 naming it, and no job
            answer = httpx.post(
                f"{stack.base_url}/v1/projects/bounce/render", headers=AUTH, json={}, timeout=60
            )
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "storage_unavailable"
            assert (
                f"object storage s3://{server.bucket}/outage" in answer.json()["error"]["message"]
            )
            ready = httpx.get(f"{stack.base_url}/readyz", headers=AUTH, timeout=60)
            assert ready.status_code == 503 and "objectStore" in ready.json()["checks"]
        finally:
            stack_iter.close()


def test_wrong_secret_refuses_to_start_saying_why(s3: S3Server, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STORAGE_", "S3_"))}
    env.update(
        s3.settings("refused", secret="not-the-secret"),
        RENDER_STORAGE=str(tmp_path / "host"),
        AUTH_TOKEN=TOKEN,
        REDIS_URL="redis://127.0.0.1:1/0",
    )
    api = subprocess.run(
        [sys.executable, "-c", "from api.main import create_app; create_app()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert api.returncode != 0
    assert "refused the credentials" in api.stderr and "AWS_SECRET_ACCESS_KEY" in api.stderr
    worker = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "tasks.app", "worker", "--pool=solo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode != 0
    assert "refused the credentials" in worker.stderr + worker.stdout


def test_presigned_output_urls_work_without_the_token_until_they_expire(
    s3: S3Server, tmp_path: Path
) -> None:
    hosts = _hosts(
        tmp_path, s3, "presigned", workers=1, OUTPUT_REDIRECT="presigned", OUTPUT_URL_SECONDS="3"
    )
    stack = next(hosts)
    try:
        api = Api(stack.base_url)
        api.upload_project("signed", _scenes("smptehdbars")[:1], tmp_path)
        job = api.wait(api.render("signed", **OPTIONS), timeout=180)
        assert job["status"] == "SUCCEEDED", job
        answer = httpx.get(
            f"{stack.base_url}/v1/projects/signed/outputs/video", headers=AUTH, timeout=30
        )
        assert answer.status_code == 302
        url = answer.headers["location"]
        got = httpx.get(url, timeout=30)  # no token: the URL is the permission
        assert got.status_code == 200 and got.content[4:8] == b"ftyp"
        ranged = httpx.get(url, headers={"Range": "bytes=0-7"}, timeout=30)
        assert ranged.status_code == 206 and ranged.content == got.content[:8]
        time.sleep(4)  # the URL's lifetime passing is what is tested
        assert httpx.get(url, timeout=30).status_code == 403
    finally:
        hosts.close()


def test_the_store_down_longer_than_the_bound_fails_the_job_naming_it(tmp_path: Path) -> None:
    with s3_server(tmp_path / "s3") as server:
        hosts = _hosts(tmp_path, server, "gone", workers=1, S3_RETRY_SECONDS="3")
        stack = next(hosts)
        try:
            api = Api(stack.base_url)
            api.upload_project("gone", _scenes(), tmp_path)
            job_id = api.render("gone", chunkSeconds=1.0, **OPTIONS)
            api.wait(job_id, lambda j: str(j["stage"]).startswith("SCENE_BUILD"), timeout=120)
            server.stop()  # and not back
            job = api.wait(job_id, timeout=180)
        finally:
            hosts.close()
    assert job["status"] == "FAILED", job
    assert job["error"].startswith(("SCENE_BUILD[", "CONCAT: ", "FINALIZE: ")), job["error"]
    assert f"object storage s3://{server.bucket}/gone" in job["error"]
    assert "did not answer for 3 s (S3_RETRY_SECONDS)" in job["error"]
