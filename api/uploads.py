"""Asset uploads, streamed: each file part of the multipart body goes straight to a temp file
(hashed and counted as it arrives), then its bytes are checked, and only when every part of
the request has passed are they all renamed into `input/<subdir>/`.

The limits hold while the body arrives, not after it has been received: every file of a
request together at most MAX_UPLOAD_MB (413), the project's assets at most PROJECT_MAX_MB and
PROJECT_MAX_FILES (413), and MIN_FREE_MB left free in the storage (507). An image is refused
by its header when it has more than MAX_IMAGE_PIXELS pixels (422), before anything decodes it.

A rejected request leaves nothing behind: temp files live as hidden files in the storage root
(the same file system as the projects, so the final rename is atomic) and are removed on any
failure, a refusal mid-body included, and no project folder is created until the request has
passed. A request cut off by a shutdown (SIGTERM: uvicorn ends the requests still running after
its graceful timeout) has its temp files removed as it ends; a process killed while it writes
leaves a temp file named by its host and pid, which the next API to start on that host removes.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from api.errors import ApiError
from api.limits import CLOSE, MIB
from pipeline import assets
from pipeline.limits import Limits, voiceover_problem
from pipeline.names import check_safe_name
from pipeline.probe import TooManyPixels, clip_info
from pipeline.project import ProjectDir
from tasks.processes import pid_alive
from tasks.settings import Settings

if TYPE_CHECKING:  # a type the module defines only for type checkers
    from python_multipart.multipart import MultipartCallbacks

log = logging.getLogger("render.api.uploads")

# Free space is looked at again each time this much more has been written.
FREE_CHECK_BYTES = MIB
# A form field (subdir) is a word; anything longer is not one.
FIELD_MAX = 1024


@dataclass(frozen=True)
class UploadLimits:
    """What one upload may do, from the settings (bytes; 0 for a project quota: none)."""

    max_bytes: int  # MAX_UPLOAD_MB: every file of one request together
    project_bytes: int  # PROJECT_MAX_MB
    project_files: int  # PROJECT_MAX_FILES
    min_free: int  # MIN_FREE_MB
    work: Limits  # MAX_IMAGE_PIXELS for an image, MAX_SCENE_SECONDS for a voiceover

    @classmethod
    def of(cls, settings: Settings) -> UploadLimits:
        return cls(
            max_bytes=settings.max_upload_mb * MIB,
            project_bytes=settings.project_max_mb * MIB,
            project_files=settings.project_max_files,
            min_free=settings.min_free_mb * MIB,
            work=settings.limits(),
        )


@dataclass
class Received:
    """One file part of the request, written to its temp file as it arrived."""

    name: str
    tmp: Path
    size: int = 0
    sha256: str = ""


@dataclass(frozen=True)
class Stored:
    name: str
    subdir: str  # the asset kind's name (what the client sent or was inferred)
    size: int
    sha256: str
    folder: str  # the kind's folder under input/


@dataclass(frozen=True)
class Usage:
    """What a project's assets are: the size of each, by (subdir, name)."""

    sizes: dict[tuple[str, str], int]

    @classmethod
    def of(cls, project: ProjectDir) -> Usage:
        sizes = {}
        for subdir in assets.FOLDERS:
            folder = project.input / subdir
            for path in folder.rglob("*") if folder.is_dir() else ():
                try:
                    if path.is_file():
                        sizes[(subdir, str(path.relative_to(folder)))] = path.stat().st_size
                except FileNotFoundError:  # replaced or removed meanwhile
                    continue
        return cls(sizes)

    @property
    def bytes(self) -> int:
        return sum(self.sizes.values())

    @property
    def files(self) -> int:
        return len(self.sizes)

    def replaced(self, name: str, subdir: str | None) -> int | None:
        """The size of the asset a file of this name would replace (in `subdir`, or in
        whichever folder holds the largest of that name while the subdir is not known), or
        None if it would replace none."""
        found = [size for (sd, n), size in self.sizes.items() if n == name and subdir in (None, sd)]
        return max(found) if found else None


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
    if subdir not in assets.BY_NAME:
        raise ApiError(
            422,
            "invalid_subdir",
            f"subdir {subdir!r} must be one of {', '.join(assets.NAMES)}",
            "subdir",
        )
    return subdir


@dataclass
class Form:
    """The request's fields: its files (in temp files) and the subdir they go to, if given."""

    files: list[Received] = field(default_factory=list)
    subdir: str | None = None


