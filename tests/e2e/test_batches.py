"""End to end: templates, versions, rerender and batches through the API, Celery on a real
(embedded) Redis, worker processes and FFmpeg; outputs probed and decoded."""

from __future__ import annotations

import io
import itertools
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from api.launch import Stack
from pipeline.ffmpeg import find_ffmpeg
from pipeline.fixtures import ImageFixture, make_image
from pipeline.probe import probe
from tests.e2e import Api, running_stack
from tests.stage_runs import frame_hashes
from tests.webhook_receiver import receiving

pytestmark = pytest.mark.e2e

OPTIONS: dict[str, Any] = {"fps": 25, "minShot": 0.5, "maxShot": 2.0, "xfade": 0.2}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # One job of a batch at a time: the workers send each next row as the one before ends.
    with running_stack(
        tmp_path_factory.mktemp("storage"), workers=1, BATCH_CONCURRENCY="1"
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(stack: Stack) -> Api:
    return Api(stack.base_url)


def _upload_images(api: Api, project: str, folder: Path, names_sizes: dict[str, int]) -> None:
    parts = []
    for name, width in names_sizes.items():
        path = folder / name
        make_image(path, ImageFixture(name, width, width * 3 // 4, "testsrc2"))
        parts.append(("files", (name, path.read_bytes())))
    api._check(api.http.post(f"/v1/projects/{project}/assets", files=parts))


def _put(api: Api, project: str, spec: dict[str, Any]) -> dict[str, Any]:
    return dict(api._check(api.http.put(f"/v1/projects/{project}/scenes", json=spec)).json())


def _post(api: Api, path: str, body: dict[str, Any]) -> str:
    return str(api._check(api.http.post(path, json=body)).json()["jobId"])


def _done(api: Api, job_id: str) -> dict[str, Any]:
    job = api.wait(job_id, timeout=240)
    assert job["status"] == "SUCCEEDED", job
    return job


def _output(stack: Stack, project: str, name: str) -> Path:
    return stack.settings.render_storage / "projects" / project / "output" / name


def _frames(path: Path) -> int:
    video = probe(path).video
    assert video is not None
    return video.frames


def test_a_pinned_old_version_renders_after_a_newer_put_and_rerenders_frame_identically(
    stack: Stack, api: Api, tmp_path: Path
) -> None:
    v1 = {
        "variables": {"pic": {"type": "image"}, "secs": {"type": "number", "default": 1}},
        "scenes": [{"images": ["{{pic}}"], "duration": "{{secs}}"}],
    }
    v2 = {"scenes": [{"images": ["{{pic}}"], "duration": 2}]}
    _put(api, "ver", v1)
    _upload_images(api, "ver", tmp_path, {"p1.jpg": 416, "p2.jpg": 432})
    assert _put(api, "ver", v2)["version"] == 2
    data = {"pic": "p1.jpg"}
    old = _post(
        api,
        "/v1/projects/ver/render",
        {"outputName": "old.mp4", "version": 1, "data": data, "renderOptions": OPTIONS},
    )
    new = _post(
        api,
        "/v1/projects/ver/render",
        {"outputName": "new.mp4", "data": {"pic": "p2.jpg"}, "renderOptions": OPTIONS},
    )
    old_job, new_job = _done(api, old), _done(api, new)
    assert (old_job["version"], new_job["version"]) == (1, 2)
    assert _frames(_output(stack, "ver", "old.mp4")) == 25  # v1's 1 s default
    assert _frames(_output(stack, "ver", "new.mp4")) == 50

    again = _post(api, f"/v1/jobs/{old}/rerender", {"outputName": "again.mp4"})
    assert _done(api, again)["specSha256"] == old_job["specSha256"]
    ffmpeg = find_ffmpeg()
    first = frame_hashes(ffmpeg, _output(stack, "ver", "old.mp4"))
    assert len(first) == 25
    assert frame_hashes(ffmpeg, _output(stack, "ver", "again.mp4")) == first


def _shared_template() -> dict[str, Any]:
    """Three scenes; only the last differs between rows (its picture is the row's)."""
    return {
        "variables": {"pic": {"type": "image"}, "slug": {"type": "text"}},
        "title": "{{slug}}",
        "scenes": [
            {"images": ["s0.jpg"], "duration": 1},
            {"images": ["s1.jpg"], "duration": 1},
            {"images": ["{{pic}}"], "duration": 1},
        ],
    }


def _batch(api: Api, project: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api._check(api.http.post(f"/v1/projects/{project}/batches", json=body))
    return dict(response.json())


def _batch_view(api: Api, batch_id: str) -> dict[str, Any]:
    return dict(api._check(api.http.get(f"/v1/batches/{batch_id}?limit=1000")).json())


def _wait_batch(api: Api, batch_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while (view := _batch_view(api, batch_id))["status"] == "RUNNING":
        assert time.monotonic() < deadline, view
        time.sleep(0.2)
    return view


def test_a_batch_encodes_shared_scenes_once_and_reports_invalid_rows_while_valid_ones_run(
    stack: Stack, api: Api, tmp_path: Path
) -> None:
    _put(api, "bat", _shared_template())
    _upload_images(
        api,
        "bat",
        tmp_path,
        {"s0.jpg": 448, "s1.jpg": 464, "r0.jpg": 480, "r1.jpg": 496, "r2.jpg": 512},
    )
    rows = [
        {"pic": "r0.jpg", "slug": "first"},
        {"pic": "missing.jpg", "slug": "bad"},
        {"pic": "r1.jpg", "slug": "second"},
        {"pic": "r2.jpg", "slug": "third"},
    ]
    accepted = _batch(
        api, "bat", {"rows": rows, "outputName": "{{slug}}.mp4", "renderOptions": OPTIONS}
    )
    assert accepted["queued"] == 3
    assert [(e["index"], e["field"]) for e in accepted["invalid"]] == [(1, "rows[1].pic")]
    view = _wait_batch(api, accepted["batchId"])
    assert view["status"] == "SUCCEEDED", view
    assert view["counts"]["SUCCEEDED"] == 3 and view["counts"]["INVALID"] == 1
    # One worker process (concurrency 1): the two shared scenes are encoded by the first job
    # to reach them and taken from the cache by the other two.
    assert view["cache"]["encoded"] == 2 + 3
    assert view["cache"]["hits"] == 2 * 2
    assert view["encodesPerRow"] == pytest.approx(5 / 3)
    # BATCH_CONCURRENCY=1: each row started after the one before it had ended.
    ran = [api.job(item["jobId"]) for item in view["items"] if item["jobId"]]
    for earlier, later in itertools.pairwise(ran):
        assert datetime.fromisoformat(later["startedAt"]) >= datetime.fromisoformat(
            earlier["finishedAt"]
        )

    outputs = api._check(api.http.get(f"/v1/batches/{accepted['batchId']}/outputs")).json()
    assert [o["name"] for o in outputs] == ["first.mp4", "second.mp4", "third.mp4"]
    archive = api._check(api.http.get(f"/v1/batches/{accepted['batchId']}/outputs.zip"))
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        assert zipped.namelist() == ["first.mp4", "second.mp4", "third.mp4"]
        for name in zipped.namelist():
            assert zipped.read(name) == _output(stack, "bat", name).read_bytes()
    assert _frames(_output(stack, "bat", "third.mp4")) == 75


def test_a_single_render_starts_before_the_batch_queued_before_it(tmp_path: Path) -> None:
    """Two worker processes busy with a batch; a render sent then takes the next free one:
    no batch unit taken after its submission starts before its own first unit."""
    with running_stack(tmp_path / "storage", workers=2, WORKER_CONCURRENCY="1") as stack:
        api = Api(stack.base_url)
        _put(api, "fair", _shared_template())
        pics = {f"f{i}.jpg": 320 + 16 * i for i in range(6)}
        _upload_images(api, "fair", tmp_path, {"s0.jpg": 528, "s1.jpg": 544, **pics})
        rows = [{"pic": name, "slug": f"row{i}"} for i, name in enumerate(pics)]
        options = {**OPTIONS, "cache": False}  # every unit encodes: the batch stays busy
        batch = _batch(api, "fair", {"rows": rows, "renderOptions": options})["batchId"]

        def batch_stages() -> list[dict[str, Any]]:
            found = []
            for item in _batch_view(api, batch)["items"]:
                found += api.job(item["jobId"])["stages"]
            return found

        deadline = time.monotonic() + 120
        while sum(s["status"] == "RUNNING" for s in batch_stages()) < 2:
            assert time.monotonic() < deadline, "the batch never kept both processes busy"
            time.sleep(0.05)
        single = _post(
            api,
            "/v1/projects/fair/render",
            {
                "outputName": "single.mp4",
                "data": {"pic": "f0.jpg", "slug": "one"},
                "renderOptions": options,
            },
        )
        # Sent once the answer is back: its first task is in the queue by then (the job's row
        # is made before, so a batch unit may start in between without cutting in).
        sent = datetime.now(UTC)
        job = _done(api, single)
        began = min(datetime.fromisoformat(s["startedAt"]) for s in job["stages"] if s["startedAt"])
        cut_in = [
            s
            for s in batch_stages()
            if s["startedAt"] and sent < datetime.fromisoformat(s["startedAt"]) < began
        ]
        # A process may already have taken its next batch unit off the queue when the render
        # arrived, its start recorded a moment later (a loaded machine): at most one such unit
        # per process ("within one unit of work on a free process"), not the batch's backlog.
        assert len(cut_in) <= 2, cut_in
        assert (
            _batch_view(api, batch)["counts"]["QUEUED"]
            + sum(
                1
                for s in batch_stages()
                if s["startedAt"] and datetime.fromisoformat(s["startedAt"]) > began
            )
            > 0
        )  # the batch was not over when the single render started
        _wait_batch(api, batch)


def test_one_signed_webhook_when_the_whole_batch_has_ended(tmp_path: Path) -> None:
    secret = "batch-webhook-secret"
    with (
        running_stack(
            tmp_path / "storage",
            WEBHOOK_SECRET=secret,
            WEBHOOK_ALLOW_PRIVATE="true",  # the receiver listens on 127.0.0.1
            WEBHOOK_BACKOFF="0.3",
        ) as stack,
        receiving(secret, [200]) as receiver,
    ):
        api = Api(stack.base_url)
        _put(api, "hook", _shared_template())
        _upload_images(
            api, "hook", tmp_path, {"s0.jpg": 560, "s1.jpg": 576, "h0.jpg": 592, "h1.jpg": 608}
        )
        rows = [{"pic": "h0.jpg", "slug": "a"}, {"pic": "h1.jpg", "slug": "b"}]
        body = {"rows": rows, "renderOptions": OPTIONS, "callbackUrl": receiver.url}
        batch = _batch(api, "hook", body)["batchId"]
        view = _wait_batch(api, batch)
        assert view["status"] == "SUCCEEDED", view
        assert receiver.wait_for(1, timeout=60)
    [delivery] = receiver.deliveries
    assert delivery.signed
    assert delivery.headers["X-Render-Event"] == "batch.succeeded"
    assert delivery.headers["X-Render-Delivery"] == f"batch:{batch}"
    sent = delivery.document
    assert (sent["batchId"], sent["status"], sent["counts"]["SUCCEEDED"]) == (batch, "SUCCEEDED", 2)
    assert [job["outputName"] for job in sent["jobs"]] == ["row-1.mp4", "row-2.mp4"]
