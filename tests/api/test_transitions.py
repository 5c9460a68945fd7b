"""A scene's `transition` through the API: an unknown type, a transition out of the last scene
and a duration longer than a neighbour can give are 422s naming the field, with nothing
written; a transition that fits is queued."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import func, select

from tasks.db import session_scope
from tasks.models import Job
from tests.conftest import error_of, jpeg_bytes, make_settings, wav_bytes

SCENES = "/v1/projects/p1/scenes"
RENDER = "/v1/projects/p1/render"
SMALL = {"resolution": "320x180", "fps": 30, "minShot": 0.5, "maxShot": 8.0, "xfade": 0.2}


def _scene(seconds: float, **extra: Any) -> dict[str, Any]:
    return {"images": ["a.jpg"], "duration": seconds, **extra}


def _jobs(storage: Path) -> int:
    with session_scope(make_settings(storage).db_url) as session:
        return int(session.exec(select(func.count()).select_from(Job)).one())


def _refused(response: Any, field: str, words: str) -> None:
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["field"] == field, error
    assert words in error["message"], error


def test_an_unknown_type_is_refused_and_nothing_is_stored(
    client: TestClient, storage: Path
) -> None:
    scenes = [_scene(2, transition={"type": "spin"}), _scene(2)]
    _refused(client.put(SCENES, json={"scenes": scenes}), "scenes[0].transition.type", "'fade'")
    assert client.get("/v1/projects/p1").status_code == 404


def test_a_transition_out_of_the_last_scene_is_refused(client: TestClient) -> None:
    scenes = [_scene(2, transition={"type": "fade"}), _scene(2, transition={"type": "fade"})]
    _refused(client.put(SCENES, json={"scenes": scenes}), "scenes[1].transition", "last scene")


def test_a_duration_a_neighbour_cannot_give_is_refused_before_any_job(
    client: TestClient, storage: Path
) -> None:
    # 0.6 s is 18 frames; the voiceover's scene is 0.5 s (15 frames), which gives at most 7.
    scenes = [
        _scene(2, transition={"type": "wipeleft", "duration": 0.6}),
        {"images": ["a.jpg"], "voiceover": "v.wav"},
    ]
    assert client.put(SCENES, json={"scenes": scenes}).status_code == 200
    files = [
        ("files", ("a.jpg", jpeg_bytes(), "image/jpeg")),
        ("files", ("v.wav", wav_bytes(0.5), "audio/wav")),
    ]
    assert client.post("/v1/projects/p1/assets", files=files).status_code == 201
    response = client.post(RENDER, json={"renderOptions": SMALL})
    _refused(response, "scenes[0].transition.duration", "half of scene 1 (15 frames)")
    assert _jobs(storage) == 0
    # At 0.2 s it fits: queued.
    scenes[0]["transition"] = {"type": "wipeleft", "duration": 0.2}
    assert client.put(SCENES, json={"scenes": scenes}).status_code == 200
    assert client.post(RENDER, json={"renderOptions": SMALL}).status_code == 202
    assert _jobs(storage) == 1
