"""Atomic file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temp path beside `target`; on success rename it over `target`, else delete it.

    The temp name keeps the target's suffix so tools that infer a format from it (FFmpeg) work.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def replace(tmp: Path, target: Path) -> None:
    """Rename `tmp` over `target`. Where both are hard links to one file (a rerun linking the
    same cache entry again), rename(2) does nothing and leaves `tmp`: remove it then."""
    os.replace(tmp, target)
    tmp.unlink(missing_ok=True)


def link_or_copy(source: Path, target: Path) -> None:
    """Give `target` the bytes of `source`, flushed to disk: a hard link where both are on one
    file system (nothing is copied), else a copy. `target` is meant to be renamed into place."""
    with open(source, "rb") as fh:
        os.fsync(fh.fileno())
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
        return
    except OSError:
        pass
    with open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())


def staging_path(target: Path) -> Path:
    """The temp name `target` is written under before it is renamed into place: hidden (so
    listings skip it), the process's own, and with the target's suffix."""
    return target.with_name(f".{target.stem}.tmp{os.getpid()}{target.suffix}")


def publish_together(items: Sequence[tuple[Path, Path]]) -> None:
    """Give each target the bytes of its source (`link_or_copy` to a temp name beside it),
    then rename every one into place: a failure while they are staged leaves every target as
    it was, and the renames follow each other with nothing in between."""
    staged: list[tuple[Path, Path]] = []
    try:
        for source, target in items:
            target.parent.mkdir(parents=True, exist_ok=True)
            staged.append((staging_path(target), target))
            link_or_copy(source, staged[-1][0])
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, target in staged:
        replace(tmp, target)


def write_bytes_atomic(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_text_atomic(target: Path, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes (what the upload reported for it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
