"""One command on a laptop: an embedded Redis (unless REDIS_URL is set), a Celery worker and
the API, started together and stopped together on Ctrl-C.

    python -m api.launch serve [--port 8080]     # what `make serve` runs
    python -m api.launch demo                    # what `make demo` runs: renders the sample
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tasks.app import worker_argv
from tasks.redis_server import EmbeddedRedis
from tasks.settings import Settings, load_settings

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


def wait_until_up(
    base_url: str, token: str, timeout: float, procs: list[subprocess.Popen[bytes]]
) -> None:
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} during start-up")
        try:
            if httpx.get(f"{base_url}/readyz", headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API at {base_url} was not ready within {timeout:.0f} s")
        time.sleep(0.2)


@contextmanager
def stack(settings: Settings, host: str, port: int, workers: int = 1) -> Iterator[str]:
    """Run Redis (if embedded), `workers` Celery workers and the API; yield the API's URL."""
    env = dict(os.environ, RENDER_STORAGE=str(settings.render_storage))
    redis: EmbeddedRedis | None = None
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        if not settings.redis_url:
            redis = EmbeddedRedis(settings.render_storage / "redis").start()
            env["REDIS_URL"] = redis.url
            print(f"embedded Redis at {redis.url}", file=sys.stderr)
        for i in range(workers):
            argv = [sys.executable, *worker_argv(settings, hostname=f"worker{i + 1}@%h")]
            procs.append((f"worker{i + 1}", subprocess.Popen(argv, env=env)))
        api = [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory"]
        api += ["--host", host, "--port", str(port), "--log-level", "warning"]
        procs.append(("api", subprocess.Popen(api, env=env)))
        base_url = f"http://{host}:{port}"
        wait_until_up(base_url, settings.auth_token, 60, [p for _, p in procs])
        yield base_url
    finally:
        # The API first (no new jobs), then the workers, then the broker they talk to.
        for name, proc in reversed(procs):
            _stop(proc, name)
        if redis is not None:
            redis.stop()


def serve(settings: Settings, host: str, port: int, workers: int) -> None:
    with stack(settings, host, port, workers) as base_url:
        print(f"Render API on {base_url} (storage {settings.render_storage}); Ctrl-C stops it")
        try:
            signal.pause()
        except KeyboardInterrupt:
            print("stopping…", file=sys.stderr)


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
    settings = load_settings()
    # SIGTERM (docker stop, kill) ends us like Ctrl-C, so the finally-blocks stop the children.
    signal.signal(signal.SIGTERM, _interrupt)
    if args.command == "serve":
        serve(settings, args.host, args.port, args.workers)
    else:
        from api.demo import run_demo

        with stack(settings, args.host, args.port, args.workers) as base_url:
            run_demo(base_url, settings.auth_token, args.out)


if __name__ == "__main__":
    main()
