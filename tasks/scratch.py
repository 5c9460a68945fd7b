"""A worker's local scratch (`SCRATCH_DIR`, at most `SCRATCH_MAX_GB`): blobs it fetched from
or saved to an object store, named by their content, and the folders its units run in.

`blobs/<name>` is a blob's bytes under a name made of its ETag and size (the store's name for
its content), so a unit never downloads what its host already has: every process of the host
looks here first, and what a unit made and saved is here too. A unit's folder (`units/…`) gets
hard links to them (same file system), so nothing is copied; a file linked into a running unit
(more than one link) is never evicted. Eviction removes the least recently used first: a use
sets the file's access time (its modification time stays, so a unit's folder can still tell a
fetched file from one it rewrote).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.atomic import atomic_path


@dataclass(frozen=True)
class Scratch:
    root: Path
    max_bytes: int | None = None

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @staticmethod
    def name(etag: str, size: int) -> str:
        """The content name of a blob with this ETag and size."""
        return hashlib.sha256(f"{etag.strip(chr(34))}:{size}".encode()).hexdigest()

    def path(self, name: str) -> Path:
        return self.blobs / name

    def get(self, name: str, target: Path) -> bool:
        """Link the blob `name` to `target` if this host has it (used now); whether it had."""
        return self.get_path(self.path(name), target)

    def fetch(self, name: str, target: Path, download: Callable[[Path], None]) -> bool:
        """`target` linked from the blob `name`, downloaded first with `download(path)` when
        this host has not got it; whether it was downloaded."""
        if self.get(name, target):
            return False
        self.blobs.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".fetch-", dir=self.blobs)
        os.close(fd)
        try:
            download(Path(tmp))
            os.replace(tmp, self.path(name))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if not self.get(name, target):  # evicted in between by another process
            raise FileNotFoundError(self.path(name))
        self.evict()
        return True

    def keep(self, name: str, source: Path) -> None:
        """Remember a file this host made (and saved) under its content name."""
        self._keep_at(self.path(name), source)
        self.evict()

    @property
    def shared(self) -> Path:
        return self.root / "shared"

    def share_in(self, folder: Path, pattern: str) -> list[Path]:
        """Link the host's shared files matching `pattern` (by name) into `folder`: what the
        units before this one prepared (named by content, so any of them is right)."""
        linked = []
        for source in sorted(self.shared.glob(pattern)) if self.shared.is_dir() else ():
            target = folder / source.name
            if target.exists() or source.name.startswith("."):
                continue
            if self.get_path(source, target):
                linked.append(target)
        return linked

    def share_out(self, folder: Path, pattern: str) -> None:
        """Keep the files matching `pattern` that a unit prepared in `folder` for the host's
        later units."""
        for source in sorted(folder.glob(pattern)) if folder.is_dir() else ():
            if source.is_file() and not source.name.startswith("."):
                self._keep_at(self.shared / source.name, source)
        self.evict()

    def get_path(self, source: Path, target: Path) -> bool:
        try:
            with atomic_path(target) as tmp:
                tmp.unlink()
                os.link(source, tmp)
        except FileNotFoundError:
            return False
        _used(target)
        return True

    def _keep_at(self, path: Path, source: Path) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.unlink()
            os.link(source, tmp)

    @contextlib.contextmanager
    def unit_folder(self) -> Iterator[Path]:
        """A fresh folder for one unit's files, removed after it (same file system as the
        blobs, so fetched files are links)."""
        folder = self.root / "units"
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="unit-", dir=folder) as path:
            yield Path(path)

    def total_bytes(self) -> int:
        return sum(size for _, _, size, _ in self._entries())

    def _entries(self) -> list[tuple[float, Path, int, int]]:
        found = []
        folders = [f for f in (self.blobs, self.shared) if f.is_dir()]
        for path in (p for folder in folders for p in folder.iterdir()):
            if path.name.startswith("."):
                continue
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                found.append((st.st_atime, path, st.st_size, st.st_nlink))
        return sorted(found)

    def evict(self) -> list[Path]:
        """Least recently used blobs removed until the scratch fits `max_bytes`; those linked
        into a running unit stay. Temp files of a process killed mid-download go after a day."""
        limit = time.time() - 24 * 3600
        for path in self.blobs.glob(".*") if self.blobs.is_dir() else ():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < limit:
                    path.unlink()
        if self.max_bytes is None:
            return []
        entries = self._entries()
        total = sum(size for _, _, size, _ in entries)
        removed = []
        for _, path, size, links in entries:
            if total <= self.max_bytes:
                break
            if links > 1:
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
            total -= size
        return removed


def _used(path: Path) -> None:
    """Mark a use: the access time now, the modification time as it was."""
    with contextlib.suppress(FileNotFoundError):
        st = path.stat()
        os.utime(path, ns=(time.time_ns(), st.st_mtime_ns))
