"""One command on a laptop: an embedded Redis (unless REDIS_URL is set), a Celery worker, the
webhook deliverer and the API, started together and stopped together on Ctrl-C. Without
AUTH_TOKEN in the environment, the launch makes a random one for the session and prints it.

    python -m api.launch serve [--port 8080]     # what `make serve` runs
    python -m api.launch demo                    # what `make demo` runs: renders the sample
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import httpx

from pipeline.capabilities import UnfitFFmpeg, require_ffmpeg
from pipeline.ffmpeg import find_ffmpeg
from tasks.app import worker_argv
from tasks.redis_server import EmbeddedRedis
from tasks.settings import Settings, SettingsError, load_settings, require_auth_token

STOP_TIMEOUT = 30.0


def _stop(proc: subprocess.Popen[bytes], name: str) -> None:
    if proc.poll() is not None:
        return
    # SIGTERM is a warm shutdown for Celery (finishes the current task's bookkeeping) and a
    # graceful one for uvicorn.
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop in {STOP_TIMEOUT:.0f} s; killing it", file=sys.stderr)
        proc.kill()
        proc.wait()


class Stack:
    """Redis (embedded unless REDIS_URL is set), Celery workers, the webhook deliverer and the
    API, as child processes.

    The children get `env` (by default this process's environment) and so read the same
    settings as `settings`, which must have been loaded from it.
    """

    def __init__(
        self,
        settings: Settings,
        host: str = "127.0.0.1",
        port: int = 8080,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.host, self.port = host, port
        base = os.environ if env is None else env
        self.env = dict(base, RENDER_STORAGE=str(settings.render_storage))
        self.redis: EmbeddedRedis | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.api: subprocess.Popen[bytes] | None = None
        self.deliverer: subprocess.Popen[bytes] | None = None
        # Where the children's output goes; None means this terminal.
        self.log_dir = log_dir

    def _output(self, name: str) -> IO[bytes] | None:
        if self.log_dir is None:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return open(self.log_dir / f"{name}.log", "ab")

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def redis_url(self) -> str:
        return self.env.get("REDIS_URL", "")

    def start(
        self, workers: int = 1, ready_timeout: float = 60, worker_args: Sequence[str] = ()
    ) -> Stack:
        try:
            if not self.settings.redis_url:
                self.redis = EmbeddedRedis(self.settings.render_storage / "redis").start()
                self.env["REDIS_URL"] = self.redis.url
                print(f"embedded Redis at {self.redis.url}", file=sys.stderr)
            for _ in range(workers):
                self.start_worker(worker_args)
            out = self._output("webhooks")
            self.deliverer = subprocess.Popen(
                [sys.executable, "-m", "api.deliverer"], env=self.env, stdout=out, stderr=out
            )
            argv = [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory"]
            argv += ["--host", self.host, "--port", str(self.port), "--log-level", "warning"]
            out = self._output("api")
            self.api = subprocess.Popen(argv, env=self.env, stdout=out, stderr=out)
            self.wait_until_ready(ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_worker(self, extra_args: Sequence[str] = ()) -> subprocess.Popen[bytes]:
        """One more worker; `extra_args` go to its command line (tests add `-I` modules)."""
        name = f"worker{len(self.workers) + 1}"
        argv = [sys.executable, *worker_argv(self.settings, hostname=f"{name}@%h"), *extra_args]
        out = self._output(name)
        # Its own process group, so a test can SIGKILL a worker with its pool children.
        proc = subprocess.Popen(argv, env=self.env, start_new_session=True, stdout=out, stderr=out)
        self.workers.append(proc)
        return proc

    def wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"Bearer {self.settings.auth_tokens[0]}"}
        while True:
            for proc in [*self.workers, self.deliverer, self.api]:
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} at start-up")
            try:
                response = httpx.get(f"{self.base_url}/readyz", headers=headers, timeout=2)
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API at {self.base_url} was not ready in {timeout:.0f} s")
            time.sleep(0.2)

    def stop(self) -> None:
        # The API first (no new jobs), then the workers, then the broker they talk to.
        if self.api is not None:
            _stop(self.api, "api")
        if self.deliverer is not None:
            _stop(self.deliverer, "webhook deliverer")
        for proc in reversed(self.workers):
            _stop(proc, "worker")
        if self.redis is not None:
            self.redis.stop()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(settings: Settings, host: str, port: int, workers: int) -> None:
    with Stack(settings, host, port).start(workers) as stack:
        print(
            f"Render API on {stack.base_url} (storage {settings.render_storage}); Ctrl-C stops",
            flush=True,
        )
        try:
            signal.pause()
        except KeyboardInterrupt:
            print("stopping…", file=sys.stderr)


def _session_token() -> str | None:
    """A random AUTH_TOKEN for this launch when none is set (a laptop's `make serve` or
    `make demo` on a fresh clone), exported to the children; None when one is set. The
    service itself has no usable default: the API refuses to start without its own."""
    if "AUTH_TOKEN" in os.environ:
        return None
    token = secrets.token_urlsafe(24)
    os.environ["AUTH_TOKEN"] = token
    return token


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m api.launch")
    parser.add_argument("command", choices=["serve", "demo"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes to start")
    parser.add_argument("--out", type=Path, default=Path("dist/demo.mp4"))
    args = parser.parse_args(argv)
    session_token = _session_token()
    try:
        settings = load_settings()
        require_auth_token(settings)  # a token set to the default is refused, as by the API
        # Before any child starts: a worker would refuse this FFmpeg anyway, less visibly.
        ffmpeg = require_ffmpeg(find_ffmpeg(settings.ffmpeg_binary or None))
    except (SettingsError, FileNotFoundError, UnfitFFmpeg) as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"FFmpeg {ffmpeg.release} at {ffmpeg.binary}", file=sys.stderr)
    if session_token:
        url = f"http://{args.host}:{args.port}"
        print(
            f"AUTH_TOKEN is not set: this session's token is {session_token}\n"
            f"  curl -H 'Authorization: Bearer {session_token}' {url}/readyz\n"
            "  (export AUTH_TOKEN to choose your own)",
            flush=True,
        )
    # SIGTERM (docker stop, kill) ends us like Ctrl-C, so the finally-blocks stop the children.
    # Ctrl-C itself is made to stop us even when we were started with SIGINT ignored (a shell
    # ignores it in what it starts in the background): the children would stop, we would not.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.command == "serve":
        serve(settings, args.host, args.port, args.workers)
    else:
        from api.demo import run_demo

        # The workers' chatter would drown the progress bar: it goes to files instead.
        logs = settings.render_storage / "logs"
        print(f"worker and API output: {logs}/worker1.log, {logs}/api.log", file=sys.stderr)
        with Stack(settings, args.host, args.port, log_dir=logs).start(args.workers) as stack:
            run_demo(stack.base_url, settings.auth_tokens[0], args.out)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # during start-up: the stack has already been stopped
        sys.exit(130)
