"""Uploading a project's images, voiceovers and music."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from api.deps import BlobsDep, ProjectId, SettingsDep, StorageDep
from api.errors import responses
from api.schemas import StoredAsset
from api.uploads import UploadLimits, receive_uploads, require_free_space, store_uploads
from pipeline import assets
from tasks.workspace import publish_inputs

log = logging.getLogger("render.api.assets")

router = APIRouter(prefix="/v1/projects", tags=["assets"])

# The body is read as a stream (api/uploads.py), not by FastAPI, so its form is described here.
UPLOAD_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "title": "AssetUpload",
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "title": "Files",
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "one or more files",
                        },
                        "subdir": {
                            "title": "Subdir",
                            "type": "string",
                            "enum": list(assets.NAMES),
                            "description": f"{assets.spoken_names()}; inferred from the "
                            "content when absent",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/{id}/assets",
    status_code=201,
    response_model=list[StoredAsset],
    responses=responses(400, 401, 413, 415, 422, 503, 507),
    summary="Upload one or more asset files",
    openapi_extra=UPLOAD_FORM,
)
async def upload_assets(
    project_id: ProjectId,
    settings: SettingsDep,
    storage: StorageDep,
    blobs: BlobsDep,
    request: Request,
) -> list[StoredAsset]:
    """Store files under `input/<subdir>/`, checked by their bytes.

    Images must decode and have at most MAX_IMAGE_PIXELS pixels; audio must be a container
    with an audio stream FFmpeg can decode. The files of one request are at most MAX_UPLOAD_MB
    together, a project's assets at most PROJECT_MAX_MB and PROJECT_MAX_FILES: each is
    checked while the body arrives. All or nothing: if any file is refused, none is kept.
    """
    require_free_space(storage.root, settings.min_free_mb, "an upload")
    project = storage.project(project_id)
    limits = UploadLimits.of(settings)
    async with receive_uploads(request, storage.root, project, limits) as form:
        stored = await run_in_threadpool(
            store_uploads, storage.root, project, form.files, form.subdir, limits
        )
    # With an object store, on to the bucket (multipart, streamed from the checked file).
    await run_in_threadpool(publish_inputs, blobs, project)
    for item in stored:
        log.info(
            "project %s: stored %s/%s (%d bytes, sha256 %s)",
            project_id,
            item.subdir,
            item.name,
            item.size,
            item.sha256,
        )
    return [StoredAsset.model_validate(item, from_attributes=True) for item in stored]
