"""Rendered files: the listing of `output/`, the video itself (Range and HEAD supported) and
its poster frame, all read through the storage interface (`tasks.blobstore`).

A file the storage has on this machine is sent as a file (Starlette's `FileResponse`: Range,
HEAD, ETag and Last-Modified as ever); any other is streamed from the store (`_streamed`: a
range read as a ranged read of the store), or with OUTPUT_REDIRECT=presigned answered with a
302 to a short-lived presigned URL of the object store."""

from __future__ import annotations

from collections.abc import Iterator
from email.utils import formatdate
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from api import service
from api.deps import BlobsDep, ProjectId, SessionDep, SettingsDep, StorageDep
from api.errors import ApiError, responses
from api.schemas import OutputFile
from tasks.blobstore import Blob, BlobStore

router = APIRouter(prefix="/v1/projects", tags=["outputs"])


@router.get(
    "/{id}/outputs",
    response_model=list[OutputFile],
    responses=responses(401, 404, 422),
    summary="Files under the project's output/ folder",
)
def list_outputs(project_id: ProjectId, storage: StorageDep, blobs: BlobsDep) -> list[OutputFile]:
    return service.output_files(storage, blobs, project_id)


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
    **responses(400, 401, 404, 416, 422, 503),
    200: {"content": _FILE_TYPES, "description": "the whole file"},
    206: {"content": _FILE_TYPES, "description": "the requested byte range"},
    302: {"description": "OUTPUT_REDIRECT=presigned: the file at a presigned URL (Location)"},
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
    blobs: BlobsDep,
    settings: SettingsDep,
    name: Annotated[
        str | None,
        Query(description="a file in output/; default: the last succeeded job's, else video.mp4"),
    ] = None,
) -> Response:
    """The video, streamed in chunks; `Range: bytes=a-b` gets 206, a range past the end 416.

    Any file of output/ by `name`, with its type: `.vtt` as text/vtt, `.srt` as
    application/x-subrip, `.mp4` as video/mp4."""
    blob = service.output_video(session, storage, blobs, project_id, name)
    size = blob.size
    ranges: list[tuple[int, int]] = []
    # Checked here so a bad range gets the common error shape, not Starlette's plain text.
    http_range = request.headers.get("range")
    if http_range is not None:
        try:
            ranges = FileResponse._parse_range_header(http_range, size)
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
    if settings.output_redirect == "presigned" and (url := blobs.url(blob.key)) is not None:
        return RedirectResponse(url, status_code=302)
    return _sent(blobs, blob, service.content_type(blob.name), request, ranges)


_POSTER_RESPONSES: dict[int | str, dict[str, Any]] = {
    **responses(401, 404, 422, 503),
    200: {"content": {"image/jpeg": {}}, "description": "the poster frame"},
    302: {"description": "OUTPUT_REDIRECT=presigned: the poster at a presigned URL (Location)"},
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
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    blobs: BlobsDep,
    settings: SettingsDep,
    name: Annotated[
        str | None,
        Query(
            description="a video in output/ (its poster: demo.mp4 → demo.jpg) or a JPEG there "
            "(scene_02.jpg); default: the last succeeded job's video"
        ),
    ] = None,
) -> Response:
    """`<name>.jpg`, the frame FINALIZE took from the video (renderOptions.posterTime)."""
    blob = service.output_poster(session, storage, blobs, project_id, name)
    if settings.output_redirect == "presigned" and (url := blobs.url(blob.key)) is not None:
        return RedirectResponse(url, status_code=302)
    return _sent(blobs, blob, "image/jpeg", request, [])


def _sent(
    blobs: BlobStore,
    blob: Blob,
    media_type: str,
    request: Request,
    ranges: list[tuple[int, int]],
) -> Response:
    """The blob as the response: the file itself where the store has one on this machine,
    else streamed from the store."""
    path = blobs.local_path(blob.key)
    if path is not None:
        return FileResponse(
            path,
            media_type=media_type,
            filename=blob.name,
            content_disposition_type="inline",
            headers=_NOSNIFF,
        )
    return _streamed(blobs, blob, media_type, request, ranges)


def _streamed(
    blobs: BlobStore,
    blob: Blob,
    media_type: str,
    request: Request,
    ranges: list[tuple[int, int]],
) -> Response:
    """The blob read from the store in chunks: one byte range as 206, else the whole file
    (several ranges too: a client asking for several accepts the whole)."""
    start, end, status = 0, blob.size, 200
    headers = {
        **_NOSNIFF,
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'inline; filename="{blob.name}"',
        "Last-Modified": formatdate(blob.modified.timestamp(), usegmt=True),
    }
    if len(ranges) == 1:
        (start, end), status = ranges[0], 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{blob.size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)

    def chunks() -> Iterator[bytes]:
        with blobs.open(blob.key) as fh:
            fh.seek(start)
            left = end - start
            while left > 0 and (chunk := fh.read(min(left, _CHUNK))):
                left -= len(chunk)
                yield chunk

    return StreamingResponse(chunks(), status, headers, media_type)


_CHUNK = 1 << 16
