"""Request bodies are bounded per route, while they arrive.

JSON routes take at most MAX_JSON_MB; only the upload route takes MAX_UPLOAD_MB (plus room for
multipart boundaries). A Content-Length over the route's limit is answered at once, before a byte
of the body is read; a body without one (chunked) is counted as it arrives and cut off with 413
as soon as it goes over. Either way the API never holds more than the limit of one body: a JSON
body is parsed whole, so an unbounded one (29 MiB took the API from 195 to 929 MB) is refused
before it is read.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body

log = logging.getLogger("render.api.limits")

MIB = 1024 * 1024
# Room for multipart boundaries, part headers and the small form fields around the files.
BODY_SLACK = MIB
# An answer that does not read the rest of the body ends the connection: the client may still
# be sending it.
CLOSE = {"Connection": "close"}


@dataclass(frozen=True)
class Limit:
    """The most bytes a body may have, and the setting (in MiB) the client is told about."""

    bytes: int
    setting: str
    mib: int

    @classmethod
    def of(cls, setting: str, mib: int, slack: int = 0) -> Limit:
        return cls(mib * MIB + slack, setting, mib)

    @property
    def message(self) -> str:
        return f"the request body is larger than {self.setting} ({self.mib} MiB) allows"


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a body goes over its limit. An HTTPException, since FastAPI
    turns anything else raised while it reads a body into a 400."""

    def __init__(self, limit: Limit) -> None:
        super().__init__(413, limit.message, headers=CLOSE)


class BodyLimit:
    """ASGI middleware: each request's body is held to its route's Limit (`routes`: path
    patterns and methods, first match wins; `default` for every other route)."""

    def __init__(
        self,
        app: ASGIApp,
        default: Limit,
        routes: Sequence[tuple[re.Pattern[str], frozenset[str], Limit]] = (),
    ) -> None:
        self.app = app
        self.default = default
        self.routes = tuple(routes)

    def limit_for(self, scope: Scope) -> Limit:
        for pattern, methods, limit in self.routes:
            if scope.get("method") in methods and pattern.match(scope.get("path", "")):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > limit.bytes:
            await _send_413(send, limit)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.bytes:
                    log.info("cut off a body at %d bytes: over %s", received, limit.setting)
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)


async def _send_413(send: Send, limit: Limit) -> None:
    body = json.dumps(error_body("too_large", limit.message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
    log.info("refused a body announced over %s (%d bytes)", limit.setting, limit.bytes)
