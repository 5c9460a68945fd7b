"""Bearer-token auth: one dependency, constant-time comparisons against every token of
AUTH_TOKEN (several while one is rotated), 401 with `WWW-Authenticate`. A browser sends the
web console's session cookie instead (api/session.py), checked for its origin when the
request can change something."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api import session
from api.errors import ApiError

log = logging.getLogger("render.api.auth")

# auto_error=False: we answer a missing header ourselves, in the common error shape.
bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <AUTH_TOKEN>`")

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def matching_token(given: str, tokens: list[str]) -> str | None:
    """The one of `tokens` that `given` is (AUTH_TOKEN may hold several while one is
    rotated), or None.

    Every token is compared, in constant time, so the answer's timing tells nothing about
    which one came close.
    """
    matched = None
    for token in tokens:
        if hmac.compare_digest(given.encode(), token.encode()):
            matched = token
    return matched


def caller_of(token: str) -> str:
    """Who sent a request, as far as what it stores is concerned (an `Idempotency-Key`): a
    digest of its bearer token, never the token. Each token of AUTH_TOKEN is a caller of its
    own, so a rotated-in token does not replay what the old one stored."""
    return hashlib.sha256(b"render-api caller\0" + token.encode()).hexdigest()


def request_caller(request: Request) -> str:
    """The caller `require_token` found for this request (the app-level dependency runs
    first); an events token is no caller: it opens one stream and stores nothing."""
    caller: str | None = getattr(request.state, "caller", None)
    if caller is None:
        raise ApiError(401, "unauthorized", "this route needs the bearer token", None, _CHALLENGE)
    return caller


Caller = Annotated[str, Depends(request_caller)]


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    tokens: list[str] = request.app.state.settings.auth_tokens
    if _route_path(request) == SESSION_PATH:
        return  # logging in and out: the route checks what it is given
    stream_token = _stream_token(request) if credentials is None else None
    if stream_token is not None:
        if _stream_token_ok(request, stream_token):
            return
        raise ApiError(
            401,
            "unauthorized",
            "invalid or expired events token: POST /v1/jobs/{jobId}/events-token for a new one",
            "token",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    cookie = request.cookies.get(session.COOKIE) if credentials is None else None
    if cookie is not None:
        token = session.session_token(tokens, cookie)
        if token is None:
            raise ApiError(
                401,
                "unauthorized",
                "the session has ended (expired, logged out or AUTH_TOKEN rotated): log in again",
                None,
                _CHALLENGE,
            )
        session.require_same_origin(request)
        request.state.caller = caller_of(token)
        return
    if credentials is None:
        raise ApiError(
            401, "unauthorized", "missing 'Authorization: Bearer <token>' header", None, _CHALLENGE
        )
    token = matching_token(credentials.credentials, tokens)
    if token is None:
        log.warning("rejected a bad token from %s", request.client.host if request.client else "?")
        raise ApiError(
            401,
            "unauthorized",
            "invalid bearer token",
            None,
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    request.state.caller = caller_of(token)


# --- browser event streams ----------------------------------------------------------------
# EventSource cannot send an Authorization header. A client with the bearer token asks for a
# short-lived token scoped to one job's stream (POST /v1/jobs/{id}/events-token) and opens
# `GET /v1/jobs/{id}/events?token=...`. It is an HMAC of the job id and expiry under the
# bearer token, so it needs no storage, any API replica can check it, and it dies with the
# bearer token it was made from (rotation included).

EVENTS_PATH = "/v1/jobs/{jobId}/events"
# Login and logout (api/routes/session.py): open without a token, they check their own input.
SESSION_PATH = "/v1/session"


def _route_path(request: Request) -> str | None:
    return getattr(request.scope.get("route"), "path", None)


def _events_mac(key: str, job_id: str, expires: int) -> str:
    message = f"events:{job_id}:{expires}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def events_token(
    tokens: list[str], job_id: str, ttl: int, now: float | None = None
) -> tuple[str, int]:
    """A token for job `job_id`'s event stream, valid for `ttl` seconds; and its expiry."""
    expires = int((time.time() if now is None else now) + ttl)
    return f"{expires}.{_events_mac(tokens[0], job_id, expires)}", expires


# What `events_token` makes: decimal expiry, '.', hex MAC. Anything else is refused before
# any arithmetic or comparison (int() of a 5000-digit or '²' string raises, and
# compare_digest raises on non-ASCII text): a malformed token is a 401, never a 500.
_EVENTS_TOKEN = re.compile(r"([0-9]{1,12})\.([0-9a-f]{64})")


def events_token_valid(
    tokens: list[str], job_id: str, token: str, now: float | None = None
) -> bool:
    parsed = _EVENTS_TOKEN.fullmatch(token)
    if parsed is None:
        return False
    expires = int(parsed[1])
    if expires < (time.time() if now is None else now):
        return False
    matched = False
    for key in tokens:
        matched |= hmac.compare_digest(parsed[2], _events_mac(key, job_id, expires))
    return matched


def _stream_token(request: Request) -> str | None:
    """The `?token=` of a request to the event stream; None on any other route."""
    if _route_path(request) != EVENTS_PATH:
        return None
    return request.query_params.get("token")


def _stream_token_ok(request: Request, token: str) -> bool:
    job_id = str(request.path_params.get("jobId", ""))
    return events_token_valid(request.app.state.settings.auth_tokens, job_id, token)


_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s]*")


class RedactTokens(logging.Filter):
    """Keeps `?token=...` out of the access log: uvicorn logs each request's path and query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_QUERY.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        elif isinstance(record.msg, str):
            record.msg = _TOKEN_IN_QUERY.sub(r"\1[redacted]", record.msg)
        return True


def install_log_redaction() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access.filters):
        access.addFilter(RedactTokens())
