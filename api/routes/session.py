"""Logging the web console in and out: `POST /v1/session` trades the bearer token for the
session cookie (api/session.py), `DELETE /v1/session` clears it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import Field

from api import session
from api.auth import SESSION_PATH, matching_token
from api.deps import SettingsDep
from api.errors import ApiError, responses
from api.schemas import CamelModel

log = logging.getLogger("render.api.session")

router = APIRouter(tags=["session"])


def document_open(schema: dict[str, Any]) -> dict[str, Any]:
    """Mark login and logout as needing no token in the app's OpenAPI document (the app-wide
    dependency marks every route; api/auth.py lets SESSION_PATH through)."""
    for operation in schema["paths"].get(SESSION_PATH, {}).values():
        operation["security"] = []
    return schema


class Login(CamelModel):
    token: str = Field(max_length=4096, description="a token of AUTH_TOKEN")


class SessionView(CamelModel):
    expires_at: datetime = Field(description="when the cookie stops working (SESSION_TTL)")


@router.post(
    SESSION_PATH,
    response_model=SessionView,
    responses=responses(401, 403, 422),
    summary="Log in: trade the bearer token for the web console's session cookie",
)
def login(body: Login, request: Request, response: Response, settings: SettingsDep) -> SessionView:
    """Sets `render_session` (`HttpOnly; SameSite=Strict; Path=/`, `Secure` over HTTPS) for
    SESSION_TTL seconds. The cookie stands in for the token on every route; a request it
    authenticates that can change something must come from this origin."""
    session.require_same_origin(request)
    token = matching_token(body.token, settings.auth_tokens)
    if token is None:
        log.warning("login refused from %s", request.client.host if request.client else "?")
        raise ApiError(401, "unauthorized", "that is not the service's token", "token")
    value, expires = session.session_value(token, settings.session_ttl)
    response.set_cookie(
        session.COOKIE,
        value,
        max_age=settings.session_ttl,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return SessionView(expires_at=datetime.fromtimestamp(expires, UTC))


@router.delete(
    SESSION_PATH,
    status_code=204,
    responses=responses(403),
    summary="Log out: clear the session cookie",
)
def logout(request: Request) -> Response:
    session.require_same_origin(request)
    response = Response(status_code=204)
    response.delete_cookie(session.COOKIE, path="/", httponly=True, samesite="strict")
    return response
