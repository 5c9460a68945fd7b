"""Crafted media for the untrusted-media tests, and the observers that prove nothing they
reference was read: a named pipe that records whether anyone opened it, a loopback listener
that records whether anyone connected."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Fifo:
    """A named pipe standing for a secret file: `opened` says whether anything opened it.

    A reader's open() of a FIFO blocks until a writer opens it too, and the watcher opens it
    for writing whenever a reader is there (a non-blocking open fails with ENXIO until then):
    so nothing can open it, and read on, without `opened` being set first.
    """

    path: Path
    opened: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._try()
            self._stop.wait(0.002)  # polling the pipe, not waiting for an outcome
        self._try()

    def _try(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            return
        self.opened.set()
        os.close(fd)  # the reader sees an empty file


@contextlib.contextmanager
def watched_fifo(path: Path) -> Iterator[Fifo]:
    os.mkfifo(path)
    fifo = Fifo(path)
    watcher = threading.Thread(target=fifo._watch, daemon=True)
    watcher.start()
    try:
        yield fifo
    finally:
        fifo._stop.set()
        watcher.join(timeout=10)


@dataclass
class Listener:
    """A loopback TCP port nobody should reach: `connected()` says whether anyone did (a
    connection completes in the kernel's backlog without our accepting it)."""

    sock: socket.socket

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()
        return f"http://{host}:{port}/internal/segment.ts"

    def connected(self) -> bool:
        self.sock.setblocking(False)
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True


@contextlib.contextmanager
def loopback() -> Iterator[Listener]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield Listener(sock)


def hls_playlist(local: Path, url: str) -> bytes:
    """An HLS playlist whose segments are a local file and an internal URL."""
    return (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n"
        f"#EXTINF:2.0,\nfile://{local}\n#EXTINF:2.0,\n{url}\n#EXT-X-ENDLIST\n"
    ).encode()


def concat_script(relative: str) -> bytes:
    """An ffconcat script naming a file beside it: what the concat demuxer's default `safe`
    mode allows (it refuses a URL, or an absolute path, outright)."""
    return f"ffconcat version 1.0\nfile '{relative}'\n".encode()


def lying_mp4(real: bytes, claimed: int = 2**31) -> bytes:
    """A real MP4 whose first box after `ftyp` claims `claimed` bytes."""
    ftyp = int.from_bytes(real[:4], "big")
    return real[:ftyp] + claimed.to_bytes(4, "big") + real[ftyp + 4 :]
