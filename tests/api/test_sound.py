"""POST /render with sound and caption options: what cannot be rendered is a 422 naming the
field, before anything is written or queued."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pipeline import tts
from pipeline.registry import Outline
from tests.conftest import Calls, error_of, jpeg_bytes, put_spec, tree, wav_bytes

RENDER = "/v1/projects/p1/render"
SPEC: dict[str, Any] = {
    "scenes": [
        {"images": ["a.jpg"], "voiceover": "one.wav"},
        {"images": ["a.jpg"], "narration": "Spoken by the engine."},
        {"images": ["a.jpg"], "duration": 2.0},
    ]
}


@pytest.fixture
def ready(client: TestClient) -> TestClient:
    put_spec(client, spec=SPEC)
    files = [
        ("files", ("a.jpg", jpeg_bytes(), "image/jpeg")),
        ("files", ("one.wav", wav_bytes(), "audio/wav")),
    ]
    assert client.post("/v1/projects/p1/assets", files=files).status_code == 201
    response = client.post(
        "/v1/projects/p1/assets",
        files=[("files", ("bed.wav", wav_bytes(1.0), "audio/wav"))],
        data={"subdir": "music"},
    )
    assert response.status_code == 201
    return client


def _refused(
    client: TestClient, calls: Calls, storage: Path, options: dict[str, Any]
) -> dict[str, Any]:
    before = tree(storage)
    response = client.post(RENDER, json={"renderOptions": options})
    assert response.status_code == 422, response.text
    assert tree(storage) == before, "a refused render wrote files"
    assert calls.enqueued == []
    return error_of(response)


def test_a_full_sound_request_is_accepted(ready: TestClient, calls: Calls) -> None:
    options = {
        "tts": {"engine": "espeak-ng", "voice": "en-gb", "rate": 160},
        "music": {"file": "bed.wav", "volume": -20, "fadeIn": 0.5, "fadeOut": 1.0, "loop": True},
        "ducking": {"amount": 10},
        "loudness": -14,
        "captions": {"burnIn": True, "language": "en"},
    }
    response = ready.post(RENDER, json={"renderOptions": options})
    assert response.status_code == 202, response.text
    job = ready.get(response.headers["location"]).json()
    assert job["options"]["tts"] == {"engine": "espeak-ng", "voice": "en-gb", "rate": 160}
    assert job["options"]["ducking"] == {"amount": 10.0}
    assert job["options"]["loudness"] == -14.0
    assert job["options"]["captions"] == {"burnIn": True, "language": "en"}
    # Scene 1 alone is spoken by TTS (0 has a voiceover, 2 no narration): one SPEECH row.
    names = [stage["name"] for stage in job["stages"]]
    assert [name for name in names if name.startswith("SPEECH")] == ["SPEECH[1]"]
    assert names[:2] == ["SPEECH[1]", "VALIDATE"]
    assert [scene["index"] for scene in job["scenes"]] == [0, 1, 2]  # one row per scene
    assert calls.enqueued == [(job["id"], Outline(3, (1,)))]


def test_shorthands_are_accepted(ready: TestClient) -> None:
    options = {"tts": "espeak-ng", "music": "bed.wav", "ducking": True, "captions": True}
    response = ready.post(RENDER, json={"renderOptions": options})
    assert response.status_code == 202, response.text
    job = ready.get(response.headers["location"]).json()
    assert job["options"]["music"]["file"] == "bed.wav"
    assert job["options"]["ducking"] == {"amount": 12.0}
    assert job["options"]["loudness"] == -16.0  # the default


@pytest.mark.parametrize(
    ("options", "field", "words"),
    [
        ({"tts": "festival"}, "renderOptions.tts.engine", "unknown text-to-speech engine"),
        (
            {"tts": {"engine": "espeak-ng", "voice": "klingon"}},
            "renderOptions.tts.voice",
            "no voice",
        ),
        ({"tts": {"engine": "hibari", "voice": "emma"}}, "renderOptions.tts.voice", "no voice"),
        ({"tts": {"rate": 20}}, "renderOptions.tts.rate", "greater than or equal to 80"),
        ({"tts": {"engine": "hibari", "rate": 400}}, "renderOptions.tts.rate", "85 to 340"),
        ({"tts": "espeak-ng", "loudness": -40}, "renderOptions.loudness", "-30 to -5 LUFS"),
        ({"tts": "espeak-ng", "loudness": "loud"}, "renderOptions.loudness", "valid"),
        ({"tts": "espeak-ng", "ducking": {"amount": 90}}, "renderOptions.ducking.amount", "40"),
        ({"tts": "espeak-ng", "music": "none.mp3"}, "renderOptions.music", "music/none.mp3"),
        ({"tts": "espeak-ng", "music": "../x.mp3"}, "renderOptions.music.file", "plain file"),
        (
            {"tts": "espeak-ng", "music": {"file": "bed.wav", "volume": 6}},
            "renderOptions.music.volume",
            "0",
        ),
        (
            {"tts": "espeak-ng", "captions": {"language": "Klingon"}},
            "renderOptions.captions.language",
            "not a language code",
        ),
        ({}, "renderOptions.tts", "set renderOptions.tts"),
    ],
)
def test_what_cannot_be_rendered_is_422_naming_the_field(
    ready: TestClient, calls: Calls, storage: Path, options: dict[str, Any], field: str, words: str
) -> None:
    error = _refused(ready, calls, storage, options)
    assert error["field"] == field, error
    assert words in error["message"], error


def test_an_engine_not_installed_is_422_with_the_install_command(
    ready: TestClient, calls: Calls, storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tts.importlib.util.find_spec
    monkeypatch.setattr(
        tts.importlib.util, "find_spec", lambda name: None if name == "hibari" else real(name)
    )
    error = _refused(ready, calls, storage, {"tts": "hibari"})
    assert (error["code"], error["field"]) == ("tts_not_installed", "renderOptions.tts.engine")
    assert 'pip install "render-api[neural]"' in error["message"]


def test_an_empty_narration_where_speech_is_needed_is_422(
    client: TestClient, calls: Calls, storage: Path
) -> None:
    put_spec(client, spec={"scenes": [{"images": ["a.jpg"], "narration": "   "}]})
    client.post("/v1/projects/p1/assets", files=[("files", ("a.jpg", jpeg_bytes(), "image/jpeg"))])
    error = _refused(client, calls, storage, {"tts": "espeak-ng"})
    assert error["field"] == "scenes[0].narration" and "empty" in error["message"]


def test_captions_with_no_narration_are_422(
    client: TestClient, calls: Calls, storage: Path
) -> None:
    put_spec(client, spec={"scenes": [{"images": ["a.jpg"], "duration": 2.0}]})
    client.post("/v1/projects/p1/assets", files=[("files", ("a.jpg", jpeg_bytes(), "image/jpeg"))])
    error = _refused(client, calls, storage, {"captions": True})
    assert error["field"] == "renderOptions.captions"
    assert "no scene has one" in error["message"]
