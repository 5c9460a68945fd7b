"""A stage's files through the storage: the body runs on local paths (as the pipeline always
does), its declared reads fetched into a scratch folder before it and its declared writes
saved after (`Stage.reads`, `Stage.writes` in `pipeline.registry`), and FINALIZE's
publication saved as the project's outputs.

For the local backend the work folder *is* the storage (`BlobStore.local_path`): the body
runs in it and nothing is fetched or saved, exactly as before the interface existed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import re
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipeline import registry, stages
from pipeline.plan import Plan
from pipeline.project import ProjectDir
from pipeline.registry import Stage, StageRun
from tasks.blobstore import Blob, BlobStore
from tasks.scratch import Scratch


def run_unit(
    store: BlobStore, stage: Stage, run: StageRun, scratch: Path | None = None
) -> Plan | None:
    """One run of a stage's body on local files, through the storage: its declared reads
    fetched before it and its writes published after (`_workspace`, in a folder under
    `scratch`, the worker's SCRATCH_DIR, when given); what FINALIZE made published as the
    project's outputs. The plan when the stage laid out the timeline."""
    with _workspace(store, stage, run.project, scratch) as (project, fetched):
        result = registry.run_stage(stage, dataclasses.replace(run, project=project))
        if isinstance(result, stages.Publication):  # its files are in the workspace
            publish_outputs(store, _project_key(run.project), result, fetched.stored())
            return None
    return result


def publish_outputs(
    store: BlobStore,
    project_key: str,
    publication: stages.Publication,
    stored: dict[Path, str] | None = None,
) -> None:
    """FINALIZE's files made visible together in the project's output/, then the stale ones
    (an earlier render's captions and scene files) removed. `stored`: those that are copies
    of blobs in the store (the joined video, the scene files), by key."""
    folder = f"{project_key}/output/"
    store.save_all([(path, folder + name) for path, name in publication.files], stored)
    for blob in store.list(folder):
        if "/" not in blob.key.removeprefix(folder) and publication.stale(blob.name):
            store.delete(blob.key)


@dataclasses.dataclass
class _Fetched:
    """The files a unit's workspace was given from the store: each one's key and its
    modification time as fetched."""

    files: dict[Path, tuple[str, int]] = dataclasses.field(default_factory=dict)

    def add(self, path: Path, key: str) -> None:
        self.files[path] = (key, path.stat().st_mtime_ns)

    def unchanged(self, path: Path) -> bool:
        known = self.files.get(path)
        return known is not None and path.stat().st_mtime_ns == known[1]

    def stored(self) -> dict[Path, str]:
        """The fetched files still as they were fetched: copies of their blobs, by key."""
        return {
            path: key
            for path, (key, _) in self.files.items()
            if path.is_file() and self.unchanged(path)
        }


@contextlib.contextmanager
def _workspace(
    store: BlobStore, stage: Stage, project: ProjectDir, scratch: Path | None = None
) -> Iterator[tuple[ProjectDir, _Fetched]]:
    """The project as a stage's body sees it. On a local storage it is the folder itself (the
    work folder is the storage: nothing is fetched or published). On any other, a scratch
    folder holding the stage's declared reads, whose declared writes are published when the
    body succeeds (a failed stage's are not: they stay where it ran)."""
    prefix = _project_key(project)
    if store.local_path(prefix) == project.root:
        yield project, _Fetched()
        return
    folder = (
        Scratch(scratch).unit_folder()
        if scratch is not None
        else tempfile.TemporaryDirectory(prefix="render-stage-")
    )
    with folder as where:
        local = dataclasses.replace(project, root=Path(where))
        fetched = _Fetched()
        listed = _Listing(store, prefix)
        for pattern in stage.reads:
            for blob in listed.matching(registry.located(project, pattern)):
                path = local.root / blob.key.removeprefix(prefix + "/")
                store.fetch(blob.key, path, blob)
                fetched.add(path, blob.key)
        # What the host's earlier units prepared (a scene's stills), theirs to take as it is.
        host_scratch = Scratch(scratch) if scratch is not None else None
        shared = [
            (host_scratch, local.root / registry.located(project, pattern))
            for pattern in stage.host_shared
            if host_scratch is not None
        ]
        for host, where in shared:
            where.parent.mkdir(parents=True, exist_ok=True)
            host.share_in(where.parent, where.name)
        yield local, fetched
        for host, where in shared:
            host.share_out(where.parent, where.name)
        made = [
            (path, f"{prefix}/{path.relative_to(local.root).as_posix()}")
            for pattern in stage.writes
            for path in _local_matching(local.root, registry.located(project, pattern))
            if not fetched.unchanged(path)  # fetched and left as it was
        ]
        _save_each(store, made)


def publish_inputs(store: BlobStore, project: ProjectDir) -> list[str]:
    """The project's input/ as the API keeps it (its spec and uploads), in the store: each
    file the store lacks, holds at another size, or holds older than this one is saved
    (multipart, streamed from the file). The keys saved; none where the store is the folder.
    """
    prefix = _project_key(project)
    if store.local_path(prefix) == project.root or not project.input.is_dir():
        return []
    there = {blob.key: blob for blob in store.list(f"{prefix}/input/")}
    saved = []
    for path in sorted(project.input.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        key = f"{prefix}/{path.relative_to(project.root).as_posix()}"
        blob, st = there.get(key), path.stat()
        if blob is None or blob.size != st.st_size or blob.modified.timestamp() < st.st_mtime:
            store.save(key, path)
            saved.append(key)
    return saved


def _save_each(store: BlobStore, items: list[tuple[Path, str]]) -> None:
    """Each (file, key) saved, a few at once: an object store's latency is per request."""
    if len(items) <= 1:
        for path, key in items:
            store.save(key, path)
        return
    with ThreadPoolExecutor(max_workers=min(4, len(items))) as pool:
        for done in [pool.submit(store.save, key, path) for path, key in items]:
            done.result()  # the first failure is the unit's


class _Listing:
    """The blobs under a project's folders, each folder listed once per unit (a folder inside
    one already listed is read from that listing)."""

    def __init__(self, store: BlobStore, prefix: str) -> None:
        self.store, self.prefix = store, prefix
        self.folders: dict[str, list[Blob]] = {}

    def _under(self, folder: str) -> list[Blob]:
        for listed, blobs in self.folders.items():
            if folder.startswith(listed):
                return [blob for blob in blobs if blob.key.startswith(folder)]
        self.folders[folder] = self.store.list(folder)
        return self.folders[folder]

    def matching(self, pattern: str) -> list[Blob]:
        """The blobs under the project that `pattern` (under the project) matches."""
        fixed = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
        folder = fixed.rsplit("/", 1)[0] + "/" if "/" in fixed else ""
        return [
            blob
            for blob in self._under(f"{self.prefix}/{folder}")
            if fnmatch.fnmatchcase(blob.key.removeprefix(self.prefix + "/"), pattern)
        ]


def _local_matching(root: Path, pattern: str) -> list[Path]:
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and not path.name.startswith(".")
        and fnmatch.fnmatchcase(path.relative_to(root).as_posix(), pattern)
    )


def _project_key(project: ProjectDir) -> str:
    """The key of a project's folder: projects/<id>."""
    return f"projects/{project.root.name}"


def work_prefix(project_id: str, job_id: str) -> str:
    """The key under which a job's work files are: projects/<id>/work/<jobId>."""
    return f"projects/{project_id}/work/{job_id}"