@asynccontextmanager
async def receive_uploads(
    request: Request, storage_root: Path, project: ProjectDir, limits: UploadLimits
) -> AsyncIterator[Form]:
    """Stream the request's multipart body: each `files` part to a temp file in the storage
    root, the limits checked as the bytes arrive. The temp files are removed on leaving,
    whatever happened (those moved into the project are gone by then)."""
    form = Form()
    try:
        await _Receiver(storage_root, project, limits, form).run(request)
        yield form
    finally:
        for part in form.files:
            part.tmp.unlink(missing_ok=True)


class _Receiver:
    """python-multipart's streaming parser, fed the body chunk by chunk. Its callbacks only
    record what they saw; the records are acted on (files written in a thread, limits checked)
    after each chunk, since writing and checking may block or refuse."""

    def __init__(
        self, storage_root: Path, project: ProjectDir, limits: UploadLimits, form: Form
    ) -> None:
        self.root = storage_root
        self.project = project
        self.limits = limits
        self.form = form
        self.usage = Usage({})  # the project's assets, read as the body starts
        self.events: list[tuple[str, bytes]] = []
        self.header = [b"", b""]  # the current header's name and value
        self.disposition = b""
        self.ended = False
        # The part being received: a file (its open temp file and digest) or a field's bytes.
        self.dest: BinaryIO | None = None
        self.digest: Any = None
        self.field_name: str | None = None
        self.field = bytearray()
        self.total = 0  # file bytes of the whole request
        self.credit = 0  # bytes of existing assets the files seen so far may replace
        self.credited: set[str] = set()
        self.new_files = 0  # files whose names no asset has
        self.unchecked = 0  # bytes written since free space was last looked at

    async def run(self, request: Request) -> None:
        kind, params = parse_options_header(request.headers.get("content-type", ""))
        if kind != b"multipart/form-data":
            raise ApiError(
                422,
                "not_multipart",
                "send the files as multipart/form-data, one or more 'files' parts",
                "files",
            )
        boundary = params.get(b"boundary")
        if not boundary:
            raise ApiError(400, "malformed_body", "multipart/form-data without a boundary")
        parser = MultipartParser(boundary, self._callbacks())
        # Refused before its end, a body of announced length (at most MAX_UPLOAD_MB and the
        # slack: api/limits.py) is read to its end and dropped by uvicorn, so the client, still
        # sending, gets the answer (a closed socket would reset it). One without a length may
        # never end: its connection is closed.
        closing = {} if "content-length" in request.headers else CLOSE
        self.usage = await run_in_threadpool(Usage.of, self.project)
        try:
            async for chunk in request.stream():
                parser.write(chunk)
                await self._act()
        except ApiError as exc:
            exc.headers.update(closing)
            raise
        except MultipartParseError:
            message = "the request body is not valid multipart/form-data"
            raise ApiError(400, "malformed_body", message, None, closing) from None
        except ClientDisconnect:
            # Nobody reads this answer; it spares the log an "unhandled error".
            log.info("an upload to project %s ended by the client", self.project.root.name)
            raise ApiError(400, "incomplete_body", "the client went away mid-body") from None
        finally:
            if self.dest is not None:
                self.dest.close()
        if not self.ended:
            raise ApiError(
                400, "malformed_body", "the multipart body ended before its closing boundary"
            )
        self.form.subdir = check_subdir(self.form.subdir)

    def _callbacks(self) -> MultipartCallbacks:
        def header_field(data: bytes, start: int, end: int) -> None:
            self.header[0] += data[start:end]

        def header_value(data: bytes, start: int, end: int) -> None:
            self.header[1] += data[start:end]

        def header_end() -> None:
            if self.header[0].lower() == b"content-disposition":
                self.disposition = self.header[1]
            self.header[:] = [b"", b""]

        def headers_finished() -> None:
            self.events.append(("part", self.disposition))
            self.disposition = b""

        def part_data(data: bytes, start: int, end: int) -> None:
            self.events.append(("data", data[start:end]))

        def part_end() -> None:
            self.events.append(("end", b""))

        def end() -> None:
            self.ended = True

        return {
            "on_header_field": header_field,
            "on_header_value": header_value,
            "on_header_end": header_end,
            "on_headers_finished": headers_finished,
            "on_part_data": part_data,
            "on_part_end": part_end,
            "on_end": end,
        }

    async def _act(self) -> None:
        events, self.events = self.events, []
        for kind, data in events:
            if kind == "part":
                self._begin(data)
            elif kind == "data":
                await self._data(data)
            elif self.dest is not None:
                dest, self.dest = self.dest, None
                await run_in_threadpool(_close, dest)
                self.form.files[-1].sha256 = self.digest.hexdigest()
            elif self.field_name == "subdir":
                self.form.subdir = self.field.decode("utf-8", "replace")

    def _begin(self, disposition: bytes) -> None:
        _, options = parse_options_header(disposition)
        if b"name" not in options:
            raise ApiError(400, "malformed_body", "a part has no Content-Disposition name")
        self.field_name = options[b"name"].decode("utf-8", "replace")
        self.field.clear()
        raw = options.get(b"filename")
        if self.field_name != "files":
            if raw is not None:
                raise ApiError(
                    422,
                    "validation_error",
                    f"a file is sent as {self.field_name!r}: send files as 'files' parts",
                    "files",
                )
            return
        name = clean_name(raw.decode("utf-8", "replace") if raw is not None else None)
        self._count_file(name)
        fd, tmp = tempfile.mkstemp(prefix=upload_prefix(), suffix=UPLOAD_SUFFIX, dir=self.root)
        # Registered at once, so whatever fails from here on removes it.
        self.form.files.append(Received(name, Path(tmp)))
        self.dest = os.fdopen(fd, "wb")
        self.digest = hashlib.sha256()

    def _count_file(self, name: str) -> None:
        """PROJECT_MAX_FILES, counted as each file part begins."""
        if name not in self.credited:
            self.credited.add(name)
            kind = assets.BY_NAME.get(self.form.subdir or "")
            replaced = self.usage.replaced(name, kind.folder if kind else self.form.subdir)
            if replaced is None:
                self.new_files += 1
            else:
                self.credit += replaced
        allowed = self.limits.project_files
        if allowed and self.usage.files + self.new_files > allowed:
            raise _quota(
                f"{name!r}: project {self.project.root.name!r} would hold more than "
                f"PROJECT_MAX_FILES ({allowed}) files (it holds {self.usage.files})"
            )

    async def _data(self, data: bytes) -> None:
        if self.dest is None:
            if len(self.field) + len(data) > FIELD_MAX:
                raise ApiError(
                    422,
                    "validation_error",
                    f"form field {self.field_name!r} is longer than {FIELD_MAX} bytes",
                    self.field_name,
                )
            self.field += data
            return
        name = self.form.files[-1].name
        self.total += len(data)
        _check_kind_cap(name, self.form.subdir, self.form.files[-1].size + len(data))
        if self.total > self.limits.max_bytes:
            raise ApiError(
                413,
                "too_large",
                f"{name!r}: the files of one request are larger than MAX_UPLOAD_MB "
                f"({self.limits.max_bytes // MIB} MiB)",
                "files",
            )
        allowed = self.limits.project_bytes
        if allowed and self.usage.bytes - self.credit + self.total > allowed:
            raise _quota(
                f"{name!r}: project {self.project.root.name!r} would hold more than "
                f"PROJECT_MAX_MB ({allowed // MIB} MiB) of assets (it holds "
                f"{self.usage.bytes / MIB:.1f} MiB)"
            )
        self.unchecked += len(data)
        if self.unchecked >= FREE_CHECK_BYTES:
            self.unchecked = 0
            _require_free_while_writing(self.root, len(data), self.limits.min_free)
        await run_in_threadpool(_write, self.dest, self.digest, data)
        self.form.files[-1].size += len(data)


