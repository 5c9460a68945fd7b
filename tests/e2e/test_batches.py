"""End to end: templates, versions, rerender and batches through the API, Celery on a real
(embedded) Redis, worker processes and FFmpeg; outputs probed and decoded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.launch import Stack
from pipeline.ffmpeg import find_ffmpeg
from pipeline.fixtures import ImageFixture, make_image
from pipeline.probe import probe
from tests.e2e import Api, running_stack
from tests.stage_runs import frame_hashes

pytestmark = pytest.mark.e2e

OPTIONS: dict[str, Any] = {"fps": 25, "minShot": 0.5, "maxShot": 2.0, "xfade": 0.2}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("storage"), workers=1) as stack:
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
    assert _done(api, again)["spec"] == old_job["spec"]
    ffmpeg = find_ffmpeg()
    first = frame_hashes(ffmpeg, _output(stack, "ver", "old.mp4"))
    assert len(first) == 25
    assert frame_hashes(ffmpeg, _output(stack, "ver", "again.mp4")) == first
