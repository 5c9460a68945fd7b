"""The storage root (`RENDER_STORAGE`): projects, logs and the database file live under it."""

from __future__ import annotations

import logging
import re
import shutil
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pipeline.project import ProjectDir
from tasks.blobstore import BlobStore, LocalBlobStore, StoreUnavailable
from tasks.scratch import Scratch
from tasks.settings import Settings

# Checked with fullmatch, never match: `$` also matches before a trailing newline, and
# "p1\n" would be a second folder beside "p1". The anchors stay for JSON Schema's `pattern`.
log = logging.getLogger("render.storage")

PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class InvalidId(ValueError):
    pass


def check_project_id(project_id: str) -> str:
    if not PROJECT_ID.fullmatch(project_id):
        raise InvalidId(
            f"project id {project_id!r} must match {PROJECT_ID.pattern} "
            "(letters, digits, '_' and '-', at most 64, starting with a letter or digit)"
        )
    return project_id


def space_shortfall(root: Path, min_free_mb: int) -> str | None:
    """What is short when the file system holding `root` has less than `min_free_mb` MiB free
    (MIN_FREE_MB); None when it has enough, or the check is off (0)."""
    if min_free_mb <= 0:
        return None
    free = shutil.disk_usage(root).free
    if free >= min_free_mb * 2**20:
        return None
    return f"{free / 2**20:.0f} MiB free in RENDER_STORAGE, under MIN_FREE_MB ({min_free_mb} MiB)"


@dataclass(frozen=True)
class Storage:
    root: Path

    @property
    def blobs(self) -> LocalBlobStore:
        """The storage interface over this folder: outputs and work files go through it."""
        return LocalBlobStore(self.root)

    @property
    def projects(self) -> Path:
        return self.root / "projects"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def project(self, project_id: str) -> ProjectDir:
        return ProjectDir(self.projects / check_project_id(project_id))

    def log_path(self, job_id: str) -> Path:
        if not JOB_ID.fullmatch(job_id):
            raise InvalidId(f"job id {job_id!r} is not valid")
        return self.logs / f"{job_id}.log"

    def append_log(self, job_id: str, line: str) -> None:
        """Append one line; O_APPEND keeps lines from several worker processes whole."""
        path = self.log_path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line.rstrip("\n") + "\n")

    def tail_log(self, job_id: str, lines: int = 50) -> list[str]:
        path = self.log_path(job_id)
        if not path.exists():
            return []
        with open(path, encoding="utf-8", errors="replace") as fh:
            return [line.rstrip("\n") for line in deque(fh, maxlen=lines)]

    def ensure(self) -> None:
        self.projects.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)


def blob_store(settings: Settings, *, retry_seconds: float | None = None) -> BlobStore:
    """The storage interface every process goes through: the bucket of STORAGE_URL, or the
    folder RENDER_STORAGE when it is empty. One per process and settings (a boto3 client is
    slow to make and safe to share between threads). `retry_seconds` shortens how long a
    call waits for a store that is down (the API answers 503 rather than hang)."""
    retry = settings.s3_retry_seconds
    return _store(
        settings.render_storage,
        settings.storage_url,
        settings.s3_endpoint_url,
        settings.s3_region,
        (settings.aws_access_key_id, settings.aws_secret_access_key),
        retry if retry_seconds is None else min(retry, retry_seconds),
        settings.output_url_seconds,
        settings.scratch_path,
        int(settings.scratch_max_gb * 1e9),
    )


# At start-up a store that does not answer is waited for this long (then the service starts,
# and /readyz says the store is down); one that refuses us stops the start.
START_CHECK_SECONDS = 10.0


def require_store(settings: Settings) -> None:
    """With STORAGE_URL: the bucket is there and takes the credentials, else StoreRefused
    saying why (the API and the workers then refuse to start)."""
    if not settings.storage_url:
        return
    try:
        blob_store(settings, retry_seconds=START_CHECK_SECONDS).check()
    except StoreUnavailable as exc:
        log.warning("%s; starting anyway (/readyz reports it)", exc)


@lru_cache(maxsize=8)
def _store(
    root: Path,
    url: str,
    endpoint: str,
    region: str,
    keys: tuple[str, str],
    retry_seconds: float,
    url_seconds: int,
    scratch: Path,
    scratch_bytes: int,
) -> BlobStore:
    if not url:
        return LocalBlobStore(root)
    from tasks.s3store import S3BlobStore, parse_url

    bucket, prefix = parse_url(url)
    return S3BlobStore(
        bucket,
        prefix,
        endpoint_url=endpoint or None,
        region=region or None,
        keys=keys if all(keys) else None,
        retry_seconds=retry_seconds,
        url_seconds=url_seconds,
        scratch=Scratch(scratch, scratch_bytes),
    )
