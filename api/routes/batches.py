"""Batches: one render of a project's template per row of data (docs/templates.md)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api import batch_service
from api.deps import BatchEnqueuerDep, BlobsDep, ProjectId, SessionDep, SettingsDep, StorageDep
from api.errors import ApiError, responses, validation_error
from api.schemas import BatchAccepted, BatchOutput, BatchRequest, BatchView, RowError

router = APIRouter(tags=["batches"])


def _json_schema() -> dict[str, Any]:
    # The body is read by hand (JSON or multipart), so FastAPI does not list the model: its
    # schema goes inline, its parts' references pointing at the components the render
    # request already brings (RenderOptionsPatch and the option models under it).
    schema = BatchRequest.model_json_schema(
        by_alias=True, ref_template="#/components/schemas/{model}"
    )
    schema.pop("$defs", None)
    return schema


_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["csv"],
                    "properties": {
                        "csv": {
                            "type": "string",
                            "format": "binary",
                            "description": "UTF-8 CSV: a header of variable names, a row each",
                        },
                        "batch": {
                            "type": "string",
                            "description": "the other fields of BatchRequest, as JSON",
                        },
                    },
                }
            },
        },
    }
}


async def _order(request: Request) -> batch_service.BatchOrder:
    """The batch from a JSON body, or from a multipart CSV upload and its `batch` field."""
    kind = request.headers.get("content-type", "")
    rows: list[dict[str, Any]] | None = None
    try:
        if kind.startswith("multipart/form-data"):
            form = await request.form()
            upload = form.get("csv")
            if not isinstance(upload, UploadFile):
                raise ApiError(422, "validation_error", "csv: a CSV file part is required", "csv")
            try:
                rows = batch_service.csv_rows((await upload.read()).decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise ApiError(
                    422, "validation_error", f"csv: not UTF-8 text ({exc.reason})", "csv"
                ) from None
            given = form.get("batch")
            fields = json.loads(given) if isinstance(given, str) and given.strip() else {}
            if not isinstance(fields, dict) or "rows" in fields:
                raise ApiError(
                    422,
                    "validation_error",
                    "batch: a JSON object of the batch's fields, without rows (the CSV has them)",
                    "batch",
                )
            body = BatchRequest.model_validate(fields)
        else:
            body = BatchRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise validation_error(list(exc.errors())) from None
    except json.JSONDecodeError as exc:
        raise ApiError(422, "invalid_json", f"batch: not valid JSON: {exc}", "batch") from None
    if rows is None:
        if body.rows is None:
            raise ApiError(422, "validation_error", "rows: rows or a CSV file is required", "rows")
        rows = body.rows
    return batch_service.BatchOrder(
        rows=rows,
        output_name=body.output_name,
        render_options=body.render_options.model_dump(by_alias=True, exclude_unset=True)
        if body.render_options
        else None,
        callback_url=body.callback_url,
        version=body.version,
        atomic=body.atomic,
    )


@router.post(
    "/v1/projects/{id}/batches",
    status_code=202,
    response_model=BatchAccepted,
    responses=responses(401, 404, 409, 422, 503, 507),
    summary="Queue a render of the project's template per row of data",
    openapi_extra=_BODY,
)
async def create_batch(
    project_id: ProjectId,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    enqueue: BatchEnqueuerDep,
) -> BatchAccepted:
    """Every row is checked first: valid rows are queued as jobs, invalid ones come back with
    their index and reason (with `atomic`, one invalid row refuses the batch)."""
    order = await _order(request)
    # Checking a thousand rows takes a while: not on the event loop.
    batch, refused = await run_in_threadpool(
        batch_service.submit_batch, session, settings, storage, enqueue, project_id, order
    )
    response.headers["Location"] = f"/v1/batches/{batch.id}"
    return BatchAccepted(
        batch_id=batch.id,
        queued=batch.rows - len(refused),
        invalid=[RowError.model_validate(problem.as_dict()) for problem in refused],
    )


BatchId = Annotated[str, Path(alias="batchId", description="the id POST .../batches returned")]


@router.get(
    "/v1/batches/{batchId}",
    response_model=BatchView,
    responses=responses(401, 404),
    summary="A batch: counts by status, progress, cache figures and its rows, a page at a time",
)
def get_batch(
    batch_id: BatchId,
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, description="rows to skip")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="rows to return")] = 100,
) -> BatchView:
    return batch_service.batch_view(session, batch_id, offset, limit)


@router.post(
    "/v1/batches/{batchId}/cancel",
    status_code=202,
    response_model=BatchView,
    responses=responses(401, 404),
    summary="Cancel every job of the batch that has not ended",
)
def cancel_batch(batch_id: BatchId, session: SessionDep, settings: SettingsDep) -> BatchView:
    batch_service.cancel_batch(session, settings, batch_id)
    return batch_service.batch_view(session, batch_id, 0, 100)


@router.get(
    "/v1/batches/{batchId}/outputs",
    response_model=list[BatchOutput],
    responses=responses(401, 404),
    summary="The videos of the batch's succeeded jobs, with their URLs",
)
def list_batch_outputs(
    batch_id: BatchId, session: SessionDep, blobs: BlobsDep
) -> list[BatchOutput]:
    return batch_service.batch_outputs(session, blobs, batch_id)


@router.get(
    "/v1/batches/{batchId}/outputs.zip",
    responses={**responses(401, 404), 200: {"content": {"application/zip": {}}}},
    response_class=StreamingResponse,
    summary="The videos of the batch's succeeded jobs as one ZIP, streamed",
)
def zip_batch_outputs(batch_id: BatchId, session: SessionDep, blobs: BlobsDep) -> StreamingResponse:
    batch = batch_service.load_batch(session, batch_id)
    outputs = batch_service.batch_outputs(session, blobs, batch_id)
    return StreamingResponse(
        batch_service.zip_stream(blobs, batch.project_id, outputs),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}.zip"'},
    )
