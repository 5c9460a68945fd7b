"""POST /v1/projects/{id}/assets with videos: checked by their bytes (container, codec, size,
length), crafted files refused with nothing they reference read, nothing stored on refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import pytest
from fastapi.testclient import TestClient

from tests import clips, untrusted
from tests import pipeline_fixtures as fx
from tests.conftest import AppFactory, error_of, tree

ffmpeg_bin = fx.ffmpeg_bin
URL = "/v1/projects/p1/assets"
H264 = ("-c:v", "libx264", "-preset", "ultrafast")


def _post(client: TestClient, name: str, data: bytes, subdir: str | None = "videos") -> Any:
    form = {"subdir": subdir} if subdir else {}
    return client.post(URL, data=form, files={"files": (name, data, "video/mp4")})


def _video(ffmpeg: str, out: Path, *codec: str, seconds: float = 1.0, size: str = "64x36") -> bytes:
    return clips.counting(ffmpeg, out, seconds=seconds, size=size, codec=codec).read_bytes()


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("a.mp4", H264),
        ("a.mov", ("-c:v", "prores_ks", "-profile:v", "0")),
        ("a.mkv", ("-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=none")),
        ("a.webm", ("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8")),
        ("b.mp4", ("-c:v", "libsvtav1", "-preset", "12")),
    ],
)
def test_each_container_and_codec_is_stored_in_videos(
    client: TestClient, storage: Path, tmp_path: Path, ffmpeg_bin: str, name: str, codec: tuple
) -> None:
    data = _video(ffmpeg_bin, tmp_path / name, *codec)
    response = _post(client, name, data)
    assert response.status_code == 201, response.text
    assert response.json()[0]["subdir"] == "videos"
    assert (storage / "projects/p1/input/videos" / name).read_bytes() == data


def test_a_video_without_a_subdir_goes_to_videos(
    client: TestClient, storage: Path, tmp_path: Path, ffmpeg_bin: str
) -> None:
    data = _video(ffmpeg_bin, tmp_path / "a.mp4", *H264)
    response = _post(client, "a.mp4", data, subdir=None)
    assert response.status_code == 201, response.text
    assert (storage / "projects/p1/input/videos/a.mp4").is_file()


def _refused(client: TestClient, storage: Path, name: str, data: bytes, status: int = 422) -> str:
    before = tree(storage)
    response = _post(client, name, data)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["field"] == "files"
    assert tree(storage) == before  # nothing written
    return str(error["message"])


def test_bad_videos_are_422_naming_files_and_nothing_is_written(
    make_client: AppFactory, storage: Path, tmp_path: Path, ffmpeg_bin: str
) -> None:
    client = make_client(max_video_seconds=2)
    good = _video(ffmpeg_bin, tmp_path / "g.mp4", *H264)
    assert "'e.mp4' is empty" in _refused(client, storage, "e.mp4", b"")
    # A real MP4 cut off half way: its boxes run past its end.
    assert "past the end of the file" in _refused(
        client, storage, "cut.mp4", good[: len(good) // 2]
    )
    # Its frames replaced by noise: the container is whole, no frame decodes.
    noisy = bytearray(good)
    mdat = noisy.find(b"mdat") + 4
    noisy[mdat:] = bytes((i * 7919) % 256 for i in range(len(noisy) - mdat))
    message = _refused(client, storage, "noise.mp4", bytes(noisy))
    assert message.startswith("'noise.mp4' ")
    wide = _video(ffmpeg_bin, tmp_path / "w.mp4", *H264, size="4112x16")
    assert "4112×16, over 4096 pixels a side" in _refused(client, storage, "w.mp4", wide)
    long = _video(ffmpeg_bin, tmp_path / "l.mp4", *H264, seconds=3)
    assert "over MAX_VIDEO_SECONDS (2 s)" in _refused(client, storage, "l.mp4", long)
    mkv = _video(ffmpeg_bin, tmp_path / "m.mkv", *H264)
    assert "which its name (.mp4) denies" in _refused(client, storage, "m.mp4", mkv)
    assert "not the WebM its name says" in _refused(client, storage, "m.webm", mkv)
    gif = tmp_path / "a.gif"
    clips.run(ffmpeg_bin, "-f", "lavfi", "-i", "testsrc2=s=64x36:d=0.2", str(gif))
    assert "is not an MP4, MOV, MKV or WebM" in _refused(client, storage, "a.mp4", gif.read_bytes())
    # And the good one passes the same client.
    assert _post(client, "g.mp4", good).status_code == 201


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file PyAV is asked to open, in this process."""
    seen: list[str] = []
    real = av.open

    def spy(file: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(av, "open", spy)
    return seen


@pytest.mark.parametrize("subdir", ["videos", None, "voiceovers", "images"])
def test_crafted_files_are_refused_and_nothing_they_name_is_read(
    client: TestClient, storage: Path, opened: list[str], subdir: str | None
) -> None:
    storage.mkdir(parents=True, exist_ok=True)
    with untrusted.watched_fifo(storage / "secret.wav") as secret, untrusted.loopback() as port:
        crafted = {
            "playlist.mp4": untrusted.hls_playlist(secret.path, port.url),
            "script.mp4": untrusted.concat_script("secret.wav"),
        }
        for name, data in crafted.items():
            before = tree(storage)
            response = _post(client, name, data, subdir)
            assert response.status_code in (415, 422), response.text
            assert error_of(response)["field"] == "files"
            assert tree(storage) == before
        # The internal URL was never reached...
        assert not port.connected()
    # ... and the secret never opened.
    assert not secret.opened.is_set()
    # With a subdir of videos, not even a demuxer looked at them: refused by their bytes.
    if subdir == "videos":
        assert opened == []


def test_a_header_that_lies_about_its_size_is_refused_unread(
    client: TestClient, storage: Path, tmp_path: Path, ffmpeg_bin: str, opened: list[str]
) -> None:
    real = _video(ffmpeg_bin, tmp_path / "r.mp4", *H264)
    message = _refused(client, storage, "liar.mp4", untrusted.lying_mp4(real))
    assert "of 2147483648 bytes at byte" in message and "past the end of the file" in message
    assert opened == []  # no demuxer ever saw it
