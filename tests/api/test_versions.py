"""Every PUT of scenes is an immutable, numbered version; a render pins one; a rerender
renders exactly what a job rendered, or names the files that are not as they were."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Calls, error_of, jpeg_bytes

ONE: dict[str, Any] = {"title": "v1", "scenes": [{"images": ["a.jpg"], "duration": 1.0}]}
TWO: dict[str, Any] = {"title": "v2", "scenes": [{"images": ["a.jpg"], "duration": 2.0}]}


def _upload(client: TestClient, color: str = "teal") -> None:
    files = [("files", ("a.jpg", jpeg_bytes(color=color), "image/jpeg"))]
    assert client.post("/v1/projects/v/assets", files=files).status_code == 201


def test_every_put_is_a_version_listed_and_immutable(client: TestClient) -> None:
    first = client.put("/v1/projects/v/scenes", json=ONE).json()
    second = client.put("/v1/projects/v/scenes", json=TWO).json()
    again = client.put("/v1/projects/v/scenes", json=TWO).json()
    assert [first["version"], second["version"], again["version"]] == [1, 2, 3]
    canonical = json.dumps(
        {"title": "v1", "scenes": [{"images": ["a.jpg"], "duration": 1.0}]},
        sort_keys=True,
        separators=(",", ":"),
    )
    assert first["sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert second["sha256"] == again["sha256"] != first["sha256"]
    listed = client.get("/v1/projects/v/versions").json()["versions"]
    assert [(v["number"], v["sha256"]) for v in listed] == [
        (1, first["sha256"]),
        (2, second["sha256"]),
        (3, second["sha256"]),
    ]
    # Version 1 is what it was, whatever came after.
    one = client.get("/v1/projects/v/versions/1").json()
    assert one["spec"]["title"] == "v1" and one["spec"]["scenes"][0]["duration"] == 1.0
    assert client.get("/v1/projects/v").json()["version"] == 3
    missing = client.get("/v1/projects/v/versions/9")
    assert missing.status_code == 404 and error_of(missing)["field"] == "n"
    assert client.get("/v1/projects/nope/versions").status_code == 404


def test_a_render_pins_a_version_default_the_latest(client: TestClient, calls: Calls) -> None:
    client.put("/v1/projects/v/scenes", json=ONE)
    client.put("/v1/projects/v/scenes", json=TWO)
    _upload(client)
    latest = client.post("/v1/projects/v/render", json={}).json()["jobId"]
    pinned = client.post("/v1/projects/v/render", json={"version": 1}).json()["jobId"]
    latest_job = client.get(f"/v1/jobs/{latest}").json()
    pinned_job = client.get(f"/v1/jobs/{pinned}").json()
    latest_spec = client.get(f"/v1/jobs/{latest}/spec").json()
    pinned_spec = client.get(f"/v1/jobs/{pinned}/spec").json()
    assert (latest_job["version"], latest_spec["title"]) == (2, "v2")
    assert (pinned_job["version"], pinned_spec["title"]) == (1, "v1")
    assert pinned_spec["scenes"][0]["duration"] == 1.0
    gone = client.post("/v1/projects/v/render", json={"version": 7})
    assert gone.status_code == 404 and error_of(gone)["field"] == "version"


def test_rerender_copies_the_job_and_names_files_changed_or_gone(
    client: TestClient, calls: Calls
) -> None:
    client.put("/v1/projects/v/scenes", json=ONE)
    _upload(client)
    job_id = client.post("/v1/projects/v/render", json={"outputName": "a.mp4"}).json()["jobId"]
    client.put("/v1/projects/v/scenes", json=TWO)  # a newer version changes nothing of it
    response = client.post(f"/v1/jobs/{job_id}/rerender", json={"outputName": "b.mp4"})
    assert response.status_code == 202, response.text
    again = client.get(response.headers["location"]).json()
    before = client.get(f"/v1/jobs/{job_id}").json()
    for key in ("specSha256", "options", "version", "data", "assets"):
        assert again[key] == before[key], key
    assert again["outputName"] == "b.mp4"
    assert len(calls.enqueued) == 2

    _upload(client, color="red")  # the same name, other bytes
    refused = client.post(f"/v1/jobs/{job_id}/rerender")
    assert refused.status_code == 409
    assert error_of(refused)["code"] == "assets_gone"
    assert "images/a.jpg (changed since)" in error_of(refused)["message"]
    assert len(calls.enqueued) == 2
