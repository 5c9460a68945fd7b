"""Batches: one render of a project's template per row of data, checked first, created in one
transaction and queued behind single renders; their status, cancel, outputs and zip."""

from __future__ import annotations

import csv
import io
import logging
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from sqlmodel import Session, col, select

from api.deps import Enqueuer
from api.errors import ApiError, Problems
from api.schemas import (
    BatchOutput,
    BatchRowView,
    BatchView,
    CacheSummary,
    RenderRequest,
    mp4_name,
)
from api.service import (
    Memo,
    RenderOrder,
    SpecSource,
    check_callback,
    check_free_space,
    check_render,
    create_jobs,
    enqueue_job,
    existing_project,
    load_source,
    resolve_options,
)
from pipeline import template
from tasks import jobs, watchdog, webhooks
from tasks.blobstore import BlobStore, output_key
from tasks.models import (
    Batch,
    Job,
    JobStatus,
    JobTask,
)
from tasks.settings import Settings
from tasks.storage import Storage

log = logging.getLogger("render.api.batches")

ROW = "_row"  # the row's number (1, 2, ...) in a batch's outputName pattern


@dataclass(frozen=True)
class BatchOrder:
    """A batch request as the service takes it: the rows' data and what every row shares."""

    rows: list[dict[str, Any]]
    output_name: str
    render_options: dict[str, Any] | None = None
    callback_url: str | None = None
    version: int | None = None
    atomic: bool = False


@dataclass(frozen=True)
class RowProblem:
    index: int
    code: str
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "code": self.code,
            "field": self.field,
            "message": self.message,
        }


def _output_pattern(pattern: str, source: SpecSource) -> template.Template:
    """The batch's outputName as a template over the spec's variables and `_row`."""
    try:
        parsed = template.parse({"outputName": pattern})
    except template.TemplateError as exc:
        raise ApiError(422, "validation_error", exc.first.message, "outputName") from None
    known = set(source.template.variables) | {ROW}
    for name in parsed.uses:
        if name not in known:
            raise ApiError(
                422,
                "unknown_variable",
                f"outputName: {name!r} is not a variable of the template (nor {ROW})",
                "outputName",
            )
    if not parsed.uses:
        raise ApiError(
            422,
            "validation_error",
            f"outputName: {pattern!r} would give every row the same file: use a placeholder "
            f"({{{{{ROW}}}}} or a variable)",
            "outputName",
        )
    return parsed


def _row_output(pattern: template.Template, values: dict[str, Any], index: int) -> str:
    out = template.substitute(pattern, {**values, ROW: index + 1})["outputName"]
    return mp4_name(str(out))


