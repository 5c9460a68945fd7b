"""tasks/webhooks.py: the callback URL check (SSRF), signing, and delivery to a real local
receiver that checks the signature: retries with backoff, bounds, redirects not followed,
one attempt per claim. The API side (422s, the job document) through the API; a whole render
with a webhook in tests/e2e/test_ops.py."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import time
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from tasks import jobs, webhooks
from tasks.db import session_scope
from tasks.models import Job, JobStatus, Project, Webhook, WebhookStatus, utcnow
from tasks.settings import Settings
from tests.conftest import AppFactory, error_of, put_spec, upload_all
from tests.webhook_receiver import ENDLESS_CAP, free_address, receiving

SECRET = "webhook-test-secret"
PUBLIC = "https://93.184.215.14/hooks/render"  # a public address, given literally: no lookup


def document(session: Session, job: Job) -> dict[str, Any]:
    return {"id": job.id, "status": job.status}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(
        render_storage=tmp_path,
        auth_token="t",
        webhook_secret=SECRET,
        webhook_allow_private=True,  # the receivers here are on 127.0.0.1
        webhook_backoff=1.0,
        webhook_timeout=0.5,
        webhook_max_attempts=4,
        webhook_max_seconds=60,
    )
    with session_scope(s.db_url) as session:
        session.add(Project(id="p1"))
    return s


def ended_job(settings: Settings, url: str, status: JobStatus = JobStatus.SUCCEEDED) -> str:
    with session_scope(settings.db_url) as session:
        job = jobs.create_job(
            session, project_id="p1", output_name="v.mp4", options={}, scene_count=1
        )
        webhooks.register(session, job.id, url)
        jobs.transition(session, job.id, JobStatus.RUNNING)
        if status is not JobStatus.RUNNING:
            jobs.transition(session, job.id, status)
        return job.id


def row(settings: Settings, job_id: str) -> Webhook:
    with session_scope(settings.db_url) as session:
        found = session.get(Webhook, job_id)
        assert found is not None
        return found


# --- the callback URL -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://93.184.215.14/x", "must be http or https"),
        ("http:///nohost", "has no host"),
        ("http://user:pw@93.184.215.14/", "must not carry credentials"),
        ("http://127.0.0.1:8080/hook", "a loopback address"),
        ("http://localhost/hook", "a loopback address"),
        ("http://[::1]/hook", "a loopback address"),
        ("http://[::ffff:127.0.0.1]/hook", "a loopback address"),
        ("http://10.1.2.3/hook", "a private address"),
        ("http://172.16.0.9/hook", "a private address"),
        ("http://192.168.1.20/hook", "a private address"),
        ("http://[fd00::5]/hook", "a private address"),
        ("http://169.254.169.254/latest/meta-data", "a link-local address"),
        ("http://[fe80::1]/hook", "a link-local address"),
        ("http://0.0.0.0/hook", "the unspecified address"),
        ("http://100.64.0.1/hook", "not a public address"),
        ("http://224.0.0.1/hook", "a multicast address"),
    ],
)
def test_callbacks_outside_the_public_internet_are_refused(url: str, why: str) -> None:
    with pytest.raises(webhooks.CallbackRefused, match=why):
        webhooks.check_callback_url(url, allow_private=False)


def test_every_address_of_the_host_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name with one public and one private address (DNS rebinding bait) is refused."""

    def resolve(host: str, port: int, **_: Any) -> list[Any]:
        assert host == "hooks.example.com"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(webhooks.CallbackRefused, match=r"resolves to 10\.0\.0\.7"):
        webhooks.check_callback_url("https://hooks.example.com/x", allow_private=False)


def test_public_and_allowed_private_callbacks_pass() -> None:
    assert webhooks.check_callback_url(PUBLIC, allow_private=False) == ["93.184.215.14"]
    assert webhooks.check_callback_url("http://127.0.0.1:9/x", allow_private=True) == ["127.0.0.1"]


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"id":"j1"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert webhooks.sign(SECRET, 1700000000, body) == f"v1={expected}"
    assert not webhooks.verify(SECRET, "1700000000", body, f"v1={expected}", tolerance=300)
    now = str(int(utcnow().timestamp()))
    good = webhooks.sign(SECRET, int(now), body)
    assert webhooks.verify(SECRET, now, body, good, tolerance=300)
    assert not webhooks.verify(SECRET, now, body + b" ", good, tolerance=300)
    assert not webhooks.verify("other", now, body, good, tolerance=300)


# --- delivery -----------------------------------------------------------------------------


