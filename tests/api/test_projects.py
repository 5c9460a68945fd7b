"""PUT /v1/projects/{id}/scenes and GET /v1/projects/{id}."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tasks.db import session_scope
from tasks.models import Project
from tests.conftest import SPEC, error_of, make_settings, put_spec, tree, upload_all


def test_put_scenes_stores_the_spec_and_lists_missing_assets(
    client: TestClient, storage: Path
) -> None:
    body = put_spec(client)
    assert body["title"] == "Harbour walk"
    assert body["scenes"][0]["images"] == ["a.jpg", "b.jpg"]
    assert body["missingAssets"] == [
        "images/a.jpg",
        "images/b.jpg",
        "voiceovers/one.wav",
        "images/c.png",
    ]
    stored = json.loads((storage / "projects/p1/input/scenes.json").read_text())
    assert stored["scenes"][1] == SPEC["scenes"][1]
    for sub in ("input/images", "input/voiceovers", "input/music", "work", "output"):
        assert (storage / "projects/p1" / sub).is_dir()
    with session_scope(make_settings(storage).db_url) as session:
        row = session.get(Project, "p1")
        assert row is not None
        assert (row.title, row.scene_count) == ("Harbour walk", 2)


def test_put_scenes_again_updates_the_project(client: TestClient, storage: Path) -> None:
    put_spec(client)
    body = put_spec(client, spec={"title": "Two", "scenes": [{"images": ["a.jpg"]}]})
    assert body["missingAssets"] == ["images/a.jpg"]
    with session_scope(make_settings(storage).db_url) as session:
        row = session.get(Project, "p1")
        assert row is not None
        assert (row.title, row.scene_count) == ("Two", 1)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"scenes": [{"images": ["a.jpg"]}] * 2 + [{"images": list("abcd")}]}, "scenes[2].images"),
        ({"scenes": [{"images": ["../x.jpg"]}]}, "scenes[0].images"),
        ({"scenes": [{"images": ["/etc/passwd"]}]}, "scenes[0].images"),
        ({"scenes": [{"images": [".hidden.jpg"]}]}, "scenes[0].images"),
        ({"scenes": [{"images": ["a.jpg"], "voiceover": "../v.wav"}]}, "scenes[0].voiceover"),
        ({"scenes": [{"images": []}]}, "scenes[0].images"),
        ({"scenes": [{"images": "a.jpg"}]}, "scenes[0].images"),
        ({"scenes": [{"images": ["a.jpg"], "duration": 0}]}, "scenes[0].duration"),
        ({"scenes": [{"images": ["a.jpg"], "colour": "red"}]}, "scenes[0].colour"),
        ({"scenes": []}, "scenes"),
        ({"title": "no scenes"}, "scenes"),
    ],
)
def test_put_scenes_rejects_bad_specs_naming_the_field(
    client: TestClient, storage: Path, spec: dict[str, Any], field: str
) -> None:
    before = tree(storage)
    response = client.put("/v1/projects/p1/scenes", json=spec)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["field"] == field
    assert error["code"] == "validation_error"
    assert field in error["message"]
    assert tree(storage) == before


def test_put_scenes_rejects_malformed_json(client: TestClient, storage: Path) -> None:
    before = tree(storage)
    response = client.put(
        "/v1/projects/p1/scenes",
        content=b'{"scenes": [{"images": ["a.jpg"]',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_json"
    assert "not valid JSON" in error["message"]
    assert tree(storage) == before


def test_put_scenes_without_a_body(client: TestClient) -> None:
    response = client.put("/v1/projects/p1/scenes")
    assert response.status_code == 422
    assert error_of(response)["code"] == "missing_body"


@pytest.mark.parametrize("bad", ["-p", "_p", "a" * 65, "p.1", "p%20q", "%2e%2e"])
def test_bad_project_ids_are_422_naming_id(client: TestClient, storage: Path, bad: str) -> None:
    before = tree(storage)
    for response in (
        client.put(f"/v1/projects/{bad}/scenes", json=SPEC),
        client.get(f"/v1/projects/{bad}"),
    ):
        assert response.status_code == 422, (bad, response.text)
        error = error_of(response)
        assert (error["code"], error["field"]) == ("invalid_id", "id")
    assert tree(storage) == before


def test_get_unknown_project_is_404(client: TestClient) -> None:
    response = client.get("/v1/projects/nobody")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_get_project_shows_spec_assets_missing_and_jobs(client: TestClient) -> None:
    put_spec(client)
    body = client.get("/v1/projects/p1").json()
    assert body["id"] == "p1"
    assert body["title"] == "Harbour walk"
    assert body["spec"]["scenes"][1]["narration"] == "The pier at dusk."
    assert body["assets"] == {
        "images": [],
        "voiceovers": [],
        "music": [],
        "fonts": [],
        "videos": [],
    }
    assert len(body["missingAssets"]) == 4
    assert body["jobs"] == []

    upload_all(client)
    job_id = client.post("/v1/projects/p1/render", json={}).json()["jobId"]
    body = client.get("/v1/projects/p1").json()
    assert body["assets"] == {
        "images": ["a.jpg", "b.jpg", "c.png"],
        "voiceovers": ["one.wav"],
        "music": [],
        "fonts": [],
        "videos": [],
    }
    assert body["missingAssets"] == []
    assert [job["jobId"] for job in body["jobs"]] == [job_id]
    job = body["jobs"][0]
    assert job["status"] == "QUEUED"
    assert job["outputName"] == "video.mp4"
    assert job["createdAt"].endswith(("Z", "+00:00"))


def test_project_routes_need_the_token(client: TestClient) -> None:
    response = client.put(
        "/v1/projects/p1/scenes", json=SPEC, headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 401
    assert client.get("/v1/projects/p1", headers={"Authorization": ""}).status_code == 401
