"""Asset uploads: copy each part to a temp file (hashing, counting, capping), check its bytes,
and only when every part of the request has passed, rename them all into `input/<subdir>/`.

A rejected request leaves nothing behind: temp files live as hidden files in the storage root
(the same file system as the projects, so the final rename is atomic) and are removed on any
failure, and no project folder is created until the request has passed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import av
from fastapi import HTTPException
from PIL import Image
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError, error_body
from pipeline.names import check_safe_name
from pipeline.project import INPUT_SUBDIRS, ProjectDir

log = logging.getLogger("render.api.uploads")

CHUNK = 1024 * 1024
# Room for multipart boundaries, part headers and the small form fields around the files.
BODY_SLACK = 1024 * 1024

Kind = Literal["image", "audio"]
_KIND_OF_SUBDIR: dict[str, Kind] = {"images": "image", "voiceovers": "audio", "music": "audio"}
_SUBDIR_OF_KIND: dict[Kind, str] = {"image": "images", "audio": "voiceovers"}


@dataclass
class Upload:
    """One part of the request: where it came from and where it is going."""

    name: str
    source: BinaryIO


@dataclass(frozen=True)
class Stored:
    name: str
    subdir: str
    size: int
    sha256: str


def clean_name(raw: str | None) -> str:
    """The file name to store a part under.

    Browsers may send directory parts ('C:\\fakepath\\a.jpg', 'photos/a.jpg'); those are
    dropped. A name that tries to climb ('..') or is absolute, hidden or odd is refused.
    """
    shown = raw if raw is not None else ""
    if not shown.strip():
        raise ApiError(422, "invalid_name", "an uploaded file has no file name", "files")
    parts = shown.replace("\\", "/").split("/")
    if shown.startswith(("/", "\\")) or any(part == ".." for part in parts):
        raise ApiError(
            422,
            "invalid_name",
            f"file name {shown!r} must be a plain name, not a path leaving its folder",
            "files",
        )
    try:
        return check_safe_name(parts[-1])
    except ValueError as exc:
        raise ApiError(422, "invalid_name", f"file name {shown!r}: {exc}", "files") from None


def check_subdir(subdir: str | None) -> str | None:
    if subdir is None or subdir == "":
        return None
    if subdir not in INPUT_SUBDIRS:
        raise ApiError(
            422,
            "invalid_subdir",
            f"subdir {subdir!r} must be one of {', '.join(INPUT_SUBDIRS)}",
            "subdir",
        )
    return subdir


def sniff(path: Path) -> Kind | None:
    """What the bytes are, whatever the name says: an image that decodes, or audio FFmpeg reads."""
    if _is_image(path):
        return "image"
    if _is_audio(path):
        return "audio"
    return None


def _is_image(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            img.verify()
        # verify() checks structure only; decoding the pixels is what FFmpeg will have to do.
        with Image.open(path) as img:
            img.load()
            return img.width > 0 and img.height > 0
    except Exception:
        return False


def _is_audio(path: Path) -> bool:
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return False
            for _frame in container.decode(audio=0):
                return True
            return False
    except Exception:
        return False


def _copy_capped(upload: Upload, dest: BinaryIO, limit: int) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    while chunk := upload.source.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise ApiError(
                413,
                "too_large",
                f"{upload.name!r} is larger than MAX_UPLOAD_MB ({limit // (1024 * 1024)} MB)",
                "files",
            )
        digest.update(chunk)
        dest.write(chunk)
    dest.flush()
    os.fsync(dest.fileno())
    return size, digest.hexdigest()


def store_uploads(
    storage_root: Path,
    project: ProjectDir,
    uploads: list[Upload],
    subdir: str | None,
    limit: int,
) -> list[Stored]:
    """Validate every part into a temp file, then move them all in; all or nothing."""
    if not uploads:
        raise ApiError(422, "no_files", "send one or more 'files' parts", "files")
    storage_root.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Stored]] = []
    targets: set[tuple[str, str]] = set()
    try:
        for upload in uploads:
            fd, tmp_name = tempfile.mkstemp(prefix=".upload-", suffix=".part", dir=storage_root)
            tmp = Path(tmp_name)
            with os.fdopen(fd, "wb") as dest:
                # Registered before the copy, so a failed copy is cleaned up too.
                staged.append((tmp, Stored(upload.name, "", 0, "")))
                size, sha = _copy_capped(upload, dest, limit)
            if size == 0:
                raise ApiError(415, "unsupported_media_type", f"{upload.name!r} is empty", "files")
            kind = sniff(tmp)
            if kind is None:
                raise ApiError(
                    415,
                    "unsupported_media_type",
                    f"{upload.name!r} is neither an image nor audio that FFmpeg can read",
                    "files",
                )
            target_subdir = subdir or _SUBDIR_OF_KIND[kind]
            if _KIND_OF_SUBDIR[target_subdir] != kind:
                raise ApiError(
                    415,
                    "unsupported_media_type",
                    f"{upload.name!r} is {'an image' if kind == 'image' else 'audio'}, "
                    f"not what {target_subdir}/ holds",
                    "files",
                )
            if (target_subdir, upload.name) in targets:
                raise ApiError(
                    422, "duplicate_name", f"{upload.name!r} is sent twice in one request", "files"
                )
            targets.add((target_subdir, upload.name))
            staged[-1] = (tmp, Stored(upload.name, target_subdir, size, sha))
        project.create()
        for tmp, stored in staged:
            os.replace(tmp, project.asset(stored.subdir, stored.name))
        return [stored for _, stored in staged]
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


class BodyLimit:
    """Refuse request bodies over MAX_UPLOAD_MB (plus multipart slack) before they are read.

    A Content-Length over the limit is answered at once; a body without one is counted as it
    arrives and cut off with 413 as soon as it goes over.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit + BODY_SLACK

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _send_413(send, self.limit - BODY_SLACK)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, "request body too large")
            return message

        await self.app(scope, counting_receive, send)


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps(
        error_body(
            "too_large",
            f"the request body is larger than MAX_UPLOAD_MB ({limit // (1024 * 1024)} MB)",
        )
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
    log.info("refused a body of more than %d bytes", limit)