def test_a_receiver_failing_twice_gets_it_on_the_third_attempt_with_backoff(
    settings: Settings,
) -> None:
    # Simulated time, in steps far larger than the requests take: 10 s, then 20 s of backoff.
    slow = settings.model_copy(update={"webhook_backoff": 10.0, "webhook_max_seconds": 600})
    with receiving(SECRET, [500, 503, 200]) as receiver:
        job_id = ended_job(slow, receiver.url)
        t0 = utcnow()
        assert webhooks.deliver_due(slow, document, now=t0) == [(job_id, "retry")]
        assert webhooks.deliver_due(slow, document, now=t0 + timedelta(seconds=5)) == []
        later = t0 + timedelta(seconds=15)
        assert webhooks.deliver_due(slow, document, now=later) == [(job_id, "retry")]
        assert webhooks.deliver_due(slow, document, now=later + timedelta(seconds=15)) == []
        last = later + timedelta(seconds=25)
        assert webhooks.deliver_due(slow, document, now=last) == [(job_id, "delivered")]
        assert webhooks.deliver_due(slow, document, now=last + timedelta(hours=1)) == []

    assert [d.signed for d in receiver.deliveries] == [True, True, True]
    assert [d.headers[webhooks.ATTEMPT_HEADER] for d in receiver.deliveries] == ["1", "2", "3"]
    first = receiver.deliveries[0]
    assert first.document == {"id": job_id, "status": "SUCCEEDED"}
    assert first.headers[webhooks.EVENT_HEADER] == "job.succeeded"
    assert first.headers[webhooks.DELIVERY_HEADER] == job_id
    done = row(settings, job_id)
    assert (done.status, done.attempts, done.status_codes) == (
        WebhookStatus.DELIVERED,
        3,
        [500, 503, 200],
    )
    assert done.last_error is None and done.delivered_at is not None


def test_a_receiver_that_never_answers_fails_after_the_bounded_attempts(
    settings: Settings,
) -> None:
    with receiving(SECRET, ["hang"]) as receiver:
        job_id = ended_job(settings, receiver.url, JobStatus.FAILED)
        now = utcnow()
        outcomes = []
        for _ in range(6):
            outcomes += webhooks.deliver_due(settings, document, now=now)
            now += timedelta(seconds=10)  # past each backoff, within WEBHOOK_MAX_SECONDS
    assert [o for _, o in outcomes] == ["retry", "retry", "retry", "failed"]  # 4 attempts
    failed = row(settings, job_id)
    assert failed.status == WebhookStatus.FAILED
    assert failed.status_codes == [None, None, None, None]
    assert failed.last_error is not None and "Timeout" in failed.last_error
    assert receiver.deliveries[0].headers[webhooks.EVENT_HEADER] == "job.failed"


def test_no_attempt_starts_after_the_total_time_bound(settings: Settings) -> None:
    bounded = settings.model_copy(update={"webhook_max_seconds": 2.5, "webhook_max_attempts": 10})
    with receiving(SECRET, [500]) as receiver:
        ended_job(bounded, receiver.url)
        now = utcnow()
        outcomes = []
        for _ in range(8):
            outcomes += webhooks.deliver_due(bounded, document, now=now)
            now += timedelta(seconds=10)
    # Attempts at 0 s and after 1 s; the next would start 1 + 2 s after the first: over 2.5 s.
    assert [o for _, o in outcomes] == ["retry", "failed"]
    assert len(receiver.deliveries) == 2


def test_redirects_are_not_followed(settings: Settings) -> None:
    with receiving(SECRET, [200]) as target, receiving(SECRET, [302]) as receiver:
        receiver.redirect_to = target.url
        job_id = ended_job(settings, receiver.url)
        assert webhooks.deliver_due(settings, document) == [(job_id, "failed")]
    assert target.deliveries == []
    failed = row(settings, job_id)
    assert failed.status_codes == [302]
    assert failed.last_error == f"redirect to {target.url} not followed"


def test_a_client_error_is_final(settings: Settings) -> None:
    with receiving(SECRET, [400, 200]) as receiver:
        job_id = ended_job(settings, receiver.url)
        assert webhooks.deliver_due(settings, document) == [(job_id, "failed")]
        assert webhooks.deliver_due(settings, document, now=utcnow() + timedelta(hours=1)) == []
    assert len(receiver.deliveries) == 1


def test_429_is_retried(settings: Settings) -> None:
    with receiving(SECRET, [429, 204]) as receiver:
        job_id = ended_job(settings, receiver.url)
        now = utcnow()
        assert webhooks.deliver_due(settings, document, now=now) == [(job_id, "retry")]
        again = now + timedelta(seconds=2)
        assert webhooks.deliver_due(settings, document, now=again) == [(job_id, "delivered")]


