"""POST /v1/projects/{id}/render, GET /v1/jobs/{jobId}, POST /v1/jobs/{jobId}/cancel."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.documents import job_document, redacted_url
from pipeline import registry
from pipeline.registry import Outline
from tasks import jobs, webhooks
from tasks.db import session_scope
from tasks.models import Job, JobStatus, JobTask, Project, Webhook
from tasks.storage import Storage
from tests.conftest import Calls, make_settings, put_spec, tree, upload_all
from tests.plans import still_plan
from tests.webhook_receiver import receiving

RENDER = "/v1/projects/p1/render"
SEED_BODY = {
    "outputName": "demo.mp4",
    "renderOptions": {
        "fps": 30,
        "minShot": 2.5,
        "maxShot": 8.0,
        "xfade": 0.5,
        "crf": 18,
        "preset": "medium",
        "tts": None,
        "voiceDir": "voiceovers",
        "music": None,
        "ducking": False,
    },
}


def _error(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


@pytest.fixture
def ready(client: TestClient) -> TestClient:
    put_spec(client)
    upload_all(client)
    return client


def _db(storage: Path) -> str:
    return make_settings(storage).db_url


def test_render_queues_a_job_and_enqueues_it(ready: TestClient, calls: Calls) -> None:
    response = ready.post(RENDER, json=SEED_BODY)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "QUEUED"
    assert response.headers["location"] == f"/v1/jobs/{body['jobId']}"
    assert calls.enqueued == [(body["jobId"], Outline(2))]

    job = ready.get(response.headers["location"]).json()
    assert job["status"] == "QUEUED"
    assert job["projectId"] == "p1"
    assert job["outputName"] == "demo.mp4"
    assert job["options"]["minShot"] == 2.5
    assert job["options"]["voiceDir"] == "voiceovers"
    pending = {"status": "PENDING", "progress": 0.0, "cached": False, "clip": None, "chunks": 1}
    assert job["scenes"] == [{"index": 0, **pending}, {"index": 1, **pending}]
    assert job["cache"] == {"hits": 0, "encoded": 0, "bytesSaved": 0}
    # Nothing spoken: the seed's stages, VALIDATE first.
    assert [s["name"] for s in job["stages"]] == registry.labels(Outline(2))
    assert job["stages"][0]["name"] == "VALIDATE"
    assert job["logs"] == []
    assert job["cancelRequested"] is False
    assert job["createdAt"].endswith(("Z", "+00:00"))
    assert job["startedAt"] is None


def test_omitted_options_take_the_default_settings(
    make_client: Any, calls: Calls, storage: Path
) -> None:
    client = make_client(default_fps=24, default_preset="veryfast", default_xfade=0.25)
    put_spec(client)
    upload_all(client)
    response = client.post(RENDER, json={"renderOptions": {"crf": 23}})
    assert response.status_code == 202, response.text
    options = client.get(response.headers["location"]).json()["options"]
    assert (options["fps"], options["preset"], options["xfade"], options["crf"]) == (
        24,
        "veryfast",
        0.25,
        23,
    )
    # No body at all: every default, and video.mp4.
    response = client.post(RENDER)
    assert response.status_code == 202, response.text
    assert client.get(response.headers["location"]).json()["outputName"] == "video.mp4"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"renderOptions": {"fps": 0}}, "renderOptions.fps"),
        ({"renderOptions": {"fps": 61}}, "renderOptions.fps"),
        ({"renderOptions": {"fps": "fast"}}, "renderOptions.fps"),
        ({"renderOptions": {"minShot": 0}}, "renderOptions.minShot"),
        ({"renderOptions": {"minShot": 9, "maxShot": 3}}, "renderOptions.minShot"),
        ({"renderOptions": {"xfade": 3}}, "renderOptions.xfade"),
        ({"renderOptions": {"xfade": -1}}, "renderOptions.xfade"),
        ({"renderOptions": {"crf": 52}}, "renderOptions.crf"),
        ({"renderOptions": {"preset": "warp"}}, "renderOptions.preset"),
        ({"renderOptions": {"resolution": "1921x1080"}}, "renderOptions.resolution"),
        ({"renderOptions": {"voiceDir": "../x"}}, "renderOptions.voiceDir"),
        ({"renderOptions": {"sharpen": True}}, "renderOptions.sharpen"),
        ({"outputName": "../video.mp4"}, "outputName"),
        ({"outputName": "video.mov"}, "outputName"),
        ({"outputName": ".video.mp4"}, "outputName"),
        ({"output": "video.mp4"}, "output"),
    ],
)
def test_bad_render_requests_name_the_field(
    ready: TestClient, calls: Calls, storage: Path, body: dict[str, Any], field: str
) -> None:
    before = tree(storage)
    response = ready.post(RENDER, json=body)
    assert response.status_code == 422, response.text
    assert _error(response)["field"] == field
    assert calls.enqueued == []
    assert tree(storage) == before
    with session_scope(_db(storage)) as session:
        assert jobs.latest_jobs(session, "p1") == []


def test_malformed_json_render_body(ready: TestClient) -> None:
    response = ready.post(
        RENDER, content=b"{outputName: video.mp4}", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert _error(response)["code"] == "invalid_json"


def test_render_without_scenes_is_409(client: TestClient, calls: Calls, storage: Path) -> None:
    before = tree(storage)
    response = client.post(RENDER, json={})
    assert response.status_code == 409
    assert _error(response)["code"] == "no_scenes"
    assert tree(storage) == before
    assert calls.enqueued == []


def test_render_with_missing_assets_lists_them(
    client: TestClient, calls: Calls, storage: Path
) -> None:
    put_spec(client)
    before = tree(storage)
    response = client.post(RENDER, json={"renderOptions": {"music": "bed.mp3"}})
    assert response.status_code == 422
    error = _error(response)
    assert error["code"] == "missing_assets"
    for ref in ("images/a.jpg", "images/b.jpg", "images/c.png", "voiceovers/one.wav"):
        assert ref in error["message"]
    assert "music/bed.mp3" in error["message"]
    assert calls.enqueued == []
    assert tree(storage) == before


def test_voice_dir_decides_where_voiceovers_are_looked_up(ready: TestClient) -> None:
    response = ready.post(RENDER, json={"renderOptions": {"voiceDir": "narration"}})
    assert response.status_code == 422
    assert "narration/one.wav" in _error(response)["message"]


def test_broker_down_fails_the_job_and_is_503(
    ready: TestClient, calls: Calls, storage: Path
) -> None:
    calls.fail_with = ConnectionError("Connection refused")
    response = ready.post(RENDER, json={})
    assert response.status_code == 503
    error = _error(response)
    assert error["code"] == "broker_unavailable"
    assert "Connection refused" in error["message"]
    with session_scope(_db(storage)) as session:
        [job] = jobs.latest_jobs(session, "p1")
        assert job.status == JobStatus.FAILED
        assert job.error is not None
        assert job.error.startswith("could not reach the broker: ")


def _set_stage(db: str, job_id: str, label: str, status: str, progress: float, clip: Any) -> None:
    with session_scope(db) as session:
        row = session.get(JobTask, (job_id, label))
        assert row is not None
        row.status, row.progress, row.clip = status, progress, clip
        session.add(row)


def test_a_scene_built_in_chunks_shows_as_one_scene(ready: TestClient, storage: Path) -> None:
    job_id = ready.post(RENDER, json={}).json()["jobId"]
    plan = still_plan(30, 225)  # scene 1: three chunks of 75 frames
    with session_scope(_db(storage)) as session:
        jobs.lay_out(session, job_id, registry.weights(Outline(2), plan))
    db = _db(storage)
    _set_stage(db, job_id, "SCENE_BUILD[1/0]", "DONE", 1.0, "cached")
    _set_stage(db, job_id, "SCENE_BUILD[1/1]", "RUNNING", 0.5, None)
    job = ready.get(f"/v1/jobs/{job_id}").json()
    assert [s["name"] for s in job["stages"]] == registry.labels(Outline(2), plan)
    assert [s["index"] for s in job["scenes"]] == [0, 1]
    assert job["scenes"][1] == {
        "index": 1,
        "status": "RUNNING",
        "progress": pytest.approx(0.5),  # (1 + 0.5 + 0) / 3, the chunks being alike
        "cached": False,
        "clip": None,  # until every chunk is built
        "chunks": 3,
    }
    _set_stage(db, job_id, "SCENE_BUILD[1/1]", "DONE", 1.0, "cached")
    _set_stage(db, job_id, "SCENE_BUILD[1/2]", "DONE", 1.0, "encoded")
    scene = ready.get(f"/v1/jobs/{job_id}").json()["scenes"][1]
    assert (scene["status"], scene["progress"], scene["clip"]) == ("DONE", 1.0, "encoded")
    _set_stage(db, job_id, "SCENE_BUILD[1/2]", "FAILED", 0.2, None)
    assert ready.get(f"/v1/jobs/{job_id}").json()["scenes"][1]["status"] == "FAILED"


def test_render_bad_project_id(client: TestClient) -> None:
    response = client.post("/v1/projects/a.b/render", json={})
    assert response.status_code == 422
    assert _error(response)["field"] == "id"


@pytest.mark.parametrize("job_id", ["0" * 32, "nope", "a" * 65, "x.y", "%2e%2e"])
def test_unknown_or_invalid_job_ids_are_404(client: TestClient, job_id: str) -> None:
    for response in (client.get(f"/v1/jobs/{job_id}"), client.post(f"/v1/jobs/{job_id}/cancel")):
        assert response.status_code == 404, response.text
        assert _error(response)["code"] == "not_found"


def test_job_view_shows_progress_stages_and_the_log_tail(ready: TestClient, storage: Path) -> None:
    job_id = ready.post(RENDER, json={}).json()["jobId"]
    with session_scope(_db(storage)) as session:
        jobs.transition(session, job_id, JobStatus.RUNNING, stage="SCENE_BUILD[1]", progress=0.4)
        row = session.get(JobTask, (job_id, "SCENE_BUILD[1]"))
        assert row is not None
        row.status, row.progress = "RUNNING", 0.5
        session.add(row)
    log = Storage(storage)
    for i in range(60):
        log.append_log(job_id, f"line {i}")

    job = ready.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["stage"], job["progress"]) == ("RUNNING", "SCENE_BUILD[1]", 0.4)
    assert job["startedAt"] is not None
    assert job["scenes"][1] == {
        "index": 1,
        "status": "RUNNING",
        "progress": 0.5,
        "cached": False,
        "clip": None,
        "chunks": 1,
    }
    assert len(job["logs"]) == 50
    assert job["logs"][0] == "line 10"
    assert job["logs"][-1] == "line 59"


def test_cancel_a_queued_job(ready: TestClient, calls: Calls) -> None:
    job_id = ready.post(RENDER, json={}).json()["jobId"]
    response = ready.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "CANCELLED"
    assert body["cancelRequested"] is True
    assert body["finishedAt"] is not None
    assert calls.revoked == [(job_id, registry.labels(Outline(2)))]
    # Now finished: a second cancel is a conflict.
    response = ready.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 409
    assert _error(response)["code"] == "job_finished"


def _claim(storage: Path, job_id: str, label: str) -> None:
    with session_scope(_db(storage)) as session:
        jobs.claim_stage(
            session,
            job_id,
            label,
            worker="w1",
            pid=1,
            max_attempts=3,
            lost_after=timedelta(seconds=30),
        )


def test_cancel_a_job_with_a_running_stage_flags_it(ready: TestClient, storage: Path) -> None:
    job_id = ready.post(RENDER, json={}).json()["jobId"]
    _claim(storage, job_id, "SCENE_BUILD[0]")
    body = ready.post(f"/v1/jobs/{job_id}/cancel").json()
    assert (body["status"], body["cancelRequested"]) == ("RUNNING", True)
    assert body["waiting"] is None


def test_cancel_a_running_job_between_stages_ends_it(ready: TestClient, storage: Path) -> None:
    job_id = ready.post(RENDER, json={}).json()["jobId"]
    with session_scope(_db(storage)) as session:
        jobs.transition(session, job_id, JobStatus.RUNNING, stage="AUDIO_PREP")
    body = ready.post(f"/v1/jobs/{job_id}/cancel").json()
    assert (body["status"], body["stage"], body["error"]) == (
        "CANCELLED",
        "AUDIO_PREP",
        "cancelled by request",
    )


def test_a_job_with_no_worker_says_it_is_waiting_for_one(ready: TestClient) -> None:
    job_id = ready.post(RENDER, json={}).json()["jobId"]
    waiting = ready.get(f"/v1/jobs/{job_id}").json()["waiting"]
    assert waiting.startswith("no worker is running") and "WORKER_WAIT_TIMEOUT" in waiting


def test_cancel_a_succeeded_job_is_409(ready: TestClient, storage: Path) -> None:
    job_id = ready.post(RENDER, json={}).json()["jobId"]
    with session_scope(_db(storage)) as session:
        jobs.transition(session, job_id, JobStatus.RUNNING)
        jobs.transition(session, job_id, JobStatus.SUCCEEDED)
    response = ready.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 409
    with session_scope(_db(storage)) as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.status, job.cancel_requested) == ("SUCCEEDED", False)


def test_job_routes_need_the_token(ready: TestClient) -> None:
    job_id = ready.post(RENDER, json={}).json()["jobId"]
    assert ready.get(f"/v1/jobs/{job_id}", headers={"Authorization": ""}).status_code == 401
    no = {"Authorization": "Bearer no"}
    assert ready.post(f"/v1/jobs/{job_id}/cancel", headers=no).status_code == 401
    assert ready.post(RENDER, json={}, headers=no).status_code == 401


# --- the callback URL's secrets ----------------------------------------------------------


def test_the_callback_urls_secrets_never_leave_in_the_job_document(
    storage: Path, make_client: Any
) -> None:
    """Not in the webhook body, GET /v1/jobs/{id}, nor the event stream an events token
    opens; the delivery itself still goes to the whole URL."""
    settings = make_settings(storage, webhook_secret="hook-secret", webhook_allow_private=True)
    Storage(storage).ensure()
    with session_scope(settings.db_url) as session:
        session.add(Project(id="p1"))
    with receiving("hook-secret", [302], path="/hook?token=s3cret") as receiver:
        receiver.redirect_to = "/moved?token=s3cret"
        with session_scope(settings.db_url) as session:
            job = jobs.create_job(
                session, project_id="p1", output_name="v.mp4", options={}, scene_count=1
            )
            webhooks.register(session, job.id, receiver.url)
            jobs.transition(session, job.id, JobStatus.RUNNING)
            jobs.transition(session, job.id, JobStatus.SUCCEEDED)
            job_id = job.id

        def document(session: Any, job: Job) -> dict[str, Any]:
            return job_document(session, settings, job)

        assert webhooks.deliver_due(settings, document) == [(job_id, "failed")]
    (delivery,) = receiver.deliveries
    assert delivery.signed and "s3cret" not in delivery.body.decode()
    bare = receiver.url.split("?")[0]
    assert delivery.document["webhook"]["url"] == bare + "?[redacted]"
    with session_scope(settings.db_url) as session:
        row = session.get(Webhook, job_id)
        assert row is not None and row.url == receiver.url  # what deliveries use
        assert row.last_error == "redirect to /moved?token=s3cret not followed"

    client = make_client(webhook_secret="hook-secret", webhook_allow_private=True)
    shown = client.get(f"/v1/jobs/{job_id}").json()
    assert "s3cret" not in json.dumps(shown)
    assert shown["webhook"]["url"] == bare + "?[redacted]"
    assert shown["webhook"]["lastError"] == "redirect to /moved?[redacted] not followed"
    issued = client.post(f"/v1/jobs/{job_id}/events-token").json()
    stream = TestClient(client.app).get(issued["url"])  # the events token alone
    assert stream.status_code == 200
    assert "s3cret" not in stream.text and bare + "?[redacted]" in stream.text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://93.184.215.14/hooks/render", "https://93.184.215.14/hooks/render"),
        (
            "https://user:pw@h.example:8443/a?k=s#f",
            "https://h.example:8443/a?[redacted]#[redacted]",
        ),
        ("http://[2001:db8::1]/x?s", "http://[2001:db8::1]/x?[redacted]"),
        ("https://h.example/?", "https://h.example/"),
        ("http://[::1/x", "[redacted]"),  # urlsplit refuses it: nothing of it is shown
    ],
)
def test_redacted_url(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


def test_a_callback_with_credentials_stored_before_they_were_refused_is_shown_without(
    client: TestClient, storage: Path
) -> None:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    with session_scope(settings.db_url) as session:
        session.add(Project(id="p1"))
        session.flush()
        job = jobs.create_job(
            session, project_id="p1", output_name="v.mp4", options={}, scene_count=1
        )
        session.add(
            Webhook(
                job_id=job.id,
                url="https://user:pw@h.example/hook",
                last_error="ConnectError: https://user:pw@h.example/hook?x=1",
            )
        )
        job_id = job.id
    webhook = client.get(f"/v1/jobs/{job_id}").json()["webhook"]
    assert webhook["url"] == "https://h.example/hook"
    assert webhook["lastError"] == "ConnectError: https://[redacted]@h.example/hook?[redacted]"
