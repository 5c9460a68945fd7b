"""Starting a render, watching a job, cancelling it."""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, BackgroundTasks, Header, Path, Query, Response
from sqlmodel import Session

from api import service
from api.auth import Caller
from api.deps import (
    EnqueuerDep,
    ProjectId,
    Revoker,
    RevokerDep,
    SessionDep,
    SettingsDep,
    StorageDep,
)
from api.errors import ApiError, responses
from api.schemas import (
    CacheSummary,
    JobView,
    RenderAccepted,
    RenderRequest,
    SceneProgress,
    StageCount,
    StagePage,
    StageView,
)
from pipeline import registry
from tasks import jobs, watchdog
from tasks.models import Job, JobStatus, JobTask, StageStatus, Webhook
from tasks.settings import Settings
from tasks.storage import JOB_ID, Storage

log = logging.getLogger("render.api.jobs")

router = APIRouter(tags=["jobs"])


@router.post(
    "/v1/projects/{id}/render",
    status_code=202,
    response_model=RenderAccepted,
    responses={
        **responses(401, 409, 422, 503, 507),
        202: {
            "description": "queued; `Location` points at the job",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
    },
    summary="Queue a render of the project",
)
def render(
    project_id: ProjectId,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    enqueue: EnqueuerDep,
    caller: Caller,
    body: RenderRequest | None = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            description="the same key and body from the same token return the same job "
            "(another body: 409); each token of AUTH_TOKEN has keys of its own",
        ),
    ] = None,
) -> RenderAccepted:
    """Render the stored spec with these options (omitted ones take the DEFAULT_* settings)."""
    job = service.submit_render(
        session,
        settings,
        storage,
        enqueue,
        project_id,
        body or RenderRequest(),
        idempotency_key,
        caller=caller,
    )
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return RenderAccepted(job_id=job.id, status=job.status)


JobId = Annotated[
    str, Path(alias="jobId", description="the id returned by POST /v1/projects/{id}/render")
]


def _load(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id) if JOB_ID.fullmatch(job_id) else None
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id!r}", "jobId")
    return job


def _scene_progress(index: int, parts: list[JobTask]) -> SceneProgress:
    """A scene's build from its one stage row or its chunks' rows."""
    statuses = {StageStatus(row.status) for row in parts}
    status = next(
        (s for s in (StageStatus.FAILED, StageStatus.CANCELLED) if s in statuses),
        StageStatus.DONE if statuses == {StageStatus.DONE} else None,
    )
    if status is None:  # some chunks may be done: waiting for the others is PENDING
        status = StageStatus.RUNNING if StageStatus.RUNNING in statuses else StageStatus.PENDING
    clips = {row.clip for row in parts}
    # Null until every chunk is built; chunks that came about differently (some cached, some
    # encoded) make an encoded clip.
    clip = None if None in clips else clips.pop() if len(clips) == 1 else "encoded"
    weight = sum(row.weight for row in parts)
    progress = (
        sum(row.weight * row.progress for row in parts) / weight
        if weight > 0
        else sum(row.progress for row in parts) / len(parts)
    )
    return SceneProgress(
        index=index,
        status=status,
        progress=progress,
        cached=clip == "cached",
        clip=clip,
        chunks=len(parts),
    )


def _stage_view(row: JobTask) -> StageView:
    return StageView.model_validate({**row.model_dump(), "cached": row.clip == "cached"})


def _notable(rows: list[JobTask], settings: Settings) -> list[JobTask]:
    """A huge job's runs worth showing one by one: the stages that run once, and the runs
    running or failed; at most JOB_STAGES_INLINE, so the document stays small to poll."""
    picked = [
        row
        for row in rows
        if registry.scene_of(row.name) is None
        or row.status in (StageStatus.RUNNING, StageStatus.FAILED)
    ]
    return picked[: settings.job_stages_inline]


def _stage_counts(rows: list[JobTask]) -> list[StageCount]:
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        name = registry.parse_label(row.name)[0].name
        tally = counts.setdefault(name, {"units": 0})
        tally["units"] += 1
        status = str(row.status).lower()
        tally[status] = tally.get(status, 0) + 1
    return [StageCount(name=name, **tally) for name, tally in counts.items()]