def test_an_unfinished_job_is_not_delivered(settings: Settings) -> None:
    with receiving(SECRET, [200]) as receiver:
        ended_job(settings, receiver.url, JobStatus.RUNNING)
        assert webhooks.deliver_due(settings, document) == []
    assert receiver.deliveries == []


def test_one_claim_per_attempt_and_a_lost_deliverer_is_retried_after_its_lease(
    settings: Settings,
) -> None:
    job_id = ended_job(settings, f"http://{free_address()}/hook")
    now = utcnow()
    with session_scope(settings.db_url) as session:
        first = webhooks.claim(session, settings, job_id, document, now)
    with session_scope(settings.db_url) as session:
        assert webhooks.claim(session, settings, job_id, document, now) is None
        assert webhooks.due(session, now) == []
    assert first is not None and first.attempt == 1
    # The first deliverer died before recording anything: the lease runs out.
    after = now + timedelta(seconds=settings.webhook_timeout + webhooks.LEASE_MARGIN + 0.1)
    with session_scope(settings.db_url) as session:
        assert webhooks.due(session, after) == [job_id]
        second = webhooks.claim(session, settings, job_id, document, after)
    assert second is not None and second.attempt == 2
    # The dead deliverer's late record changes nothing.
    with session_scope(settings.db_url) as session:
        late = webhooks.record(session, settings, first, webhooks.Outcome(200, None), after)
    assert late == "superseded" and row(settings, job_id).status == WebhookStatus.PENDING


def test_without_allow_private_the_request_goes_to_the_checked_address(
    settings: Settings,
) -> None:
    """The URL is pinned to the address the check resolved (no second lookup that could
    answer otherwise), and a private one is refused at delivery too."""
    strict = settings.model_copy(update={"webhook_allow_private": False})
    with receiving(SECRET, [200]) as receiver:
        job_id = ended_job(strict, receiver.url)
        assert webhooks.deliver_due(strict, document) == [(job_id, "failed")]
    assert receiver.deliveries == []
    assert "loopback" in (row(strict, job_id).last_error or "")
    headers: dict[str, str] = {}
    url, extensions = webhooks._pinned(strict, "https://93.184.215.14:8443/h?q=1", headers)
    assert url == "https://93.184.215.14:8443/h?q=1"
    assert headers["Host"] == "93.184.215.14:8443"
    assert extensions == {"sni_hostname": "93.184.215.14"}


# --- through the API ----------------------------------------------------------------------


def test_the_api_refuses_private_and_unsigned_callbacks(make_client: AppFactory) -> None:
    client = make_client(webhook_secret=SECRET)
    put_spec(client)
    upload_all(client)
    for url, code in [
        ("http://127.0.0.1:8080/hook", "callback_refused"),
        ("http://169.254.169.254/", "callback_refused"),
        ("file:///etc/passwd", "callback_refused"),
    ]:
        response = client.post("/v1/projects/p1/render", json={"callbackUrl": url})
        assert response.status_code == 422, response.text
        error = error_of(response)
        assert (error["code"], error["field"]) == (code, "callbackUrl")
    unsigned = make_client()
    response = unsigned.post("/v1/projects/p1/render", json={"callbackUrl": PUBLIC})
    assert response.status_code == 422
    assert error_of(response)["code"] == "webhooks_disabled"


def test_an_accepted_callback_shows_on_the_job(make_client: AppFactory) -> None:
    client = make_client(webhook_secret=SECRET)
    put_spec(client)
    upload_all(client)
    response = client.post("/v1/projects/p1/render", json={"callbackUrl": PUBLIC})
    assert response.status_code == 202, response.text
    job = client.get(response.headers["Location"]).json()
    assert job["webhook"] == {
        "url": PUBLIC,
        "status": "PENDING",
        "event": None,
        "attempts": 0,
        "statusCodes": [],
        "lastError": None,
        "deliveredAt": None,
    }
    private = make_client(webhook_secret=SECRET, webhook_allow_private=True)
    local = private.post("/v1/projects/p1/render", json={"callbackUrl": "http://127.0.0.1:9/"})
    assert local.status_code == 202


def test_a_job_without_callback_has_no_webhook(client: TestClient) -> None:
    put_spec(client)
    upload_all(client)
    response = client.post("/v1/projects/p1/render", json={})
    assert client.get(response.headers["Location"]).json()["webhook"] is None


# --- a receiver cannot hold the sender -------------------------------------------------------


