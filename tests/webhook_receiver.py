"""A webhook receiver for the tests: a real HTTP server on 127.0.0.1 that checks each
delivery's signature the way docs/api.md ("Webhooks") tells receivers to, and answers from a
script."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tasks import webhooks

TOLERANCE = 300


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    signed: bool

    @property
    def document(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


@dataclass
class Receiver:
    secret: str
    # What to answer, in order: a status code, or "hang" (never answer); the last one repeats.
    script: list[int | str]
    deliveries: list[Delivery] = field(default_factory=list)
    url: str = ""
    redirect_to: str = ""

    def answer(self) -> int | str:
        index = min(len(self.deliveries) - 1, len(self.script) - 1)
        return self.script[index]


def _handler(receiver: Receiver, release: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            signed = webhooks.verify(
                receiver.secret,
                self.headers.get(webhooks.TIMESTAMP_HEADER, ""),
                body,
                self.headers.get(webhooks.SIGNATURE_HEADER, ""),
                TOLERANCE,
            )
            receiver.deliveries.append(Delivery(dict(self.headers), body, signed))
            answer = receiver.answer()
            if answer == "hang":
                release.wait(30)  # longer than any client timeout in the tests
                return
            assert isinstance(answer, int)
            self.send_response(answer)
            if 300 <= answer < 400:
                self.send_header("Location", receiver.redirect_to or "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            receiver.deliveries.append(Delivery(dict(self.headers), b"GET", False))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    return Handler


@contextmanager
def receiving(secret: str, script: list[int | str], path: str = "/hook") -> Iterator[Receiver]:
    receiver = Receiver(secret, script)
    release = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver, release))
    server.daemon_threads = True
    host, port = server.server_address[:2]
    receiver.url = f"http://{host!s}:{port}{path}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def free_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"
