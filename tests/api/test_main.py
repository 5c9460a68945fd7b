"""The app as a whole: auth on every route, CORS, the error shape, and the OpenAPI document."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.errors import field_path
from api.main import create_app
from tests.conftest import AppFactory, make_settings

ROUTES = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("PUT", "/v1/projects/p1/scenes"),
    ("GET", "/v1/projects/p1"),
    ("POST", "/v1/projects/p1/assets"),
    ("POST", "/v1/projects/p1/render"),
    ("GET", "/v1/jobs/abc"),
    ("POST", "/v1/jobs/abc/cancel"),
    ("GET", "/v1/projects/p1/outputs"),
    ("GET", "/v1/projects/p1/outputs/video"),
    ("HEAD", "/v1/projects/p1/outputs/video"),
    ("GET", "/v1/projects/p1/outputs/poster"),
    ("HEAD", "/v1/projects/p1/outputs/poster"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "auth",
    [None, "", "Bearer", "Bearer wrong", "Bearer test-token-and-more", "Basic dGVzdC10b2tlbg=="],
)
def test_every_route_needs_the_token(
    client: TestClient, storage: Path, method: str, path: str, auth: str | None
) -> None:
    headers = {"Authorization": auth} if auth is not None else {}
    if auth is None:
        client.headers.pop("Authorization")
    response = client.request(method, path, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    if method != "HEAD":
        assert response.json()["error"]["code"] == "unauthorized"
    assert not (storage / "projects/p1").exists()


@pytest.mark.parametrize(
    "auth",
    [b"Bearer \xc3\xa9", b"Bearer \xff\xfe", b"Bearer " + b"9" * 5000, b"Bearer  a b", b"\xff"],
)
def test_a_malformed_bearer_token_is_401_without_a_traceback(
    client: TestClient, caplog: pytest.LogCaptureFixture, auth: bytes
) -> None:
    with caplog.at_level(logging.DEBUG):
        response = client.get("/healthz", headers={"Authorization": auth})  # type: ignore[dict-item]
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_the_scheme_is_case_insensitive(client: TestClient) -> None:
    response = client.get("/healthz", headers={"Authorization": "bearer test-token"})
    assert response.status_code == 200


def test_cors_allows_the_configured_origin(client: TestClient) -> None:
    preflight = client.options(
        "/v1/projects/p1/render",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:5173"
    response = client.get("/healthz", headers={"Origin": "http://localhost:5173"})
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    other = client.get("/healthz", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_cors_origins_come_from_settings(make_client: AppFactory) -> None:
    client = make_client(allow_origins="https://a.example, https://b.example")
    response = client.get("/healthz", headers={"Origin": "https://b.example"})
    assert response.headers["access-control-allow-origin"] == "https://b.example"


def test_unknown_routes_and_methods_use_the_error_shape(client: TestClient) -> None:
    response = client.get("/v2/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    response = client.delete("/healthz")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_unexpected_errors_never_leak_a_trace(storage: Path) -> None:
    app = create_app(make_settings(storage))

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret detail /etc/shadow")

    with TestClient(
        app, headers={"Authorization": "Bearer test-token"}, raise_server_exceptions=False
    ) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "internal server error; see the service log",
            "field": None,
        }
    }
    assert "secret" not in response.text


def test_create_app_touches_no_disk(tmp_path: Path) -> None:
    root = tmp_path / "not-yet"
    create_app(make_settings(root))
    assert not root.exists()


def test_openapi_documents_routes_security_and_errors(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    paths = doc["paths"]
    expected = {
        "/healthz": {"get"},
        "/readyz": {"get"},
        "/v1/projects/{id}/scenes": {"put"},
        "/v1/projects/{id}": {"get"},
        "/v1/projects/{id}/assets": {"post"},
        "/v1/projects/{id}/render": {"post"},
        "/v1/jobs/{jobId}": {"get"},
        "/v1/jobs/{jobId}/cancel": {"post"},
        "/v1/jobs/{jobId}/stages": {"get"},
        "/v1/projects/{id}/outputs": {"get"},
        "/v1/projects/{id}/outputs/video": {"get", "head"},
        "/v1/projects/{id}/outputs/poster": {"get", "head"},
        "/metrics": {"get"},
        "/v1/jobs/{jobId}/events": {"get"},
        "/v1/jobs/{jobId}/events-token": {"post"},
        "/v1/jobs/{jobId}/rerender": {"post"},
        "/v1/jobs/{jobId}/spec": {"get"},
        "/v1/projects/{id}/versions": {"get"},
        "/v1/projects/{id}/versions/{n}": {"get"},
        "/v1/projects/{id}/batches": {"post"},
        "/v1/batches/{batchId}": {"get"},
        "/v1/batches/{batchId}/cancel": {"post"},
        "/v1/batches/{batchId}/outputs": {"get"},
        "/v1/batches/{batchId}/outputs.zip": {"get"},
        "/v1/projects": {"get"},
        "/v1/session": {"post", "delete"},
    }
    assert {p: set(ops) for p, ops in paths.items()} == expected
    for path, ops in paths.items():
        for method, op in ops.items():
            if path == "/v1/session":  # logging in and out: the one route open without it
                assert op["security"] == [], method
                continue
            assert op["security"] == [{"HTTPBearer": []}], (method, path)
            assert "401" in op["responses"], (method, path)
            error_ref = op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"]
            assert error_ref.endswith("/ErrorResponse")
    render = paths["/v1/projects/{id}/render"]["post"]
    assert {"202", "409", "422", "503"} <= set(render["responses"])
    body_schema = render["requestBody"]["content"]["application/json"]["schema"]
    body_ref = body_schema["anyOf"][0]["$ref"]  # the body is optional
    request = doc["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert set(request["properties"]) == {
        "outputName",
        "renderOptions",
        "callbackUrl",
        "data",
        "version",
    }
    job = doc["components"]["schemas"]["JobView"]["properties"]
    assert {"createdAt", "outputName", "logs", "scenes", "cancelRequested"} <= set(job)
    id_param = paths["/v1/projects/{id}"]["get"]["parameters"][0]
    assert id_param["name"] == "id"
    assert id_param["schema"]["pattern"].startswith("^[A-Za-z0-9]")


def test_render_options_patch_covers_every_option() -> None:
    from api.schemas import RenderOptionsPatch
    from pipeline.options import RenderOptions

    assert set(RenderOptionsPatch.model_fields) == set(RenderOptions.model_fields)


@pytest.mark.parametrize(
    ("loc", "prefix", "field"),
    [
        (("body", "scenes", 2, "images"), None, "scenes[2].images"),
        (("body", "scenes", 0, "images", 1), None, "scenes[0].images[1]"),
        (("fps",), "renderOptions", "renderOptions.fps"),
        (("path", "id"), None, "id"),
        (("body",), None, None),
        ((), "renderOptions", "renderOptions"),
    ],
)
def test_field_path(loc: tuple[str | int, ...], prefix: str | None, field: str | None) -> None:
    assert field_path(loc, prefix) == field


def test_openapi_gives_each_render_option_the_default_this_service_applies(
    tmp_path: Path,
) -> None:
    # The console builds its options form from this schema: an omitted option's placeholder
    # must be what the service will use, DEFAULT_* settings included.
    app = create_app(make_settings(tmp_path, default_crf=23))
    options = app.openapi()["components"]["schemas"]["RenderOptionsPatch"]["properties"]
    assert options["crf"]["default"] == 23
    assert options["fps"]["default"] == 30
    assert options["preset"]["default"] == "medium"
    assert "default" not in options["tts"]  # no engine unless asked
