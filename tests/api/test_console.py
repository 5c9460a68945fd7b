"""The web console's server side: `/` and its files, the session cookie (login, logout,
expiry, rotation), the origin check on cookie-authenticated writes, and the wheel carrying
the files. The page itself is driven in a browser by tests/browser."""

from __future__ import annotations

import io
import logging
import re
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from api import session
from api.main import create_app
from api.routes.console import static_dir
from tests.conftest import SPEC, TOKEN, AppFactory, make_settings

ROOT = Path(__file__).resolve().parents[2]
SCENES = "/v1/projects/p1/scenes"


def browser(client: TestClient) -> TestClient:
    """The client as a browser is: no Authorization header."""
    client.headers.pop("Authorization", None)
    return client


def logged_in(client: TestClient, token: str = TOKEN) -> TestClient:
    browser(client)
    response = client.post(
        "/v1/session", json={"token": token}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert response.status_code == 200, response.text
    return client


def set_cookie(response: httpx.Response) -> dict[str, str]:
    """The Set-Cookie header's attributes, lower-cased names; the value under 'value'."""
    [header] = response.headers.get_list("set-cookie")
    first, *attributes = [part.strip() for part in header.split(";")]
    name, _, value = first.partition("=")
    assert name == session.COOKIE
    out = {"value": value}
    for attribute in attributes:
        key, _, val = attribute.partition("=")
        out[key.lower()] = val
    return out


# --- login and the cookie -------------------------------------------------------------


def test_login_sets_an_httponly_strict_cookie_for_session_ttl(make_client: AppFactory) -> None:
    client = browser(make_client(session_ttl=600))
    response = client.post(
        "/v1/session", json={"token": TOKEN}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert response.status_code == 200
    cookie = set_cookie(response)
    assert cookie["httponly"] == "" and cookie["samesite"] == "strict"
    assert cookie["path"] == "/" and cookie["max-age"] == "600"
    assert "secure" not in cookie  # plain http: a Secure cookie would never come back
    assert TOKEN not in cookie["value"]
    assert "expiresAt" in response.json()


def test_over_https_the_cookie_is_secure(storage: Path) -> None:
    app = create_app(make_settings(storage))
    with TestClient(app, base_url="https://testserver") as client:
        response = client.post("/v1/session", json={"token": TOKEN})
    assert response.status_code == 200
    assert "secure" in set_cookie(response)


def test_a_wrong_token_gets_no_cookie(make_client: AppFactory) -> None:
    client = browser(make_client())
    response = client.post("/v1/session", json={"token": "guess"})
    assert response.status_code == 401
    assert response.json()["error"]["field"] == "token"
    assert "set-cookie" not in response.headers
    assert client.get("/v1/projects").status_code == 401


def test_the_cookie_stands_in_for_the_token(make_client: AppFactory) -> None:
    client = logged_in(make_client())
    assert (
        client.put(SCENES, json=SPEC, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
    )
    [listed] = client.get("/v1/projects").json()
    assert listed["id"] == "p1" and listed["lastJob"] is None and listed["poster"] is None
    assert client.get("/v1/projects/p1").status_code == 200
    # The event stream and the outputs (EventSource, <video>) take it too: past auth to 404.
    assert client.get("/v1/jobs/nosuchjob/events").status_code == 404
    assert client.get("/v1/projects/p1/outputs/video").status_code == 404


def test_logout_clears_the_cookie(make_client: AppFactory) -> None:
    client = logged_in(make_client())
    response = client.delete("/v1/session", headers={"Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 204
    cookie = set_cookie(response)
    assert cookie["value"] in ('""', "") and cookie["max-age"] == "0"
    assert client.get("/v1/projects").status_code == 401


@pytest.mark.parametrize(
    "value",
    ["", "x", "1.abc", "99999999999999.00", "1e9." + "0" * 64, "1." + "0" * 64],
)
def test_a_forged_or_expired_cookie_is_401_never_500(make_client: AppFactory, value: str) -> None:
    client = browser(make_client())
    client.cookies.set(session.COOKIE, value)
    response = client.get("/v1/projects")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_an_expired_session_is_refused() -> None:
    value, expires = session.session_value(TOKEN, 60, now=1_000_000)
    assert session.session_token([TOKEN], value, now=expires) == TOKEN
    assert session.session_token([TOKEN], value, now=expires + 1) is None


def test_rotating_auth_token_logs_sessions_out(make_client: AppFactory) -> None:
    old = logged_in(make_client(auth_token=TOKEN))
    cookie = old.cookies[session.COOKIE]
    # While both tokens are accepted the session goes on; once the old one is gone, it ends.
    both = browser(make_client(auth_token=f"new-token-xyz,{TOKEN}"))
    both.cookies.set(session.COOKIE, cookie)
    assert both.get("/v1/projects").status_code == 200
    rotated = browser(make_client(auth_token="new-token-xyz"))
    rotated.cookies.set(session.COOKIE, cookie)
    response = rotated.get("/v1/projects")
    assert response.status_code == 401
    assert "log in again" in response.json()["error"]["message"]


# --- the origin check (CSRF) -----------------------------------------------------------

CROSS = [
    ({"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, "cross-site"),
    # A dev server on another port of the same host: same-site, so SameSite sent the cookie.
    ({"Sec-Fetch-Site": "same-site", "Origin": "http://testserver:5173"}, "same-site port"),
    ({"Origin": "http://testserver:5173"}, "no Fetch-Metadata, other port"),
    ({"Origin": "null"}, "opaque origin"),
]
SAME = [
    ({"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"}, "same-origin"),
    ({"Origin": "http://testserver"}, "no Fetch-Metadata, own origin"),
]


@pytest.mark.parametrize(("headers", "case"), CROSS, ids=[c for _, c in CROSS])
def test_a_cookie_write_from_another_origin_is_refused_writing_nothing(
    make_client: AppFactory, storage: Path, headers: dict[str, str], case: str
) -> None:
    client = logged_in(make_client())
    response = client.put(SCENES, json=SPEC, headers=headers)
    assert response.status_code == 403, case
    assert response.json()["error"]["code"] == "cross_origin"
    assert not (storage / "projects" / "p1").exists()
    # Login and logout are checked too.
    assert client.post("/v1/session", json={"token": TOKEN}, headers=headers).status_code == 403
    assert client.delete("/v1/session", headers=headers).status_code == 403


@pytest.mark.parametrize(("headers", "case"), SAME, ids=[c for _, c in SAME])
def test_a_cookie_write_from_this_origin_goes_through(
    make_client: AppFactory, headers: dict[str, str], case: str
) -> None:
    client = logged_in(make_client())
    assert client.put(SCENES, json=SPEC, headers=headers).status_code == 200, case


@pytest.mark.parametrize(("headers", "case"), CROSS, ids=[c for _, c in CROSS])
def test_bearer_requests_are_not_origin_checked(
    client: TestClient, headers: dict[str, str], case: str
) -> None:
    assert client.put(SCENES, json=SPEC, headers=headers).status_code == 200, case


def test_cookie_reads_need_no_origin(make_client: AppFactory) -> None:
    client = logged_in(make_client())
    response = client.get("/v1/projects", headers={"Sec-Fetch-Site": "same-site"})
    assert response.status_code == 200


# --- the page and its files -------------------------------------------------------------


def _scripts_and_handlers(html: str) -> tuple[list[str], list[str]]:
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.DOTALL | re.I)
    inline = [body for attrs, body in scripts if body.strip() or "src=" not in attrs]
    handlers = re.findall(r"<[^>]+\son[a-z]+\s*=", html, flags=re.I)
    return inline, handlers


def test_the_page_is_served_without_a_token_under_a_strict_csp(make_client: AppFactory) -> None:
    client = browser(make_client())
    for path in ("/", "/console/app.js", "/console/console.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        csp = dict(
            part.strip().split(" ", 1)
            for part in response.headers["content-security-policy"].split(";")
        )
        assert csp["script-src"] == "'self'"
        assert csp["default-src"] == "'none'" and csp["frame-ancestors"] == "'none'"
        assert "unsafe-inline" not in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html")
    inline, handlers = _scripts_and_handlers(page.text)
    assert inline == [] and handlers == []
    assert client.get("/console/app.js").headers["content-type"].startswith("text/javascript")


def test_only_the_console_files_are_served(client: TestClient) -> None:
    for path in ("/console/../main.py", "/console/session.py", "/console/nothing.js"):
        assert client.get(path).status_code == 404, path


def test_every_module_and_file_the_page_loads_is_served(client: TestClient) -> None:
    """Follows the page's links and the modules' imports: a file missing or misnamed fails."""
    seen: set[str] = set()
    todo = ["/"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        response = client.get(path)
        assert response.status_code == 200, path
        if path == "/":
            todo += re.findall(r'(?:src|href)="(/console/[^"]+)"', response.text)
        elif path.endswith(".js"):
            todo += ["/console/" + name for name in re.findall(r'from "\./([^"]+)"', response.text)]
    assert {"/console/app.js", "/console/api.js", "/console/form.js"} <= seen
    # Every file of the folder is reached: none is dead weight.
    assert {f"/console/{p.name}" for p in static_dir().iterdir() if p.name != "index.html"} <= seen


def test_no_script_writes_html_or_stores_anything(client: TestClient) -> None:
    """Text from the API is set as text; nothing goes to localStorage, sessionStorage or a
    cookie the page could read."""
    for path in static_dir().glob("*.js"):
        text = path.read_text()
        for banned in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "localStorage",
            "sessionStorage",
            "document.cookie",
            "eval(",
            "new Function",
        ):
            assert banned not in text, f"{path.name} uses {banned}"


# --- the token stays out of the logs ---------------------------------------------------


@contextmanager
def _serving(storage: Path) -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    app = create_app(make_settings(storage))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=True))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_neither_the_token_nor_the_cookie_reaches_a_log_line(storage: Path) -> None:
    records = _Records()
    # The server's loggers (the test's own HTTP client logs its cookies at DEBUG).
    loggers = [
        logging.getLogger(n) for n in ("uvicorn", "uvicorn.access", "uvicorn.error", "render")
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(records)
        logger.setLevel(logging.DEBUG)
    try:
        with _serving(storage) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            assert http.post("/v1/session", json={"token": "a-wrong-guess"}).status_code == 401
            assert http.post("/v1/session", json={"token": TOKEN}).status_code == 200
            cookie = http.cookies[session.COOKIE]
            assert http.put(SCENES, json=SPEC).status_code == 200
            assert http.get("/v1/projects").status_code == 200
            assert http.delete("/v1/session").status_code == 204
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(records)
            logger.setLevel(level)
    text = "\n".join(records.lines)
    assert "/v1/session" in text and "/v1/projects" in text  # the access log was captured
    for secret in (TOKEN, "a-wrong-guess", cookie, cookie.split(".")[1]):
        assert secret not in text


# --- packaging --------------------------------------------------------------------------


def test_the_built_wheel_carries_every_console_file(tmp_path: Path) -> None:
    # Built from a copy: setuptools builds in the source tree, and a stale build/ there
    # could hand the wheel files the package no longer has.
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "data", "dist", "build", "*.egg-info", ".*_cache", "tests", "docs"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("render_api-*.whl")
    names = set(zipfile.ZipFile(io.BytesIO(wheel.read_bytes())).namelist())
    expected = {f"api/static/{p.name}" for p in static_dir().iterdir() if p.is_file()}
    assert "api/static/index.html" in expected
    assert expected <= names