def _check_kind_cap(name: str, subdir: str | None, size: int) -> None:
    """413 when a file is larger than its asset kind allows (a font: 32 MiB), as the bytes
    arrive when the subdir came first in the body, else once the file is in."""
    kind = assets.BY_NAME.get(subdir or "")
    if kind is not None and kind.max_bytes is not None and size > kind.max_bytes:
        raise ApiError(
            413,
            "too_large",
            f"{name!r} is larger than {kind.max_bytes // MIB} MiB, the most a file in "
            f"{kind.folder}/ may be",
            "files",
        )


def _write(dest: BinaryIO, digest: Any, data: bytes) -> None:
    digest.update(data)
    dest.write(data)


def _close(dest: BinaryIO) -> None:
    dest.flush()
    os.fsync(dest.fileno())
    dest.close()


def _quota(message: str) -> ApiError:
    # 413 like MAX_UPLOAD_MB: the client's own limit, which sending less (or removing assets)
    # meets; 507 is kept for the storage running out, which is the operator's to fix.
    return ApiError(413, "quota_exceeded", f"{message}; remove some assets first", "files")


def _require_free_while_writing(root: Path, coming: int, min_free: int) -> None:
    """507 unless MIN_FREE_MB stays free once `coming` more bytes are written."""
    if min_free <= 0:
        return
    free = free_space(root)
    if free - coming < min_free:
        raise ApiError(
            507,
            "insufficient_storage",
            f"upload stopped: {free / MIB:.0f} MiB left free in the storage, under MIN_FREE_MB "
            f"({min_free // MIB} MiB); free some space (old outputs, failed jobs' work folders)",
        )


