"""The render cache: scene clips stored under a hash of everything that decides their bytes.

A clip's key covers the scene's part of the plan (frames, shots, moves, fit, motion and any
field added to `ScenePlan` later), the identity of each of its visuals (for a still: its
bytes' digest, never its name) and of each layer drawn over it (burnt-in captions), the
picture settings of the whole video (size, fps, cross-fade frames), the encoder, how the
clip's MP4 is timed, and the FFmpeg build. Nothing about sound is in it, nor the scene's place
in the video, so a new music bed, a replaced voiceover of the same length, or a scene
inserted before this one finds the clip again.

The store is a folder shared by every job, project and worker (`RENDER_STORAGE/cache/clips/`):
`<key>.mp4`, `<key>.json` (size and sha256 of the clip, checked before every use) and
`<key>.lock`. A key's lock is held while it is looked up and, on a miss, while its clip is
built, so two jobs wanting one clip encode it once: the second waits, then finds it. Eviction
(least recently used first, by the time the `.json` was last touched) skips a key whose lock
is held, so an entry being linked into a job or being built is never removed.

What is made from clips is stored the same way (`output_key`): the join, each scene's output
and each poster, keyed by the FFmpeg command with every input file named by its content, so an
identical request runs FFmpeg only for its sound.

Everything here is pure file-system work (no database, no Celery): `pipeline.stages` calls it,
and the job's record of hits is the task layer's.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

from pipeline.atomic import atomic_path, link_or_copy, write_text_atomic
from pipeline.encoder import clip_timing_args
from pipeline.errors import Cancelled
from pipeline.plan import Plan, ScenePlan, file_sha256

# Bumped whenever what a key covers or how an entry is stored changes: old entries then miss.
VERSION = 1
# ScenePlan fields that do not change a clip's pixels: its place in the video and its sound
# (`speech`: where the voice sounds, which the music ducks under; `captions`: the subtitle
# track, in the picture only through a layer), and its transitions (`transition`, `head`:
# which of its frames its own clip holds, which a clip's span says). Every other field,
# including ones added later, is part of the key.
_NOT_PICTURE = frozenset(
    {
        *("index", "id", "start_frame", "voiceover", "voiceover_seconds", "lengthened"),
        *("speech", "captions", "transition", "head"),
    }
)
# Keyed by their kinds' own identities instead (`Visual.identity`, `Layer.identity`).
_BY_KIND = frozenset({"visuals", "layers"})
# How often a job waiting for another's build of the same clip looks again (and at cancel).
_LOCK_POLL_SECONDS = 0.1
# Temp files of a store that was killed half way are removed by eviction after this long.
_STALE_TEMP_SECONDS = 24 * 3600

Outcome = Literal["encoded", "cached", "skipped"]
# What an entry's file can be: a video (a clip, a joined video, a scene output), a poster, or
# the master track and its AAC.
SUFFIXES = (".mp4", ".jpg", ".wav", ".m4a")


@dataclass(frozen=True)
class ClipReport:
    """How a scene's clip came to be: encoded, taken from the cache, or not in this render
    (a part of the timeline). `size` is the clip's bytes (on a hit: the bytes not encoded)."""

    outcome: Outcome
    size: int = 0
    key: str | None = None


@dataclass(frozen=True)
class Entry:
    key: str
    size: int
    used: float  # when it was stored or last used (the .json's mtime)


def clip_key(
    plan: Plan, scene: ScenePlan, ffmpeg_version: str, span: tuple[int, int] | None = None
) -> str:
    """The hex sha256 naming `scene`'s clip (with `span`, its chunk of those frames): the same
    for every request that would encode the same bytes, wherever the scene sits in the video
    and whatever its sound."""
    data = {k: v for k, v in asdict(scene).items() if k not in _NOT_PICTURE | _BY_KIND}
    # Named as they were when every visual was an image and captions the only layer, so
    # clips cached before visuals and layers had kinds are found again.
    data["images"] = [visual.identity() for visual in scene.visuals]
    for shot in data["shots"]:
        # A shot names its visual by digest; the visual's identity above says its kind.
        del shot["kind"]
        shot["image"] = shot.pop("digest")
    for layer in scene.layers:
        fields = layer.identity(scene)
        if clash := fields.keys() & data.keys():
            raise ValueError(f"layer {layer.kind} keys {sorted(clash)} twice in a clip's key")
        data.update(fields)
    document = {
        "version": VERSION,
        "ffmpeg": ffmpeg_version,
        # The plan-level fields that shape every clip's pixels (marked PICTURE in the plan).
        **_picture_fields(plan),
        # How the clip's MP4 is timed: a clip timed in milliseconds could end short.
        "timing": clip_timing_args(plan.fps),
        "scene": data,
    }
    if span is not None:
        document["chunk"] = list(span)
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _picture_fields(plan: Plan) -> dict[str, Any]:
    found = {}
    for spec in fields(plan):
        if spec.metadata.get("picture"):
            value = getattr(plan, spec.name)
            is_data = is_dataclass(value) and not isinstance(value, type)
            found[spec.name] = asdict(value) if is_data else value
    return found


