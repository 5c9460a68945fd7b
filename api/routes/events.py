"""Live progress: `GET /v1/jobs/{jobId}/events`, the job document as Server-Sent Events.

One `EventHub` per API process subscribes to the workers' change notices (tasks/events.py,
Redis pub/sub) and, for each job someone watches, reads its document once per notice and
hands it to every stream of that job. A stream sends the document at once, then on every
change (progress, stage, status, scenes), a comment every EVENTS_KEEPALIVE seconds so proxies
keep a quiet stream open, and closes after the document of the ended job. A notice is a hint
(one lost leaves a watcher stale), so a stream quiet for EVENTS_KEEPALIVE seconds reads its
document once itself and sends it if it changed: the only reads not driven by a notice.
Each event's id is a digest of the document: a client that reconnects with
`Last-Event-ID` gets the current document only if it changed since.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import redis
from anyio import to_thread
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import StreamingResponse

from api.auth import events_token
from api.deps import SessionDep, SettingsDep
from api.documents import job_document
from api.errors import ApiError, responses
from api.schemas import CamelModel
from tasks import events
from tasks.broker import redis_client_url
from tasks.db import session_scope
from tasks.models import Job, JobStatus
from tasks.settings import Settings
from tasks.storage import JOB_ID

log = logging.getLogger("render.api.events")

router = APIRouter(tags=["jobs"])

Document = dict[str, Any]
# Past this many undelivered documents a slow client only needs the newest.
QUEUE_SIZE = 1


def event_id(document: Document) -> str:
    raw = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:20]


def sse(document: Document) -> bytes:
    data = json.dumps(document, separators=(",", ":"))
    return f"id: {event_id(document)}\nevent: job\ndata: {data}\n\n".encode()


def ended(document: Document) -> bool:
    return JobStatus(document["status"]).finished


class EventHub:
    """Change notices from Redis to the streams of this process, one document read each."""

    def __init__(
        self,
        settings: Settings,
        read: Callable[[str], Document | None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.settings = settings
        self.read = read
        self.loop = loop
        self.watchers: dict[str, set[asyncio.Queue[Document]]] = {}
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._stop = threading.Event()
        self._reader: asyncio.Task[None] | None = None
        self.reads = 0  # documents read for watchers (a test checks one per change)

    def start(self) -> EventHub:
        self._reader = self.loop.create_task(self._read_changed())
        threading.Thread(target=self._listen, name="render-events", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.cancel()

    def watch(self, job_id: str) -> asyncio.Queue[Document]:
        queue: asyncio.Queue[Document] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.watchers.setdefault(job_id, set()).add(queue)
        return queue

    def unwatch(self, job_id: str, queue: asyncio.Queue[Document]) -> None:
        queues = self.watchers.get(job_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self.watchers[job_id]

    def notify(self, job_ids: set[str]) -> None:
        """On the loop: these jobs changed."""
        watched = {job_id for job_id in job_ids if job_id in self.watchers}
        if watched:
            self._pending |= watched
            self._wake.set()

    async def _read_changed(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            changed, self._pending = self._pending, set()
            for job_id in changed:
                if job_id not in self.watchers:
                    continue
                try:
                    document = await to_thread.run_sync(self.read, job_id)
                except Exception:
                    log.exception("job %s: could not read its document for its watchers", job_id)
                    continue
                self.reads += 1
                if document is None:
                    continue
                for queue in list(self.watchers.get(job_id, ())):
                    _offer(queue, document)

    def _listen(self) -> None:
        """The subscriber thread: notices in, `notify` on the loop; reconnects for ever."""
        delay = 0.5
        while not self._stop.is_set():
            if not self.settings.redis_url:
                self._stop.wait(5)
                continue
            client = redis.Redis.from_url(
                redis_client_url(self.settings.redis_url), socket_connect_timeout=2
            )
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(events.CHANNEL)
                # Notices published while we were not subscribed are lost: read every
                # watched job once now.
                self.loop.call_soon_threadsafe(self.notify, set(self.watchers))
                delay = 0.5
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    data = message["data"]
                    job_id = data.decode() if isinstance(data, bytes) else str(data)
                    self.loop.call_soon_threadsafe(self.notify, {job_id})
            except (redis.RedisError, OSError, RuntimeError) as exc:
                if self._stop.is_set():
                    return
                log.debug("event notices: %s; reconnecting in %.1f s", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
            finally:
                client.close()


def _offer(queue: asyncio.Queue[Document], document: Document) -> None:
    """Put the newest document, dropping an older one a slow client has not taken yet."""
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(document)


def start_hub(settings: Settings) -> EventHub:
    def read(job_id: str) -> Document | None:
        with session_scope(settings.db_url) as session:
            job = session.get(Job, job_id)
            return job_document(session, settings, job) if job is not None else None

    return EventHub(settings, read, asyncio.get_running_loop()).start()


async def stream(
    hub: EventHub,
    queue: asyncio.Queue[Document],
    first: Document,
    last_event_id: str | None,
    keepalive: float,
) -> AsyncIterator[bytes]:
    job_id = str(first["id"])
    try:
        # How long a disconnected EventSource waits before it reconnects, in ms.
        yield b"retry: 2000\n\n"
        sent = last_event_id
        document = first
        while True:
            if event_id(document) != sent:
                yield sse(document)
                sent = event_id(document)
            if ended(document):
                return
            try:
                document = await asyncio.wait_for(queue.get(), timeout=keepalive)
            except TimeoutError:
                # A notice can be lost (pub/sub keeps none; a read for the watchers can fail
                # under load), and the last one says the job ended: a quiet stream reads its
                # document again, so it is never stale for longer than this.
                fresh = await to_thread.run_sync(hub.read, job_id)
                if fresh is not None and event_id(fresh) != sent:
                    document = fresh
                    continue
                yield f": keep-alive {datetime.now(UTC).isoformat(timespec='seconds')}\n\n".encode()
    finally:
        hub.unwatch(job_id, queue)


JobId = Annotated[str, Path(alias="jobId", description="the job to watch")]


@router.get(
    "/v1/jobs/{jobId}/events",
    response_class=StreamingResponse,
    responses={
        **responses(401, 404),
        200: {"content": {"text/event-stream": {}}, "description": "the job, on every change"},
    },
    summary="The job document as Server-Sent Events, on every change, until it ends",
)
async def job_events(
    request: Request,
    job_id: JobId,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    token: Annotated[
        str | None,
        Query(description="for browsers (EventSource sends no headers): POST .../events-token"),
    ] = None,
) -> StreamingResponse:
    """`Authorization: Bearer`, or `?token=` from `POST /v1/jobs/{jobId}/events-token`.

    Each event is `event: job`, `id: <digest>`, `data: <the job document>`; comments keep a
    quiet stream alive; the stream ends after the document of the ended job. Reconnect with
    `Last-Event-ID` to skip a document already seen.
    """
    hub: EventHub = request.app.state.events_hub

    def read() -> Document | None:
        return hub.read(job_id) if JOB_ID.fullmatch(job_id) else None

    # Watching before the first read: a change between the two is not missed.
    queue = hub.watch(job_id)
    try:
        first = await to_thread.run_sync(read)
    except BaseException:
        hub.unwatch(job_id, queue)
        raise
    if first is None:
        hub.unwatch(job_id, queue)
        raise ApiError(404, "not_found", f"no job {job_id!r}", "jobId")
    return StreamingResponse(
        stream(hub, queue, first, last_event_id, settings.events_keepalive),
        media_type="text/event-stream",
        headers={
            "Cache-Control": "no-cache, no-transform",
            # nginx buffers responses unless told not to; an event stream must not wait.
            "X-Accel-Buffering": "no",
        },
    )


class EventsToken(CamelModel):
    token: str
    expires_at: datetime
    url: str


@router.post(
    "/v1/jobs/{jobId}/events-token",
    response_model=EventsToken,
    responses=responses(401, 404),
    summary="A short-lived token for a browser's EventSource on this job's events",
)
def job_events_token(job_id: JobId, session: SessionDep, settings: SettingsDep) -> EventsToken:
    """Valid EVENTS_TOKEN_TTL seconds, for this job's event stream only."""
    if not JOB_ID.fullmatch(job_id) or session.get(Job, job_id) is None:
        raise ApiError(404, "not_found", f"no job {job_id!r}", "jobId")
    token, expires = events_token(settings.auth_tokens, job_id, settings.events_token_ttl)
    return EventsToken(
        token=token,
        expires_at=datetime.fromtimestamp(expires, UTC),
        url=f"/v1/jobs/{job_id}/events?token={token}",
    )
