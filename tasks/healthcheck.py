"""Health checks of the containers of one image (docker/Dockerfile, compose.yaml).

    python -m tasks.healthcheck api       # GET /healthz with the first AUTH_TOKEN
    python -m tasks.healthcheck worker    # this host's worker beat within a few sweeps
    python -m tasks.healthcheck flower    # Flower's own /healthcheck
    python -m tasks.healthcheck webhooks  # this host's webhook deliverer passed lately

Exit status 0 when healthy, 1 with one line on stderr saying what is wrong. Each reads the
same settings as the process it checks, so the check follows AUTH_TOKEN, DB_URL and
FLOWER_PORT without being told.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from datetime import timedelta

import httpx
from sqlmodel import col, select

from tasks import webhooks
from tasks.db import session_scope
from tasks.models import Worker, utcnow
from tasks.settings import Settings, SettingsError, load_settings
from tasks.watchdog import LIVE_BEATS

TIMEOUT = 5.0


class Unhealthy(Exception):
    pass


def check_api(settings: Settings, url: str) -> str:
    headers = {"Authorization": f"Bearer {settings.auth_tokens[0]}"}
    try:
        response = httpx.get(f"{url.rstrip('/')}/healthz", headers=headers, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise Unhealthy(f"api at {url} does not answer: {exc}") from None
    if response.status_code != 200:
        raise Unhealthy(f"api at {url}: /healthz answered {response.status_code}")
    return "api ok"


def check_worker(settings: Settings, host: str) -> str:
    """A worker's main process beats on the `workers` table every WATCHDOG_INTERVAL; its
    Celery name is `<name>@<host>`, the container's hostname unless `--hostname` says else."""
    within = timedelta(seconds=LIVE_BEATS * settings.watchdog_interval)
    with session_scope(settings.db_url) as session:
        beats = session.exec(
            select(Worker.hostname).where(
                col(Worker.hostname).endswith(f"@{host}"),
                col(Worker.heartbeat_at) >= utcnow() - within,
            )
        ).all()
    if not beats:
        raise Unhealthy(f"no worker on {host} beat in the last {within.total_seconds():g} s")
    return f"worker ok: {', '.join(sorted(beats))}"


# A deliverer passes every second; a pass longer than this is stuck (a database that hangs).
DELIVERER_SILENT_AFTER = 30.0


def check_webhooks(settings: Settings, host: str) -> str:
    """The deliverer (api/deliverer.py) touches its beat file at every pass."""
    beat = webhooks.beat_path(settings, host)
    try:
        age = time.time() - beat.stat().st_mtime
    except OSError:
        raise Unhealthy(f"no webhook deliverer on {host} has passed yet ({beat})") from None
    if age > DELIVERER_SILENT_AFTER:
        raise Unhealthy(f"the webhook deliverer on {host} last passed {age:.0f} s ago")
    return f"webhooks ok: passed {age:.1f} s ago"


def check_flower(settings: Settings, url: str | None) -> str:
    url = url or f"http://127.0.0.1:{settings.flower_port}"
    try:
        response = httpx.get(f"{url.rstrip('/')}/healthcheck", timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise Unhealthy(f"flower at {url} does not answer: {exc}") from None
    if response.status_code != 200:
        raise Unhealthy(f"flower at {url}: /healthcheck answered {response.status_code}")
    return "flower ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.healthcheck")
    parser.add_argument("role", choices=["api", "worker", "flower", "webhooks"])
    parser.add_argument("--url", help="api or flower base URL (default: this host's)")
    parser.add_argument(
        "--host", default=socket.gethostname(), help="worker, webhooks: the host name"
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if args.role == "api":
            print(check_api(settings, args.url or "http://127.0.0.1:8080"))
        elif args.role == "worker":
            print(check_worker(settings, args.host))
        elif args.role == "webhooks":
            print(check_webhooks(settings, args.host))
        else:
            print(check_flower(settings, args.url))
    except (Unhealthy, SettingsError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the database is down, say: unhealthy, not a traceback
        print(f"unhealthy: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
