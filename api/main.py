"""The app factory. Run with `uvicorn api.main:create_app --factory`.

Nothing touches the disk at import time; `api.main.app` is built on first access, for tools
that want a module attribute.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from api import errors
from api.auth import install_log_redaction, require_token
from api.limits import BODY_SLACK, BodyLimit, Limit
from api.routes import assets, batches, console, docs, health, jobs, outputs, projects, session
from api.routes import events as events_route
from api.routes import metrics as metrics_route
from api.schemas import with_defaults
from api.uploads import sweep_stale_uploads
from tasks import events, logs, metrics, retention, watchdog
from tasks.blobstore import StoreRefused
from tasks.db import get_engine
from tasks.settings import Settings, SettingsError, get_settings, require_auth_token
from tasks.storage import Storage, require_store

log = logging.getLogger("render.api")

DESCRIPTION = """Renders narrated 1080p MP4 slideshows from scenes of images and voiceovers.

Every route needs `Authorization: Bearer <AUTH_TOKEN>`, or the web console's session cookie
from `POST /v1/session`. Errors always have the shape
`{"error": {"code": "...", "message": "...", "field": "..."}}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    if settings is None:  # a real start (uvicorn's factory), not a test's own settings
        try:
            settings = get_settings()
            require_auth_token(settings)  # fail closed: no service behind a known token
            require_store(settings)
        except (SettingsError, StoreRefused) as exc:
            # One line and a non-zero exit, not a traceback from inside uvicorn.
            raise SystemExit(f"error: {exc}") from None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        Storage(settings.render_storage).ensure()
        sweep_stale_uploads(settings.render_storage)
        get_engine(settings.db_url)
        events.configure(settings.redis_url)
        metrics.setup(settings)
        # Workers run the watchdog too; the API's copy ends stale jobs even when every worker
        # is gone, so a job the status API shows is never RUNNING for ever.
        stop_watchdog = watchdog.start_thread(settings)
        _app.state.events_hub = events_route.start_hub(settings)
        stop_retention = retention.start_thread(settings)
        log.info("render api ready: storage %s", settings.render_storage)
        try:
            yield
        finally:
            _app.state.events_hub.stop()
            stop_watchdog.set()
            stop_retention.set()

    app = FastAPI(
        title="Render API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(require_token)],
        # Their defaults load Swagger UI and ReDoc from a CDN: /docs is served from the
        # package instead (api/routes/docs.py).
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    install_log_redaction()  # event-stream tokens travel in the query string
    errors.install(app)
    for name in (None, "uvicorn", "uvicorn.error", "uvicorn.access"):
        logs.configure(settings.log_format, logging.getLogger(name) if name else None)
    for module in (
        health,
        session,
        projects,
        assets,
        jobs,
        batches,
        events_route,
        outputs,
        metrics_route,
    ):
        app.include_router(module.router)
    docs.install(app)
    console.install(app)
    build_openapi = app.openapi
    app.openapi = lambda: with_defaults(  # type: ignore[method-assign]
        session.document_open(build_openapi()), settings.default_options()
    )
    # Added last, so outermost: even a 413 or 401 carries the CORS headers.
    app.add_middleware(
        BodyLimit,
        default=Limit.of("MAX_JSON_MB", settings.max_json_mb),
        routes=[
            (
                _path_of(assets.router, assets.upload_assets),
                frozenset({"POST"}),
                Limit.of("MAX_UPLOAD_MB", settings.max_upload_mb, BODY_SLACK),
            )
        ],
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.origins,
        allow_methods=["GET", "HEAD", "POST", "PUT", "OPTIONS"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "Range",
            "Last-Event-ID",
            "Idempotency-Key",
        ],
        expose_headers=["Location", "Content-Range", "Content-Length", "Accept-Ranges"],
    )
    return app


def _path_of(router: APIRouter, endpoint: Callable[..., Any]) -> re.Pattern[str]:
    """The path pattern of the route `endpoint` serves: the route's own, never re-spelled
    (the app includes each router without a prefix of its own)."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.endpoint is endpoint:
            return route.path_regex
    raise LookupError(f"no route serves {endpoint.__name__}")


def __getattr__(name: str) -> Any:
    if name == "app":
        return create_app()
    raise AttributeError(name)
