"""Live progress (api/routes/events.py, tasks/events.py): the stream's shape and headers, the
browser token, the token kept out of the access log, and the hub reading a document once per
change for every watcher. A whole render watched through a reconnect: tests/e2e/test_ops.py."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth import RedactTokens, events_token, events_token_valid
from api.routes.events import EventHub, event_id
from tasks import events, jobs
from tasks.db import session_scope
from tasks.models import JobStatus, Project
from tests.conftest import AUTH, AppFactory
from tests.scrape import parse_lines


def parse(text: str) -> list[dict[str, str]]:
    """The events of a whole SSE body."""
    return parse_lines(text.splitlines())


def make_job(client: TestClient, status: JobStatus | None = None) -> str:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    with session_scope(settings.db_url) as session:
        if session.get(Project, "p1") is None:
            session.add(Project(id="p1"))
            session.flush()
        job = jobs.create_job(
            session, project_id="p1", output_name="v.mp4", options={}, scene_count=1
        )
        if status is not None:
            jobs.transition(session, job.id, JobStatus.RUNNING)
            if status.finished:
                jobs.transition(session, job.id, status)
        return job.id


def test_an_ended_job_streams_its_document_once_and_closes(client: TestClient) -> None:
    job_id = make_job(client, JobStatus.SUCCEEDED)
    response = client.get(f"/v1/jobs/{job_id}/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no"
    assert "no-cache" in response.headers["cache-control"]
    frames = parse(response.text)
    assert frames[0] == {"retry": "2000"}
    (event,) = frames[1:]
    assert event["event"] == "job"
    document = client.get(f"/v1/jobs/{job_id}").json()
    assert json.loads(event["data"]) == document
    assert event["id"] == event_id(document)


def test_last_event_id_of_the_current_document_sends_nothing_new(client: TestClient) -> None:
    job_id = make_job(client, JobStatus.CANCELLED)
    first = parse(client.get(f"/v1/jobs/{job_id}/events").text)[1]["id"]
    again = client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": first})
    assert parse(again.text) == [{"retry": "2000"}]


def test_unknown_job_is_404(client: TestClient) -> None:
    assert client.get("/v1/jobs/nope/events").status_code == 404
    assert client.post("/v1/jobs/nope/events-token").status_code == 404


def test_a_browser_authenticates_with_a_token_scoped_to_the_job(make_client: AppFactory) -> None:
    client = make_client(auth_token="old-token,test-token")  # rotation: both accepted
    job_id = make_job(client, JobStatus.SUCCEEDED)
    other = make_job(client, JobStatus.SUCCEEDED)
    issued = client.post(f"/v1/jobs/{job_id}/events-token").json()
    assert issued["url"] == f"/v1/jobs/{job_id}/events?token={issued['token']}"
    browser = TestClient(client.app)  # no Authorization header, as EventSource
    assert browser.get(f"/v1/jobs/{job_id}/events").status_code == 401
    assert browser.get(issued["url"]).status_code == 200
    assert browser.get(f"/v1/jobs/{other}/events?token={issued['token']}").status_code == 401
    # The token opens the stream only, not the job's other routes.
    assert browser.get(f"/v1/jobs/{job_id}?token={issued['token']}").status_code == 401
    forged = issued["token"].split(".")[0] + ".00"
    assert browser.get(f"/v1/jobs/{job_id}/events?token={forged}").status_code == 401


@pytest.mark.parametrize(
    "token",
    [
        "9999999999.%C3%A9",  # non-ASCII MAC: compare_digest raises TypeError on it
        "9" * 5000 + ".x",  # past int()'s digit limit: ValueError
        "%C2%B2.x",  # '²' is str.isdigit() but not int()-able: ValueError
        "%EF%BC%91%EF%BC%92.x",  # fullwidth digits
        "",
        ".",
        "1.",
        "-1." + "0" * 64,
        "9999999999." + "0" * 63 + "%C3%A9",
        "9999999999." + "A" * 64,
        "9999999999." + "0" * 64 + "%0A",
        "%00",
    ],
)
def test_a_malformed_token_is_401_without_a_traceback(
    make_client: AppFactory, caplog: pytest.LogCaptureFixture, token: str
) -> None:
    client = make_client()
    job_id = make_job(client, JobStatus.SUCCEEDED)
    browser = TestClient(client.app, raise_server_exceptions=False)
    with caplog.at_level(logging.DEBUG):
        response = browser.get(f"/v1/jobs/{job_id}/events?token={token}")
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
    assert "events-token" in response.json()["error"]["message"]
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_a_token_past_its_expiry_is_refused_at_once(make_client: AppFactory) -> None:
    client = make_client(events_token_ttl=10)
    job_id = make_job(client, JobStatus.SUCCEEDED)
    settings = client.app.state.settings  # type: ignore[attr-defined]
    expired, _ = events_token(settings.auth_tokens, job_id, ttl=10, now=time.time() - 11)
    browser = TestClient(client.app)
    assert browser.get(f"/v1/jobs/{job_id}/events?token={expired}").status_code == 401
    issued = client.post(f"/v1/jobs/{job_id}/events-token").json()
    left = datetime.fromisoformat(issued["expiresAt"]) - datetime.now(UTC)
    assert timedelta(seconds=8) < left <= timedelta(seconds=10)


def test_the_default_token_lives_five_minutes(client: TestClient) -> None:
    job_id = make_job(client, JobStatus.SUCCEEDED)
    issued = client.post(f"/v1/jobs/{job_id}/events-token").json()
    left = datetime.fromisoformat(issued["expiresAt"]) - datetime.now(UTC)
    assert timedelta(minutes=4, seconds=55) < left <= timedelta(minutes=5)


def test_tokens_expire_and_follow_rotation() -> None:
    token, expires = events_token(["k1"], "j1", ttl=60, now=1000)
    assert expires == 1060
    assert events_token_valid(["k1"], "j1", token, now=1059)
    assert not events_token_valid(["k1"], "j1", token, now=1061)
    assert events_token_valid(["k2", "k1"], "j1", token, now=1000)  # k1 still accepted
    assert not events_token_valid(["k2"], "j1", token, now=1000)  # k1 retired
    assert not events_token_valid(["k1"], "j2", token, now=1000)


def _without_redaction(logger: logging.Logger) -> None:
    for found in [f for f in logger.filters if isinstance(f, RedactTokens)]:
        logger.removeFilter(found)


def test_the_token_is_kept_out_of_the_access_log(caplog: pytest.LogCaptureFixture) -> None:
    access = logging.getLogger("uvicorn.access")
    _without_redaction(access)
    access.addFilter(RedactTokens())
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/v1/jobs/j1/events?token=1700.abcdef&x=1",
            "1.1",
            200,
        )
    assert "abcdef" not in caplog.text
    assert "/v1/jobs/j1/events?token=[redacted]&x=1" in caplog.text


def test_the_app_installs_the_redaction(make_client: AppFactory) -> None:
    access = logging.getLogger("uvicorn.access")
    _without_redaction(access)  # whatever an earlier test or app installed
    make_client()
    assert sum(isinstance(f, RedactTokens) for f in access.filters) == 1


def test_one_document_read_per_change_for_every_watcher() -> None:
    reads: list[str] = []

    def read(job_id: str) -> dict[str, Any]:
        reads.append(job_id)
        return {"id": job_id, "status": "RUNNING", "progress": len(reads) / 10}

    async def scenario() -> None:
        hub = EventHub(None, read, asyncio.get_running_loop())  # type: ignore[arg-type]
        hub._reader = asyncio.get_running_loop().create_task(hub._read_changed())
        queues = [hub.watch("j1") for _ in range(5)]
        hub.notify({"j1", "unwatched"})
        documents = [await asyncio.wait_for(q.get(), 2) for q in queues]
        assert reads == ["j1"]  # once, for five streams; nothing for a job nobody watches
        assert all(d == documents[0] for d in documents)
        # A burst of notices before the reader runs is one read.
        hub.notify({"j1"})
        hub.notify({"j1"})
        await asyncio.wait_for(queues[0].get(), 2)
        assert reads == ["j1", "j1"]
        for q in queues:
            hub.unwatch("j1", q)
        assert hub.watchers == {}
        hub.stop()

    asyncio.run(scenario())


def test_changes_are_published_after_commit_only(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[set[str]] = []
    monkeypatch.setattr(events, "publish", lambda ids: published.append(set(ids)))
    job_id = make_job(client)
    assert published == [{job_id}]
    settings = client.app.state.settings  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError), session_scope(settings.db_url) as session:
        jobs.transition(session, job_id, JobStatus.RUNNING)
        raise RuntimeError("rolled back")
    assert published == [{job_id}]  # nothing for a change that never happened
    with session_scope(settings.db_url) as session:
        jobs.transition(session, job_id, JobStatus.RUNNING)
    assert published[-1] == {job_id}


def test_auth_header_still_works(client: TestClient) -> None:
    job_id = make_job(client, JobStatus.FAILED)
    assert TestClient(client.app, headers=AUTH).get(f"/v1/jobs/{job_id}/events").status_code == 200


def test_a_stream_whose_last_notice_was_lost_still_ends_with_the_ended_document() -> None:
    # The job ended, but its notice never came (pub/sub keeps none; the hub's read may fail):
    # after EVENTS_KEEPALIVE quiet seconds the stream reads the document itself.
    from api.routes.events import stream

    running = {"id": "j1", "status": "RUNNING", "progress": 0.06}
    ended = {"id": "j1", "status": "CANCELLED", "progress": 0.47}

    class Hub:
        reads = 0

        def read(self, job_id: str) -> dict[str, Any]:
            self.reads += 1
            return ended

        def unwatch(self, job_id: str, queue: object) -> None:
            pass

    async def collect() -> list[bytes]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # no notice will come
        return [chunk async for chunk in stream(Hub(), queue, running, None, 0.05)]  # type: ignore[arg-type]

    # Bounded: without the re-read the stream would send keep-alives for ever.
    frames = parse(b"".join(asyncio.run(asyncio.wait_for(collect(), 10))).decode())
    assert [json.loads(f["data"])["status"] for f in frames if "data" in f] == [
        "RUNNING",
        "CANCELLED",
    ]
