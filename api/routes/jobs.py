"""Starting a render, watching a job, cancelling it."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header, Path, Query, Response
from sqlmodel import Session

from api import documents, service
from api.auth import Caller
from api.deps import (
    BlobsDep,
    EnqueuerDep,
    ProjectId,
    Revoker,
    RevokerDep,
    SessionDep,
    SettingsDep,
    StorageDep,
)
from api.errors import ApiError, responses
from api.schemas import JobView, RenderAccepted, RenderRequest, RerenderRequest, StagePage
from tasks import jobs, watchdog
from tasks.models import Job, JobStatus
from tasks.storage import JOB_ID

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
    blobs: BlobsDep,
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
        blobs=blobs,
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


@router.get(
    "/v1/jobs/{jobId}",
    response_model=JobView,
    responses=responses(401, 404),
    summary="A job's status, progress, stages and last log lines",
)
def get_job(
    job_id: JobId, session: SessionDep, settings: SettingsDep, storage: StorageDep
) -> JobView:
    return documents.job_view(session, settings, storage, _load(session, job_id))


@router.get(
    "/v1/jobs/{jobId}/spec",
    response_model=dict[str, Any],
    responses=responses(401, 404, 409),
    summary="The spec the job renders: its version's template resolved with its data",
)
def get_job_spec(job_id: JobId, session: SessionDep) -> dict[str, Any]:
    job = _load(session, job_id)
    if job.spec is None:
        raise ApiError(
            409, "no_spec", f"job {job_id} was queued before jobs stored the spec they render"
        )
    return job.spec


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
        stages=[documents.stage_view(row) for row in rows[offset : offset + limit]],
    )


@router.post(
    "/v1/jobs/{jobId}/rerender",
    status_code=202,
    response_model=RenderAccepted,
    responses=responses(401, 404, 409, 422, 503),
    summary="Render again exactly what a job rendered: its spec, options and files",
)
def rerender_job(
    job_id: JobId,
    response: Response,
    session: SessionDep,
    storage: StorageDep,
    enqueue: EnqueuerDep,
    body: RerenderRequest | None = None,
) -> RenderAccepted:
    """A new job with the job's resolved spec, options and version; every file it read must
    still have the bytes it had (its recorded sha256), else 409 naming each one gone or
    changed."""
    job = service.rerender(
        session, storage, enqueue, _load(session, job_id).id, body.output_name if body else None
    )
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return RenderAccepted(job_id=job.id, status=job.status)


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
    return documents.job_view(session, settings, storage, job)


def _revoke_quietly(revoke: Revoker, job_id: str, labels: list[str]) -> None:
    try:
        revoke(job_id, labels)
    except Exception as exc:
        log.warning("job %s: could not revoke its tasks: %s", job_id, exc)
