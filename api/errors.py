"""One error shape for every failure: `{"error": {"code", "message", "field"}}`.

Routes raise `ApiError`; FastAPI's validation errors, Starlette's HTTP errors and anything
unexpected are turned into the same shape here, and an unexpected error never shows its trace.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from tasks.blobstore import StoreUnavailable

log = logging.getLogger("render.api.errors")


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """An error the client can act on: status, a stable code, a message, the field at fault."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


class Problems:
    """What stops a request, collected in the order it is checked rather than raised at the
    first: the first problem is the answer (`raise_first`), and a caller that reports several
    at once (a batch, per row) reads them all from `found`."""

    def __init__(self) -> None:
        self.found: list[ApiError] = []

    def add(self, problem: ApiError | None) -> None:
        if problem is not None:
            self.found.append(problem)

    def __bool__(self) -> bool:
        return bool(self.found)

    def __len__(self) -> int:
        return len(self.found)

    def raise_first(self) -> None:
        """Raise the first problem found, if any."""
        if self.found:
            if len(self.found) > 1:
                log.info(
                    "request refused for %d problems: %s",
                    len(self.found),
                    "; ".join(f"{p.code} ({p.field})" for p in self.found),
                )
            raise self.found[0]


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, field), status_code=status, headers=headers)


# Where a parameter came from is not part of its name for the client.
_SOURCES = {"body", "path", "query", "header", "cookie"}


def field_path(loc: Sequence[str | int], prefix: str | None = None) -> str | None:
    """('body', 'scenes', 2, 'images') → 'scenes[2].images'."""
    parts = list(loc)
    if parts and parts[0] in _SOURCES:
        parts = parts[1:]
    out = prefix or ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or None


def _clean_message(msg: str) -> str:
    # pydantic prefixes errors raised by our validators with "Value error, ".
    return msg.removeprefix("Value error, ")


def first_error(
    errors: Iterable[Mapping[str, Any]], prefix: str | None = None
) -> tuple[str, str, str | None]:
    """The code, message and field of the first of pydantic's errors, for the client."""
    errs = list(errors)
    if not errs:
        return "validation_error", "the request is not valid", prefix
    err = errs[0]
    loc = tuple(err.get("loc", ()))
    kind = str(err.get("type", ""))
    message = _clean_message(str(err.get("msg", "invalid value")))
    if kind == "json_invalid":
        ctx = err.get("ctx") or {}
        detail = ctx.get("error", message)
        return "invalid_json", f"the request body is not valid JSON: {detail}", None
    field = field_path(loc, prefix)
    if kind == "missing" and field is None:
        return "missing_body", "a request body is required", None
    if kind == "extra_forbidden":
        message = f"unknown field {field!r}" if field else "unknown field"
    elif field:
        message = f"{field}: {message}"
    if len(errs) > 1:
        message += f" (and {len(errs) - 1} more problem{'s' if len(errs) > 2 else ''})"
    return "validation_error", message, field


def validation_error(errors: Iterable[Mapping[str, Any]], prefix: str | None = None) -> ApiError:
    """A 422 naming the first of pydantic's errors."""
    code, message, field = first_error(errors, prefix)
    return ApiError(422, code, message, field)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "validation_error",
    503: "unavailable",
}


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)


async def _request_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    code, message, field = first_error(exc.errors())
    return error_response(422, code, message, field)


async def _http_exception(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    code = _HTTP_CODES.get(status, "error")
    if status == 400 and detail == "There was an error parsing the body":
        code, detail = (
            "malformed_body",
            "the request body could not be parsed (malformed form data?)",
        )
    elif status == 404 and detail == "Not Found":
        detail = "no such route"
    return error_response(status, code, detail, None, getattr(exc, "headers", None))


async def _store_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    # The object store (STORAGE_URL) did not answer within the API's short retry: say which.
    log.warning("object store unavailable: %s", exc)
    return error_response(503, "storage_unavailable", str(exc))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal server error; see the service log")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(Exception, _unexpected)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer with."""
    return {
        status: {"model": ErrorResponse, "description": _HTTP_CODES.get(status, "error")}
        for status in statuses
    }
