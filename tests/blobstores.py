"""A storage backend that is not the work folder, for the tests: blobs in a folder of their
own ("remote"), that a stage can reach only through the interface (`local_path` is None, so
every stage runs in a scratch folder holding only its declared reads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tasks.blobstore import Blob, LocalBlobStore


@dataclass(frozen=True)
class RemoteBlobStore(LocalBlobStore):
    fetched: list[str] = field(default_factory=list, compare=False)
    saved: list[str] = field(default_factory=list, compare=False)

    def local_path(self, key: str) -> Path | None:
        return None

    def url(self, key: str) -> str | None:
        return None

    def fetch(self, key: str, target: Path, known: Blob | None = None) -> None:
        self.fetched.append(key)
        super().fetch(key, target, known)

    def save(self, key: str, source: Path) -> None:
        self.saved.append(key)
        super().save(key, source)
