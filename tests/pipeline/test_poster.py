"""Posters (pipeline/poster.py): which frame each poster shows, and FINALIZE's JPEGs."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageStat

from pipeline.encoder import Encoder
from pipeline.fixtures import ImageFixture, SceneFixture, write_project
from pipeline.motion import STILL, Move
from pipeline.options import RenderOptions
from pipeline.plan import Plan, ScenePlan
from pipeline.poster import poster_at, poster_name, scene_poster_frame
from pipeline.project import ProjectDir
from tests import pipeline_fixtures as fx
from tests.conftest import error_of, put_spec
from tests.pipeline_fixtures import SMALL
from tests.plans import plan as laid_out
from tests.plans import scene_plan, shot, still
from tests.stage_runs import render_stages

ffmpeg_bin = fx.ffmpeg_bin
ZOOM_IN, ZOOM_OUT = Move(1.0, 1.12), Move(1.12, 1.0)
POSTER = "/v1/projects/p1/outputs/poster"


def _scene(index: int, start: int, first: Move) -> ScenePlan:
    image = still("a.jpg")
    shots = (shot(image, 40, 9, first), shot(image, 20, 0, STILL))
    return scene_plan(
        index=index, start_frame=start, visuals=(image,), shots=shots, motion="kenburns"
    )


def _plan(*firsts: Move) -> Plan:
    scenes = tuple(_scene(i, 60 * i, move) for i, move in enumerate(firsts))
    return laid_out(
        *scenes, width=320, height=180, encoder=Encoder(preset="veryfast"), xfade_frames=9
    )


def test_a_scene_poster_shows_its_first_picture_whole() -> None:
    # Zooming in starts on the whole picture, zooming out ends on it (before the cross-fade).
    assert scene_poster_frame(_scene(0, 0, ZOOM_IN)) == 0
    assert scene_poster_frame(_scene(0, 0, STILL)) == 0
    assert scene_poster_frame(_scene(0, 0, ZOOM_OUT)) == 39


def test_the_video_poster_is_the_first_scenes_unless_a_time_is_given() -> None:
    plan = _plan(ZOOM_OUT, ZOOM_IN, ZOOM_IN)
    assert poster_at(plan, None) == (0, 39)
    assert poster_at(plan, 0.0) == (0, 0)
    assert poster_at(plan, 2.5) == (1, 15)  # frame 75: 15 frames into scene 1
    assert poster_at(plan, 999.0) == (2, 59)  # past the end: the last frame


def test_poster_name() -> None:
    assert poster_name("demo.mp4") == "demo.jpg" and poster_name("a.b.MP4") == "a.b.jpg"


def _mean(path: Path) -> tuple[float, ...]:
    with Image.open(path) as image:
        return tuple(ImageStat.Stat(image.convert("RGB")).mean)


@pytest.fixture
def colours(tmp_path: Path, ffmpeg_bin: str) -> Path:
    """Two held scenes, red then blue: a poster's colour says which frame it shows."""
    return write_project(
        tmp_path / "p",
        [
            SceneFixture((ImageFixture("red.png", 320, 180, "color:red"),), duration=1.0),
            SceneFixture((ImageFixture("blue.png", 320, 180, "color:blue"),), duration=1.0),
        ],
        ffmpeg_bin,
    ).root


def _run(root: Path, ffmpeg: str, options: RenderOptions, name: str = "video.mp4") -> list[str]:
    built = render_stages(ProjectDir(root), ffmpeg, None, options, name)
    return [line for line in built.log if "FINALIZE" in line or "-c:v copy" in line]


def test_finalize_writes_the_video_and_scene_posters(colours: Path, ffmpeg_bin: str) -> None:
    still = SMALL.model_copy(update={"motion": "none"})
    finalize_commands = _run(colours, ffmpeg_bin, still, "show.mp4")
    output = colours / "output"
    assert {"show.jpg", "scene_00.jpg", "scene_01.jpg"} <= {p.name for p in output.iterdir()}
    red, blue = _mean(output / "scene_00.jpg"), _mean(output / "scene_01.jpg")
    assert red[0] > 230 and red[2] < 25 and blue[2] > 230 and blue[0] < 25
    assert _mean(output / "show.jpg") == red  # the first scene's poster
    with Image.open(output / "show.jpg") as image:
        assert image.size == (320, 180) and image.format == "JPEG"
    # Decoded from the clips: FINALIZE ran no encoder but the stream copies it always runs.
    assert not any("libx264" in line for line in finalize_commands)


def test_poster_time_picks_the_frame(colours: Path, ffmpeg_bin: str) -> None:
    options = SMALL.model_copy(update={"motion": "none", "poster_time": 1.5})
    _run(colours, ffmpeg_bin, options)
    blue = _mean(colours / "output" / "video.jpg")
    assert blue[2] > 230 and blue[0] < 25


def test_a_draft_leaves_the_full_renders_scene_files(colours: Path, ffmpeg_bin: str) -> None:
    _run(colours, ffmpeg_bin, SMALL)
    output = colours / "output"
    before = {p.name: p.read_bytes() for p in output.iterdir()}
    _run(colours, ffmpeg_bin, SMALL.model_copy(update={"scenes": [1]}), "part.mp4")
    after = {p.name: p.read_bytes() for p in output.iterdir()}
    assert set(after) - set(before) == {"part.mp4", "part.jpg"}
    assert {k: after[k] for k in before} == before
    blue = _mean(output / "part.jpg")  # the part's first scene is the blue one
    assert blue[2] > 230


# --- the API: GET /v1/projects/{id}/outputs/poster and the listing -------------------------


def test_the_poster_route_serves_a_videos_poster_or_a_named_jpeg(
    client: TestClient, storage: Path
) -> None:
    put_spec(client)
    output = storage / "projects/p1/output"
    (output / "video.mp4").write_bytes(b"v")
    (output / "video.jpg").write_bytes(b"\xff\xd8poster")
    (output / "scene_01.jpg").write_bytes(b"\xff\xd8scene")
    response = client.get(POSTER)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content == b"\xff\xd8poster"
    assert client.get(POSTER, params={"name": "video.mp4"}).content == b"\xff\xd8poster"
    assert client.get(POSTER, params={"name": "scene_01.jpg"}).content == b"\xff\xd8scene"
    head = client.head(POSTER)
    assert head.status_code == 200 and head.headers["content-length"] == "8"
    missing = client.get(POSTER, params={"name": "other.mp4"})
    assert missing.status_code == 404
    assert error_of(missing) == {
        "code": "not_found",
        "message": "no poster 'other.jpg' in project 'p1'",
        "field": "name",
    }
    assert error_of(client.get(POSTER, params={"name": "../x.jpg"}))["code"] == "invalid_name"
    assert client.get("/v1/projects/nope/outputs/poster").status_code == 404


def test_the_listing_says_what_each_output_is(client: TestClient, storage: Path) -> None:
    put_spec(client)
    output = storage / "projects/p1/output"
    for name in ("video.mp4", "video.jpg", "scene_00.mp4", "scene_00.jpg", "old.mp4"):
        (output / name).write_bytes(b"x")
    listing = {f["name"]: f for f in client.get("/v1/projects/p1/outputs").json()}
    assert listing["video.mp4"]["contentType"] == "video/mp4"
    assert listing["video.mp4"]["poster"] == "video.jpg"
    assert listing["old.mp4"]["poster"] is None
    assert listing["scene_00.jpg"]["contentType"] == "image/jpeg"
    assert listing["scene_00.jpg"]["poster"] is None
