"""GET /v1/projects/{id}/outputs and GET/HEAD /v1/projects/{id}/outputs/video."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.deps import get_blobs
from pipeline import captions
from tasks import jobs
from tasks.db import session_scope
from tasks.models import JobStatus
from tests.blobstores import RemoteBlobStore
from tests.conftest import error_of, jpeg_bytes, make_settings, put_spec, upload_all

VIDEO = "/v1/projects/p1/outputs/video"


@pytest.fixture
def output(client: TestClient, storage: Path) -> Path:
    put_spec(client)
    return storage / "projects/p1/output"


def test_list_outputs_skips_temp_files(client: TestClient, output: Path, mp4_bytes: bytes) -> None:
    (output / "video.mp4").write_bytes(mp4_bytes)
    (output / "scene_00.mp4").write_bytes(b"x" * 10)
    (output / ".video.abc.tmp.mp4").write_bytes(b"partial")
    (output / "sub").mkdir()
    response = client.get("/v1/projects/p1/outputs")
    assert response.status_code == 200
    body = response.json()
    assert [f["name"] for f in body] == ["scene_00.mp4", "video.mp4"]
    assert body[1]["size"] == len(mp4_bytes)
    assert body[1]["modifiedAt"].endswith(("Z", "+00:00"))


def test_list_outputs_empty_and_unknown(client: TestClient, output: Path) -> None:
    assert client.get("/v1/projects/p1/outputs").json() == []
    assert client.get("/v1/projects/other/outputs").status_code == 404
    assert client.get("/v1/projects/-x/outputs").status_code == 422


def test_get_video_streams_the_whole_file(
    client: TestClient, output: Path, mp4_bytes: bytes
) -> None:
    (output / "video.mp4").write_bytes(mp4_bytes)
    response = client.get(VIDEO)
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.content == mp4_bytes


def test_head_video_sends_headers_only(client: TestClient, output: Path, mp4_bytes: bytes) -> None:
    (output / "video.mp4").write_bytes(mp4_bytes)
    response = client.head(VIDEO)
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(mp4_bytes))
    assert response.headers["content-type"] == "video/mp4"
    assert response.content == b""


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-99", 0, 99), ("bytes=100-", 100, None), ("bytes=-50", None, None)],
)
def test_range_requests_get_206(
    client: TestClient,
    output: Path,
    mp4_bytes: bytes,
    header: str,
    start: int | None,
    end: int | None,
) -> None:
    (output / "video.mp4").write_bytes(mp4_bytes)
    size = len(mp4_bytes)
    response = client.get(VIDEO, headers={"Range": header})
    assert response.status_code == 206
    if start is None:
        first, last = size - 50, size - 1
    else:
        first, last = start, size - 1 if end is None else end
    assert response.headers["content-range"] == f"bytes {first}-{last}/{size}"
    assert response.content == mp4_bytes[first : last + 1]
    head = client.head(VIDEO, headers={"Range": header})
    assert head.status_code == 206
    assert head.headers["content-length"] == str(last - first + 1)


def test_range_past_the_end_is_416(client: TestClient, output: Path, mp4_bytes: bytes) -> None:
    (output / "video.mp4").write_bytes(mp4_bytes)
    size = len(mp4_bytes)
    response = client.get(VIDEO, headers={"Range": f"bytes={size + 10}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"
    assert error_of(response)["code"] == "range_not_satisfiable"


def test_malformed_range_is_400(client: TestClient, output: Path, mp4_bytes: bytes) -> None:
    (output / "video.mp4").write_bytes(mp4_bytes)
    response = client.get(VIDEO, headers={"Range": "pages=1-2"})
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_range"


def test_default_name_is_the_last_succeeded_output(
    client: TestClient, output: Path, storage: Path, mp4_bytes: bytes
) -> None:
    upload_all(client)
    job_id = client.post("/v1/projects/p1/render", json={"outputName": "final.mp4"}).json()["jobId"]
    (output / "video.mp4").write_bytes(b"old")
    (output / "final.mp4").write_bytes(mp4_bytes)
    # Not succeeded yet: the default is video.mp4.
    assert client.get(VIDEO).content == b"old"
    with session_scope(make_settings(storage).db_url) as session:
        jobs.transition(session, job_id, JobStatus.RUNNING)
        jobs.transition(session, job_id, JobStatus.SUCCEEDED)
    assert client.get(VIDEO).content == mp4_bytes
    assert client.get(VIDEO, params={"name": "video.mp4"}).content == b"old"


def test_missing_video_is_404(client: TestClient, output: Path) -> None:
    response = client.get(VIDEO)
    assert response.status_code == 404
    assert "video.mp4" in error_of(response)["message"]
    assert client.get(VIDEO, params={"name": "other.mp4"}).status_code == 404
    assert client.get("/v1/projects/nobody/outputs/video").status_code == 404


@pytest.mark.parametrize("name", ["../input/scenes.json", "/etc/passwd", ".video.mp4", "a/b.mp4"])
def test_unsafe_video_names_are_422(client: TestClient, output: Path, name: str) -> None:
    response = client.get(VIDEO, params={"name": name})
    assert response.status_code == 422
    assert error_of(response)["field"] == "name"


def test_output_routes_need_the_token(client: TestClient, output: Path) -> None:
    assert client.get("/v1/projects/p1/outputs", headers={"Authorization": ""}).status_code == 401
    assert client.get(VIDEO, headers={"Authorization": "Bearer x"}).status_code == 401
    assert client.head(VIDEO, headers={"Authorization": "Bearer x"}).status_code == 401


def test_captions_are_served_as_captions_never_sniffed(client: TestClient, output: Path) -> None:
    cues = [(0, 30, ("<script>alert(1)</script>",))]
    (output / "video.vtt").write_text(captions.vtt(cues, 30), encoding="utf-8")
    (output / "video.srt").write_text(captions.srt(cues, 30), encoding="utf-8")
    (output / "notes.html").write_text("<script>alert(1)</script>", encoding="utf-8")
    expected = {
        "video.vtt": "text/vtt; charset=utf-8",
        "video.srt": "application/x-subrip; charset=utf-8",
        "notes.html": "application/octet-stream",
    }
    for name, media_type in expected.items():
        for method in ("GET", "HEAD"):
            response = client.request(method, VIDEO, params={"name": name})
            assert response.status_code == 200, (name, response.text)
            assert response.headers["content-type"] == media_type, name
            assert response.headers["x-content-type-options"] == "nosniff", name
    vtt = client.get(VIDEO, params={"name": "video.vtt"}).text
    assert vtt.startswith("WEBVTT\n") and "<script>" not in vtt
    listed = {f["name"]: f["contentType"] for f in client.get("/v1/projects/p1/outputs").json()}
    assert listed == expected


def test_videos_and_posters_say_nosniff(client: TestClient, output: Path, mp4_bytes: bytes) -> None:
    (output / "video.mp4").write_bytes(mp4_bytes)
    (output / "video.jpg").write_bytes(jpeg_bytes())
    for route in (VIDEO, "/v1/projects/p1/outputs/poster"):
        response = client.get(route)
        assert response.status_code == 200, response.text
        assert response.headers["x-content-type-options"] == "nosniff"


def test_a_store_without_local_files_streams_with_the_same_contract(
    client: TestClient, output: Path, storage: Path, mp4_bytes: bytes
) -> None:
    # Outputs are read through the storage interface: a backend that has no file on this
    # machine (S3) is streamed from the store, with the same types, ranges and nosniff.
    remote = RemoteBlobStore(storage)
    client.app.dependency_overrides[get_blobs] = lambda: remote  # type: ignore[attr-defined]
    (output / "video.mp4").write_bytes(mp4_bytes)
    (output / "video.jpg").write_bytes(jpeg_bytes())
    size = len(mp4_bytes)
    whole = client.get(VIDEO)
    assert (whole.status_code, whole.content) == (200, mp4_bytes)
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["x-content-type-options"] == "nosniff"
    part = client.get(VIDEO, headers={"Range": "bytes=100-199"})
    assert (part.status_code, part.content) == (206, mp4_bytes[100:200])
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    head = client.head(VIDEO, headers={"Range": "bytes=-50"})
    assert (head.status_code, head.content) == (206, b"")
    assert head.headers["content-length"] == "50"
    assert client.get(VIDEO, headers={"Range": f"bytes={size}-"}).status_code == 416
    poster = client.get("/v1/projects/p1/outputs/poster")
    assert poster.headers["content-type"] == "image/jpeg" and poster.content == jpeg_bytes()
    listed = client.get("/v1/projects/p1/outputs").json()
    assert [(f["name"], f["size"], f["poster"]) for f in listed] == [
        ("video.jpg", len(jpeg_bytes()), None),
        ("video.mp4", size, "video.jpg"),
    ]
