"""Webhooks: when a job with a `callbackUrl` ends, its document is POSTed there, signed.

Delivery is a loop over the database, not a step of the render: a job ends wherever it ends
(a stage's last finish, a failure, the watchdog, the API's cancel, all through
`tasks.jobs.transition`) and its row in `job_webhooks` waits for the next pass of any
deliverer (a process of its own, api/deliverer.py, never the API). So a webhook never delays
the render or the job's state, and survives the crash of any process: the row says what is
left to do.

- **Signed**: `X-Render-Signature: v1=<hex HMAC-SHA256(WEBHOOK_SECRET, "<timestamp>." + body)>`
  with `X-Render-Timestamp: <unix seconds>`; `X-Render-Event: job.succeeded|failed|cancelled`,
  `X-Render-Delivery: <job id>` (the same on every attempt: receivers deduplicate on it) and
  `X-Render-Attempt: <n>`.
- **Retried** on no answer, 5xx, 408, 425 and 429, after WEBHOOK_BACKOFF s, doubling, at most
  WEBHOOK_MAX_ATTEMPTS attempts and none starting WEBHOOK_MAX_SECONDS after the first. Any
  other answer ends it: 2xx delivered, 3xx (redirects are not followed) and 4xx failed.
- **Claimed**: an attempt is taken by a compare-and-set on the row with a lease of
  WEBHOOK_TIMEOUT + 5 s, so several deliverers never send the same attempt twice, and one
  that dies mid-request is retried when its lease runs out.
- **Not held by its receiver**: each attempt has one deadline, WEBHOOK_TIMEOUT, for the
  lookup, connecting, sending and the answer together (a receiver trickling a byte at a time
  is cut off there); of the answer's body at most READ_LIMIT bytes are read, then the
  connection is closed (an endless body costs nothing).
- **Concurrent**: attempts run side by side, at most WEBHOOK_CONCURRENCY at once and
  WEBHOOK_PER_HOST to one receiver host, and a pass never waits for the attempts it started:
  a slow receiver holds its own slots, never another job's delivery (`Deliverer`).
- **Batches too**: a batch's `callbackUrl` (its row in `batch_webhooks`) is delivered the
  same way once every job of the batch has ended, with the batch's summary (`batch_summary`)
  as the body, `X-Render-Event: batch.succeeded|failed|cancelled` and
  `X-Render-Delivery: batch:<batch id>`.
- **No server-side request forgery**: the host must resolve to public addresses only
  (every address, checked at submit and again at each attempt, and the request goes to the
  address checked, not to a second lookup), unless WEBHOOK_ALLOW_PRIVATE=true.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from tasks import metrics
from tasks.db import session_scope
from tasks.jobs import as_utc
from tasks.models import (
    FINISHED,
    Batch,
    BatchWebhook,
    Job,
    JobStatus,
    Webhook,
    WebhookStatus,
    utcnow,
)
from tasks.settings import Settings

log = logging.getLogger("render.webhooks")

SIGNATURE_HEADER = "X-Render-Signature"
TIMESTAMP_HEADER = "X-Render-Timestamp"
EVENT_HEADER = "X-Render-Event"
DELIVERY_HEADER = "X-Render-Delivery"
ATTEMPT_HEADER = "X-Render-Attempt"
USER_AGENT = "render-api-webhooks/1"
RETRYABLE = frozenset({408, 425, 429})
LEASE_MARGIN = 5.0
POLL_INTERVAL = 1.0
# Bytes of a receiver's answer read at most; the rest is never read (the connection closes).
# One network read may bring up to httpcore's 64 KiB before the count stops it.
READ_LIMIT = 4096
# Due rows looked at beyond the free slots, so a host without room does not hide the others.
DUE_MARGIN = 200

Document = Callable[[Session, Job], dict[str, Any]]
Result = tuple[str, str]


class CallbackRefused(ValueError):
    """The callback URL is not one the service will call; the message says why."""


def check_callback_url(url: str, allow_private: bool) -> list[str]:
    """The addresses `url`'s host resolves to, all of them public (unless `allow_private`).

    Raises CallbackRefused naming the problem: a scheme other than http/https, credentials
    in the URL, a host that does not resolve, or one address that is loopback, link-local,
    private or otherwise not global.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise CallbackRefused(f"callbackUrl must be http or https, not {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise CallbackRefused("callbackUrl has no host")
    if parts.username or parts.password:
        raise CallbackRefused("callbackUrl must not carry credentials (user:password@)")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise CallbackRefused("callbackUrl has an invalid port") from None
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise CallbackRefused(
            f"callbackUrl's host {parts.hostname!r} does not resolve: {exc}"
        ) from None
    addresses = sorted({str(info[4][0]) for info in infos})
    if not allow_private:
        for address in addresses:
            reason = _not_public(address)
            if reason:
                raise CallbackRefused(
                    f"callbackUrl's host {parts.hostname!r} resolves to {address}, {reason}: "
                    "refused (set WEBHOOK_ALLOW_PRIVATE=true for receivers on a private network)"
                )
    return addresses


def _not_public(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for test, name in (
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public address"),
    ):
        if test:
            return name
    return None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: `v1=` + hex HMAC-SHA256 over "<timestamp>." + body."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, tolerance: float) -> bool:
    """What a receiver does (docs/api.md "Webhooks"): the signature matches and is recent."""
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def register(session: Session, job_id: str, url: str) -> Webhook:
    row = Webhook(job_id=job_id, url=url)
    session.add(row)
    return row


# --- delivery -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    code: int | None
    error: str | None
    # The URL was refused before any request (its host now resolves to a private address).
    refused: bool = False
    # Bytes of the answer's body read (READ_LIMIT, give or take one network read, at most).
    read: int = 0

    @property
    def delivered(self) -> bool:
        return self.code is not None and 200 <= self.code < 300

    @property
    def retryable(self) -> bool:
        if self.refused:
            return False
        return self.code is None or self.code >= 500 or self.code in RETRYABLE


@dataclass(frozen=True)
class Claimed:
    job_id: str
    url: str
    attempt: int
    event: str
    body: bytes


BATCH = "batch:"  # a delivery id of a batch's webhook: `batch:<batch id>`


def register_batch(session: Session, batch_id: str, url: str) -> BatchWebhook:
    row = BatchWebhook(batch_id=batch_id, url=url)
    session.add(row)
    return row


def batch_status(session: Session, batch: Batch) -> str | None:
    """RUNNING until every job of the batch has ended (None: not ended), then SUCCEEDED when
    every one did, CANCELLED when the batch was cancelled, else FAILED."""
    statuses = session.exec(select(Job.status).where(col(Job.batch_id) == batch.id)).all()
    if any(not JobStatus(status).finished for status in statuses):
        return None
    if all(status == JobStatus.SUCCEEDED for status in statuses):
        return str(JobStatus.SUCCEEDED)
    return str(JobStatus.CANCELLED if batch.cancel_requested else JobStatus.FAILED)


def batch_summary(session: Session, batch: Batch) -> dict[str, Any]:
    """What a batch's webhook sends: its status, counts and each row's job."""
    found = session.exec(
        select(Job).where(col(Job.batch_id) == batch.id).order_by(col(Job.batch_row))
    ).all()
    counts: dict[str, int] = {}
    for job in found:
        counts[job.status] = counts.get(job.status, 0) + 1
    return {
        "batchId": batch.id,
        "projectId": batch.project_id,
        "version": batch.version,
        "status": batch_status(session, batch) or "RUNNING",
        "rows": batch.rows,
        "counts": {**counts, "INVALID": len(batch.invalid)},
        "jobs": [
            {
                "index": job.batch_row,
                "jobId": job.id,
                "status": job.status,
                "outputName": job.output_name,
                "error": job.error,
            }
            for job in found
        ],
        "invalid": batch.invalid,
    }


def _due_batches(session: Session, now: datetime, limit: int) -> list[tuple[str, str]]:
    """(`batch:<id>`, URL) of the batches whose jobs have all ended and whose webhook is due."""
    unfinished = (
        select(Job.id)
        .where(
            col(Job.batch_id) == col(BatchWebhook.batch_id),
            col(Job.status).not_in([str(s) for s in FINISHED]),
        )
        .exists()
    )
    rows = session.exec(
        select(BatchWebhook.batch_id, BatchWebhook.url)
        .where(
            BatchWebhook.status == WebhookStatus.PENDING,
            ~unfinished,
            or_(col(BatchWebhook.next_at).is_(None), col(BatchWebhook.next_at) <= now),
        )
        .limit(limit)
    ).all()
    return [(BATCH + batch_id, url) for batch_id, url in rows]


def due(session: Session, now: datetime, limit: int = 20) -> list[str]:
    """Ids of ended jobs whose webhook is pending and due."""
    return [job_id for job_id, _ in due_urls(session, now, limit)]


def due_urls(session: Session, now: datetime, limit: int) -> list[tuple[str, str]]:
    """(job id, callback URL) of the pending, due deliveries, the longest waiting first."""
    rows = session.exec(
        select(Webhook.job_id, Webhook.url)
        .join(Job, col(Job.id) == col(Webhook.job_id))
        .where(
            Webhook.status == WebhookStatus.PENDING,
            col(Job.status).in_([str(s) for s in FINISHED]),
            or_(col(Webhook.next_at).is_(None), col(Webhook.next_at) <= now),
        )
        .order_by(col(Webhook.next_at).is_not(None), col(Webhook.next_at))
        .limit(limit)
    ).all()
    found = [(job_id, url) for job_id, url in rows]
    return found + _due_batches(session, now, max(0, limit - len(found)))


def claim(
    session: Session, settings: Settings, job_id: str, document: Document, now: datetime
) -> Claimed | None:
    """Take the next attempt of the job's delivery, or None if another deliverer has it."""
    if job_id.startswith(BATCH):
        return _claim_batch(session, settings, job_id.removeprefix(BATCH), now)
    row = session.get(Webhook, job_id)
    job = session.get(Job, job_id)
    if row is None or job is None or row.status != WebhookStatus.PENDING:
        return None
    lease = now + timedelta(seconds=settings.webhook_timeout + LEASE_MARGIN)
    attempt = row.attempts + 1  # read before the update refreshes `row`
    taken = session.execute(
        update(Webhook)
        .where(
            col(Webhook.job_id) == job_id,
            col(Webhook.attempts) == attempt - 1,
            col(Webhook.status) == WebhookStatus.PENDING,
            or_(col(Webhook.next_at).is_(None), col(Webhook.next_at) <= now),
        )
        .values(
            attempts=attempt,
            next_at=lease,
            first_attempt_at=row.first_attempt_at or now,
            event=job.status,
        )
        .execution_options(synchronize_session=False)
    )
    if not taken.rowcount:  # type: ignore[attr-defined]
        return None
    body = json.dumps(document(session, job), separators=(",", ":")).encode()
    return Claimed(job_id, row.url, attempt, job.status, body)


def _claim_batch(
    session: Session, settings: Settings, batch_id: str, now: datetime
) -> Claimed | None:
    row = session.get(BatchWebhook, batch_id)
    batch = session.get(Batch, batch_id)
    if row is None or batch is None or row.status != WebhookStatus.PENDING:
        return None
    status = batch_status(session, batch)
    if status is None:
        return None
    lease = now + timedelta(seconds=settings.webhook_timeout + LEASE_MARGIN)
    attempt = row.attempts + 1
    taken = session.execute(
        update(BatchWebhook)
        .where(
            col(BatchWebhook.batch_id) == batch_id,
            col(BatchWebhook.attempts) == attempt - 1,
            col(BatchWebhook.status) == WebhookStatus.PENDING,
            or_(col(BatchWebhook.next_at).is_(None), col(BatchWebhook.next_at) <= now),
        )
        .values(
            attempts=attempt,
            next_at=lease,
            first_attempt_at=row.first_attempt_at or now,
            event=status,
        )
        .execution_options(synchronize_session=False)
    )
    if not taken.rowcount:  # type: ignore[attr-defined]
        return None
    body = json.dumps(batch_summary(session, batch), separators=(",", ":")).encode()
    return Claimed(BATCH + batch_id, row.url, attempt, status, body)


async def send(settings: Settings, claimed: Claimed, client: httpx.AsyncClient) -> Outcome:
    """One POST of the signed document, within WEBHOOK_TIMEOUT in all (the address check,
    connecting, sending and the answer); redirects are not followed, and of the answer's body
    at most READ_LIMIT bytes are read before the connection is closed."""
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(settings.webhook_secret, timestamp, claimed.body),
        TIMESTAMP_HEADER: str(timestamp),
        EVENT_HEADER: f"{'batch' if claimed.job_id.startswith(BATCH) else 'job'}."
        f"{claimed.event.lower()}",
        DELIVERY_HEADER: claimed.job_id,
        ATTEMPT_HEADER: str(claimed.attempt),
    }
    read = 0
    try:
        # httpx's own timeouts are per phase and per read: a byte every few seconds would
        # keep an attempt alive for ever. This deadline covers the whole attempt.
        async with asyncio.timeout(settings.webhook_timeout):
            # The lookup blocks (getaddrinfo): in a thread, and inside the deadline.
            url, extensions = await asyncio.to_thread(_pinned, settings, claimed.url, headers)
            request = client.build_request(
                "POST", url, content=claimed.body, headers=headers, extensions=extensions
            )
            response = await client.send(request, stream=True)
            try:
                read = await _read_some(response, READ_LIMIT)
            finally:
                await response.aclose()
    except CallbackRefused as exc:
        return Outcome(None, str(exc), refused=True)
    except TimeoutError:
        return Outcome(
            None, f"Timeout: no answer within {settings.webhook_timeout:g} s (WEBHOOK_TIMEOUT)"
        )
    except httpx.HTTPError as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}".rstrip(": "))
    if 300 <= response.status_code < 400:
        where = response.headers.get("location", "?")
        return Outcome(response.status_code, f"redirect to {where} not followed", read=read)
    if response.status_code >= 300:
        return Outcome(response.status_code, f"answered {response.status_code}", read=read)
    return Outcome(response.status_code, None, read=read)


