"""A job's log across hosts.

Each line a stage logs is appended to `logs/<jobId>.log` on the host that logged it, as it is
logged (`Storage.append_log`). Where every host shares that folder, that file is the job's
whole log. Where they do not (an object store, `STORAGE_URL`), each stage attempt's lines are
also saved in the store when the attempt ends, as `logs/<jobId>/<label>.<attempt>.log`; the
API's view of the log (`tail`) is its own host's file merged with those, by time. Lines of a
stage still running on another host appear when it ends.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tasks.blobstore import Blob, BlobStore, StoreUnavailable
from tasks.storage import Storage

log = logging.getLogger("render.tasks")

# Saved attempts' lines read by this process, by key and ETag: an attempt's log is written once.
_READ: OrderedDict[tuple[str, str | None, int], list[str]] = OrderedDict()
_READ_SIZE = 512
_lock = threading.Lock()


def shared(store: BlobStore) -> bool:
    """Whether every host appends to one log folder (the store is that folder)."""
    return store.local_path("logs") is not None


def attempt_key(job_id: str, label: str, attempt: int) -> str:
    # A chunk's label holds a slash (SCENE_BUILD[1/2]); a key's parts may not be split by it.
    return f"logs/{job_id}/{label.replace('/', ',')}.{attempt}.log"


@contextmanager
def shipping(
    store: BlobStore, job_id: str, label: str, attempt: int, lines: list[str]
) -> Iterator[None]:
    """The `lines` an attempt logs (its tracker appends them), saved in the store when it
    ends however it ends, unless every host shares the log folder. A store that cannot take
    them costs the lines, never the stage."""
    try:
        yield
    finally:
        if lines and not shared(store):
            _save(store, attempt_key(job_id, label, attempt), lines)


def _save(store: BlobStore, key: str, lines: Sequence[str]) -> None:
    try:
        with tempfile.TemporaryDirectory(prefix="render-log-") as folder:
            path = Path(folder) / "attempt.log"
            path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            store.save(key, path)
    except (OSError, StoreUnavailable) as exc:
        log.warning("%s: its log lines could not be saved: %s", key, exc)


def tail(storage: Storage, store: BlobStore, job_id: str, lines: int = 50) -> list[str]:
    """The job's last `lines` log lines: this host's, and where hosts do not share a log
    folder, every ended attempt's from the store, in time order (each line starts with its
    time), a line seen in both once."""
    here = storage.tail_log(job_id, lines)
    if shared(store):
        return here
    try:
        saved = [_read(store, blob) for blob in store.list(f"logs/{job_id}/")]
    except (OSError, StoreUnavailable) as exc:
        log.warning("job=%s: the saved log lines could not be read: %s", job_id, exc)
        return here
    merged = list(dict.fromkeys([*here, *(line for part in saved for line in part[-lines:])]))
    # Stable: lines of one second keep the order their source wrote them in.
    merged.sort(key=lambda line: line.split(" ", 1)[0])
    return merged[-lines:]


def _read(store: BlobStore, blob: Blob) -> list[str]:
    known = (blob.key, blob.etag, blob.size)
    with _lock:
        if known in _READ:
            _READ.move_to_end(known)
            return _READ[known]
    with store.open(blob.key) as fh:
        found = fh.read().decode("utf-8", "replace").splitlines()
    with _lock:
        _READ[known] = found
        while len(_READ) > _READ_SIZE:
            _READ.popitem(last=False)
    return found
