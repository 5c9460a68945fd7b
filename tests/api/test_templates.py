"""A render's `data` resolves the project's template at submission: every kind of problem is
a 422 naming the variable, nothing is queued, and the resolved spec is stored with the job."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Calls, error_of, jpeg_bytes, wav_bytes

TEMPLATE: dict[str, Any] = {
    "title": "{{course}}",
    "variables": {
        "photo": {"type": "image", "default": "a.jpg"},
        "voice": {"type": "audio"},
        "secs": {"type": "number", "default": 2},
    },
    "scenes": [
        {"images": ["{{photo}}"], "voiceover": "{{voice}}"},
        {"images": ["b.jpg"], "duration": "{{secs}}", "narration": "Module {{n|1}}: \\{{x}}"},
    ],
}
RENDER = "/v1/projects/t1/render"


@pytest.fixture
def ready(client: TestClient) -> TestClient:
    response = client.put("/v1/projects/t1/scenes", json=TEMPLATE)
    assert response.status_code == 200, response.text
    files = [
        ("files", ("a.jpg", jpeg_bytes(), "image/jpeg")),
        ("files", ("b.jpg", jpeg_bytes(color="navy"), "image/jpeg")),
        ("files", ("v.wav", wav_bytes(), "audio/wav")),
    ]
    assert client.post("/v1/projects/t1/assets", files=files).status_code == 201
    return client


def test_put_of_a_template_lists_its_variables_and_skips_placeholder_files(
    client: TestClient,
) -> None:
    body = client.put("/v1/projects/t1/scenes", json=TEMPLATE).json()
    assert body["version"] == 1
    assert {n: v["type"] for n, v in body["variables"].items()} == {
        "photo": "image",
        "voice": "audio",
        "secs": "number",
        "course": "text",
        "n": "text",
    }
    assert body["missingAssets"] == ["images/b.jpg"]  # not the placeholders' files
    assert body["scenes"][1]["duration"] == "{{secs}}"  # stored as sent
    project = client.get("/v1/projects/t1").json()
    assert project["spec"] is None and project["template"]["title"] == "{{course}}"


def test_data_resolves_the_template_and_the_job_stores_what_it_renders(
    ready: TestClient, calls: Calls
) -> None:
    response = ready.post(RENDER, json={"data": {"course": "Rust", "voice": "v.wav", "n": "4"}})
    assert response.status_code == 202, response.text
    job = ready.get(response.headers["location"]).json()
    assert job["version"] == 1
    assert job["data"] == {
        "course": "Rust",
        "voice": "v.wav",
        "n": "4",
        "photo": "a.jpg",
        "secs": 2,
    }
    spec = ready.get(f"{response.headers['location']}/spec").json()
    assert (
        job["specSha256"]
        == hashlib.sha256(
            json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        ).hexdigest()
    )
    assert spec["title"] == "Rust"
    assert spec["scenes"][0] == {"images": ["a.jpg"], "voiceover": "v.wav"}
    assert spec["scenes"][1]["duration"] == 2.0
    assert spec["scenes"][1]["narration"] == "Module 4: {{x}}"
    assert set(job["assets"]) == {"images/a.jpg", "images/b.jpg", "voiceovers/v.wav"}
    assert all(len(digest) == 64 for digest in job["assets"].values())
    assert len(calls.enqueued) == 1


@pytest.mark.parametrize(
    ("data", "code", "field", "named"),
    [
        ({"voice": "v.wav"}, "unresolved_placeholder", "data.course", "'course'"),
        (
            {"course": "c", "voice": "v.wav", "city": "Oslo"},
            "unknown_variable",
            "data.city",
            "'city'",
        ),
        (
            {"course": "c", "voice": "v.wav", "secs": "long"},
            "invalid_variable",
            "data.secs",
            "'secs'",
        ),
        ({"course": 3, "voice": "v.wav"}, "invalid_variable", "data.course", "'course'"),
        ({"course": "c", "voice": "nope.wav"}, "missing_assets", "data.voice", "'voice'"),
        # An image is not audio: a file-typed value names a file of its kind.
        ({"course": "c", "voice": "a.jpg"}, "missing_assets", "data.voice", "'voice'"),
        (
            {"course": "c", "voice": "v.wav", "secs": 99999},
            "validation_error",
            "scenes[1].duration",
            "data",
        ),
    ],
)
def test_each_problem_is_a_422_naming_the_variable_and_nothing_is_queued(
    ready: TestClient, calls: Calls, data: dict[str, Any], code: str, field: str, named: str
) -> None:
    response = ready.post(RENDER, json={"data": data})
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert (error["code"], error["field"]) == (code, field)
    assert named in error["message"]
    assert calls.enqueued == []
    assert ready.get("/v1/projects/t1").json()["jobs"] == []


def test_a_spec_without_placeholders_renders_as_before(client: TestClient, calls: Calls) -> None:
    spec = {"scenes": [{"images": ["a.jpg"], "duration": 1.0}]}
    assert client.put("/v1/projects/t1/scenes", json=spec).status_code == 200
    client.post("/v1/projects/t1/assets", files=[("files", ("a.jpg", jpeg_bytes(), "image/jpeg"))])
    response = client.post(RENDER, json={"data": {"x": "1"}})
    assert error_of(response)["field"] == "data.x"
    assert client.post(RENDER, json={}).status_code == 202
