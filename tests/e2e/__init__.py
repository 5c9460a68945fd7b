"""Helpers for end-to-end tests: a real stack (embedded Redis, Celery worker processes, the
API under uvicorn) in a temp dir, and the demo's HTTP client that uploads projects and waits on
jobs (`api.demo.ApiClient`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from api.demo import ApiClient
from api.launch import Stack
from tasks.settings import Settings, load_settings

TOKEN = "e2e-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_stack(
    storage: Path,
    workers: int = 1,
    worker_args: Sequence[str] = (),
    env_extra: dict[str, str] | None = None,
    **overrides: str,
) -> Iterator[Stack]:
    """Start a stack whose settings are the ones given here, whatever this shell exports.

    `env_extra` reaches the children's environment only (test hooks' variables).
    """
    ours = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in ours}
    env.update(
        {
            "RENDER_STORAGE": str(storage),
            "AUTH_TOKEN": TOKEN,
            "DEFAULT_RESOLUTION": "320x180",
            "DEFAULT_PRESET": "veryfast",
            "DEFAULT_FPS": "25",
            "WORKER_CONCURRENCY": "2",
            "PROGRESS_INTERVAL": "0.2",
            # The suite runs other files' FFmpeg beside this stack at the tests' own priority:
            # lowered below those (FFmpeg's session group too), a stack's encodes would get a
            # tenth of a core and run past the short task time limits some tests set. The
            # metrics test asks for the service's default and checks it.
            "FFMPEG_NICE": "0",
            **overrides,
        }
    )
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        settings = load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    stack = Stack(settings, port=free_port(), env=env, log_dir=storage / "process-logs")
    stack.env.update(env_extra or {})
    stack.start(workers=workers, worker_args=worker_args)
    try:
        yield stack
    finally:
        stack.stop()


class Api(ApiClient):
    """The product's client, with the token the stacks here are started with."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url, TOKEN, timeout=30)


@contextmanager
def paused(worker: subprocess.Popen[bytes]) -> Iterator[None]:
    """Stop a worker (its whole process group) and let it go on afterwards, whatever happens."""
    os.killpg(worker.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
