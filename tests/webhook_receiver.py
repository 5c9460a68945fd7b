"""A webhook receiver for the tests: a real HTTP server on 127.0.0.1 that checks each
delivery's signature the way docs/api.md ("Webhooks") tells receivers to, and answers from a
script; hostile answers included (one that never ends, one that trickles)."""

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
# "trickle": one byte of the answer this often (the receiver's own pace, not a wait in a test).
TRICKLE_EVERY = 0.2
# "endless" stops after this much, so a sender that reads it all ends (and its test fails).
ENDLESS_CAP = 64 * 1024 * 1024


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
    # What to answer, in order: a status code, "hang" (never answer), "endless" (200 and a
    # chunked body that goes on until the client leaves) or "trickle" (an answer that never
    # ends, one byte every TRICKLE_EVERY s); the last one repeats.
    script: list[int | str]
    deliveries: list[Delivery] = field(default_factory=list)
    url: str = ""
    redirect_to: str = ""
    # Body bytes an "endless" answer wrote before the client left.
    sent: int = 0
    # Set when the client closed the connection of an "endless" or "trickle" answer.
    hung_up: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def answer(self) -> int | str:
        index = min(len(self.deliveries) - 1, len(self.script) - 1)
        return self.script[index]

    def add(self, delivery: Delivery) -> int | str:
        with self.arrived:
            self.deliveries.append(delivery)
            self.arrived.notify_all()
            return self.answer()

    def wait_for(self, count: int, timeout: float) -> bool:
        """Whether `count` deliveries arrived within `timeout` s."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.deliveries) >= count, timeout)


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
            answer = receiver.add(Delivery(dict(self.headers), body, signed))
            if answer == "hang":
                release.wait(30)  # longer than any client timeout in the tests
                return
            if answer in ("endless", "trickle"):
                try:
                    if answer == "endless":
                        self._endless()
                    else:
                        self._trickle()
                except OSError:  # the client closed the connection
                    receiver.hung_up.set()
                return
            assert isinstance(answer, int)
            self.send_response(answer)
            if 300 <= answer < 400:
                self.send_header("Location", receiver.redirect_to or "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _endless(self) -> None:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"x" * 4096
            framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
            while receiver.sent < ENDLESS_CAP and not release.is_set():
                self.wfile.write(framed)
                receiver.sent += len(chunk)
            self.wfile.write(b"0\r\n\r\n")

        def _trickle(self) -> None:
            answer = b"HTTP/1.1 200 OK\r\nX-Trickle: " + b"." * 10_000
            for byte in answer:
                if release.wait(TRICKLE_EVERY):
                    return
                self.wfile.write(bytes([byte]))

        def do_GET(self) -> None:
            receiver.add(Delivery(dict(self.headers), b"GET", False))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    return Handler


@contextmanager
def receiving(
    secret: str, script: list[int | str], path: str = "/hook", host: str = "127.0.0.1"
) -> Iterator[Receiver]:
    """A receiver on `host` (any 127.x.y.z is this machine: another host to the sender)."""
    receiver = Receiver(secret, script)
    release = threading.Event()
    server = ThreadingHTTPServer((host, 0), _handler(receiver, release))
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
