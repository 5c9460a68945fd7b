"""/docs (api/routes/docs.py): Swagger UI from the installed package, never a CDN, under a
Content-Security-Policy that lets no third-party script run on the page where people paste
their token."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from fastapi.testclient import TestClient

from api.routes.docs import FILES, static_dir


@pytest.fixture
def browser(client: TestClient) -> TestClient:
    """A browser opening the docs: no token (the page and its files need none)."""
    return TestClient(client.app)


def _policy(header: str) -> dict[str, list[str]]:
    return {
        name: values
        for name, *values in (part.split() for part in header.split(";") if part.strip())
    }


def test_the_page_loads_nothing_from_another_origin(browser: TestClient) -> None:
    response = browser.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    assert "SwaggerUIBundle" in html
    assert "http:" not in html and "https:" not in html and "//" not in html
    urls = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sorted(urls) == sorted(f"/docs/static/{name}" for name in FILES)
    assert "url: '/openapi.json'" in html
    assert '"validatorUrl": null' in html  # no badge from validator.swagger.io


def test_the_policy_runs_own_script_only(browser: TestClient) -> None:
    response = browser.get("/docs")
    policy = _policy(response.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    (inline,) = re.findall(r"<script>(.*?)</script>", response.text, flags=re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert policy["script-src"] == ["'self'", f"'sha256-{digest}'"]
    for directive in ("style-src", "img-src", "font-src", "connect-src"):
        assert policy[directive][0] == "'self'", directive
        assert not any(v.startswith(("http", "*")) or v == "https:" for v in policy[directive])
    assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_the_files_are_the_packages_own(browser: TestClient) -> None:
    for name, media_type in FILES.items():
        response = browser.get(f"/docs/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == media_type
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.content == (static_dir() / name).read_bytes()
    bundle = browser.get("/docs/static/swagger-ui-bundle.js").text
    # FastAPI writes OpenAPI 3.1, which Swagger UI renders from version 5 on.
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.\d+\.\d+"', bundle)
    assert version is not None and int(version[1]) >= 5
    assert browser.get("/openapi.json").json()["openapi"].startswith("3.1")


@pytest.mark.parametrize(
    "path",
    [
        "/docs/static/swagger-editor-bundle.js",  # in the package's folder, but not served
        "/docs/static/LICENSE",
        "/docs/static/..%2F__init__.py",
        "/docs/static/%2E%2E/core.py",
        "/docs/oauth2-redirect",  # no OAuth2 here, and its page has an inline script
        "/redoc",  # FastAPI's ReDoc page loads from a CDN
    ],
)
def test_nothing_else_is_served(browser: TestClient, path: str) -> None:
    assert browser.get(path).status_code == 404


def test_the_docs_are_not_in_the_api_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/docs") or p == "/redoc"]
