"""Log lines for people (`LOG_FORMAT=text`, the default) or for log collectors (`json`).

With `json`, every line is one JSON object: time, level, logger, message, and the job id,
stage and worker of the stage that was running when it was logged (taken from context
variables that `StageTask` sets, so no log call has to pass them).
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("job", default=None)
_stage: contextvars.ContextVar[str | None] = contextvars.ContextVar("stage", default=None)
_worker: contextvars.ContextVar[str | None] = contextvars.ContextVar("worker", default=None)


@contextmanager
def stage_context(job_id: str, stage: str, worker: str) -> Iterator[None]:
    """Tag every log line logged inside with the job, stage and worker."""
    tokens = (_job.set(job_id), _stage.set(stage), _worker.set(worker))
    try:
        yield
    finally:
        for var, token in zip((_job, _stage, _worker), tokens, strict=True):
            var.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, var in (("jobId", _job), ("stage", _stage), ("worker", _worker)):
            if (value := var.get()) is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(log_format: str, logger: logging.Logger | None = None) -> None:
    """Give the handlers of `logger` (default: the root logger) the chosen format."""
    if log_format != "json":
        return
    target = logger or logging.getLogger()
    if not target.handlers:
        target.addHandler(logging.StreamHandler())
    for handler in target.handlers:
        handler.setFormatter(JsonFormatter())
