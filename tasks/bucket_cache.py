"""The render cache shared through an object store: the pipeline's `ClipCache` (a local folder
of this host, locks and hard links as ever), with each entry mirrored from and to the bucket
around `get_or_build`.

In the bucket an entry is `cache/clips/<key><suffix>` (the file) and `cache/clips/<key>.json`
(its record: size and sha256), and `cache/used/<key>` marks its last use. Before a lookup, an
entry this host lacks is fetched from the bucket and checked against its record (a failing
one is removed from the bucket, said so, and rebuilt). After a build, the file is created
with `If-None-Match: *` and the record saved after it: of two hosts racing on one key, one
creates the object and the other keeps its own equal build (keys name the content). Eviction
honours CACHE_MAX_GB across the bucket: least recently used entries (by their record's or
use mark's time) go first, never the one just built.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path

from pipeline.cache import ClipCache
from pipeline.plan import file_sha256
from tasks.blobstore import BlobStore, StoreUnavailable

PREFIX = "cache/clips/"
USED = "cache/used/"


class BucketCache(ClipCache):
    def __init__(self, root: Path, max_bytes: int | None = None, *, store: BlobStore) -> None:
        super().__init__(root, max_bytes)
        self.bucket = store

    def get_or_build(
        self,
        key: str,
        target: Path,
        build: Callable[[], None],
        log: Callable[[str], None],
        *,
        should_cancel: Callable[[], bool] | None = None,
        frames: int = 0,
        suffix: str = ".mp4",
    ) -> tuple[bool, int]:
        with self.holding(key, should_cancel):
            if not (self.clip(key, suffix).exists() and self._meta(key).exists()):
                self._pull(key, suffix, log)
        hit, size = super().get_or_build(
            key, target, build, log, should_cancel=should_cancel, frames=frames, suffix=suffix
        )
        try:
            if hit:
                self._mark_used(key)
            else:
                self._push(key, suffix, log)
                for evicted in self.evict_bucket(keep={key}):
                    log(f"cache full: removed {evicted[:16]} from the bucket")
        except StoreUnavailable as exc:  # the next job builds it again; this one has it
            log(f"cache: could not share {key[:16]}: {exc}")
        return hit, size

    def _pull(self, key: str, suffix: str, log: Callable[[str], None]) -> bool:
        """The bucket's entry stored here, if it has one that passes its check."""
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".pull-", dir=self.root) as folder:
            record_file, clip_file = Path(folder) / "record.json", Path(folder) / f"clip{suffix}"
            try:
                self.bucket.fetch(f"{PREFIX}{key}.json", record_file)
                record = json.loads(record_file.read_text("utf-8"))
                self.bucket.fetch(f"{PREFIX}{key}{suffix}", clip_file)
            except FileNotFoundError:
                return False  # not there, or being written
            except (ValueError, StoreUnavailable) as exc:
                log(f"cache: could not read {key[:16]} from the bucket: {exc}")
                return False
            size = clip_file.stat().st_size
            if size != record.get("size") or file_sha256(clip_file) != record.get("sha256"):
                self.bucket.delete(f"{PREFIX}{key}{suffix}")
                self.bucket.delete(f"{PREFIX}{key}.json")
                log(f"cache entry {key[:16]} in the bucket failed its check: removed")
                return False
            self.store(key, clip_file, frames=int(record.get("frames", 0)), suffix=suffix)
            return True

    def _push(self, key: str, suffix: str, log: Callable[[str], None]) -> None:
        """This host's new entry created in the bucket, its record after it."""
        clip, meta = self.clip(key, suffix), self._meta(key)
        if not (clip.exists() and meta.exists()):
            return  # the local store could not take it either
        if self.bucket.create(f"{PREFIX}{key}{suffix}", clip):
            self.bucket.save(f"{PREFIX}{key}.json", meta)
        else:
            log(f"cache: {key[:16]} was stored by another host first; theirs is kept")

    def _mark_used(self, key: str) -> None:
        with tempfile.NamedTemporaryFile(prefix=".used-", dir=self.root) as empty:
            self.bucket.save(f"{USED}{key}", Path(empty.name))

    def evict_bucket(self, keep: Collection[str] = ()) -> list[str]:
        """Least recently used entries removed from the bucket until its entries fit
        CACHE_MAX_GB; the keys removed."""
        if self.max_bytes is None:
            return []
        sizes: dict[str, int] = {}
        used: dict[str, float] = {}
        for blob in self.bucket.list("cache/"):
            if blob.key.startswith(PREFIX):
                name = blob.key.removeprefix(PREFIX)
                key = name.split(".", 1)[0]
                sizes[key] = sizes.get(key, 0) + blob.size
                if name.endswith(".json") or key not in used:
                    used[key] = max(used.get(key, 0.0), blob.modified.timestamp())
            elif blob.key.startswith(USED):
                key = blob.key.removeprefix(USED)
                used[key] = max(used.get(key, 0.0), blob.modified.timestamp())
        total = sum(sizes.values())
        removed = []
        for key in sorted(sizes, key=lambda k: (used.get(k, 0.0), k)):
            if total <= self.max_bytes:
                break
            if key in keep:
                continue
            for blob in self.bucket.list(f"{PREFIX}{key}."):
                self.bucket.delete(blob.key)
            with contextlib.suppress(FileNotFoundError):
                self.bucket.delete(f"{USED}{key}")
            total -= sizes[key]
            removed.append(key)
        return removed
