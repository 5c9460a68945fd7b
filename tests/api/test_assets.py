"""POST /v1/projects/{id}/assets: streamed, capped, checked by content, all or nothing."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from api import uploads
from api.main import create_app
from pipeline.fixtures import make_blank_png
from tests.conftest import (
    TOKEN,
    AppFactory,
    error_of,
    jpeg_bytes,
    make_settings,
    png_bytes,
    tree,
    wav_bytes,
)

URL = "/v1/projects/p1/assets"
MIB = 1024 * 1024


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


# --- limits that hold while the body streams in ---------------------------------------------


def _padded_jpeg(size: int) -> bytes:
    """A real JPEG followed by zeros up to `size` bytes (decoders stop at its end marker)."""
    jpg = jpeg_bytes()
    return jpg + b"\x00" * (size - len(jpg))


def _leftovers(storage: Path) -> list[str]:
    return [p.name for p in storage.rglob("*") if p.suffix == ".part" or "upload" in p.name]


@contextmanager
def _serving(make_app: Callable[[], Any]) -> Iterator[int]:
    """A real uvicorn serving the app on a socket bound before it starts (connections wait in
    the backlog until it accepts them); yields the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    server = uvicorn.Server(uvicorn.Config(make_app(), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


def _exchange(port: int, request: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Send `request` (an incomplete one) and read the response: status, headers, JSON body.

    The server may answer and close while the request is still being sent: the send then
    fails, and the answer, which came first, is still there to read."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        with suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        while len(body) < int(headers["content-length"]):
            body += conn.recv(65536)
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_an_upload_over_max_upload_mb_is_refused_mid_stream_leaving_nothing(
    storage: Path,
) -> None:
    """A real server and a client that sends 1.25 MiB of a file announced (and allowed by the
    body limit) at 1.9 MiB, then waits: the 413 comes back before the rest is sent, and by
    then its temp file is gone."""
    settings = make_settings(storage, max_upload_mb=1)
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    payload = _padded_jpeg(MIB + MIB // 4)
    request = (
        f"POST /v1/projects/p1/assets HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: {int(1.9 * MIB)}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    ).encode()
    with _serving(lambda: create_app(settings)) as port:
        status, headers, body = _exchange(port, request + head + payload)
        assert status == 413
        # Of announced length: uvicorn reads the rest and drops it; the connection may stay.
        assert "connection" not in headers
        assert body["error"]["code"] == "too_large"
        assert body["error"]["message"] == (
            "'big.jpg': the files of one request are larger than MAX_UPLOAD_MB (1 MiB)"
        )
        assert _leftovers(storage) == []
        assert not (storage / "projects" / "p1").exists()


def test_a_chunked_upload_is_refused_mid_stream_too(storage: Path) -> None:
    settings = make_settings(storage, max_upload_mb=1)
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    sent = head + _padded_jpeg(MIB + MIB // 4)
    request = (
        f"POST /v1/projects/p1/assets HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    ).encode()
    with _serving(lambda: create_app(settings)) as port:
        # One chunk, and never the last one.
        chunk = f"{len(sent):x}\r\n".encode() + sent + b"\r\n"
        status, headers, body = _exchange(port, request + chunk)
        assert status == 413
        assert headers["connection"] == "close"  # a body without a length may never end
        assert "MAX_UPLOAD_MB (1 MiB)" in body["error"]["message"]
        assert _leftovers(storage) == []


def test_max_upload_mb_counts_every_file_of_a_request(
    make_client: AppFactory, storage: Path
) -> None:
    client = make_client(max_upload_mb=2)
    at_limit = [
        ("files", ("a.jpg", _padded_jpeg(MIB), "image/jpeg")),
        ("files", ("b.jpg", _padded_jpeg(MIB), "image/jpeg")),
    ]
    assert client.post(URL, files=at_limit).status_code == 201
    before = tree(storage)
    over = [
        ("files", ("c.jpg", _padded_jpeg(MIB), "image/jpeg")),
        ("files", ("d.jpg", _padded_jpeg(MIB + 1), "image/jpeg")),
    ]
    response = client.post(URL, files=over)
    assert response.status_code == 413
    assert error_of(response)["message"].startswith("'d.jpg': the files of one request")
    assert tree(storage) == before


def test_project_max_mb_at_the_limit_and_one_byte_over(
    make_client: AppFactory, storage: Path
) -> None:
    client = make_client(project_max_mb=1)
    first = client.post(URL, files={"files": ("a.jpg", _padded_jpeg(MIB - 100), "image/jpeg")})
    assert first.status_code == 201
    # 100 bytes more fit exactly; replacing a.jpg by a file of its size is no growth.
    fits = [
        ("files", ("b.jpg", _padded_jpeg(100), "image/jpeg")),
        ("files", ("a.jpg", _padded_jpeg(MIB - 100), "image/jpeg")),
    ]
    if len(jpeg_bytes()) > 100:  # the smallest JPEG is larger: then one of 100 bytes cannot be
        fits = fits[1:]
    assert client.post(URL, files=fits).status_code == 201
    before = tree(storage)
    used = sum(size for size in before.values() if size > 0)
    response = client.post(
        URL, files={"files": ("c.jpg", _padded_jpeg(MIB - used + 1), "image/jpeg")}
    )
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "quota_exceeded"
    assert "'c.jpg'" in error["message"] and "PROJECT_MAX_MB (1 MiB)" in error["message"]
    assert tree(storage) == before
    assert _leftovers(storage) == []


def test_project_max_files_counts_new_names_not_replacements(
    make_client: AppFactory, storage: Path
) -> None:
    client = make_client(project_max_files=2)
    two = [
        ("files", ("a.jpg", jpeg_bytes(), "image/jpeg")),
        ("files", ("one.wav", wav_bytes(), "audio/wav")),
    ]
    assert client.post(URL, files=two).status_code == 201
    assert client.post(URL, files=two).status_code == 201  # the same two again: replaced
    before = tree(storage)
    response = client.post(URL, files={"files": ("b.jpg", jpeg_bytes(), "image/jpeg")})
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "quota_exceeded"
    assert "PROJECT_MAX_FILES (2)" in error["message"] and "'b.jpg'" in error["message"]
    # A name that exists in images/ but whose bytes are audio is a new voiceover: counted
    # once the bytes say where it goes.
    response = client.post(URL, files={"files": ("a.jpg", wav_bytes(), "audio/wav")})
    assert response.status_code == 413
    assert "would hold 3 files" in error_of(response)["message"]
    assert tree(storage) == before


def test_free_space_running_out_mid_upload_is_507_leaving_nothing(
    make_client: AppFactory, storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A storage with 2 MiB above MIN_FREE_MB: what the upload writes is what it loses."""
    client = make_client(min_free_mb=100)

    def shrinking(root: Path) -> int:
        written = sum(p.stat().st_size for p in root.glob(".upload-*.part"))
        return 102 * MIB - written

    monkeypatch.setattr(uploads, "free_space", shrinking)
    before = tree(storage)
    response = client.post(URL, files={"files": ("big.jpg", _padded_jpeg(3 * MIB), "image/jpeg")})
    assert response.status_code == 507
    error = error_of(response)
    assert error["code"] == "insufficient_storage"
    assert "upload stopped" in error["message"] and "MIN_FREE_MB (100 MiB)" in error["message"]
    assert tree(storage) == before
    # What fits is stored.
    ok = client.post(URL, files={"files": ("ok.jpg", _padded_jpeg(MIB), "image/jpeg")})
    assert ok.status_code == 201


# --- decompression bombs ---------------------------------------------------------------------


def test_a_12000_square_png_is_refused_by_its_header(
    client: TestClient, storage: Path, tmp_path: Path
) -> None:
    bomb = make_blank_png(tmp_path / "bomb.png", 12000, 12000).read_bytes()
    assert len(bomb) < 100_000
    before = tree(storage)
    response = client.post(URL, files={"files": ("bomb.png", bomb, "image/png")})
    assert response.status_code == 422
    error = error_of(response)
    assert error == {
        "code": "image_too_large",
        "message": "'bomb.png' is 12000×12000 pixels (144.0 MP), over the limit of 40000000 "
        "pixels (40 MP) (MAX_IMAGE_PIXELS)",
        "field": "files",
    }
    assert tree(storage) == before


def test_an_image_at_the_pixel_cap_is_stored_and_one_pixel_over_is_refused(
    make_client: AppFactory, storage: Path, tmp_path: Path
) -> None:
    at_cap = make_blank_png(tmp_path / "at.png", 2000, 1500).read_bytes()
    over = make_blank_png(tmp_path / "over.png", 2001, 1500).read_bytes()
    client = make_client(max_image_pixels=3_000_000)
    assert client.post(URL, files={"files": ("at.png", at_cap, "image/png")}).status_code == 201
    response = client.post(URL, files={"files": ("over.png", over, "image/png")})
    assert response.status_code == 422
    assert "2001×1500" in error_of(response)["message"]
    assert not (storage / "projects/p1/input/images/over.png").exists()


def test_an_image_past_pillows_own_bomb_limit_is_refused_the_same_way(
    client: TestClient, storage: Path, tmp_path: Path
) -> None:
    # Over 179 MP Pillow will not read even the header: still a 422 naming the file, not a 415.
    bomb = make_blank_png(tmp_path / "huge.png", 20000, 20000).read_bytes()
    response = client.post(URL, files={"files": ("huge.png", bomb, "image/png")})
    assert response.status_code == 422
    assert error_of(response)["message"].startswith("'huge.png' has 400000000 pixels")


def test_a_file_under_another_field_name_is_refused_naming_it(
    client: TestClient, storage: Path
) -> None:
    before = tree(storage)
    response = client.post(URL, files={"file": ("a.jpg", jpeg_bytes(), "image/jpeg")})
    assert response.status_code == 422
    assert error_of(response)["message"] == (
        "a file is sent as 'file': send files as 'files' parts"
    )
    assert tree(storage) == before


def test_a_voiceover_longer_than_a_scene_may_be_is_refused_at_upload(
    make_client: AppFactory, storage: Path
) -> None:
    client = make_client(max_scene_seconds=2)
    long = ("files", ("long.wav", wav_bytes(3.0), "audio/wav"))
    refused = client.post("/v1/projects/p1/assets", files=[long], data={"subdir": "voiceovers"})
    assert refused.status_code == 422, refused.text
    error = error_of(refused)
    assert (error["code"], error["field"]) == ("over_limit", "files")
    assert error["message"] == "'long.wav' is 3 s long, over MAX_SCENE_SECONDS (2) s for a scene"
    assert not (storage / "projects" / "p1" / "input" / "voiceovers" / "long.wav").exists()
    # At the limit it is taken, and a bed of any length is no scene's voiceover.
    short = ("files", ("short.wav", wav_bytes(2.0), "audio/wav"))
    assert client.post("/v1/projects/p1/assets", files=[short]).status_code == 201
    bed = client.post("/v1/projects/p1/assets", files=[long], data={"subdir": "music"})
    assert bed.status_code == 201, bed.text