def submit_batch(
    session: Session,
    settings: Settings,
    storage: Storage,
    enqueue: Enqueuer,
    project_id: str,
    order: BatchOrder,
) -> tuple[Batch, list[RowProblem]]:
    """Check every row, queue a job per valid row (created in one transaction), and return the
    batch and the rows refused. What every row shares (the options, the callback, the output
    pattern, the version) is checked once, before any row: a problem there refuses the batch.
    With `atomic`, one invalid row refuses the batch; a batch with no valid row is refused."""
    existing_project(storage, project_id)
    if not order.rows:
        raise ApiError(422, "validation_error", "rows: a batch needs at least one row", "rows")
    if len(order.rows) > settings.max_batch_rows:
        raise ApiError(
            422,
            "over_limit",
            f"rows: {len(order.rows)} rows, over MAX_BATCH_ROWS ({settings.max_batch_rows})",
            "rows",
        )
    shared = Problems()
    source = load_source(session, storage, project_id, order.version, shared)
    base = RenderRequest.model_validate(
        {"renderOptions": order.render_options, "outputName": "row.mp4"}
    )
    resolve_options(settings, base, shared)
    shared.add(check_free_space(settings, storage))
    shared.raise_first()
    assert source is not None
    pattern = _output_pattern(order.output_name, source)
    callback = None
    if order.callback_url is not None:
        callback = check_callback(settings, order.callback_url, shared)
        shared.raise_first()
    refused: list[RowProblem] = []
    accepted: list[tuple[int, RenderOrder]] = []
    names: dict[str, int] = {}
    memo = Memo()
    for index, row in enumerate(order.rows):
        where = f"rows[{index}]"
        if not isinstance(row, dict):
            refused.append(RowProblem(index, "validation_error", where, f"{where}: not an object"))
            continue
        problems = Problems()
        request = base.model_copy(update={"data": row})
        made = check_render(
            settings,
            storage,
            project_id,
            request,
            problems,
            source=source,
            where=where,
            memo=memo,
        )
        if made is None:
            first = problems.found[0]
            refused.append(RowProblem(index, first.code, first.field, first.message))
            continue
        try:
            name = _row_output(pattern, made.data, index)
        except ValueError as exc:
            refused.append(
                RowProblem(index, "validation_error", "outputName", f"{where}: outputName: {exc}")
            )
            continue
        if name in names:
            refused.append(
                RowProblem(
                    index,
                    "output_collision",
                    "outputName",
                    f"{where}: outputName gives {name!r}, as row {names[name]} does",
                )
            )
            continue
        names[name] = index
        accepted.append((index, replace(made, output_name=name, callback=None)))
    if refused and (order.atomic or not accepted):
        worst = refused[0]
        why = "atomic: the batch is refused" if order.atomic else "no row is valid"
        raise ApiError(
            422,
            "invalid_rows",
            f"{len(refused)} of {len(order.rows)} rows are invalid ({why}); first, row "
            f"{worst.index}: {worst.message}",
            worst.field,
        )
    batch = Batch(
        id=jobs.new_job_id(),
        project_id=project_id,
        version=source.version,
        output_pattern=order.output_name,
        rows=len(order.rows),
        invalid=[problem.as_dict() for problem in refused],
        callback_url=callback,
    )
    session.add(batch)
    session.flush()
    if callback is not None:
        webhooks.register_batch(session, batch.id, callback)
    cap = settings.batch_concurrency
    created = create_jobs(
        session,
        [made for _, made in accepted],
        # Past the cap, held: sent by tasks/batches.py as earlier jobs of the batch end.
        [
            {"batch_id": batch.id, "batch_row": index, "held": 0 < cap <= position}
            for position, (index, _) in enumerate(accepted)
        ],
    )
    session.commit()
    for (_, made), job in zip(accepted, created, strict=True):
        if not job.held:
            enqueue_job(session, enqueue, job, made.outline)
    log.info(
        "batch %s: %d jobs queued for project %s, %d rows refused",
        batch.id,
        len(created),
        project_id,
        len(refused),
    )
    return batch, refused


