"""POST /v1/projects/{id}/batches (JSON rows or a CSV), GET /v1/batches/{id}, cancel: rows
checked first, valid ones queued as jobs on the batch queue, invalid ones reported by index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tasks import batches, jobs
from tasks.db import session_scope
from tasks.models import JobStatus
from tests.conftest import AppFactory, Calls, error_of, jpeg_bytes, make_settings

TEMPLATE: dict[str, Any] = {
    "variables": {"n": {"type": "number", "default": 1}},
    "scenes": [
        {"images": ["a.jpg"], "duration": "{{n}}"},
        {"images": ["{{pic|b.jpg}}"], "duration": 1, "narration": "{{city}}"},
    ],
}
BATCHES = "/v1/projects/b/batches"


@pytest.fixture
def client(make_client: AppFactory, calls: Calls) -> TestClient:
    return _ready(make_client())


def _ready(client: TestClient) -> TestClient:
    assert client.put("/v1/projects/b/scenes", json=TEMPLATE).status_code == 200
    files = [
        ("files", ("a.jpg", jpeg_bytes(), "image/jpeg")),
        ("files", ("b.jpg", jpeg_bytes(color="navy"), "image/jpeg")),
    ]
    assert client.post("/v1/projects/b/assets", files=files).status_code == 201
    return client


def _batch(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post(BATCHES, json={"outputName": "{{city}}-{{_row}}.mp4", **body})


def test_valid_rows_are_queued_and_invalid_ones_reported_by_index(
    client: TestClient, calls: Calls
) -> None:
    rows = [
        {"city": "Oslo"},
        {"city": "Bergen", "n": "x"},  # not a number
        {"town": "Lund"},  # unknown variable (and city unresolved)
        {"city": "Rome", "pic": "nope.jpg"},  # a file not uploaded
        {"city": "Paris", "n": 2},
    ]
    response = _batch(client, {"rows": rows})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["queued"] == 2
    assert [(e["index"], e["code"], e["field"]) for e in body["invalid"]] == [
        (1, "invalid_variable", "rows[1].n"),
        (2, "unknown_variable", "rows[2].town"),
        (3, "missing_assets", "assets"),
    ]
    assert "'n'" in body["invalid"][0]["message"]
    assert len(calls.enqueued) == 2
    batch = client.get(response.headers["location"]).json()
    assert batch["status"] == "RUNNING"
    assert batch["counts"]["QUEUED"] == 2 and batch["counts"]["INVALID"] == 3
    items = batch["items"]
    assert [(i["index"], i["status"]) for i in items] == [
        (0, "QUEUED"),
        (1, "INVALID"),
        (2, "INVALID"),
        (3, "INVALID"),
        (4, "QUEUED"),
    ]
    assert (items[0]["outputName"], items[4]["outputName"]) == ("Oslo-1.mp4", "Paris-5.mp4")
    job = client.get(f"/v1/jobs/{items[4]['jobId']}").json()
    assert job["batchId"] == body["batchId"] and job["batchRow"] == 4
    spec = client.get(f"/v1/jobs/{items[4]['jobId']}/spec").json()
    assert spec["scenes"][0]["duration"] == 2.0
    assert spec["scenes"][1]["narration"] == "Paris"
    page = client.get(f"{response.headers['location']}?offset=1&limit=2").json()["items"]
    assert [i["index"] for i in page] == [1, 2]


def test_atomic_refuses_the_whole_batch_naming_the_row(client: TestClient, calls: Calls) -> None:
    response = _batch(
        client, {"rows": [{"city": "Oslo"}, {"city": "Rome", "n": "x"}], "atomic": True}
    )
    assert response.status_code == 422
    error = error_of(response)
    assert (error["code"], error["field"]) == ("invalid_rows", "rows[1].n")
    assert "row 1" in error["message"] and "'n'" in error["message"]
    assert calls.enqueued == []
    assert client.get("/v1/projects/b").json()["jobs"] == []


def test_output_names_are_checked_for_collisions_and_path_safety(
    client: TestClient, calls: Calls
) -> None:
    rows = [{"city": "Oslo"}, {"city": "Oslo"}, {"city": "../etc"}]
    body = client.post(BATCHES, json={"rows": rows, "outputName": "{{city}}.mp4"}).json()
    assert [(e["index"], e["code"]) for e in body["invalid"]] == [
        (1, "output_collision"),
        (2, "validation_error"),
    ]
    assert body["queued"] == 1
    same = client.post(BATCHES, json={"rows": rows, "outputName": "all.mp4"})
    assert same.status_code == 422 and error_of(same)["field"] == "outputName"
    unknown = client.post(BATCHES, json={"rows": rows, "outputName": "{{zip}}.mp4"})
    assert error_of(unknown)["code"] == "unknown_variable"


def test_a_csv_with_quoting_and_utf8_is_rows(client: TestClient, calls: Calls) -> None:
    csv_text = (
        "\ufeffcity,n\n"
        '"Zürich, the ""old"" town",2\n'
        '"東京\nat night",\n'  # a line break inside quotes; an empty cell takes the default
        "Malmö,3\n"
    )
    response = client.post(
        BATCHES,
        files={"csv": ("rows.csv", csv_text.encode("utf-8"), "text/csv")},
        data={"batch": '{"outputName": "row-{{_row}}.mp4", "renderOptions": {"fps": 24}}'},
    )
    assert response.status_code == 202, response.text
    assert response.json()["queued"] == 3
    items = client.get(response.headers["location"]).json()["items"]
    specs = [client.get(f"/v1/jobs/{i['jobId']}").json() for i in items]
    resolved = [client.get(f"/v1/jobs/{i['jobId']}/spec").json() for i in items]
    assert [s["scenes"][1]["narration"] for s in resolved] == [
        'Zürich, the "old" town',
        "東京\nat night",
        "Malmö",
    ]
    assert [s["scenes"][0]["duration"] for s in resolved] == [2.0, 1.0, 3.0]
    assert {s["options"]["fps"] for s in specs} == {24}
    latin1 = client.post(BATCHES, files={"csv": ("r.csv", "city\nMalmö\n".encode("latin-1"))})
    assert error_of(latin1)["field"] == "csv"


@pytest.mark.parametrize("cap", [0, 8])
def test_a_thousand_rows_are_accepted_in_one_request(
    make_client: AppFactory, calls: Calls, cap: int
) -> None:
    client = _ready(make_client(batch_concurrency=cap))
    rows = [{"city": f"Town {i}", "n": 1 + i % 3} for i in range(1000)]
    response = _batch(client, {"rows": rows})
    assert response.status_code == 202, response.text
    assert response.json()["queued"] == 1000
    # Every job created; sent to the broker at once, or the first `cap` of them.
    assert len(calls.enqueued) == (cap or 1000)
    batch = client.get(f"{response.headers['location']}?limit=1000").json()
    assert batch["counts"]["QUEUED"] == 1000
    assert len({i["jobId"] for i in batch["items"]}) == 1000
    over = _batch(client, {"rows": [*rows, {"city": "one more"}]})
    assert error_of(over)["code"] == "over_limit"


def test_cancel_ends_every_job(client: TestClient, calls: Calls) -> None:
    response = _batch(client, {"rows": [{"city": "A"}, {"city": "B"}, {"city": "C"}]})
    location = response.headers["location"]
    cancelled = client.post(f"{location}/cancel")
    assert cancelled.status_code == 202
    batch = cancelled.json()
    assert batch["status"] == "CANCELLED" and batch["counts"]["CANCELLED"] == 3
    for item in batch["items"]:
        assert client.get(f"/v1/jobs/{item['jobId']}").json()["status"] == "CANCELLED"
    assert client.get("/v1/batches/nope").status_code == 404


def test_a_batch_callback_needs_the_webhook_secret(client: TestClient, calls: Calls) -> None:
    response = _batch(client, {"rows": [{"city": "A"}], "callbackUrl": "https://example.com/h"})
    assert response.status_code == 422
    assert error_of(response)["field"] == "callbackUrl"
    assert calls.enqueued == []


def test_past_the_concurrency_cap_jobs_wait_unsent_until_earlier_ones_end(
    make_client: AppFactory, calls: Calls, storage: Path
) -> None:
    client = _ready(make_client(batch_concurrency=2))
    response = _batch(client, {"rows": [{"city": c} for c in "ABCDE"]})
    items = client.get(response.headers["location"]).json()["items"]
    ids = [item["jobId"] for item in items]
    assert [job_id for job_id, _ in calls.enqueued] == ids[:2]
    db = make_settings(storage).db_url
    with session_scope(db) as session:
        jobs.transition(session, ids[0], JobStatus.RUNNING)
        jobs.transition(session, ids[0], JobStatus.SUCCEEDED)
    assert batches.feed(db, response.json()["batchId"], 2, calls.enqueue) == 1
    assert batches.feed(db, response.json()["batchId"], 2, calls.enqueue) == 0  # at the cap
    assert [job_id for job_id, _ in calls.enqueued] == ids[:3]  # in row order
    cancelled = client.post(f"{response.headers['location']}/cancel").json()
    assert cancelled["counts"]["CANCELLED"] == 4  # the held ones too
    assert batches.feed(db, response.json()["batchId"], 2, calls.enqueue) == 0
