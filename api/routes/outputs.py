"""Rendered files: the listing of `output/`, the video itself (Range and HEAD supported) and
its poster frame."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from api import service
from api.deps import ProjectId, SessionDep, StorageDep
from api.errors import ApiError, responses
from api.schemas import OutputFile

router = APIRouter(prefix="/v1/projects", tags=["outputs"])


@router.get(
    "/{id}/outputs",
    response_model=list[OutputFile],
    responses=responses(401, 404, 422),
    summary="Files under the project's output/ folder",
)
def list_outputs(project_id: ProjectId, storage: StorageDep) -> list[OutputFile]:
    return service.output_files(storage, project_id)


# Every file is sent with its own type and `nosniff`, so a browser never reads a caption
# file (text from the narration) or an unknown file as HTML or script.
_NOSNIFF = {"X-Content-Type-Options": "nosniff"}
_FILE_TYPES: dict[str, Any] = {
    "video/mp4": {},
    "text/vtt": {},
    "application/x-subrip": {},
    "image/jpeg": {},
}
_VIDEO_RESPONSES: dict[int | str, dict[str, Any]] = {
    **responses(400, 401, 404, 416, 422),
    200: {"content": _FILE_TYPES, "description": "the whole file"},
    206: {"content": _FILE_TYPES, "description": "the requested byte range"},
}


@router.get(
    "/{id}/outputs/video",
    response_class=FileResponse,
    responses=_VIDEO_RESPONSES,
    summary="Stream a rendered video, or its captions (name=video.vtt, video.srt)",
)
@router.head(
    "/{id}/outputs/video",
    response_class=FileResponse,
    responses=_VIDEO_RESPONSES,
    summary="A rendered video's headers (size, type)",
    operation_id="head_video",
)
def get_video(
    project_id: ProjectId,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    name: Annotated[
        str | None,
        Query(description="a file in output/; default: the last succeeded job's, else video.mp4"),
    ] = None,
) -> FileResponse:
    """The video, streamed in chunks; `Range: bytes=a-b` gets 206, a range past the end 416.

    Any file of output/ by `name`, with its type: `.vtt` as text/vtt, `.srt` as
    application/x-subrip, `.mp4` as video/mp4."""
    path = service.output_video(session, storage, project_id, name)
    size = path.stat().st_size
    # Checked here so a bad range gets the common error shape, not Starlette's plain text.
    http_range = request.headers.get("range")
    if http_range is not None:
        try:
            FileResponse._parse_range_header(http_range, size)
        except MalformedRangeHeader as exc:
            raise ApiError(400, "bad_range", f"malformed Range header: {exc.content}") from None
        except RangeNotSatisfiable:
            raise ApiError(
                416,
                "range_not_satisfiable",
                f"Range {http_range!r} is outside the file ({size} bytes)",
                None,
                {"Content-Range": f"bytes */{size}"},
            ) from None
    return FileResponse(
        path,
        media_type=service.content_type(path.name),
        filename=path.name,
        content_disposition_type="inline",
        headers=_NOSNIFF,
    )


_POSTER_RESPONSES: dict[int | str, dict[str, Any]] = {
    **responses(401, 404, 422),
    200: {"content": {"image/jpeg": {}}, "description": "the poster frame"},
}


@router.get(
    "/{id}/outputs/poster",
    response_class=FileResponse,
    responses=_POSTER_RESPONSES,
    summary="A rendered video's poster frame (JPEG)",
)
@router.head(
    "/{id}/outputs/poster",
    response_class=FileResponse,
    responses=_POSTER_RESPONSES,
    summary="A poster's headers (size, type)",
    operation_id="head_poster",
)
def get_poster(
    project_id: ProjectId,
    session: SessionDep,
    storage: StorageDep,
    name: Annotated[
        str | None,
        Query(
            description="a video in output/ (its poster: demo.mp4 → demo.jpg) or a JPEG there "
            "(scene_02.jpg); default: the last succeeded job's video"
        ),
    ] = None,
) -> FileResponse:
    """`<name>.jpg`, the frame FINALIZE took from the video (renderOptions.posterTime)."""
    path = service.output_poster(session, storage, project_id, name)
    return FileResponse(
        path,
        media_type="image/jpeg",
        filename=path.name,
        content_disposition_type="inline",
        headers=_NOSNIFF,
    )
