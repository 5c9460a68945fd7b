"""The app factory. Run with `uvicorn api.main:create_app --factory`.

Nothing touches the disk at import time; `api.main.app` is built on first access, for tools
that want a module attribute.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import errors
from api.auth import require_token
from api.routes import assets, health, jobs, outputs, projects
from api.uploads import BodyLimit
from tasks import watchdog
from tasks.db import get_engine
from tasks.settings import Settings, get_settings
from tasks.storage import Storage

log = logging.getLogger("render.api")

DESCRIPTION = """Renders narrated 1080p MP4 slideshows from scenes of images and voiceovers.

Every route needs `Authorization: Bearer <AUTH_TOKEN>`. Errors always have the shape
`{"error": {"code": "...", "message": "...", "field": "..."}}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        Storage(settings.render_storage).ensure()
        get_engine(settings.db_url)
        # Workers run the watchdog too; the API's copy ends stale jobs even when every worker
        # is gone, so a job the status API shows is never RUNNING for ever.
        stop_watchdog = watchdog.start_thread(settings)
        log.info("render api ready: storage %s", settings.render_storage)
        try:
            yield
        finally:
            stop_watchdog.set()

    app = FastAPI(
        title="Render API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(require_token)],
    )
    app.state.settings = settings
    errors.install(app)
    for module in (health, projects, assets, jobs, outputs):
        app.include_router(module.router)
    # Added last, so outermost: even a 413 or 401 carries the CORS headers.
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.origins,
        allow_methods=["GET", "HEAD", "POST", "PUT", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Range"],
        expose_headers=["Location", "Content-Range", "Content-Length", "Accept-Ranges"],
    )
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return create_app()
    raise AttributeError(name)
