"""End to end: the render cache, previews and posters through the API, Celery and FFmpeg.

One stack (and so one cache, RENDER_STORAGE/cache/) serves the module; each test renders
pictures of its own (its own image sizes), so what one test stores is never another's hit.
What a job encoded is read from its document: each scene's `clip` says `encoded` or `cached`.
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from api.launch import Stack
from pipeline.ffmpeg import find_ffmpeg
from pipeline.fixtures import ImageFixture, MusicFixture, SceneFixture, VoiceFixture, make_music
from pipeline.probe import probe
from tests.e2e import Api, paused, running_stack
from tests.stage_runs import frame_hashes

pytestmark = pytest.mark.e2e

FPS = 25
OPTIONS: dict[str, Any] = {"fps": FPS, "minShot": 0.6, "maxShot": 2.0, "xfade": 0.2}


def scenes(size: int, count: int = 3) -> list[SceneFixture]:
    """`count` scenes whose pictures no other test has (their sizes are this test's own)."""
    found = []
    for i in range(count):
        width = size + 16 * i
        images: tuple[ImageFixture, ...] = (
            ImageFixture(f"i{i}.jpg", width, width * 3 // 4, "testsrc2"),
        )
        if i == 1:
            images += (ImageFixture(f"j{i}.png", width, width * 3 // 4, "mandelbrot"),)
        found.append(
            SceneFixture(
                images, VoiceFixture(f"v{i}.wav", 0.8 + 0.28 * i, 300 + 90 * i), id=f"s{i}"
            )
        )
    return found


def clips(job: dict[str, Any]) -> list[str]:
    return [scene["clip"] for scene in job["scenes"]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("storage"), workers=1) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(stack: Stack) -> Api:
    return Api(stack.base_url)


def _done(api: Api, job_id: str) -> dict[str, Any]:
    job = api.wait(job_id, timeout=180)
    assert job["status"] == "SUCCEEDED", job
    return job


def output(stack: Stack, project: str, name: str) -> Path:
    return stack.settings.render_storage / "projects" / project / "output" / name


def test_an_identical_request_encodes_nothing_and_renders_the_same_frames(
    stack: Stack, api: Api, tmp_path: Path
) -> None:
    api.upload_project("same", scenes(400), tmp_path)
    first = _done(api, api.render("same", "first.mp4", **OPTIONS))
    assert clips(first) == ["encoded"] * 3
    assert first["cache"] == {"hits": 0, "encoded": 3, "bytesSaved": 0}

    again = _done(api, api.render("same", "again.mp4", **OPTIONS))
    assert clips(again) == ["cached"] * 3
    assert all(s["cached"] and s["status"] == "DONE" for s in again["scenes"])
    assert [s["cached"] for s in again["stages"] if s["name"].startswith("SCENE_BUILD")] == [
        True
    ] * 3
    assert again["cache"]["hits"] == 3 and again["cache"]["encoded"] == 0
    log = (stack.settings.render_storage / "logs" / f"{again['id']}.log").read_text()
    linked = [int(n) for n in re.findall(r"linked scene_\d+\.mp4 \((\d+) bytes\)", log)]
    assert len(linked) == 3 and again["cache"]["bytesSaved"] == sum(linked) > 0

    fresh = _done(api, api.render("same", "fresh.mp4", cache=False, **OPTIONS))
    assert clips(fresh) == ["encoded"] * 3
    ffmpeg = find_ffmpeg()
    cached_frames = frame_hashes(ffmpeg, output(stack, "same", "again.mp4"))
    assert cached_frames == frame_hashes(ffmpeg, output(stack, "same", "fresh.mp4"))
    assert len(cached_frames) == _frames(output(stack, "same", "first.mp4"))


def test_a_change_re_renders_only_the_scenes_it_touches(
    stack: Stack, api: Api, tmp_path: Path
) -> None:
    base = scenes(480, 4)
    api.upload_project("edit", base, tmp_path / "0")
    assert clips(_done(api, api.render("edit", **OPTIONS))) == ["encoded"] * 4

    # One image replaced (same name, other picture): that scene alone.
    replaced = list(base)
    image = dataclasses.replace(base[2].images[0], source="smptehdbars")
    replaced[2] = dataclasses.replace(base[2], images=(image,))
    api.upload_project("edit", replaced, tmp_path / "1")
    assert clips(_done(api, api.render("edit", **OPTIONS))) == [
        "cached",
        "cached",
        "encoded",
        "cached",
    ]

    # A scene inserted in the middle: that scene alone; the others moved but are found.
    new = SceneFixture((ImageFixture("new.jpg", 500, 300, "gradients"),), duration=0.9)
    inserted = [*replaced[:2], new, *replaced[2:]]
    api.upload_project("edit", inserted, tmp_path / "2")
    job = _done(api, api.render("edit", **OPTIONS))
    assert clips(job) == ["cached", "cached", "encoded", "cached", "cached"]

    # A voiceover replaced by another of the same length (another pitch): no scene encoded.
    assert inserted[0].voiceover is not None
    voice = dataclasses.replace(inserted[0].voiceover, frequency=1234)
    revoiced = [dataclasses.replace(inserted[0], voiceover=voice), *inserted[1:]]
    api.upload_project("edit", revoiced, tmp_path / "3")
    job = _done(api, api.render("edit", **OPTIONS))
    assert clips(job) == ["cached"] * 5 and job["cache"]["encoded"] == 0

    # A longer voiceover: its scene alone, the later scenes keep their clips.
    assert revoiced[1].voiceover is not None
    longer = dataclasses.replace(revoiced[1].voiceover, seconds=2.1)
    lengthened = [revoiced[0], dataclasses.replace(revoiced[1], voiceover=longer), *revoiced[2:]]
    api.upload_project("edit", lengthened, tmp_path / "4")
    job = _done(api, api.render("edit", **OPTIONS))
    assert clips(job) == ["cached", "encoded", "cached", "cached", "cached"]
    info = probe(output(stack, "edit", "video.mp4"), count_frames=True)
    assert info.video is not None and info.audio is not None
    assert abs(info.video.duration - info.audio.duration) <= 1 / FPS

    # A music bed under it all: the mix changes, no picture does.
    bed = make_music(tmp_path / "bed.mp3", MusicFixture("bed.mp3", 8.0))
    with bed.open("rb") as fh:
        response = api.http.post(
            "/v1/projects/edit/assets", files=[("files", (bed.name, fh))], data={"subdir": "music"}
        )
    assert response.status_code == 201, response.text
    job = _done(api, api.render("edit", "music.mp4", music="bed.mp3", **OPTIONS))
    assert clips(job) == ["cached"] * 5 and job["cache"]["encoded"] == 0


def test_two_jobs_with_the_same_scenes_at_once_encode_each_clip_once(
    stack: Stack, api: Api, tmp_path: Path
) -> None:
    for project in ("twin1", "twin2"):
        api.upload_project(project, scenes(560), tmp_path / project)
    # Both queued before either starts: their scene builds run side by side on the worker.
    with paused(stack.workers[0]):
        ids = [api.render(project, **OPTIONS) for project in ("twin1", "twin2")]
    both = [_done(api, job_id) for job_id in ids]
    assert sum(job["cache"]["encoded"] for job in both) == 3
    assert sum(job["cache"]["hits"] for job in both) == 3
    for project in ("twin1", "twin2"):
        assert probe(output(stack, project, "video.mp4")).video is not None


def test_a_truncated_cache_entry_is_rebuilt_not_served(
    stack: Stack, api: Api, tmp_path: Path
) -> None:
    api.upload_project("trunc", scenes(640), tmp_path)
    first = _done(api, api.render("trunc", **OPTIONS))
    clip_dir = stack.settings.render_storage / "cache" / "clips"
    mine = {
        line.split("cache miss ")[1].split(":")[0]
        for line in (stack.settings.render_storage / "logs" / f"{first['id']}.log")
        .read_text()
        .splitlines()
        if "cache miss " in line
    }
    assert len(mine) == 3
    victim = next(p for p in sorted(clip_dir.glob("*.mp4")) if p.stem[:16] in mine)
    data = victim.read_bytes()
    victim.unlink()  # a file of its own: the first job's outputs do not share it
    victim.write_bytes(data[: len(data) // 3])
    job = _done(api, api.render("trunc", "again.mp4", **OPTIONS))
    assert sorted(clips(job)) == ["cached", "cached", "encoded"]
    assert victim.read_bytes() == data
    again = output(stack, "trunc", "again.mp4")
    assert _frames(again) == _frames(output(stack, "trunc", "video.mp4"))


def test_a_preview_is_a_small_fast_draft_cached_apart(
    stack: Stack, api: Api, tmp_path: Path
) -> None:
    api.upload_project("draft", scenes(720), tmp_path)
    full = _done(api, api.render("draft", resolution="1280x720", **OPTIONS))
    preview = _done(api, _preview(api, "draft"))
    assert preview["outputName"] == "preview.mp4"  # the full video.mp4 is left alone
    assert clips(preview) == ["encoded"] * 3  # other clips than the full render's
    again = _done(api, _preview(api, "draft"))
    assert clips(again) == ["cached"] * 3
    video = probe(output(stack, "draft", "video.mp4"), count_frames=True).video
    draft = probe(output(stack, "draft", "preview.mp4"), count_frames=True)
    assert video is not None and draft.video is not None and draft.audio is not None
    assert (video.width, video.height) == (1280, 720)
    assert (draft.video.width, draft.video.height) == (640, 360)
    assert draft.video.frames == video.frames  # the same timeline
    assert abs(draft.audio.duration - draft.video.duration) <= 1 / FPS
    assert full["cache"]["encoded"] == 3
    # A draft publishes its video and poster only: the full render's scene files stay.
    names = {f["name"] for f in api.http.get("/v1/projects/draft/outputs").json()}
    assert {"preview.mp4", "preview.jpg", "scene_02.mp4", "scene_02.jpg"} <= names
    scene_file = output(stack, "draft", "scene_00.mp4")
    assert probe(scene_file).video.width == 1280  # type: ignore[union-attr]


def test_part_of_the_timeline(stack: Stack, api: Api, tmp_path: Path) -> None:
    api.upload_project("part", scenes(800), tmp_path)
    full = _done(api, api.render("part", **OPTIONS))
    frames = [_frames(output(stack, "part", f"scene_{i:02d}.mp4")) for i in range(3)]
    assert sum(frames) == _frames(output(stack, "part", "video.mp4")) and full["cache"]
    one = _done(api, api.render("part", "one.mp4", scenes=[1], **OPTIONS))
    # Scene 1's clip, found although it is the first now; the builds left over are skipped.
    assert clips(one) == ["cached", "skipped", "skipped"]
    assert _frames(output(stack, "part", "one.mp4")) == frames[1]
    # 1.0 s to 1.1 s lies in scene 1 (scene 0 lasts 0.8 s): the scenes it overlaps only.
    ranged = _done(api, api.render("part", "range.mp4", range={"from": 1.0, "to": 1.1}, **OPTIONS))
    assert clips(ranged) == ["cached", "skipped", "skipped"]
    assert _frames(output(stack, "part", "range.mp4")) == frames[1]
    bad = api.http.post("/v1/projects/part/render", json={"renderOptions": {"scenes": [3]}})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "renderOptions.scenes"


def test_every_output_has_posters(stack: Stack, api: Api, tmp_path: Path) -> None:
    api.upload_project("poster", scenes(880, 2), tmp_path)
    _done(api, api.render("poster", "show.mp4", **OPTIONS))
    listing = {f["name"]: f for f in api.http.get("/v1/projects/poster/outputs").json()}
    assert {"show.jpg", "scene_00.jpg", "scene_01.jpg"} <= set(listing)
    assert listing["show.mp4"]["poster"] == "show.jpg"
    assert listing["show.jpg"]["contentType"] == "image/jpeg"
    response = api.http.get("/v1/projects/poster/outputs/poster")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).size == (320, 180)
    assert response.content == output(stack, "poster", "show.jpg").read_bytes()
    scene = api.http.get("/v1/projects/poster/outputs/poster", params={"name": "scene_01.jpg"})
    assert scene.status_code == 200
    assert (
        api.http.get("/v1/projects/poster/outputs/poster", params={"name": "none.mp4"}).status_code
        == 404
    )


def _preview(api: Api, project: str) -> str:
    """A preview request without an output name of its own."""
    body = {"renderOptions": {**OPTIONS, "resolution": "1280x720", "preview": True}}
    response = api.http.post(f"/v1/projects/{project}/render", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["jobId"])


def _frames(video: Path) -> int:
    info = probe(video, count_frames=True).video
    assert info is not None
    return info.frames


def test_cache_max_gb_bounds_the_cache(tmp_path: Path) -> None:
    # A cap smaller than any clip: every store leaves the newest entry alone in the cache.
    with running_stack(tmp_path / "storage", workers=1, CACHE_MAX_GB="0.000001") as tiny:
        api = Api(tiny.base_url)
        api.upload_project("tiny", scenes(960), tmp_path / "staging")
        first = _done(api, api.render("tiny", **OPTIONS))
        again = _done(api, api.render("tiny", "again.mp4", **OPTIONS))
        records = list((tiny.settings.render_storage / "cache" / "clips").glob("*.json"))
    assert clips(first) == clips(again) == ["encoded"] * 3  # nothing was left to find
    assert len(records) == 1


def test_cache_max_gb_zero_turns_the_cache_off(tmp_path: Path) -> None:
    with running_stack(tmp_path / "storage", workers=1, CACHE_MAX_GB="0") as off:
        api = Api(off.base_url)
        api.upload_project("off", scenes(1000, 2), tmp_path / "staging")
        jobs = [_done(api, api.render("off", f"v{n}.mp4", **OPTIONS)) for n in range(2)]
        cache_dir = off.settings.render_storage / "cache"
        assert [clips(job) for job in jobs] == [["encoded"] * 2] * 2
        assert not cache_dir.exists()