def csv_rows(text: str) -> list[dict[str, Any]]:
    """A CSV's rows as data: the header names the variables; quoting as RFC 4180 (commas,
    quotes and line breaks inside quoted cells); an empty cell gives no value (the default
    applies). ApiError naming the line for a row with more cells than the header."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ApiError(422, "validation_error", "csv: no header row", "csv") from None
    header = [name.strip() for name in header]
    if not all(header) or len(set(header)) != len(header):
        raise ApiError(422, "validation_error", "csv: the header names each column once", "csv")
    rows = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        if len(cells) > len(header):
            raise ApiError(
                422,
                "validation_error",
                f"csv: line {reader.line_num} has {len(cells)} cells, the header {len(header)}",
                "csv",
            )
        rows.append({name: cell for name, cell in zip(header, cells, strict=False) if cell != ""})
    return rows


def load_batch(session: Session, batch_id: str) -> Batch:
    batch = session.get(Batch, batch_id) if len(batch_id) <= 64 else None
    if batch is None:
        raise ApiError(404, "not_found", f"no batch {batch_id!r}", "batchId")
    return batch


def batch_jobs(session: Session, batch_id: str) -> list[Job]:
    return list(
        session.exec(
            select(Job).where(col(Job.batch_id) == batch_id).order_by(col(Job.batch_row))
        ).all()
    )


def batch_view(session: Session, batch_id: str, offset: int, limit: int) -> BatchView:
    """The batch's counts by status, progress, cache figures and a page of its rows (the
    refused ones among them, with their reason)."""
    batch = load_batch(session, batch_id)
    found = batch_jobs(session, batch_id)
    counts: dict[str, int] = {str(status): 0 for status in JobStatus}
    for job in found:
        counts[job.status] += 1
    counts["INVALID"] = len(batch.invalid)
    ended = all(JobStatus(job.status).finished for job in found)
    if not ended:
        status = "RUNNING"
    elif counts[JobStatus.SUCCEEDED] == len(found):
        status = str(JobStatus.SUCCEEDED)
    elif batch.cancel_requested:
        status = str(JobStatus.CANCELLED)
    else:
        status = str(JobStatus.FAILED)
    clips = session.exec(
        select(JobTask.clip, JobTask.clip_bytes)
        .join(Job, col(Job.id) == col(JobTask.job_id))
        .where(col(Job.batch_id) == batch_id, col(JobTask.clip).is_not(None))
    ).all()
    encoded = sum(clip == "encoded" for clip, _ in clips)
    cache = CacheSummary(
        hits=sum(clip == "cached" for clip, _ in clips),
        encoded=encoded,
        bytes_saved=sum(size for clip, size in clips if clip == "cached"),
    )
    items = [
        BatchRowView(
            index=job.batch_row or 0,
            job_id=job.id,
            status=job.status,
            output_name=job.output_name,
            error=job.error,
        )
        for job in found
    ] + [
        BatchRowView(index=row["index"], status="INVALID", error=row["message"])
        for row in batch.invalid
    ]
    items.sort(key=lambda item: item.index)
    return BatchView(
        id=batch.id,
        project_id=batch.project_id,
        version=batch.version,
        status=status,
        rows=batch.rows,
        counts=counts,
        progress=sum(job.progress for job in found) / len(found) if found else 1.0,
        cancel_requested=batch.cancel_requested,
        created_at=batch.created_at,
        finished_at=max((j.finished_at for j in found if j.finished_at), default=None)
        if ended
        else None,
        cache=cache,
        encodes_per_row=encoded / len(found) if found else 0.0,
        offset=offset,
        limit=limit,
        items=items[offset : offset + limit],
    )


def cancel_batch(session: Session, settings: Settings, batch_id: str) -> None:
    """End every job of the batch: queued ones at once, running ones at their stage's next
    check (within a second); the workers drop the tasks of a cancelled job when they claim
    them."""
    batch = load_batch(session, batch_id)
    batch.cancel_requested = True
    session.add(batch)
    live = watchdog.cancel_live_within(settings)
    for job in batch_jobs(session, batch_id):
        if not JobStatus(job.status).finished:
            jobs.request_cancel(session, job.id, live)
    session.commit()
    log.info("batch %s: cancel requested", batch_id)


def batch_outputs(session: Session, blobs: BlobStore, batch_id: str) -> list[BatchOutput]:
    """The videos of the batch's succeeded jobs, by row."""
    batch = load_batch(session, batch_id)
    found = []
    for job in batch_jobs(session, batch_id):
        if job.status != JobStatus.SUCCEEDED:
            continue
        blob = blobs.stat(output_key(batch.project_id, job.output_name))
        if blob is None:  # replaced or removed since
            continue
        found.append(
            BatchOutput(
                index=job.batch_row or 0,
                job_id=job.id,
                name=job.output_name,
                size=blob.size,
                url=f"/v1/projects/{batch.project_id}/outputs/video?name={job.output_name}",
            )
        )
    return found


class _Sink(io.RawIOBase):
    """What zipfile writes to: the bytes handed on as they come (not seekable, so zipfile
    writes data descriptors and never goes back)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def drain(self) -> Iterator[bytes]:
        chunks, self.chunks = self.chunks, []
        yield from chunks


def zip_stream(blobs: BlobStore, project_id: str, outputs: list[BatchOutput]) -> Iterator[bytes]:
    """The outputs as one ZIP (stored, not compressed: MP4 does not shrink), made while it is
    sent: the API never holds more than a chunk of it."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for output in outputs:
            info = zipfile.ZipInfo(output.name, date_time=(2026, 1, 1, 0, 0, 0))
            with (
                blobs.open(output_key(project_id, output.name)) as source,
                archive.open(info, "w", force_zip64=True) as target,
            ):
                while chunk := source.read(1 << 20):
                    target.write(chunk)
                    yield from sink.drain()
            yield from sink.drain()
    yield from sink.drain()