async def _read_some(response: httpx.Response, limit: int) -> int:
    """Read the answer's body until `limit` bytes or its end; how many bytes came. Nothing in
    it matters (the status says it all); a longer or endless one is cut off."""
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read >= limit:
            break
    return read


def _pinned(settings: Settings, url: str, headers: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The URL to connect to: the address checked just now, not a second lookup (a host
    whose DNS answer changes between the check and the request must not reach inside)."""
    if settings.webhook_allow_private:
        return url, {}
    addresses = check_callback_url(url, allow_private=False)
    parts = urlsplit(url)
    host = parts.hostname or ""
    address = addresses[0]
    literal = f"[{address}]" if ":" in address else address
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    headers["Host"] = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=netloc)), {"sni_hostname": host}


def record(
    session: Session, settings: Settings, claimed: Claimed, outcome: Outcome, now: datetime
) -> str:
    """Store the attempt's outcome; the delivery's status afterwards."""
    table: type[Webhook] | type[BatchWebhook] = Webhook
    key = claimed.job_id
    row: Webhook | BatchWebhook | None
    if key.startswith(BATCH):
        table, key = BatchWebhook, key.removeprefix(BATCH)
        row = session.get(BatchWebhook, key)
    else:
        row = session.get(Webhook, key)
    if row is None or row.attempts != claimed.attempt:
        return "superseded"
    codes = [*row.status_codes, outcome.code]
    values: dict[str, Any] = {"status_codes": codes, "last_error": outcome.error}
    first = as_utc(row.first_attempt_at) or now
    delay = timedelta(seconds=settings.webhook_backoff * 2 ** (claimed.attempt - 1))
    if outcome.delivered:
        values.update(status=WebhookStatus.DELIVERED, delivered_at=now, next_at=None)
        result = "delivered"
    elif (
        not outcome.retryable
        or claimed.attempt >= settings.webhook_max_attempts
        or (now + delay - first).total_seconds() > settings.webhook_max_seconds
    ):
        values.update(status=WebhookStatus.FAILED, next_at=None)
        result = "failed"
    else:
        values.update(next_at=now + delay)
        result = "retry"
    ident = col(BatchWebhook.batch_id) if table is BatchWebhook else col(Webhook.job_id)
    session.execute(
        update(table)
        .where(ident == key, col(table.attempts) == claimed.attempt)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result


class Deliverer:
    """Makes attempts concurrently, each on its own: at most WEBHOOK_CONCURRENCY in flight,
    and WEBHOOK_PER_HOST to one receiver host, so a slow receiver holds only its own host's
    slots. An attempt is claimed only when a slot is free for it, so it starts at once and
    its lease (WEBHOOK_TIMEOUT + LEASE_MARGIN) covers it whole, the deadline included.

    Runs in one event loop (`start_due` from a loop's task); the database work (claims,
    records, the job document, the address lookup) goes to threads.
    """

    def __init__(self, settings: Settings, document: Document, client: httpx.AsyncClient):
        self.settings = settings
        self.document = document
        self.client = client
        self.in_flight: dict[str, str] = {}  # job id → receiver host
        self.tasks: set[asyncio.Task[Result]] = set()

    def _room_for(self, host: str) -> bool:
        same = sum(1 for h in self.in_flight.values() if h == host)
        return same < self.settings.webhook_per_host

    async def start_due(self, now: datetime | None = None) -> list[asyncio.Task[Result]]:
        """Claim and start what is due and has a free slot; the started attempts' tasks.

        `now` given (tests' simulated time): claims and records are at `now` plus the time
        gone by since; None: the clock's time at each step.
        """
        free = self.settings.webhook_concurrency - len(self.in_flight)
        if free <= 0:
            return []
        at = now or utcnow()
        started = time.monotonic()
        # More rows than free slots: those of a host with no room left are skipped, and the
        # next host's must be among them.
        rows = await asyncio.to_thread(self._due, at, free + DUE_MARGIN)
        tasks = []
        for job_id, url in rows:
            if len(self.in_flight) >= self.settings.webhook_concurrency:
                break
            host = _host(url)
            if job_id in self.in_flight or not self._room_for(host):
                continue
            claimed = await asyncio.to_thread(self._claim, job_id, at)
            if claimed is None:
                continue
            self.in_flight[job_id] = host
            task = asyncio.create_task(self._attempt(claimed, now, started))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            tasks.append(task)
        return tasks

    def _due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        with session_scope(self.settings.db_url) as session:
            return due_urls(session, now, limit)

    def _claim(self, job_id: str, now: datetime) -> Claimed | None:
        with session_scope(self.settings.db_url) as session:
            return claim(session, self.settings, job_id, self.document, now)

    def _record(self, claimed: Claimed, outcome: Outcome, now: datetime) -> str:
        with session_scope(self.settings.db_url) as session:
            return record(session, self.settings, claimed, outcome, now)

    async def _attempt(self, claimed: Claimed, now: datetime | None, started: float) -> Result:
        try:
            try:
                outcome = await send(self.settings, claimed, self.client)
            except Exception as exc:  # unforeseen (httpx.InvalidURL, say): an attempt all the same
                log.exception("job=%s webhook attempt %d", claimed.job_id, claimed.attempt)
                outcome = Outcome(None, f"{type(exc).__name__}: {exc}")
            # A backoff counts from the answer.
            at = utcnow() if now is None else now + timedelta(seconds=time.monotonic() - started)
            result = await asyncio.to_thread(self._record, claimed, outcome, at)
        except Exception:  # a database hiccup: the lease runs out and the attempt is retried
            log.exception("job=%s webhook attempt %d not recorded", claimed.job_id, claimed.attempt)
            return claimed.job_id, "error"
        finally:
            del self.in_flight[claimed.job_id]
        metrics.webhook_delivery(result)
        log.log(
            logging.INFO if result == "delivered" else logging.WARNING,
            "job=%s webhook attempt %d to %s: %s (%s)",
            claimed.job_id,
            claimed.attempt,
            urlsplit(claimed.url).netloc,
            outcome.error or outcome.code,
            result,
        )
        return claimed.job_id, result


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=settings.webhook_timeout,
        follow_redirects=False,
        # The deliverer's slots bound the connections: none ever waits for the pool. None is
        # kept alive: the pool knows a connection by the pinned address only, and one opened
        # (TLS name included) for one host must not carry another host's document.
        limits=httpx.Limits(
            max_connections=settings.webhook_concurrency, max_keepalive_connections=0
        ),
    )


def deliver_due(
    settings: Settings, document: Document, now: datetime | None = None
) -> list[tuple[str, str]]:
    """One pass, to its end: claim what is due, send it (concurrently), record each outcome.

    Returns (job id, "delivered" | "retry" | "failed") for each attempt made.
    """

    async def one_pass() -> list[Result]:
        async with _client(settings) as client:
            tasks = await Deliverer(settings, document, client).start_due(now or utcnow())
            return list(await asyncio.gather(*tasks))

    return asyncio.run(one_pass())


def beat_path(settings: Settings, host: str) -> Path:
    """The file a deliverer on `host` touches at each pass (its health check reads it)."""
    return settings.render_storage / "webhooks" / f"{host}.beat"


async def _run(
    settings: Settings,
    document: Document,
    stop: threading.Event,
    interval: float,
    beat: Path | None,
) -> None:
    async with _client(settings) as client:
        deliverer = Deliverer(settings, document, client)
        while not stop.is_set():
            try:
                # Attempts run on as tasks of this loop; the next pass does not wait for them.
                await deliverer.start_due()
                if beat is not None:
                    beat.parent.mkdir(parents=True, exist_ok=True)
                    beat.touch()
            except Exception:  # a database hiccup must not end deliveries
                log.exception("webhook pass failed; retrying in %s s", interval)
            await asyncio.sleep(interval)
        # Told to stop: the attempts in flight end within their deadline and are recorded,
        # rather than left to their leases.
        await asyncio.gather(*deliverer.tasks)


def run_forever(
    settings: Settings,
    document: Document,
    stop: threading.Event,
    interval: float = POLL_INTERVAL,
    beat: Path | None = None,
) -> None:
    """Deliver until `stop` is set, then finish the attempts in flight."""
    asyncio.run(_run(settings, document, stop, interval, beat))


def start_thread(
    settings: Settings, document: Document, interval: float = POLL_INTERVAL
) -> threading.Event:
    """A deliverer in a thread of this process (tests); the service runs api/deliverer.py."""
    stop = threading.Event()
    threading.Thread(
        target=run_forever,
        args=(settings, document, stop, interval),
        name="render-webhooks",
        daemon=True,
    ).start()
    return stop
