"""POST /v1/projects/{id}/assets: streamed, capped, checked by content, all or nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import AppFactory, error_of, jpeg_bytes, png_bytes, tree, wav_bytes

URL = "/v1/projects/p1/assets"


def test_upload_infers_the_subdir_and_reports_size_and_hash(
    client: TestClient, storage: Path
) -> None:
    jpg, wav = jpeg_bytes(), wav_bytes()
    response = client.post(
        URL,
        files=[
            ("files", ("a.jpg", jpg, "image/jpeg")),
            ("files", ("one.wav", wav, "audio/wav")),
        ],
    )
    assert response.status_code == 201, response.text
    assert response.json() == [
        {"name": "a.jpg", "subdir": "images", "size": len(jpg), "sha256": _sha(jpg)},
        {"name": "one.wav", "subdir": "voiceovers", "size": len(wav), "sha256": _sha(wav)},
    ]
    assert (storage / "projects/p1/input/images/a.jpg").read_bytes() == jpg
    assert (storage / "projects/p1/input/voiceovers/one.wav").read_bytes() == wav
    # No temp files left beside them.
    assert not [p for p in storage.rglob(".*")]


def test_upload_to_an_explicit_subdir(client: TestClient, storage: Path) -> None:
    response = client.post(
        URL, data={"subdir": "music"}, files={"files": ("bed.wav", wav_bytes(), "audio/wav")}
    )
    assert response.status_code == 201, response.text
    assert response.json()[0]["subdir"] == "music"
    assert (storage / "projects/p1/input/music/bed.wav").is_file()


def test_upload_replaces_a_file_of_the_same_name(client: TestClient, storage: Path) -> None:
    client.post(URL, files={"files": ("a.png", png_bytes((8, 8)), "image/png")})
    new = png_bytes((16, 16))
    response = client.post(URL, files={"files": ("a.png", new, "image/png")})
    assert response.status_code == 201
    assert (storage / "projects/p1/input/images/a.png").read_bytes() == new


def test_browser_directory_parts_are_dropped(client: TestClient, storage: Path) -> None:
    response = client.post(
        URL, files={"files": ("C:\\fakepath\\photos\\a.jpg", jpeg_bytes(), "image/jpeg")}
    )
    assert response.status_code == 201, response.text
    assert response.json()[0]["name"] == "a.jpg"
    assert (storage / "projects/p1/input/images/a.jpg").is_file()


@pytest.mark.parametrize("name", ["../x.jpg", "/etc/passwd", ".hidden", "a/../../x.jpg", "x?.jpg"])
def test_unsafe_names_are_refused_naming_the_file(
    client: TestClient, storage: Path, name: str
) -> None:
    before = tree(storage)
    response = client.post(URL, files={"files": (name, jpeg_bytes(), "image/jpeg")})
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "invalid_name"
    assert error["field"] == "files"
    assert name in error["message"]
    assert tree(storage) == before


@pytest.mark.parametrize(
    ("name", "content", "subdir"),
    [
        ("x.jpg", b"this is plain text, not a picture\n" * 20, None),
        ("x.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, None),
        ("v.wav", b"RIFF\x24\x00\x00\x00WAVEnot really audio at all" * 4, None),
        ("v.mp3", b"ID3" + b"\x00" * 300, None),
        ("a.jpg", jpeg_bytes(), "voiceovers"),
        ("v.wav", wav_bytes(), "images"),
        ("empty.jpg", b"", None),
    ],
)
def test_content_is_checked_by_its_bytes(
    client: TestClient, storage: Path, name: str, content: bytes, subdir: str | None
) -> None:
    before = tree(storage)
    data = {"subdir": subdir} if subdir else None
    response = client.post(URL, data=data, files={"files": (name, content, "image/jpeg")})
    assert response.status_code == 415, response.text
    error = error_of(response)
    assert error["code"] == "unsupported_media_type"
    assert name in error["message"]
    assert tree(storage) == before


def test_one_bad_part_keeps_every_part_out(client: TestClient, storage: Path) -> None:
    client.post(URL, files={"files": ("keep.jpg", jpeg_bytes(), "image/jpeg")})
    before = tree(storage)
    response = client.post(
        URL,
        files=[
            ("files", ("good.jpg", jpeg_bytes(), "image/jpeg")),
            ("files", ("keep.jpg", png_bytes(), "image/png")),
            ("files", ("bad.jpg", b"not an image", "image/jpeg")),
        ],
    )
    assert response.status_code == 415
    assert "bad.jpg" in error_of(response)["message"]
    assert tree(storage) == before


def test_the_same_name_twice_in_one_request(client: TestClient, storage: Path) -> None:
    before = tree(storage)
    response = client.post(
        URL,
        files=[
            ("files", ("a.jpg", jpeg_bytes(), "image/jpeg")),
            ("files", ("a.jpg", jpeg_bytes(), "image/jpeg")),
        ],
    )
    assert response.status_code == 422
    assert error_of(response)["code"] == "duplicate_name"
    assert tree(storage) == before


def test_bad_subdir_is_422_naming_it(client: TestClient, storage: Path) -> None:
    before = tree(storage)
    response = client.post(
        URL, data={"subdir": "../work"}, files={"files": ("a.jpg", jpeg_bytes(), "image/jpeg")}
    )
    assert response.status_code == 422
    assert error_of(response)["field"] == "subdir"
    assert tree(storage) == before


def test_a_body_over_the_limit_is_refused_before_it_is_read(
    make_client: AppFactory, storage: Path
) -> None:
    client = make_client(max_upload_mb=1)
    before = tree(storage)
    big = jpeg_bytes() + b"\x00" * (2 * 1024 * 1024 + 10)
    response = client.post(URL, files={"files": ("big.jpg", big, "image/jpeg")})
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "too_large"
    assert "MAX_UPLOAD_MB" in error["message"]
    assert tree(storage) == before


def test_a_file_over_the_limit_is_refused_while_copying(
    make_client: AppFactory, storage: Path
) -> None:
    # 1.5 MB passes the body check (limit plus multipart slack) but not the per-file cap.
    client = make_client(max_upload_mb=1)
    before = tree(storage)
    big = b"\x00" * (1024 * 1024 + 512 * 1024)
    response = client.post(
        URL,
        files=[
            ("files", ("ok.jpg", jpeg_bytes(), "image/jpeg")),
            ("files", ("big.jpg", big, "image/jpeg")),
        ],
    )
    assert response.status_code == 413
    assert "big.jpg" in error_of(response)["message"]
    assert tree(storage) == before


def test_a_chunked_body_over_the_limit_is_cut_off(make_client: AppFactory, storage: Path) -> None:
    client = make_client(max_upload_mb=1)
    before = tree(storage)
    boundary = "b0undary"

    def body() -> Any:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        for _ in range(3):
            yield b"\x00" * (1024 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        URL,
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413
    assert tree(storage) == before


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'--xyz\r\nContent-Disposition: form-data; name="files"\r\n\r\nabc', "xyz"),
        (b"garbage without any boundary", "xyz"),
        (b"", "xyz"),
    ],
)
def test_malformed_multipart_is_a_clear_4xx(
    client: TestClient, storage: Path, content: bytes, content_type: str
) -> None:
    before = tree(storage)
    response = client.post(
        URL,
        content=content,
        headers={"Content-Type": f"multipart/form-data; boundary={content_type}"},
    )
    assert 400 <= response.status_code < 500, response.text
    assert error_of(response)["message"]
    assert tree(storage) == before


def test_json_instead_of_multipart(client: TestClient, storage: Path) -> None:
    before = tree(storage)
    response = client.post(URL, json={"files": ["a.jpg"]})
    assert response.status_code in (400, 422)
    assert error_of(response)["field"] in ("files", None)
    assert tree(storage) == before


def test_bad_project_id_and_missing_token(client: TestClient, storage: Path) -> None:
    before = tree(storage)
    files = {"files": ("a.jpg", jpeg_bytes(), "image/jpeg")}
    response = client.post("/v1/projects/-bad/assets", files=files)
    assert response.status_code == 422
    assert error_of(response)["field"] == "id"
    response = client.post(URL, files=files, headers={"Authorization": "Bearer x"})
    assert response.status_code == 401
    assert tree(storage) == before


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
