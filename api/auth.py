"""Bearer-token auth: one dependency, a constant-time comparison, 401 with `WWW-Authenticate`."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError

log = logging.getLogger("render.api.auth")

# auto_error=False: we answer a missing header ourselves, in the common error shape.
bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <AUTH_TOKEN>`")

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    token: str = request.app.state.settings.auth_token
    if credentials is None:
        raise ApiError(
            401, "unauthorized", "missing 'Authorization: Bearer <token>' header", None, _CHALLENGE
        )
    if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
        log.warning("rejected a bad token from %s", request.client.host if request.client else "?")
        raise ApiError(
            401,
            "unauthorized",
            "invalid bearer token",
            None,
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
