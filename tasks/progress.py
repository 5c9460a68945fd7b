"""What a running stage reports: progress, heartbeat, cancellation and log lines.

A `StageTracker` is what a task hands the pipeline's Runner: throttled progress writes to the job
row (and the Celery task state), a throttled check for cancellation, and log lines appended to
`logs/<jobId>.log`. While the stage runs, a thread beats on its row every `HEARTBEAT_INTERVAL`
whatever FFmpeg prints, so a silent stage is a dead holder, not a slow one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from tasks import jobs, shutdown
from tasks.db import session_scope
from tasks.settings import Settings
from tasks.storage import Storage, space_shortfall

log = logging.getLogger("render.tasks")


class StageTracker:
    """Everything one attempt of a running stage reports, throttled to `progress_interval`."""

    def __init__(
        self,
        settings: Settings,
        job_id: str,
        label: str,
        attempt: int,
        publish: Callable[[str, float, float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.job_id = job_id
        self.label = label
        self.attempt = attempt
        self.storage = Storage(settings.render_storage)
        # Set once another worker has taken the stage over: stop, and leave the job alone.
        self.superseded = False
        # Set when the worker's shutdown outlasted SHUTDOWN_GRACE: stop, and requeue the stage.
        self.handing_back = False
        # Set when the disk fell under MIN_FREE_MB while the stage wrote: stop, fail the job.
        self.short_of_space: str | None = None
        self._publish = publish
        self._clock = clock
        self._last_write = float("-inf")
        self._last_check = float("-inf")
        self._cancel = False
        self._pending: float | None = None
        # Every line this attempt logged, for hosts that do not share the log folder (joblog).
        self.kept: list[str] = []

    def progress(self, fraction: float) -> None:
        self._pending = fraction
        now = self._clock()
        if now - self._last_write >= self.settings.progress_interval:
            self.flush()

    def flush(self) -> None:
        if self._pending is None:
            return
        fraction, self._pending = self._pending, None
        self._last_write = self._clock()
        with session_scope(self.settings.db_url) as session:
            overall = jobs.record_progress(session, self.job_id, self.label, self.attempt, fraction)
        if self._publish is not None:
            self._publish(self.label, fraction, overall)

    def should_cancel(self) -> bool:
        """True once the job was cancelled, has finished elsewhere (another scene failed), the
        stage was taken over, the disk fell under MIN_FREE_MB (then `short_of_space` says so:
        the job fails), or the worker has been shutting down for SHUTDOWN_GRACE (then
        `handing_back` is set: the stage goes back to the queue, the job goes on)."""
        if self._cancel or self.superseded or self.handing_back or self.short_of_space:
            return True
        if shutdown.past_grace(self.settings):
            self.handing_back = True
            self.log(
                f"the worker is shutting down and the stage did not finish within "
                f"{self.settings.shutdown_grace:g} s (SHUTDOWN_GRACE): handing it back"
            )
            return True
        # The disk, watched while the stage writes (one statvfs, no throttle needed): better
        # stopped at MIN_FREE_MB, naming the stage and the setting, than failing on a full
        # disk that other jobs share.
        shortfall = space_shortfall(self.settings.render_storage, self.settings.min_free_mb)
        if shortfall is not None:
            self.short_of_space = (
                f"{self.label}: stopped: {shortfall}; its unfinished file was removed, earlier "
                "stages' files and published outputs are kept. Free some space and render again"
            )
            self.log(self.short_of_space)
            return True
        now = self._clock()
        if now - self._last_check < self.settings.progress_interval:
            return False
        self._last_check = now
        with session_scope(self.settings.db_url) as session:
            self._cancel = jobs.stop_requested(session, self.job_id)
        return self._cancel

    def beat(self) -> None:
        with session_scope(self.settings.db_url) as session:
            held = jobs.beat(session, self.job_id, self.label, self.attempt)
        if not held and not self.superseded:
            self.superseded = True
            self.log(f"attempt {self.attempt} no longer holds the stage; stopping")

    @contextmanager
    def beating(self) -> Iterator[None]:
        """Beat on the stage's row from a thread while the body runs."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.settings.heartbeat_interval):
                try:
                    self.beat()
                except Exception:  # a database hiccup: the next beat may get through
                    log.warning("job=%s stage=%s heartbeat failed", self.job_id, self.label)

        thread = threading.Thread(target=loop, name=f"beat-{self.label}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    def log(self, line: str) -> None:
        stamp = datetime.now().astimezone().isoformat(timespec="seconds")
        entry = f"{stamp} [{self.label}] {line}"
        self.storage.append_log(self.job_id, entry)
        self.kept.append(entry)
        log.info("job=%s stage=%s %s", self.job_id, self.label, line)
