"""Liveness and readiness. Both need the token, like every route."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import BlobsDep, SettingsDep, StorageDep
from api.errors import error_body, responses
from api.schemas import HealthResponse, ReadyResponse
from pipeline import fonts
from pipeline.capabilities import require_ffmpeg
from pipeline.ffmpeg import find_ffmpeg
from tasks import broker
from tasks.db import session_scope

log = logging.getLogger("render.api.health")

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse, responses=responses(401))
def healthz() -> HealthResponse:
    """The process is up and answering."""
    return HealthResponse()


def _check(name: str, checks: dict[str, str], probe: Callable[[], None]) -> None:
    try:
        probe()
        checks[name] = "ok"
    except Exception as exc:
        log.warning("readiness: %s is down: %s", name, exc)
        checks[name] = f"down: {type(exc).__name__}: {exc}".strip()


@router.get(
    "/readyz",
    response_model=ReadyResponse,
    responses={
        **responses(401),
        503: {"model": ReadyResponse, "description": "a dependency is down (named in checks)"},
    },
)
def readyz(settings: SettingsDep, storage: StorageDep, blobs: BlobsDep) -> JSONResponse:
    """Ready when the database and the broker answer, the storage is writable, the object
    store (STORAGE_URL) answers and takes the credentials, FFmpeg has every encoder, filter
    and format a render uses and the packaged default font reads as a font; `fonts` lists the
    families every render has."""

    def database() -> None:
        with session_scope(settings.db_url) as session:
            session.execute(text("SELECT 1"))

    def broker_ping() -> None:
        broker.ping(settings.redis_url)

    def storage_writable() -> None:
        storage.root.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".readyz-", dir=storage.root)
        os.close(fd)
        os.unlink(name)

    def ffmpeg() -> None:
        # Asked once per binary in this process: later calls cost a stat().
        require_ffmpeg(find_ffmpeg(settings.ffmpeg_binary or None))

    available: list[str] = []

    def packaged_fonts() -> None:
        found = fonts.catalogue()
        for font in found.values():
            if not fonts.is_font(font.path):
                raise ValueError(f"{font.path} is not a readable font")
        available.extend(fonts.families(found))

    checks: dict[str, str] = {}
    _check("database", checks, database)
    _check("broker", checks, broker_ping)
    _check("storage", checks, storage_writable)
    if settings.storage_url:
        _check("objectStore", checks, blobs.check)
    _check("ffmpeg", checks, ffmpeg)
    _check("fonts", checks, packaged_fonts)
    down = [name for name, state in checks.items() if state != "ok"]
    if not down:
        ready = ReadyResponse(status="ready", checks=checks, fonts=available)
        return JSONResponse(ready.model_dump())
    body = ReadyResponse(status="unavailable", checks=checks, fonts=available).model_dump()
    message = "not ready: " + "; ".join(f"{name} is {checks[name]}" for name in down)
    body.update(error_body("not_ready", message))
    return JSONResponse(body, status_code=503)
