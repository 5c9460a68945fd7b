"""POST /render with caption styles: the presets are accepted and kept in the job, and an
unknown one is a 422 naming the field, before anything is written or queued."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline import asr
from tests.conftest import Calls, error_of, jpeg_bytes, put_spec, tree, wav_bytes

RENDER = "/v1/projects/p1/render"


@pytest.fixture
def ready(client: TestClient) -> TestClient:
    put_spec(
        client,
        spec={"scenes": [{"images": ["a.jpg"], "voiceover": "one.wav", "narration": "Hello."}]},
    )
    files = [
        ("files", ("a.jpg", jpeg_bytes(), "image/jpeg")),
        ("files", ("one.wav", wav_bytes(), "audio/wav")),
    ]
    assert client.post("/v1/projects/p1/assets", files=files).status_code == 201
    return client


def test_caption_presets_are_accepted_and_kept_in_the_job(ready: TestClient, calls: Calls) -> None:
    looks = {"burnIn": True, "language": "en", "style": "karaoke", "position": "top"}
    response = ready.post(RENDER, json={"renderOptions": {"captions": {**looks, "size": "large"}}})
    assert response.status_code == 202, response.text
    job = ready.get(f"/v1/jobs/{response.json()['jobId']}").json()
    assert job["options"]["captions"] == {**looks, "size": "large"}
    assert len(calls.enqueued) == 1


@pytest.mark.parametrize(
    ("field", "value", "listed"),
    [
        ("style", "bouncy", "'block', 'word' or 'karaoke'"),
        ("position", "left", "'bottom' or 'top'"),
        ("size", "huge", "'small', 'medium' or 'large'"),
    ],
)
def test_an_unknown_caption_preset_is_422_naming_the_field(
    ready: TestClient, calls: Calls, storage: Path, field: str, value: str, listed: str
) -> None:
    before = tree(storage)
    response = ready.post(RENDER, json={"renderOptions": {"captions": {field: value}}})
    assert response.status_code == 422, response.text
    assert tree(storage) == before, "a refused render wrote files"
    assert calls.enqueued == []
    error = error_of(response)
    assert error["field"] == f"renderOptions.captions.{field}", error
    assert listed in error["message"], error


def test_transcribe_without_the_asr_extra_is_422_naming_the_install_command(
    ready: TestClient, calls: Calls, storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a host without the extra, whatever this one has installed.
    real = asr.importlib.util.find_spec
    monkeypatch.setattr(
        asr.importlib.util,
        "find_spec",
        lambda name: None if name == "faster_whisper" else real(name),
    )
    put_spec(ready, spec={"scenes": [{"images": ["a.jpg"], "voiceover": "one.wav"}]})
    before = tree(storage)
    options = {"captions": {"transcribe": True}}
    response = ready.post(RENDER, json={"renderOptions": options})
    assert response.status_code == 422, response.text
    assert tree(storage) == before and calls.enqueued == []
    error = error_of(response)
    assert (error["code"], error["field"]) == (
        "asr_not_installed",
        "renderOptions.captions.transcribe",
    )
    assert 'pip install "render-api[asr]"' in error["message"]
