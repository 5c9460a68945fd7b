"""The webhook deliverer, a process of its own (tasks/webhooks.py says how delivery works).

    python -m api.deliverer       # what compose.yaml's `webhooks` service and `make serve` run

Outside the API process, so a receiver, however slow or hostile, costs the API no memory,
thread or time. In `api/` because what it sends is the API's own view of the job (the
document GET /v1/jobs/{id} shows). Any number of them may run beside each other: each attempt
is claimed in the database. SIGTERM or SIGINT stops it once its attempts in flight have ended,
each within WEBHOOK_TIMEOUT.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
from typing import Any

from sqlmodel import Session

from api.documents import job_document
from tasks import logs, metrics, webhooks
from tasks.db import get_engine
from tasks.models import Job
from tasks.settings import SettingsError, load_settings

log = logging.getLogger("render.webhooks")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logs.configure(settings.log_format)
    metrics.setup(settings)
    get_engine(settings.db_url)  # the tables, if this process is the first to start

    def document(session: Session, job: Job) -> dict[str, Any]:
        return job_document(session, settings, job)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info(
        "webhook deliverer: at most %d attempts at once, %d to one host, %g s each",
        settings.webhook_concurrency,
        settings.webhook_per_host,
        settings.webhook_timeout,
    )
    beat = webhooks.beat_path(settings, socket.gethostname())
    webhooks.run_forever(settings, document, stop, beat=beat)
    log.info("webhook deliverer stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
