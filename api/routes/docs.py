"""`/docs`: Swagger UI, served from the installed package (swagger-ui-py), never a CDN.

People paste their bearer token into this page, so nothing on it may come from a third
party: its script and style are files of our own origin, and a Content-Security-Policy lets
the browser run nothing else (the page's one inline script is allowed by its hash). Like
`/openapi.json`, the page and its files need no token: they hold none.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from api.errors import ApiError

DOCS_PATH = "/docs"
STATIC_PATH = "/docs/static"
# The files the page loads; nothing else of the package's folder is served.
FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
_SECURITY = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def static_dir() -> Path:
    """swagger-ui-py's folder of Swagger UI files, found without importing the package (its
    `__init__` loads Jinja2, PyYAML and an adapter for every web framework)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or spec.origin is None:
        raise RuntimeError("swagger-ui-py is not installed: pip install swagger-ui-py")
    return Path(spec.origin).parent / "static"


def content_security_policy(html: str) -> str:
    """Script from this origin and the page's own inline script (by its hash) only; style,
    images and requests from this origin (and the images Swagger UI's CSS holds as data:)."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    ]
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self' " + " ".join(hashes),
            # Swagger UI sets element styles from script; an inline style runs no code.
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def install(app: FastAPI) -> None:
    """Serve /docs and its files; build the app with `docs_url=None, redoc_url=None` (the
    defaults load Swagger UI and ReDoc from a CDN)."""
    folder = static_dir()
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise RuntimeError(f"swagger-ui-py at {folder} lacks {', '.join(missing)}")
    html = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title} - docs",
        swagger_js_url=f"{STATIC_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{STATIC_PATH}/favicon-32x32.png",
        oauth2_redirect_url=None,
        # No badge fetched from validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )
    page = bytes(html.body).decode()
    headers = {**_SECURITY, "Content-Security-Policy": content_security_policy(page)}

    async def docs(_request: Request) -> HTMLResponse:
        return HTMLResponse(page, headers=headers)

    async def static(request: Request) -> FileResponse:
        name = str(request.path_params["name"])
        if name not in FILES:
            raise ApiError(404, "not_found", f"no docs file {name!r}", "name")
        return FileResponse(folder / name, media_type=FILES[name], headers=_SECURITY)

    # Plain Starlette routes, as FastAPI adds its own /docs: outside the app's dependencies
    # (the token) and the OpenAPI document.
    app.add_route(DOCS_PATH, docs, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_route(
        f"{STATIC_PATH}/{{name}}", static, methods=["GET", "HEAD"], include_in_schema=False
    )
