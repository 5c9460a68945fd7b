"""Fixtures for the API tests: a temp RENDER_STORAGE with a real SQLite file, a client that
sends the token, an enqueuer that records calls instead of reaching a broker, and small real
media files made by code (pipeline.fixtures' generators, FFmpeg)."""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.deps import get_batch_enqueuer, get_enqueuer, get_revoker
from api.main import create_app
from pipeline.ffmpeg import find_ffmpeg
from pipeline.fixtures import ImageFixture, VoiceFixture, make_image, make_tone
from pipeline.registry import Outline
from tasks.settings import Settings
from tests.browser import find_chromium, skipped_line


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker process gets a PostgreSQL database of its own (the tests
    that use one drop and create every table), made beside TEST_DB_URL's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    url = os.environ.get("TEST_DB_URL")
    if not worker or not url:
        return
    import psycopg

    base, _, name = url.rpartition("/")
    mine = f"{name}_{worker}"
    with psycopg.connect(url, autocommit=True) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (mine,))
        if found.fetchone() is None:
            connection.execute(f'CREATE DATABASE "{mine}"')
    os.environ["TEST_DB_URL"] = f"{base}/{mine}"


# The browser tier (tests/browser) runs when a Chromium is found; otherwise its conftest has it
# not collected, and the run says so once, here (under xdist, only the controller reports),
# with the command that installs one (CI's .ci/run always does).
BROWSER_TESTS = Path(__file__).parent / "browser"


# The files that take longest (each starts service stacks, kills workers or renders several
# jobs), slowest first, collected before the rest: the test processes take files in collection
# order (`--dist loadfile`), so the last files left running, with processes idle beside them,
# are short ones rather than a two-minute stack file started last.
SLOW_FIRST = (
    "tests/e2e/test_workers.py",
    "tests/e2e/test_s3.py",
    "tests/e2e/test_ops.py",
    "tests/e2e/test_recovery.py",
    "tests/browser/",
    "tests/e2e/test_cache.py",
    "tests/e2e/test_batches.py",
    "tests/tasks/test_s3store.py",
    "tests/e2e/",
    "tests/api/test_launch.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid
        return next((n for n, p in enumerate(SLOW_FIRST) if path.startswith(p)), len(SLOW_FIRST))

    items.sort(key=rank)  # stable: a file's tests keep their order


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    asked = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    covered = any(p == BROWSER_TESTS or p in BROWSER_TESTS.parents for p in asked)
    if covered and find_chromium() is None:
        terminalreporter.write_line(skipped_line())


TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEAD_BROKER = "redis://127.0.0.1:1"


@dataclass
class Calls:
    """What the API handed to the queue: (job_id, its outline), and what it revoked: (job_id,
    the job's stage labels)."""

    enqueued: list[tuple[str, Outline]] = field(default_factory=list)
    revoked: list[tuple[str, list[str]]] = field(default_factory=list)
    fail_with: Exception | None = None

    def enqueue(self, job_id: str, outline: Outline) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.enqueued.append((job_id, outline))

    def revoke(self, job_id: str, labels: list[str]) -> None:
        self.revoked.append((job_id, labels))


def make_settings(storage: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "render_storage": storage,
        "db_url": f"sqlite:///{storage / 'db.sqlite3'}",
        "auth_token": TOKEN,
        "redis_url": DEAD_BROKER,
        "allow_origins": "http://localhost:5173",
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    return tmp_path / "storage"


@pytest.fixture
def calls() -> Calls:
    return Calls()


AppFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(storage: Path, calls: Calls) -> Iterator[AppFactory]:
    """Build a client over its own app; keyword arguments override settings."""
    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        app: FastAPI = create_app(make_settings(storage, **overrides))
        app.dependency_overrides[get_enqueuer] = lambda: calls.enqueue
        app.dependency_overrides[get_batch_enqueuer] = lambda: calls.enqueue
        app.dependency_overrides[get_revoker] = lambda: calls.revoke
        client = TestClient(app, headers=AUTH, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: AppFactory) -> TestClient:
    return make_client()


def tree(root: Path) -> dict[str, int]:
    """Every file and folder under root (path → size, -1 for folders), the SQLite files aside."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1)
        for p in sorted(root.rglob("*"))
        if not p.name.startswith("db.sqlite3")
    }


# --- media made by code -------------------------------------------------------------------
# Made with pipeline.fixtures' generators, each distinct file once per session.


@functools.cache
def _media(fixture: ImageFixture | VoiceFixture) -> bytes:
    with tempfile.TemporaryDirectory(prefix="api-media-") as tmp:
        path = Path(tmp) / fixture.name
        if isinstance(fixture, ImageFixture):
            make_image(path, fixture)
        else:
            make_tone(path, fixture)
        return path.read_bytes()


def jpeg_bytes(size: tuple[int, int] = (64, 48), color: str = "teal") -> bytes:
    return _media(ImageFixture("image.jpg", *size, source=f"color:{color}"))


def png_bytes(size: tuple[int, int] = (32, 32)) -> bytes:
    return _media(ImageFixture("image.png", *size, source="color:orange"))


def wav_bytes(seconds: float = 0.2) -> bytes:
    return _media(VoiceFixture("voice.wav", seconds))


@pytest.fixture(scope="session")
def mp4_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real one-second H.264 MP4, small enough to compare byte ranges."""
    out = tmp_path_factory.mktemp("media") / "clip.mp4"
    subprocess.run(
        [
            find_ffmpeg(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=128x72:rate=10:duration=1",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            str(out),
        ],
        check=True,
    )
    return out.read_bytes()


def error_of(response: Any) -> dict[str, Any]:
    """The `error` of a response in the common error shape, checking the shape on the way."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "field"}, body
    return dict(body["error"])


SPEC: dict[str, Any] = {
    "title": "Harbour walk",
    "scenes": [
        {"id": "intro", "images": ["a.jpg", "b.jpg"], "voiceover": "one.wav"},
        {"images": ["c.png"], "narration": "The pier at dusk.", "duration": 3.5},
    ],
}


def put_spec(client: TestClient, project: str = "p1", spec: dict[str, Any] | None = None) -> Any:
    response = client.put(f"/v1/projects/{project}/scenes", json=spec or SPEC)
    assert response.status_code == 200, response.text
    return response.json()


def upload_all(client: TestClient, project: str = "p1") -> None:
    files = [
        ("files", ("a.jpg", jpeg_bytes(), "image/jpeg")),
        ("files", ("b.jpg", jpeg_bytes(color="navy"), "image/jpeg")),
        ("files", ("c.png", png_bytes(), "image/png")),
        ("files", ("one.wav", wav_bytes(), "audio/wav")),
    ]
    response = client.post(f"/v1/projects/{project}/assets", files=files)
    assert response.status_code == 201, response.text
