"""api/demo.py's client: it uploads a project's files kind by kind, as the registry lists them."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.demo import ApiClient
from pipeline.fixtures import ImageFixture, MusicFixture, SceneFixture, VoiceFixture


def test_upload_project_sends_every_kind_to_its_subdir(client: TestClient, tmp_path: Path) -> None:
    api = ApiClient("http://testserver", "unused")
    api.http = client  # the app in process: a TestClient is an httpx.Client
    scenes = [
        SceneFixture((ImageFixture("a.jpg", 64, 48),), voiceover=VoiceFixture("one.wav", 0.3)),
        SceneFixture((ImageFixture("b.png", 32, 32),), duration=1.0),
    ]
    api.upload_project("p1", scenes, tmp_path, music=[MusicFixture("bed.mp3", 0.5)])
    project = client.get("/v1/projects/p1").json()
    assert project["assets"] == {
        "images": ["a.jpg", "b.png"],
        "voiceovers": ["one.wav"],
        "music": ["bed.mp3"],
    }
    assert project["missingAssets"] == []