def job_view(session: Session, settings: Settings, storage: Storage, job: Job) -> JobView:
    rows = jobs.job_tasks(session, job.id)
    builds: dict[int, list[JobTask]] = {}
    for row in rows:
        if (scene := registry.clip_scene_of(row.name)) is not None:
            builds.setdefault(scene, []).append(row)
    scenes = [_scene_progress(scene, parts) for scene, parts in builds.items()]
    shown = rows if len(rows) <= settings.job_stages_inline else _notable(rows, settings)
    hits = [row for row in rows if row.clip == "cached"]
    cache = CacheSummary(
        hits=len(hits),
        encoded=sum(row.clip == "encoded" for row in rows),
        bytes_saved=sum(row.clip_bytes for row in hits),
    )
    return JobView.model_validate(
        {
            **job.model_dump(),
            "scenes": scenes,
            "stages": [_stage_view(row) for row in shown],
            "stages_total": len(rows),
            "stage_counts": _stage_counts(rows),
            "logs": storage.tail_log(job.id, 50),
            "waiting": watchdog.waiting_reason(session, settings, job),
            "cache": cache,
            "webhook": _webhook_view(webhook)
            if (webhook := session.get(Webhook, job.id))
            else None,
        }
    )


# --- the callback's secrets ----------------------------------------------------------------
# A callback URL often carries its receiver's secret (`?token=...`, `user:password@`). The job
# document is read by more than the bearer-token holder (an events-token holder, a browser's
# EventSource, the webhook receiver itself), so it never echoes one back: the delivery reads
# the full URL from its row, the document shows the URL without them.

REDACTED = "[redacted]"
_USERINFO = re.compile(r"(?<=//)[^/?#\s@]*@")
_QUERY = re.compile(r"\?[^\s#'\"]+")


def redacted_url(url: str) -> str:
    """`url` without credentials, query string or fragment: `https://h/p?[redacted]`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    host = parts.netloc.rpartition("@")[2]
    query = REDACTED if parts.query else ""
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, host, parts.path, query, fragment))


def redacted_text(text: str) -> str:
    """A delivery error without the credentials and query strings of the URLs it names."""
    return _QUERY.sub("?" + REDACTED, _USERINFO.sub(REDACTED + "@", text))


def _webhook_view(webhook: Webhook) -> dict[str, Any]:
    view = webhook.model_dump()
    view["url"] = redacted_url(webhook.url)
    if webhook.last_error is not None:
        view["last_error"] = redacted_text(webhook.last_error)
    return view


def job_document(session: Session, settings: Settings, job: Job) -> dict[str, Any]:
    """The job as GET /v1/jobs/{id} shows it, as JSON: what webhooks and the event stream send."""
    view = job_view(session, settings, Storage(settings.render_storage), job)
    return view.model_dump(mode="json", by_alias=True)


@router.get(
    "/v1/jobs/{jobId}",
    response_model=JobView,
    responses=responses(401, 404),
    summary="A job's status, progress, stages and last log lines",
)
def get_job(
    job_id: JobId, session: SessionDep, settings: SettingsDep, storage: StorageDep
) -> JobView:
    return job_view(session, settings, storage, _load(session, job_id))


@router.get(
    "/v1/jobs/{jobId}/stages",
    response_model=StagePage,
    responses=responses(401, 404),
    summary="A job's stage runs, a page at a time, in running order",
)
def get_job_stages(
    job_id: JobId,
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, description="runs to skip")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="runs to return")] = 200,
) -> StagePage:
    job = _load(session, job_id)
    rows = jobs.job_tasks(session, job.id)
    return StagePage(
        total=len(rows),
        offset=offset,
        limit=limit,
        stages=[_stage_view(row) for row in rows[offset : offset + limit]],
    )


@router.post(
    "/v1/jobs/{jobId}/cancel",
    status_code=202,
    response_model=JobView,
    responses=responses(401, 404, 409),
    summary="Cancel a job: at once, or at its running stage's next check (within a second)",
)
def cancel_job(
    job_id: JobId,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    revoke: RevokerDep,
    background: BackgroundTasks,
) -> JobView:
    job = _load(session, job_id)
    if JobStatus(job.status).finished:
        raise ApiError(409, "job_finished", f"job {job_id} already finished as {job.status}")
    job = jobs.request_cancel(session, job_id, watchdog.cancel_live_within(settings)) or job
    session.commit()
    # After the response: the flag in the database is what the workers honour; revoking the
    # queued tasks only saves them the start-up, and must not hold the client up.
    labels = [row.name for row in jobs.job_tasks(session, job_id)]
    background.add_task(_revoke_quietly, revoke, job_id, labels)
    log.info("job %s: cancel requested (now %s)", job_id, job.status)
    return job_view(session, settings, storage, job)


def _revoke_quietly(revoke: Revoker, job_id: str, labels: list[str]) -> None:
    try:
        revoke(job_id, labels)
    except Exception as exc:
        log.warning("job %s: could not revoke its tasks: %s", job_id, exc)
