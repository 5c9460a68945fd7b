"""The web console's session: a cookie a browser sends instead of the bearer token.

`POST /v1/session` (api/routes/session.py) trades the bearer token for the cookie
`render_session=<expiry>.<mac>`: an HMAC of its expiry under the token. It needs no storage,
any API replica can check it, and it dies with the token it was made from: rotating
AUTH_TOKEN logs every session made under the old token out. The cookie is `HttpOnly` (no
script reads it), `SameSite=Strict` and `Path=/`, so the page's own requests, its
`EventSource` and its `<video>` carry it and the page never holds the token.

SameSite ignores ports: another app on the same host (a dev server on localhost:5173) is
"same-site" and its forms would carry the cookie. So a cookie-authenticated request that can
change something must also show it comes from this origin (`same_origin`): the browser's
`Sec-Fetch-Site: same-origin`, or, from a browser too old to send it, an `Origin` of this
very host. Requests with the bearer token are not affected: no other site can make a browser
send that header.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from urllib.parse import urlsplit

from fastapi import Request

from api.errors import ApiError

COOKIE = "render_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# What `session_value` makes: decimal expiry, '.', hex MAC; anything else is refused before
# any arithmetic or comparison, so a forged cookie is a 401, never a 500.
_VALUE = re.compile(r"([0-9]{1,12})\.([0-9a-f]{64})")


def _mac(token: str, expires: int) -> str:
    return hmac.new(token.encode(), f"session:{expires}".encode(), hashlib.sha256).hexdigest()


def session_value(token: str, ttl: int, now: float | None = None) -> tuple[str, int]:
    """The cookie's value for a login with `token`, valid `ttl` seconds; and its expiry."""
    expires = int((time.time() if now is None else now) + ttl)
    return f"{expires}.{_mac(token, expires)}", expires


def session_token(tokens: list[str], value: str, now: float | None = None) -> str | None:
    """The token of AUTH_TOKEN the cookie `value` was made under, if it is one and unexpired.

    Every token is compared, in constant time, whichever matches.
    """
    parsed = _VALUE.fullmatch(value)
    if parsed is None:
        return None
    expires = int(parsed[1])
    if expires < (time.time() if now is None else now):
        return None
    matched = None
    for token in tokens:
        if hmac.compare_digest(parsed[2], _mac(token, expires)):
            matched = token
    return matched


def same_origin(request: Request) -> bool:
    """The request comes from a page of this origin, as far as a browser says.

    `Sec-Fetch-Site` when the browser sends it (every current one does), else `Origin`
    against the request's own host (Go's net/http CrossOriginProtection does the same). A
    request with neither header came from no browser page: it is let through (curl with a
    copied cookie already holds the session).
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def require_same_origin(request: Request) -> None:
    """403 for a cookie-authenticated unsafe request from another origin (a port is one)."""
    if request.method in SAFE_METHODS or same_origin(request):
        return
    raise ApiError(
        403,
        "cross_origin",
        "a request authenticated by the session cookie must come from this origin's own "
        f"pages (Sec-Fetch-Site: {request.headers.get('sec-fetch-site', '-')}, "
        f"Origin: {request.headers.get('origin', '-')}); other clients send "
        "'Authorization: Bearer <token>'",
    )
