"""End to end: transitions through the API, Celery workers and FFmpeg, where the worker path
differs from a scene's: each half is a task of its own named by its label (`SCENE_BUILD[0~]`,
`SCENE_BUILD[~1]`), whose row, cache outcome and per-scene view the job document shows, and
whose clips the join and each scene's file are made from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.launch import Stack
from pipeline.fixtures import ImageFixture, SceneFixture, VoiceFixture
from pipeline.probe import probe
from tests.e2e import Api, running_stack

pytestmark = pytest.mark.e2e

FPS = 25
OPTIONS: dict[str, Any] = {"fps": FPS, "minShot": 0.6, "maxShot": 2.0, "xfade": 0.2}
OPTIONS |= {"resolution": "320x180", "preset": "veryfast"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("storage"), workers=1) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(stack: Stack) -> Api:
    return Api(stack.base_url)


def _scenes() -> list[SceneFixture]:
    return [
        SceneFixture(
            (ImageFixture("t0.jpg", 352, 264, "testsrc2"),),
            VoiceFixture("v0.wav", 1.2, 330),
            id="s0",
        ),
        SceneFixture((ImageFixture("t1.png", 336, 252, "mandelbrot"),), duration=1.6, id="s1"),
        SceneFixture(
            (ImageFixture("t2.jpg", 344, 258, "smptehdbars"),),
            VoiceFixture("v2.wav", 1.0, 550),
            id="s2",
        ),
    ]


def _put_transitions(api: Api, project: str, chosen: list[dict[str, Any] | None]) -> None:
    spec = api.http.get(f"/v1/projects/{project}").json()["spec"]
    for scene, transition in zip(spec["scenes"], chosen, strict=False):
        scene.pop("transition", None)
        if transition is not None:
            scene["transition"] = transition
    response = api.http.put(f"/v1/projects/{project}/scenes", json=spec)
    assert response.status_code == 200, response.text


def _done(api: Api, job_id: str) -> dict[str, Any]:
    job = api.wait(job_id, timeout=180)
    assert job["status"] == "SUCCEEDED", job
    return job


def _output(stack: Stack, name: str) -> Path:
    return stack.settings.render_storage / "projects" / "tr" / "output" / name


def test_each_half_is_a_task_and_the_video_keeps_the_timeline(
    stack: Stack, api: Api, tmp_path: Path
) -> None:
    api.upload_project("tr", _scenes(), tmp_path)
    cut = _done(api, api.render("tr", "cut.mp4", **OPTIONS))
    chosen = [{"type": "circleopen", "duration": 0.4}, {"type": "slideup", "duration": 0.4}]
    _put_transitions(api, "tr", chosen)
    job = _done(api, api.render("tr", "video.mp4", **OPTIONS))
    builds = [s for s in job["stages"] if s["name"].startswith("SCENE_BUILD")]
    assert [s["name"] for s in builds] == [
        "SCENE_BUILD[0]",
        "SCENE_BUILD[0~]",
        "SCENE_BUILD[~1]",
        "SCENE_BUILD[1]",
        "SCENE_BUILD[1~]",
        "SCENE_BUILD[~2]",
        "SCENE_BUILD[2]",
    ]
    assert all(s["status"] == "DONE" for s in builds)
    # The halves encoded; the scenes' bodies are other frames than their cut clips: encoded.
    assert job["cache"]["encoded"] == 7
    # Each scene's view counts the halves over its frames with its own clip.
    assert [(s["index"], s["chunks"], s["status"]) for s in job["scenes"]] == [
        (0, 2, "DONE"),
        (1, 3, "DONE"),
        (2, 2, "DONE"),
    ]
    videos = [probe(_output(stack, name), count_frames=True) for name in ("cut.mp4", "video.mp4")]
    frames = [info.video.frames for info in videos if info.video]
    gaps = [
        info.video.duration - info.audio.duration for info in videos if info.video and info.audio
    ]
    assert frames[0] == frames[1] == 95 and gaps[0] == gaps[1]
    for index, wanted in enumerate((30, 40, 25)):
        info = probe(_output(stack, f"scene_{index:02d}.mp4"), count_frames=True)
        assert info.video is not None and info.video.frames == wanted
    assert cut["cache"]["encoded"] == 3

    # The same request again: every half and body found in the cache, nothing encoded.
    again = _done(api, api.render("tr", "again.mp4", **OPTIONS))
    assert again["cache"] == {**again["cache"], "hits": 7, "encoded": 0}
