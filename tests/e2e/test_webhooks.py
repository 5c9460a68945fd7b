"""Webhooks end to end: real renders on a real stack, delivered to local receivers that check
each signature; one that fails twice then answers, one that never answers, a cancel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.launch import Stack
from pipeline.fixtures import ImageFixture, SceneFixture, VoiceFixture
from tests.e2e import Api, running_stack
from tests.webhook_receiver import receiving

pytestmark = pytest.mark.e2e

SECRET = "e2e-webhook-secret"
FPS = 25


def one_scene(tag: str) -> list[SceneFixture]:
    return [
        SceneFixture(
            (ImageFixture(f"{tag}.jpg", 320, 240, "testsrc2"),), VoiceFixture(f"{tag}.wav", 0.8)
        )
    ]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("storage"),
        WEBHOOK_SECRET=SECRET,
        WEBHOOK_ALLOW_PRIVATE="true",  # the receivers listen on 127.0.0.1
        WEBHOOK_BACKOFF="0.3",
        WEBHOOK_TIMEOUT="0.5",
        WEBHOOK_MAX_ATTEMPTS="3",
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(stack: Stack) -> Api:
    return Api(stack.base_url)


def render_with_callback(api: Api, project: str, url: str, staging: Path) -> str:
    api.upload_project(project, one_scene(project), staging)
    body = {
        "renderOptions": {"fps": FPS, "minShot": 0.4, "xfade": 0.1, "cache": False},
        "callbackUrl": url,
    }
    response = api.http.post(f"/v1/projects/{project}/render", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["jobId"])


def test_a_receiver_failing_twice_gets_the_signed_document_on_the_third_attempt(
    api: Api, tmp_path: Path
) -> None:
    with receiving(SECRET, [500, 502, 200]) as receiver:
        job_id = render_with_callback(api, "hooked", receiver.url, tmp_path)
        job = api.wait(job_id, timeout=120)
        assert job["status"] == "SUCCEEDED", job
        done = api.wait(job_id, lambda j: j["webhook"]["status"] != "PENDING", timeout=30)
    webhook = done["webhook"]
    assert webhook["status"] == "DELIVERED", webhook
    assert (webhook["attempts"], webhook["statusCodes"], webhook["event"]) == (
        3,
        [500, 502, 200],
        "SUCCEEDED",
    )
    assert [d.signed for d in receiver.deliveries] == [True, True, True]
    sent = receiver.deliveries[-1].document
    assert (sent["id"], sent["status"], sent["progress"]) == (job_id, "SUCCEEDED", 1.0)
    assert sent["stages"] and sent["outputName"] == "video.mp4"
    assert {d.headers["X-Render-Delivery"] for d in receiver.deliveries} == {job_id}


def test_a_receiver_that_never_answers_delays_nothing_and_fails_bounded(
    api: Api, tmp_path: Path
) -> None:
    with receiving(SECRET, ["hang"]) as receiver:
        job_id = render_with_callback(api, "silent", receiver.url, tmp_path)
        job = api.wait(job_id, timeout=120)
        # The job ended while its webhook had not even been tried to the end.
        assert job["status"] == "SUCCEEDED", job
        assert job["finishedAt"] is not None
        done = api.wait(job_id, lambda j: j["webhook"]["status"] != "PENDING", timeout=30)
    webhook = done["webhook"]
    assert webhook["status"] == "FAILED"
    assert webhook["statusCodes"] == [None, None, None]
    assert "Timeout" in webhook["lastError"]
    assert len(receiver.deliveries) == 3 and all(d.signed for d in receiver.deliveries)


def test_a_cancelled_job_is_reported_cancelled(api: Api, tmp_path: Path) -> None:
    with receiving(SECRET, [204]) as receiver:
        api.upload_project("gone", one_scene("gone"), tmp_path)
        # A job that cannot start yet: cancelled while queued behind a long render is racy,
        # so cancel at once; the API itself ends it CANCELLED.
        body = {
            "renderOptions": {"fps": FPS, "minShot": 0.4, "xfade": 0.1},
            "callbackUrl": receiver.url,
        }
        job_id = api.http.post("/v1/projects/gone/render", json=body).json()["jobId"]
        assert api.http.post(f"/v1/jobs/{job_id}/cancel").status_code in (202, 409)
        job = api.wait(job_id, timeout=60)
        done = api.wait(job_id, lambda j: j["webhook"]["status"] != "PENDING", timeout=30)
    assert done["webhook"]["status"] == "DELIVERED"
    assert receiver.deliveries[0].headers["X-Render-Event"] == f"job.{job['status'].lower()}"
    assert receiver.deliveries[0].document["status"] == job["status"]
