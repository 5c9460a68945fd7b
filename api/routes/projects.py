"""A project's spec (`input/scenes.json`), its versions and the project overview."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path

from api import service
from api.deps import BlobsDep, ProjectId, SessionDep, StorageDep
from api.errors import responses
from api.schemas import (
    ProjectSummary,
    ProjectView,
    SpecResponse,
    VersionList,
    VersionSummary,
    VersionView,
)
from tasks.workspace import publish_inputs

router = APIRouter(prefix="/v1/projects", tags=["projects"])

# The body is read as JSON and checked by the service: a template's placeholders may stand
# where the spec wants a number (`"duration": "{{seconds}}"`), so the spec's own model is
# what its resolution is checked against, not the body as sent. Documented as that model.
_SPEC_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/ProjectSpec"},
            }
        },
    }
}


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
    responses=responses(401, 422, 503),
    summary="Store the project's spec (scenes.json) as its next version",
    openapi_extra=_SPEC_BODY,
)
def put_scenes(
    project_id: ProjectId,
    session: SessionDep,
    storage: StorageDep,
    blobs: BlobsDep,
    spec: Annotated[Any, Body(include_in_schema=False)],
) -> SpecResponse:
    """Validate the whole spec and store it as `input/scenes.json` (atomically) and as the
    project's next immutable version (docs/templates.md).

    Creates the project if it is new. The spec may be a template: strings holding
    `{{name}}` placeholders and its `variables`. The answer lists the referenced files not
    uploaded yet.
    """
    stored = service.store_spec(session, storage, project_id, spec)
    publish_inputs(blobs, storage.project(project_id))  # with an object store: on to it
    return SpecResponse.model_validate(
        {
            **stored.body,
            "missingAssets": stored.missing,
            "version": stored.version.number,
            "sha256": stored.version.sha256,
            "variables": stored.template.variables,
        }
    )


@router.get(
    "/{id}",
    response_model=ProjectView,
    responses=responses(401, 404, 422),
    summary="The project: spec, assets present and missing, latest jobs",
)
def get_project(project_id: ProjectId, session: SessionDep, storage: StorageDep) -> ProjectView:
    return service.project_view(session, storage, project_id)


@router.get(
    "/{id}/versions",
    response_model=VersionList,
    responses=responses(401, 404, 422),
    summary="The project's versions: one per PUT of its scenes, oldest first",
)
def list_versions(project_id: ProjectId, session: SessionDep, storage: StorageDep) -> VersionList:
    rows = service.project_versions(session, storage, project_id)
    return VersionList(
        versions=[VersionSummary.model_validate(row, from_attributes=True) for row in rows]
    )


@router.get(
    "/{id}/versions/{n}",
    response_model=VersionView,
    responses=responses(401, 404, 422),
    summary="One version of the project's spec, as it was stored",
)
def get_version(
    project_id: ProjectId,
    session: SessionDep,
    storage: StorageDep,
    number: Annotated[int, Path(alias="n", ge=1, description="the version's number")],
) -> VersionView:
    row = service.project_version(session, storage, project_id, number)
    return VersionView.model_validate(row, from_attributes=True)
