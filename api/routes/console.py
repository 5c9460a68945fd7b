"""The web console: `/` and its files under `/console/`, served from the package (api/static).

Plain HTML, CSS and ES modules, no build step. The page holds no data and no token (it logs
in with the session cookie, api/session.py), so like `/docs` it is served without one. Its
Content-Security-Policy lets the browser run no script but these files, load nothing from
another origin and be framed by nobody.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse

from api.errors import ApiError

STATIC_PATH = "/console"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The files change with the package: the browser asks again (a 304 when unchanged).
    "Cache-Control": "no-cache",
}


def static_dir() -> Path:
    return Path(str(resources.files("api") / "static"))


def files(folder: Path) -> dict[str, str]:
    """The console's files by name, with their types: what is served, and nothing else."""
    return {
        path.name: TYPES[path.suffix]
        for path in sorted(folder.iterdir())
        if path.is_file() and path.suffix in TYPES
    }


def install(app: FastAPI) -> None:
    folder = static_dir()
    served = files(folder)
    if "index.html" not in served:
        raise RuntimeError(f"the console's files are missing from {folder}")

    async def index(_request: Request) -> FileResponse:
        return FileResponse(folder / "index.html", media_type=served["index.html"], headers=HEADERS)

    async def static(request: Request) -> FileResponse:
        name = str(request.path_params["name"])
        if name not in served:
            raise ApiError(404, "not_found", f"no console file {name!r}", "name")
        return FileResponse(folder / name, media_type=served[name], headers=HEADERS)

    # Plain Starlette routes: outside the app's dependencies (the token) and the OpenAPI document.
    app.add_route("/", index, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_route(
        f"{STATIC_PATH}/{{name}}", static, methods=["GET", "HEAD"], include_in_schema=False
    )