def attempt(settings: Settings, job_id: str) -> webhooks.Outcome:
    """Claim the job's next attempt and make it, as the deliverer does."""
    with session_scope(settings.db_url) as session:
        claimed = webhooks.claim(session, settings, job_id, document, utcnow())
    assert claimed is not None

    async def send() -> webhooks.Outcome:
        async with webhooks._client(settings) as client:
            return await webhooks.send(settings, claimed, client)

    return asyncio.run(send())


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.05)


def test_an_endless_answer_is_read_a_few_kilobytes_deep_then_closed(settings: Settings) -> None:
    """200 and a chunked body that never ends: delivered, without reading the body."""
    patient = settings.model_copy(update={"webhook_timeout": 30.0})
    with receiving(SECRET, ["endless"]) as receiver:
        job_id = ended_job(patient, receiver.url)
        tracemalloc.start()
        try:
            outcome = attempt(patient, job_id)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        # The sender closed the connection: the receiver's next writes failed.
        assert receiver.hung_up.wait(10)
    assert (outcome.code, outcome.error) == (200, None)
    # READ_LIMIT, overshot by one network read at most (httpcore reads 64 KiB at a time).
    assert 0 < outcome.read <= webhooks.READ_LIMIT + 64 * 1024, outcome.read
    assert peak < 4 * 1024 * 1024, f"{peak / 1e6:.1f} MB allocated while the body streamed"
    assert receiver.sent < ENDLESS_CAP  # what reading it all would have taken


def test_a_trickling_answer_is_cut_off_at_the_deadline(settings: Settings) -> None:
    """A byte every 0.2 s keeps every read alive; the whole attempt still ends at
    WEBHOOK_TIMEOUT, and is retried later."""
    deadline = settings.model_copy(update={"webhook_timeout": 1.0})
    with receiving(SECRET, ["trickle"]) as receiver:
        job_id = ended_job(deadline, receiver.url)
        started = time.monotonic()
        outcome = attempt(deadline, job_id)
        took = time.monotonic() - started
        assert receiver.hung_up.wait(10)  # the sender let go of the connection
    assert outcome.code is None and outcome.retryable
    assert outcome.error == "Timeout: no answer within 1 s (WEBHOOK_TIMEOUT)"
    assert took < 1.0 + 4, took  # the deadline, and a generous allowance for a busy machine


def test_a_trickling_receiver_holds_no_other_jobs_delivery(settings: Settings) -> None:
    """The filed case: while one receiver trickles its answer (and its attempt's deadline
    is far off), another job's webhook goes out, from the background deliverer."""
    patient = settings.model_copy(update={"webhook_timeout": 60.0})
    with (
        receiving(SECRET, ["trickle"]) as slow,
        receiving(SECRET, [200], host="127.0.0.2") as fast,
    ):
        stop = webhooks.start_thread(patient, document, interval=0.1)
        try:
            held = ended_job(patient, slow.url)
            assert slow.wait_for(1, 10)
            other = ended_job(patient, fast.url)
            assert fast.wait_for(1, 10), "the second job's webhook waited on the trickler"
            assert not slow.hung_up.is_set()  # still connected, still trickling
            wait_until(
                lambda: row(patient, other).status == WebhookStatus.DELIVERED, 10, "recorded"
            )
            assert row(patient, held).status == WebhookStatus.PENDING
        finally:
            stop.set()
    assert (
        fast.deliveries[0].signed and fast.deliveries[0].headers[webhooks.DELIVERY_HEADER] == other
    )


def test_one_host_gets_at_most_webhook_per_host_attempts_at_once(settings: Settings) -> None:
    """With one slot a host, a second job to the trickling host waits for the first's
    deadline; a job to another host goes out meanwhile."""
    bounded = settings.model_copy(
        update={"webhook_timeout": 6.0, "webhook_per_host": 1, "webhook_backoff": 30.0}
    )
    with (
        receiving(SECRET, ["trickle"]) as slow,
        receiving(SECRET, [200], host="127.0.0.2") as fast,
    ):
        stop = webhooks.start_thread(bounded, document, interval=0.1)
        try:
            first = ended_job(bounded, slow.url)
            assert slow.wait_for(1, 10)
            second = ended_job(bounded, slow.url)
            elsewhere = ended_job(bounded, fast.url)
            assert fast.wait_for(1, 10)
            assert len(slow.deliveries) == 1 and row(bounded, second).attempts == 0
            # The first attempt's deadline frees the host's slot for the second job.
            assert slow.wait_for(2, 30)
        finally:
            stop.set()
    assert fast.deliveries[0].headers[webhooks.DELIVERY_HEADER] == elsewhere
    assert [d.headers[webhooks.DELIVERY_HEADER] for d in slow.deliveries] == [first, second]
    assert "Timeout" in (row(bounded, first).last_error or "")
