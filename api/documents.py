"""The job document: a job as GET /v1/jobs/{id} shows it, and as webhooks and the event stream
send it (`job_document`). Built here, beside the routes rather than in one, so the jobs and
events routes and the webhook deliverer all read it from one place.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlmodel import Session

from api.schemas import CacheSummary, JobView, SceneProgress, StageCount, StageView
from pipeline import registry
from tasks import joblog, jobs, watchdog
from tasks.models import Job, JobTask, StageStatus, Webhook
from tasks.settings import Settings
from tasks.storage import Storage, blob_store


def _scene_progress(index: int, parts: list[JobTask]) -> SceneProgress:
    """A scene's build from its one stage row or its chunks' rows."""
    statuses = {StageStatus(row.status) for row in parts}
    status = next(
        (s for s in (StageStatus.FAILED, StageStatus.CANCELLED) if s in statuses),
        StageStatus.DONE if statuses == {StageStatus.DONE} else None,
    )
    if status is None:  # some chunks may be done: waiting for the others is PENDING
        status = StageStatus.RUNNING if StageStatus.RUNNING in statuses else StageStatus.PENDING
    clips = {row.clip for row in parts}
    # Null until every chunk is built; chunks that came about differently (some cached, some
    # encoded) make an encoded clip.
    clip = None if None in clips else clips.pop() if len(clips) == 1 else "encoded"
    weight = sum(row.weight for row in parts)
    progress = (
        sum(row.weight * row.progress for row in parts) / weight
        if weight > 0
        else sum(row.progress for row in parts) / len(parts)
    )
    return SceneProgress(
        index=index,
        status=status,
        progress=progress,
        cached=clip == "cached",
        clip=clip,
        chunks=len(parts),
    )


def spec_digest(spec: dict[str, Any]) -> str:
    """sha256 of a spec's canonical JSON (keys sorted, no spaces, UTF-8), as versions have."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def stage_view(row: JobTask) -> StageView:
    return StageView.model_validate({**row.model_dump(), "cached": row.clip == "cached"})


def _notable(rows: list[JobTask], settings: Settings) -> list[JobTask]:
    """A huge job's runs worth showing one by one: the stages that run once, and the runs
    running or failed; at most JOB_STAGES_INLINE, so the document stays small to poll."""
    picked = [
        row
        for row in rows
        if registry.scene_of(row.name) is None
        or row.status in (StageStatus.RUNNING, StageStatus.FAILED)
    ]
    return picked[: settings.job_stages_inline]


def _stage_counts(rows: list[JobTask]) -> list[StageCount]:
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        name = registry.parse_label(row.name)[0].name
        tally = counts.setdefault(name, {"units": 0})
        tally["units"] += 1
        status = str(row.status).lower()
        tally[status] = tally.get(status, 0) + 1
    return [StageCount(name=name, **tally) for name, tally in counts.items()]


def job_view(session: Session, settings: Settings, storage: Storage, job: Job) -> JobView:
    rows = jobs.job_tasks(session, job.id)
    builds: dict[int, list[JobTask]] = {}
    for row in rows:
        if (scene := registry.clip_scene_of(row.name)) is not None:
            builds.setdefault(scene, []).append(row)
    scenes = [_scene_progress(scene, parts) for scene, parts in builds.items()]
    shown = rows if len(rows) <= settings.job_stages_inline else _notable(rows, settings)
    hits = [row for row in rows if row.clip == "cached"]
    cache = CacheSummary(
        hits=len(hits),
        encoded=sum(row.clip == "encoded" for row in rows),
        bytes_saved=sum(row.clip_bytes for row in hits),
    )
    return JobView.model_validate(
        {
            **job.model_dump(),
            "scenes": scenes,
            "stages": [stage_view(row) for row in shown],
            "stages_total": len(rows),
            "stage_counts": _stage_counts(rows),
            "logs": joblog.tail(storage, blob_store(settings, retry_seconds=1), job.id, 50),
            "waiting": watchdog.waiting_reason(session, settings, job),
            "cache": cache,
            # The spec itself may be large: its digest here, the spec at GET .../spec.
            "spec_sha256": spec_digest(job.spec) if job.spec is not None else None,
            "webhook": _webhook_view(webhook)
            if (webhook := session.get(Webhook, job.id))
            else None,
        }
    )


# --- the callback's secrets ----------------------------------------------------------------
# A callback URL often carries its receiver's secret (`?token=...`, `user:password@`). The job
# document is read by more than the bearer-token holder (an events-token holder, a browser's
# EventSource, the webhook receiver itself), so it never echoes one back: the delivery reads
# the full URL from its row, the document shows the URL without them.

REDACTED = "[redacted]"
_USERINFO = re.compile(r"(?<=//)[^/?#\s@]*@")
_QUERY = re.compile(r"\?[^\s#'\"]+")


def redacted_url(url: str) -> str:
    """`url` without credentials, query string or fragment: `https://h/p?[redacted]`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    host = parts.netloc.rpartition("@")[2]
    query = REDACTED if parts.query else ""
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, host, parts.path, query, fragment))


def redacted_text(text: str) -> str:
    """A delivery error without the credentials and query strings of the URLs it names."""
    return _QUERY.sub("?" + REDACTED, _USERINFO.sub(REDACTED + "@", text))


def _webhook_view(webhook: Webhook) -> dict[str, Any]:
    view = webhook.model_dump()
    view["url"] = redacted_url(webhook.url)
    if webhook.last_error is not None:
        view["last_error"] = redacted_text(webhook.last_error)
    return view


def job_document(session: Session, settings: Settings, job: Job) -> dict[str, Any]:
    """The job as GET /v1/jobs/{id} shows it, as JSON: what webhooks and the event stream send."""
    view = job_view(session, settings, Storage(settings.render_storage), job)
    return view.model_dump(mode="json", by_alias=True)
