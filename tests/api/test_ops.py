"""The API's operational guards: Idempotency-Key on POST /render, several AUTH_TOKENs at
once, and the MIN_FREE_MB refusal (a fake free-space reading: the real check is statvfs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from api import uploads
from tasks.db import session_scope
from tasks.models import IdempotencyKey
from tests.conftest import AppFactory, Calls, error_of, jpeg_bytes, put_spec, upload_all


@pytest.fixture
def ready(client: TestClient) -> TestClient:
    put_spec(client)
    upload_all(client)
    return client


def render(client: TestClient, body: dict, key: str | None = None, project: str = "p1"):  # type: ignore[no-untyped-def]
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(f"/v1/projects/{project}/render", json=body, headers=headers)


def test_the_same_key_and_body_return_the_same_job_queued_once(
    ready: TestClient, calls: Calls
) -> None:
    body = {"outputName": "a.mp4", "renderOptions": {"crf": 20}}
    first = render(ready, body, "k-1")
    again = render(ready, body, "k-1")
    assert first.status_code == again.status_code == 202
    assert first.json()["jobId"] == again.json()["jobId"]
    assert again.headers["Location"] == first.headers["Location"]
    assert len(calls.enqueued) == 1
    # Another key, or none, is another render.
    assert render(ready, body, "k-2").json()["jobId"] != first.json()["jobId"]
    assert render(ready, body).json()["jobId"] != first.json()["jobId"]
    assert len(calls.enqueued) == 3


def test_the_same_key_with_another_body_is_409(ready: TestClient, calls: Calls) -> None:
    first = render(ready, {"renderOptions": {"crf": 20}}, "k-1")
    other = render(ready, {"renderOptions": {"crf": 21}}, "k-1")
    assert other.status_code == 409
    error = error_of(other)
    assert (error["code"], error["field"]) == ("idempotency_conflict", "Idempotency-Key")
    assert first.json()["jobId"] in error["message"]
    assert len(calls.enqueued) == 1


def test_a_refused_request_does_not_use_up_its_key(ready: TestClient) -> None:
    bad = render(ready, {"renderOptions": {"crf": 99}}, "k-1")
    assert bad.status_code == 422
    assert render(ready, {"renderOptions": {"crf": 20}}, "k-1").status_code == 202


def test_a_key_is_scoped_to_the_token_that_made_it(
    make_client: AppFactory, storage: Path, calls: Calls
) -> None:
    client = make_client(auth_token="token-a,token-b")
    client.headers["Authorization"] = "Bearer token-a"
    put_spec(client)
    upload_all(client)
    body = {"renderOptions": {"crf": 20}}
    a = {"Authorization": "Bearer token-a"}
    b = {"Authorization": "Bearer token-b"}
    headers = {"Idempotency-Key": "k-1"}
    first_a = client.post("/v1/projects/p1/render", json=body, headers={**a, **headers})
    first_b = client.post("/v1/projects/p1/render", json=body, headers={**b, **headers})
    assert first_a.status_code == first_b.status_code == 202
    assert first_a.json()["jobId"] != first_b.json()["jobId"]
    # Each token replays its own; another body from b conflicts with b's job only.
    again_a = client.post("/v1/projects/p1/render", json=body, headers={**a, **headers})
    assert again_a.json()["jobId"] == first_a.json()["jobId"]
    other = client.post("/v1/projects/p1/render", json={}, headers={**b, **headers})
    assert other.status_code == 409
    assert first_b.json()["jobId"] in error_of(other)["message"]
    assert first_a.json()["jobId"] not in error_of(other)["message"]
    assert len(calls.enqueued) == 2
    # Neither the key nor a token is stored as such.
    settings = client.app.state.settings  # type: ignore[attr-defined]
    with session_scope(settings.db_url) as session:
        stored = [row.key for row in session.exec(select(IdempotencyKey)).all()]
    assert len(stored) == 2
    assert not any(s in key for key in stored for s in ("k-1", "token-a", "token-b"))


def test_a_rotated_token_does_not_replay_the_old_tokens_keys(
    make_client: AppFactory, calls: Calls
) -> None:
    old = make_client(auth_token="old-token")
    old.headers["Authorization"] = "Bearer old-token"
    put_spec(old)
    upload_all(old)
    headers = {"Authorization": "Bearer old-token", "Idempotency-Key": "k-1"}
    first = old.post("/v1/projects/p1/render", json={}, headers=headers).json()["jobId"]
    # A restart with the same token still replays it: the scope is a digest, not per process.
    same = make_client(auth_token="old-token")
    assert same.post("/v1/projects/p1/render", json={}, headers=headers).json()["jobId"] == first
    rotated = make_client(auth_token="new-token")
    headers["Authorization"] = "Bearer new-token"
    response = rotated.post("/v1/projects/p1/render", json={}, headers=headers)
    assert response.status_code == 202
    assert response.json()["jobId"] != first
    assert len(calls.enqueued) == 2


def test_several_auth_tokens_are_accepted_while_rotating(make_client: AppFactory) -> None:
    client = make_client(auth_token="new-token, test-token")
    for token in ("new-token", "test-token"):
        response = client.get("/healthz", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, token
    wrong = client.get("/healthz", headers={"Authorization": "Bearer new-token,test-token"})
    assert wrong.status_code == 401


def test_low_disk_space_refuses_renders_and_uploads_with_507(
    make_client: AppFactory, monkeypatch: pytest.MonkeyPatch, calls: Calls
) -> None:
    client = make_client(min_free_mb=100)
    put_spec(client)
    upload_all(client)
    monkeypatch.setattr(uploads, "free_space", lambda _path: 99 * 1024 * 1024)
    response = render(client, {})
    assert response.status_code == 507
    error = error_of(response)
    assert error["code"] == "insufficient_storage"
    assert "MIN_FREE_MB (100 MiB)" in error["message"] and "99 MiB free" in error["message"]
    files = [("files", ("late.jpg", jpeg_bytes(), "image/jpeg"))]
    upload = client.post("/v1/projects/p1/assets", files=files)
    assert upload.status_code == 507
    assert not list(client.app.state.settings.render_storage.rglob("late.jpg"))  # type: ignore[attr-defined]
    assert calls.enqueued == []
    monkeypatch.setattr(uploads, "free_space", lambda _path: 101 * 1024 * 1024)
    assert render(client, {}).status_code == 202


def test_min_free_mb_zero_turns_the_check_off(
    make_client: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(min_free_mb=0)
    put_spec(client)
    upload_all(client)
    monkeypatch.setattr(uploads, "free_space", lambda _path: 0)
    assert render(client, {}).status_code == 202
