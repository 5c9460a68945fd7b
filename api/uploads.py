"""Asset uploads: copy each part to a temp file (hashing, counting, capping), check its bytes,
and only when every part of the request has passed, rename them all into `input/<subdir>/`.

A rejected request leaves nothing behind: temp files live as hidden files in the storage root
(the same file system as the projects, so the final rename is atomic) and are removed on any
failure, and no project folder is created until the request has passed. A request cut off by
a shutdown (SIGTERM: uvicorn ends the requests still running after its graceful timeout)
leaves nothing either: until the whole body has arrived it is only in Starlette's spooled temp
file, which is unlinked; a process killed while it copies into the storage leaves a temp file
named by its host and pid, which the next API to start on that host removes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
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
from tasks.processes import pid_alive

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


# Temp files of uploads in progress: `.upload-<host>-<pid>-<random>.part` in the storage root.
UPLOAD_SUFFIX = ".part"
_UPLOAD_TEMP = re.compile(r"^\.upload-(?P<host>.+)-(?P<pid>\d+)-[^.]+\.part$")
# Another host's temp file (a shared storage) is only taken as abandoned after this long.
FOREIGN_UPLOAD_AGE = 24 * 3600.0


def upload_prefix() -> str:
    return f".upload-{socket.gethostname()}-{os.getpid()}-"


def sweep_stale_uploads(storage_root: Path, now: float | None = None) -> list[Path]:
    """Remove temp files of uploads whose API process is gone (SIGKILLed mid-copy, say).

    Run when the API starts. On this host a file is stale when its process is dead or is
    this very process (a previous process that had the same pid: a container restarted);
    another host's file when it is older than FOREIGN_UPLOAD_AGE.
    """
    now = time.time() if now is None else now
    removed = []
    host, me = socket.gethostname(), os.getpid()
    for path in storage_root.glob(".upload-*" + UPLOAD_SUFFIX):
        match = _UPLOAD_TEMP.match(path.name)
        try:
            if match and match["host"] == host:
                pid = int(match["pid"])
                stale = pid == me or not pid_alive(pid)
            else:
                stale = now - path.stat().st_mtime > FOREIGN_UPLOAD_AGE
            if stale:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue
    if removed:
        log.warning("removed %d abandoned upload temp file(s) from %s", len(removed), storage_root)
    return removed


def free_space(path: Path) -> int:
    """Bytes free for us on the file system holding `path`."""
    return shutil.disk_usage(path).free


def require_free_space(root: Path, min_free_mb: int, what: str) -> None:
    """507 when the storage has less than MIN_FREE_MB free: refused before any byte is
    written, rather than failing half-way with a disk full."""
    if min_free_mb <= 0:
        return
    root.mkdir(parents=True, exist_ok=True)
    free = free_space(root)
    if free < min_free_mb * 1024 * 1024:
        raise ApiError(
            507,
            "insufficient_storage",
            f"{what} refused: {free / 2**20:.0f} MiB free in the storage, under MIN_FREE_MB "
            f"({min_free_mb} MiB); free some space (old outputs, failed jobs' work folders)",
        )


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
            fd, tmp_name = tempfile.mkstemp(
                prefix=upload_prefix(), suffix=UPLOAD_SUFFIX, dir=storage_root
            )
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
