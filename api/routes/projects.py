"""A project's spec (`input/scenes.json`) and the project overview."""

from __future__ import annotations

from fastapi import APIRouter

from api import service
from api.deps import ProjectId, SessionDep, StorageDep
from api.errors import responses
from api.schemas import ProjectSummary, ProjectView, SpecResponse
from pipeline.spec import ProjectSpec

router = APIRouter(prefix="/v1/projects", tags=["projects"])


@router.get(
    "",
    response_model=list[ProjectSummary],
    responses=responses(401),
    summary="Every project: title, updated time, newest job, poster",
)
def list_projects(session: SessionDep) -> list[ProjectSummary]:
    """The last changed first."""
    return service.project_list(session)


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
    missing = service.store_spec(session, storage, project_id, spec)
    return SpecResponse(**spec.model_dump(), missing_assets=missing)


@router.get(
    "/{id}",
    response_model=ProjectView,
    responses=responses(401, 404, 422),
    summary="The project: spec, assets present and missing, latest jobs",
)
def get_project(project_id: ProjectId, session: SessionDep, storage: StorageDep) -> ProjectView:
    return service.project_view(session, storage, project_id)
