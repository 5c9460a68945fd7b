"""The one storage interface: files under keys, whatever holds them.

A key is a relative, slash-separated name under RENDER_STORAGE, the same as the file's path
in the local folder: `projects/<id>/output/<name>`, `projects/<id>/work/<jobId>/plan.json`.
Callers name keys and never learn which backend is behind them. `LocalBlobStore` (a POSIX
folder, shared by every host) is the only backend for now; docs/storage.md says what another
one (S3) has to provide.

The pipeline works on local paths. The task layer fetches each stage's declared reads into a
local folder before its body runs and publishes its writes after (`tasks.stages`); for the
local backend the work folder *is* the storage, so `local_path` says so and nothing moves.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from pipeline.atomic import atomic_path, publish_together


class InvalidKey(ValueError):
    pass


@dataclass(frozen=True)
class Blob:
    """A stored file: its key, size in bytes and when it was last written (UTC)."""

    key: str
    size: int
    modified: datetime

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

    def save_all(self, items: Sequence[tuple[Path, str]]) -> None:
        """Store each (local file, key) pair, all made visible together at the end: a
        failure while they are staged leaves every earlier blob as it was."""
        ...

    def fetch(self, key: str, target: Path) -> None:
        """Copy the blob to the local file `target`; FileNotFoundError when absent."""
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

    def save_all(self, items: Sequence[tuple[Path, str]]) -> None:
        # Linked, not copied, where the source is on this file system (work files are).
        publish_together([(source, self.path(key)) for source, key in items])

    def fetch(self, key: str, target: Path) -> None:
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

    def local_path(self, key: str) -> Path | None:
        return self.path(key) if key else self.root
