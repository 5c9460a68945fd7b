"""The one storage interface: files under keys, whatever holds them.

A key is a relative, slash-separated name under RENDER_STORAGE, the same as the file's path
in the local folder: `projects/<id>/output/<name>`, `projects/<id>/work/<jobId>/plan.json`.
Callers name keys and never learn which backend is behind them. `LocalBlobStore` (a POSIX
folder, shared by every host) is the default; `tasks.s3store.S3BlobStore` (an S3-compatible
bucket, `STORAGE_URL=s3://…`) the second (docs/storage.md).

The pipeline works on local paths. The task layer fetches each stage's declared reads into a
local folder before its body runs and publishes its writes after (`tasks.stages`); for the
local backend the work folder *is* the storage, so `local_path` says so and nothing moves.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from pipeline.atomic import atomic_path, publish_together


class InvalidKey(ValueError):
    pass


class StoreUnavailable(RuntimeError):
    """The store did not answer (down, unreachable) for as long as its operations retry: the
    message names it. The API answers 503; a stage fails naming it."""


class StoreRefused(RuntimeError):
    """The store answers but refuses us (wrong credentials, no such bucket): the message says
    which. The service does not start."""


@dataclass(frozen=True)
class Blob:
    """A stored file: its key, size in bytes and when it was last written (UTC)."""

    key: str
    size: int
    modified: datetime
    # The store's name for its content (an S3 ETag), where it has one.
    etag: str | None = None

    @property
    def name(self) -> str:
        return PurePosixPath(self.key).name


class BlobStore(Protocol):
    def open(self, key: str) -> BinaryIO:
        """The blob for reading, seekable (Range requests); FileNotFoundError when absent."""
        ...

    def stat(self, key: str) -> Blob | None:
        """The blob's size and time, or None when there is none."""
        ...

    def exists(self, key: str) -> bool: ...

    def save(self, key: str, source: Path) -> None:
        """Store the local file `source` under `key` atomically: readers see the old blob or
        the new one, never part of one."""
        ...

    def create(self, key: str, source: Path) -> bool:
        """Store `source` under `key` only if there is no blob there yet (S3: a put with
        `If-None-Match: *`): whether it did. Of several hosts racing on one key, one wins and
        the others find its blob."""
        ...

    def save_all(
        self, items: Sequence[tuple[Path, str]], stored: Mapping[Path, str] | None = None
    ) -> None:
        """Store each (local file, key) pair, all made visible together at the end: a
        failure while they are staged leaves every earlier blob as it was. `stored`: local
        files that are copies of blobs already in the store, by their keys (a stage's
        fetched reads), which the store may copy on its side instead of taking the bytes
        again."""
        ...

    def fetch(self, key: str, target: Path, known: Blob | None = None) -> None:
        """Copy the blob to the local file `target`; FileNotFoundError when absent. `known`:
        the blob as a listing just gave it (its ETag spares a store a lookup)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the blob; nothing happens when there is none."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Remove every blob under `prefix` (a folder's key)."""
        ...

    def list(self, prefix: str) -> list[Blob]:
        """Every blob under `prefix`, at any depth, by key; temp files being written are not
        blobs yet and are not listed."""
        ...

    def url(self, key: str) -> str | None:
        """Where a client could read the blob directly (a presigned URL for S3), or None."""
        ...

    def check(self) -> None:
        """The store answers and takes our credentials: StoreRefused saying why not,
        StoreUnavailable when it does not answer."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The key's file or folder on this machine when the backend is a local folder (the
        pipeline then works on it in place: fetch and publish move nothing); None otherwise."""
        ...


def check_key(key: str) -> str:
    """A key is relative, slash-separated, without empty, '.' or '..' parts."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidKey(f"{key!r} is not a storage key")
    return key


def check_prefix(prefix: str) -> str:
    """A prefix is a key, or a key and a '/', or '' (everything)."""
    if prefix:
        check_key(prefix.removesuffix("/"))
    return prefix


def key_of(root: Path, path: Path) -> str:
    """The key of a file under the local storage root `root`."""
    return check_key(path.relative_to(root).as_posix())


def output_key(project_id: str, name: str) -> str:
    return f"projects/{project_id}/output/{name}"


@dataclass(frozen=True)
class LocalBlobStore:
    """Blobs as files under `root`; the key is the path. Saves are temp file and rename in the
    blob's folder; temp names start with '.', which `list` skips."""

    root: Path

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def open(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")

    def stat(self, key: str) -> Blob | None:
        try:
            st = self.path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not os.path.isfile(self.path(key)):
            return None
        return Blob(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def save(self, key: str, source: Path) -> None:
        self.save_all([(source, key)])

    def create(self, key: str, source: Path) -> bool:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.link(tmp, target)  # fails when there is one: never replaces it
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True

    def save_all(
        self, items: Sequence[tuple[Path, str]], stored: Mapping[Path, str] | None = None
    ) -> None:
        # Linked, not copied, where the source is on this file system (work files are).
        publish_together([(source, self.path(key)) for source, key in items])

    def fetch(self, key: str, target: Path, known: Blob | None = None) -> None:
        with atomic_path(target) as tmp:
            shutil.copyfile(self.path(key), tmp)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        folder = self.root / check_prefix(prefix) if prefix else self.root
        shutil.rmtree(folder, ignore_errors=True)

    def list(self, prefix: str) -> list[Blob]:
        base = self.root / check_prefix(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        found = []
        for folder, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if name.startswith("."):
                    continue
                blob = self.stat(key_of(self.root, Path(folder) / name))
                if blob is not None:  # not removed meanwhile
                    found.append(blob)
        return sorted(found, key=lambda blob: blob.key)

    def url(self, key: str) -> str | None:
        return self.path(key).absolute().as_uri()

    def check(self) -> None:
        """Nothing to ask: the folder's own checks are MIN_FREE_MB and /readyz's `storage`."""

    def local_path(self, key: str) -> Path | None:
        return self.path(key) if key else self.root
