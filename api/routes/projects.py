"""A project's spec (`input/scenes.json`) and the project overview."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from pydantic import ValidationError
from sqlmodel import Session

from api.deps import ProjectId, SessionDep, StorageDep
from api.errors import ApiError, responses
from api.schemas import JobSummary, ProjectAssets, ProjectView, SpecResponse
from pipeline.atomic import write_text_atomic
from pipeline.project import INPUT_SUBDIRS, ProjectDir
from pipeline.spec import ProjectSpec
from tasks.jobs import as_utc, latest_jobs
from tasks.models import Project, utcnow
from tasks.storage import Storage

log = logging.getLogger("render.api.projects")

router = APIRouter(prefix="/v1/projects", tags=["projects"])


def existing_project(storage: Storage, project_id: str) -> ProjectDir:
    project = storage.project(project_id)
    if not project.root.is_dir():
        raise ApiError(404, "not_found", f"no project {project_id!r}", "id")
    return project


def read_spec(project: ProjectDir) -> ProjectSpec | None:
    """The stored spec, or None when there is none; a hand-edited bad file is the user's 422."""
    try:
        raw = project.spec_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return ProjectSpec.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "scenes.json"
        raise ApiError(
            422, "invalid_spec", f"input/scenes.json is not valid: {where}: {err['msg']}"
        ) from None


def missing_assets(project: ProjectDir, refs: list[tuple[str, str]]) -> list[str]:
    return [
        f"{subdir}/{name}" for subdir, name in refs if not project.asset(subdir, name).is_file()
    ]


def asset_names(project: ProjectDir) -> ProjectAssets:
    found: dict[str, list[str]] = {}
    for subdir in INPUT_SUBDIRS:
        folder = project.input / subdir
        names = (
            sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
            if folder.is_dir()
            else []
        )
        found[subdir] = names
    return ProjectAssets.model_validate(found)


def upsert_project(session: Session, project_id: str, spec: ProjectSpec) -> Project:
    row = session.get(Project, project_id)
    if row is None:
        row = Project(id=project_id)
    row.title = spec.title
    row.scene_count = len(spec.scenes)
    row.updated_at = utcnow()
    session.add(row)
    return row


@router.put(
    "/{id}/scenes",
    response_model=SpecResponse,
    responses=responses(401, 422),
    summary="Store the project's spec (scenes.json)",
)
def put_scenes(
    project_id: ProjectId, spec: ProjectSpec, session: SessionDep, storage: StorageDep
) -> SpecResponse:
    """Validate the whole spec and store it as `input/scenes.json` (atomically).

    Creates the project if it is new. The answer lists the referenced files not uploaded yet.
    """
    project = storage.project(project_id)
    upsert_project(session, project_id, spec)
    session.flush()
    project.create()
    write_text_atomic(project.spec_file, spec.model_dump_json(indent=2, exclude_none=True) + "\n")
    session.commit()
    log.info("project %s: stored scenes.json with %d scenes", project_id, len(spec.scenes))
    return SpecResponse(
        **spec.model_dump(), missing_assets=missing_assets(project, spec.referenced_assets())
    )


@router.get(
    "/{id}",
    response_model=ProjectView,
    responses=responses(401, 404, 422),
    summary="The project: spec, assets present and missing, latest jobs",
)
def get_project(project_id: ProjectId, session: SessionDep, storage: StorageDep) -> ProjectView:
    project = existing_project(storage, project_id)
    spec = read_spec(project)
    row = session.get(Project, project_id)
    jobs = [
        JobSummary(
            job_id=job.id,
            status=job.status,
            stage=job.stage,
            progress=job.progress,
            output_name=job.output_name,
            error=job.error,
            created_at=as_utc(job.created_at),
            finished_at=as_utc(job.finished_at),
        )
        for job in latest_jobs(session, project_id)
    ]
    return ProjectView(
        id=project_id,
        title=spec.title if spec else (row.title if row else None),
        spec=spec,
        assets=asset_names(project),
        missing_assets=missing_assets(project, spec.referenced_assets()) if spec else [],
        jobs=jobs,
    )
