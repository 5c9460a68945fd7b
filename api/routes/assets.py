"""Uploading a project's images, voiceovers and music."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from starlette.concurrency import run_in_threadpool

from api.deps import ProjectId, SettingsDep, StorageDep
from api.errors import responses
from api.schemas import StoredAsset, Subdir
from api.uploads import Upload, check_subdir, clean_name, require_free_space, store_uploads

log = logging.getLogger("render.api.assets")

router = APIRouter(prefix="/v1/projects", tags=["assets"])


@router.post(
    "/{id}/assets",
    status_code=201,
    response_model=list[StoredAsset],
    responses=responses(400, 401, 413, 415, 422),
    summary="Upload one or more asset files",
)
async def upload_assets(
    project_id: ProjectId,
    settings: SettingsDep,
    storage: StorageDep,
    files: Annotated[list[UploadFile], File(description="one or more files")],
    subdir: Annotated[
        Subdir | None,
        Form(description="images, voiceovers or music; inferred from the content when absent"),
    ] = None,
) -> list[StoredAsset]:
    """Store files under `input/<subdir>/`, checked by their bytes.

    Images must decode; audio must be a container with an audio stream FFmpeg can decode.
    Each file is at most MAX_UPLOAD_MB. All or nothing: if any file is refused, none is kept.
    """
    require_free_space(storage.root, settings.min_free_mb, "an upload")
    uploads = [Upload(clean_name(f.filename), f.file) for f in files]
    try:
        stored = await run_in_threadpool(
            store_uploads,
            storage.root,
            storage.project(project_id),
            uploads,
            check_subdir(subdir),
            settings.max_upload_bytes,
        )
    finally:
        for f in files:
            await f.close()
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