def output_key(
    kind: str,
    ffmpeg_version: str,
    args: Sequence[str],
    inputs: Mapping[Path, str],
    output: Path,
    root: Path,
) -> str | None:
    """The key of what one FFmpeg command makes from files whose content is known: `args`
    with each input path replaced by its content's name in `inputs` (a digest or a clip key)
    and the output's (temp) path by a placeholder, so the same command of another job (its
    own folder, its own temp names) on the same content has the same key.

    None when an argument names any other file (a path, or anything under `root`): what it
    holds is unknown, so the command's result must not be taken from the cache.
    """
    names = {str(path): digest for path, digest in inputs.items()}
    keyed: list[str] = []
    for arg in args:
        if arg in names:
            keyed.append(names[arg])
        elif arg == str(output):
            keyed.append("<output>")
        elif arg.startswith("/") or str(root) in arg:
            return None
        else:
            keyed.append(arg)
    document = {"version": VERSION, "kind": kind, "ffmpeg": ffmpeg_version, "args": keyed}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class ClipCache:
    """The clip store in `root`, capped at `max_bytes` (None: no cap)."""

    def __init__(self, root: Path, max_bytes: int | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def clip(self, key: str, suffix: str = ".mp4") -> Path:
        """The entry's file: a scene clip, a joined video or scene output (.mp4), a poster
        (.jpg)."""
        return self.root / f"{key}{suffix}"

    def _meta(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def _lock(self, key: str) -> Path:
        return self.root / f"{key}.lock"

    @contextmanager
    def holding(self, key: str, should_cancel: Callable[[], bool] | None = None) -> Iterator[None]:
        """Hold `key`'s lock: wait while another job looks it up or builds it.

        Raises Cancelled when `should_cancel()` says so while waiting.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = self._acquire(key, blocking=True, should_cancel=should_cancel)
        assert fd is not None
        try:
            yield
        finally:
            os.close(fd)  # closing the file releases the lock

    def _acquire(
        self,
        key: str,
        *,
        blocking: bool,
        should_cancel: Callable[[], bool] | None = None,
    ) -> int | None:
        """An fd holding `key`'s lock, or None (not blocking, and someone holds it)."""
        path = self._lock(key)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except OSError as exc:
                        if exc.errno not in (errno.EAGAIN, errno.EACCES):
                            raise
                    if not blocking:
                        os.close(fd)
                        return None
                    if should_cancel is not None and should_cancel():
                        raise Cancelled("cancelled while waiting for a cached clip")
                    time.sleep(_LOCK_POLL_SECONDS)
                # Eviction deletes the lock files it removes entries for: a lock taken on a
                # file that is no longer the one at `path` guards nothing, so try again.
                try:
                    current = os.stat(path).st_ino
                except FileNotFoundError:
                    current = -1
                if current == os.fstat(fd).st_ino:
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def fetch(
        self,
        key: str,
        target: Path,
        log: Callable[[str], None] | None = None,
        *,
        suffix: str = ".mp4",
    ) -> int | None:
        """Link the entry's clip to `target` (atomically) if it passes its check; its size.

        A failing entry (truncated, changed, half written) is removed, said so to `log`, and
        None returned, so it is rebuilt, never served. Call it holding the key.
        """
        clip, meta = self.clip(key, suffix), self._meta(key)
        try:
            stored = json.loads(meta.read_text("utf-8"))
        except FileNotFoundError:
            problem = "its record is missing" if clip.exists() else None
            stored = {}
        except ValueError:
            problem, stored = "its record is not JSON", {}
        else:
            problem = _check(clip, stored)
        if problem is not None:
            self.discard(key)
            if log is not None:
                log(f"cache entry {key[:16]} failed its check ({problem}): removed")
        if problem is not None or not stored:
            return None
        with atomic_path(target) as tmp:
            link_or_copy(clip, tmp)
        with contextlib.suppress(FileNotFoundError):
            os.utime(meta)  # used now: last in line for eviction
        return int(stored["size"])

    def store(self, key: str, source: Path, *, frames: int = 0, suffix: str = ".mp4") -> int:
        """Put `source` (a finished clip) in the store under `key`; its size. Call it holding
        the key. The clip is renamed into place before its record, so a reader never finds a
        record for a clip that is not whole."""
        self.root.mkdir(parents=True, exist_ok=True)
        size = source.stat().st_size
        record = {"size": size, "sha256": file_sha256(source), "frames": frames}
        with atomic_path(self.clip(key, suffix)) as tmp:
            link_or_copy(source, tmp)
        write_text_atomic(self._meta(key), json.dumps({**record, "stored": time.time()}))
        return size

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
        """`target` linked from the entry under `key`, else made by `build()` and stored:
        (whether it was a hit, its size). The key is held throughout, so two jobs wanting one
        entry build it once. A store that cannot take the result (full disk) costs the next
        job a build, not this one its output."""
        with self.holding(key, should_cancel):
            size = self.fetch(key, target, log, suffix=suffix)
            if size is not None:
                return True, size
            build()
            try:
                size = self.store(key, target, frames=frames, suffix=suffix)
            except OSError as exc:
                log(f"cache: could not store {key[:16]}: {exc}")
                size = target.stat().st_size
        for evicted in self.evict(keep={key}):
            log(f"cache full: removed {evicted[:16]}")
        return False, size

    def discard(self, key: str) -> None:
        self._meta(key).unlink(missing_ok=True)
        for suffix in SUFFIXES:
            self.clip(key, suffix).unlink(missing_ok=True)

    def entries(self) -> list[Entry]:
        """Every entry with a record, least recently used first."""
        found = []
        if not self.root.is_dir():
            return []
        for meta in self.root.glob("*.json"):
            key = meta.stem
            try:
                used = meta.stat().st_mtime
            except FileNotFoundError:
                continue
            sizes = [_size(self.clip(key, suffix)) for suffix in SUFFIXES]
            if any(size is not None for size in sizes):
                found.append(Entry(key, sum(size or 0 for size in sizes), used))
        return sorted(found, key=lambda e: (e.used, e.key))

    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.entries())

    def evict(self, keep: Collection[str] = ()) -> list[str]:
        """Remove least recently used entries until the store fits `max_bytes`; the keys
        removed. Entries in `keep` and entries whose lock someone holds (a job linking or
        building them) stay, even if the store is then over its cap."""
        self._remove_stale_temps()
        if self.max_bytes is None:
            return []
        entries = self.entries()
        total = sum(entry.size for entry in entries)
        removed: list[str] = []
        for entry in entries:
            if total <= self.max_bytes:
                break
            if entry.key in keep:
                continue
            fd = self._acquire(entry.key, blocking=False)
            if fd is None:
                continue  # in use right now
            try:
                self.discard(entry.key)
                self._lock(entry.key).unlink(missing_ok=True)
            finally:
                os.close(fd)
            total -= entry.size
            removed.append(entry.key)
        return removed

    def _remove_stale_temps(self) -> None:
        if not self.root.is_dir():
            return
        limit = time.time() - _STALE_TEMP_SECONDS
        for path in self.root.glob(".*"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < limit:
                    path.unlink()


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _check(clip: Path, stored: dict[str, Any]) -> str | None:
    """Why the clip does not match its record, or None when it does."""
    try:
        size = clip.stat().st_size
    except FileNotFoundError:
        return "its clip is missing"
    if size != stored.get("size"):
        return f"{size} bytes instead of {stored.get('size')}"
    if file_sha256(clip) != stored.get("sha256"):
        return "its bytes changed (sha256 differs)"
    return None
