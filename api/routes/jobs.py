"""Starting a render, watching a job, cancelling it."""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Response
from pydantic import ValidationError
from sqlmodel import Session

from api.deps import (
    EnqueuerDep,
    ProjectId,
    Revoker,
    RevokerDep,
    SessionDep,
    SettingsDep,
    StorageDep,
)
from api.errors import ApiError, first_error, responses
from api.routes.projects import missing_assets, read_spec, upsert_project
from api.schemas import JobView, RenderAccepted, RenderRequest, SceneProgress, StageView
from tasks import jobs
from tasks.models import Job, JobStatus
from tasks.storage import JOB_ID, Storage

log = logging.getLogger("render.api.jobs")

router = APIRouter(tags=["jobs"])

_SCENE = re.compile(r"^SCENE_BUILD\[(\d+)\]$")
# Model-level option errors ("xfade (0.7) must be shorter than minShot ...") start with the
# field they are about; name that field rather than the whole object.
_LEADING_FIELD = re.compile(r"^(?:Value error, )?([a-zA-Z]+) \(")


@router.post(
    "/v1/projects/{id}/render",
    status_code=202,
    response_model=RenderAccepted,
    responses={
        **responses(401, 409, 422, 503),
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
    body: RenderRequest | None = None,
) -> RenderAccepted:
    """Render the stored spec with these options (omitted ones take the DEFAULT_* settings)."""
    request = body or RenderRequest()
    given = (
        request.render_options.model_dump(by_alias=True, exclude_unset=True)
        if request.render_options
        else {}
    )
    try:
        options = settings.render_options(given)
    except ValidationError as exc:
        raise _options_error(exc) from None

    project = storage.project(project_id)
    spec = read_spec(project) if project.root.is_dir() else None
    if spec is None:
        raise ApiError(
            409,
            "no_scenes",
            f"project {project_id!r} has no scenes yet; PUT /v1/projects/{project_id}/scenes first",
        )
    refs = spec.referenced_assets(options.voice_dir)
    if options.music:
        refs.append(("music", options.music))
    missing = missing_assets(project, refs)
    if missing:
        raise ApiError(
            422,
            "missing_assets",
            f"{len(missing)} referenced file(s) not uploaded: {', '.join(missing)}",
            "assets",
        )

    upsert_project(session, project_id, spec)
    job = jobs.create_job(
        session,
        project_id=project_id,
        output_name=request.output_name,
        options=options.model_dump(by_alias=True),
        scene_count=len(spec.scenes),
    )
    session.commit()
    try:
        enqueue(job.id, len(spec.scenes))
    except Exception as exc:
        log.error("job %s: could not enqueue: %s", job.id, exc)
        jobs.transition(
            session, job.id, JobStatus.FAILED, error=f"could not reach the broker: {exc}"
        )
        session.commit()
        raise ApiError(
            503, "broker_unavailable", f"could not reach the broker: {exc}; job {job.id} failed"
        ) from None
    log.info("job %s: queued for project %s (%d scenes)", job.id, project_id, len(spec.scenes))
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return RenderAccepted(job_id=job.id, status=JobStatus.QUEUED)


def _options_error(exc: ValidationError) -> ApiError:
    errors = list(exc.errors())
    if errors and not errors[0]["loc"] and (m := _LEADING_FIELD.match(errors[0]["msg"])):
        errors[0] = {**errors[0], "loc": (m[1],)}
    code, message, field = first_error(errors, prefix="renderOptions")
    return ApiError(422, code, message, field)


JobId = Annotated[
    str, Path(alias="jobId", description="the id returned by POST /v1/projects/{id}/render")
]


def _load(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id) if JOB_ID.match(job_id) else None
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id!r}", "jobId")
    return job


def job_view(session: Session, storage: Storage, job: Job) -> JobView:
    rows = jobs.job_tasks(session, job.id)
    scenes = [
        SceneProgress(index=int(m[1]), status=row.status, progress=row.progress)
        for row in rows
        if (m := _SCENE.match(row.name))
    ]
    stages = [
        StageView(
            name=row.name,
            status=row.status,
            progress=row.progress,
            attempts=row.attempts,
            worker=row.worker,
            started_at=jobs.as_utc(row.started_at),
            finished_at=jobs.as_utc(row.finished_at),
        )
        for row in rows
    ]
    return JobView(
        id=job.id,
        project_id=job.project_id,
        status=job.status,
        stage=job.stage,
        progress=job.progress,
        error=job.error,
        created_at=jobs.as_utc(job.created_at),
        started_at=jobs.as_utc(job.started_at),
        finished_at=jobs.as_utc(job.finished_at),
        output_name=job.output_name,
        options=job.options,
        cancel_requested=job.cancel_requested,
        scenes=scenes,
        stages=stages,
        logs=storage.tail_log(job.id, 50),
    )


@router.get(
    "/v1/jobs/{jobId}",
    response_model=JobView,
    responses=responses(401, 404),
    summary="A job's status, progress, stages and last log lines",
)
def get_job(job_id: JobId, session: SessionDep, storage: StorageDep) -> JobView:
    return job_view(session, storage, _load(session, job_id))


@router.post(
    "/v1/jobs/{jobId}/cancel",
    status_code=202,
    response_model=JobView,
    responses=responses(401, 404, 409),
    summary="Cancel a job (a queued one at once, a running one at its next check)",
)
def cancel_job(
    job_id: JobId,
    session: SessionDep,
    storage: StorageDep,
    revoke: RevokerDep,
    background: BackgroundTasks,
) -> JobView:
    job = _load(session, job_id)
    if JobStatus(job.status).finished:
        raise ApiError(409, "job_finished", f"job {job_id} already finished as {job.status}")
    job = jobs.request_cancel(session, job_id) or job
    session.commit()
    # After the response: the flag in the database is what the workers honour; revoking the
    # queued tasks only saves them the start-up, and must not hold the client up.
    background.add_task(_revoke_quietly, revoke, job_id, job.scene_count)
    log.info("job %s: cancel requested (now %s)", job_id, job.status)
    return job_view(session, storage, job)


def _revoke_quietly(revoke: Revoker, job_id: str, scene_count: int) -> None:
    try:
        revoke(job_id, scene_count)
    except Exception as exc:
        log.warning("job %s: could not revoke its tasks: %s", job_id, exc)