@contextmanager
def _project_lock(storage_root: Path) -> Iterator[None]:
    """Requests of every API process on this host check the quota and move their files in one
    at a time (flock on the storage root), so two uploads cannot both fit the last room."""
    fd = os.open(storage_root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def store_uploads(
    storage_root: Path,
    project: ProjectDir,
    received: list[Received],
    subdir: str | None,
    limits: UploadLimits,
) -> list[Stored]:
    """Check every received file's bytes, then move them all in; all or nothing."""
    if not received:
        raise ApiError(422, "no_files", "send one or more 'files' parts", "files")
    stored: list[Stored] = []
    for part in received:
        if subdir == assets.VIDEOS.name:
            # A video is checked as a video only: its container sniffed from its bytes before
            # any demuxer reads it (pipeline/probe.py), then probed with that demuxer alone.
            media = _check_video(part, limits)
        elif part.size == 0:
            raise ApiError(415, "unsupported_media_type", f"{part.name!r} is empty", "files")
        else:
            media = _sniff(part, subdir, limits)
        kind = assets.BY_NAME[subdir] if subdir else assets.inferred_kind(media)
        _check_kind_cap(part.name, kind.name, part.size)
        if kind.media != media:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"{part.name!r} is {media.noun}, not what {kind.folder}/ holds",
                "files",
            )
        if kind is assets.VOICEOVERS and (
            too_long := voiceover_problem(part.tmp, limits.work, repr(part.name))
        ):
            raise ApiError(422, "over_limit", too_long, "files")
        if kind is assets.VIDEOS and subdir is None:
            _check_video(part, limits)
        if any((s.subdir, s.name) == (kind.name, part.name) for s in stored):
            raise ApiError(
                422, "duplicate_name", f"{part.name!r} is sent twice in one request", "files"
            )
        stored.append(Stored(part.name, kind.name, part.size, part.sha256, kind.folder))
    with _project_lock(storage_root):
        _check_quota(project, stored, limits)
        project.create()
        for part, item in zip(received, stored, strict=True):
            os.replace(part.tmp, project.asset(item.folder, item.name))
    return stored


def _sniff(part: Received, subdir: str | None, limits: UploadLimits) -> assets.Media:
    """What the part's bytes are (the subdir's media tried first); 415 if nothing we read."""
    first = assets.BY_NAME[subdir].media if subdir else None
    try:
        media = assets.sniff(part.tmp, limits.work.max_image_pixels, first)
    except TooManyPixels as exc:
        raise ApiError(
            422, "image_too_large", f"{part.name!r} {exc} (MAX_IMAGE_PIXELS)", "files"
        ) from None
    if subdir == assets.FONTS.name and media is not assets.FONT:
        raise ApiError(
            422,
            "invalid_font",
            f"{part.name!r} is not a font: fonts/ holds TrueType (.ttf), OpenType (.otf) "
            "or WOFF2 (.woff2) files",
            "files",
        )
    if media is None:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"{part.name!r} is not an image, a video, audio that FFmpeg can read or a font",
            "files",
        )
    return media


def _check_video(part: Received, limits: UploadLimits) -> assets.Media:
    """422 naming `files` unless the part is a clip we can show, within MAX_VIDEO_SECONDS."""
    if part.size == 0:
        raise ApiError(422, "invalid_video", f"{part.name!r} is empty", "files")
    try:
        info = clip_info(part.tmp, part.name, limits.work.max_image_pixels)
    except Exception as exc:  # UnsafeMedia, and PyAV's many kinds: all say what is wrong
        raise ApiError(422, "invalid_video", f"{part.name!r} {exc}", "files") from None
    if info.seconds > limits.work.max_video_seconds:
        raise ApiError(
            422,
            "over_limit",
            f"{part.name!r} is {info.seconds:.1f} s long, over MAX_VIDEO_SECONDS "
            f"({limits.work.max_video_seconds:g} s)",
            "files",
        )
    return assets.VIDEO


def _check_quota(project: ProjectDir, stored: list[Stored], limits: UploadLimits) -> None:
    """The project's assets once these are in (each replacing its namesake), within quota."""
    usage = Usage.of(project)
    replaced = [usage.sizes.get((item.folder, item.name)) for item in stored]
    grown = sum(item.size - (old or 0) for item, old in zip(stored, replaced, strict=True))
    after = usage.bytes + grown
    files = usage.files + sum(old is None for old in replaced)
    name = project.root.name
    if limits.project_files and files > limits.project_files:
        raise _quota(
            f"project {name!r} would hold {files} files, more than PROJECT_MAX_FILES "
            f"({limits.project_files})"
        )
    if limits.project_bytes and after > limits.project_bytes:
        raise _quota(
            f"project {name!r} would hold {after / MIB:.1f} MiB of assets, more than "
            f"PROJECT_MAX_MB ({limits.project_bytes // MIB} MiB)"
        )
