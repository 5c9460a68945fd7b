"""The second storage backend: blobs as objects in an S3-compatible bucket (boto3).

`STORAGE_URL=s3://bucket/prefix` puts every key under `prefix/` in `bucket`, at
`S3_ENDPOINT_URL` (empty: AWS) in `S3_REGION`, with credentials from the standard AWS
variables or files (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`,
`AWS_SHARED_CREDENTIALS_FILE`: boto3's own chain).

- **Nothing half written under a final key.** An S3 object is visible only once its upload is
  complete (a multipart upload only at its CompleteMultipartUpload), so `save` uploads straight
  to the key; `save_all` saves each whole and videos last, copying in the bucket what is
  there already. `create` is a put with
  `If-None-Match: *`: of hosts racing on one key, one wins (the others get 412).
- **Threaded multipart** uploads and downloads (boto3's transfer manager) past 8 MiB.
- **Ranged reads**: `open` is a seekable file whose reads are ranged GETs (the API's Range).
- **Presigned URLs**: `url` is a GET URL valid `url_seconds`.
- **A local scratch** (`tasks.scratch`): `fetch` links a blob this host already has (by ETag
  and size) instead of downloading it, and `save` keeps what it uploaded there too.
- **Outages**: an operation that cannot reach the store is retried with backoff (0.5 s
  doubling to 8 s) for `retry_seconds`, then raises `StoreUnavailable` naming the store.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import boto3
from boto3.exceptions import RetriesExceededError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from pipeline.atomic import atomic_path
from tasks.blobstore import Blob, StoreRefused, StoreUnavailable, check_key, check_prefix
from tasks.scratch import Scratch

log = logging.getLogger("render.s3")

T = TypeVar("T")
URL = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?$")
_TRANSFER = TransferConfig(
    multipart_threshold=8 * 2**20, multipart_chunksize=8 * 2**20, max_concurrency=4
)
# Codes that mean "not there", and those that mean the store refuses these credentials.
_MISSING = {"404", "NoSuchKey", "NotFound"}
_REFUSED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
_LOST_RACE = {"412", "PreconditionFailed", "ConditionalRequestConflict"}


def parse_url(url: str) -> tuple[str, str]:
    """'s3://bucket/some/prefix' → ('bucket', 'some/prefix'); ValueError naming STORAGE_URL."""
    match = URL.fullmatch(url)
    if match is None:
        raise ValueError(f"{url!r} is not s3://bucket or s3://bucket/prefix")
    prefix = (match[2] or "").strip("/")
    if prefix:
        check_prefix(prefix)
    return match[1], prefix


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


@dataclass
class S3BlobStore:
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    # (access key id, secret); None: boto3's own chain (the AWS variables, profiles, files).
    keys: tuple[str, str] | None = field(default=None, repr=False)
    retry_seconds: float = 120.0
    url_seconds: int = 300
    scratch: Scratch | None = None
    client: Any = field(default=None, repr=False)
    # Bytes moved, by direction and kind of key (the benchmark reads them).
    moved: dict[str, int] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = boto3.session.Session().client(
                "s3",
                endpoint_url=self.endpoint_url or None,
                region_name=self.region or None,
                aws_access_key_id=self.keys[0] if self.keys else None,
                aws_secret_access_key=self.keys[1] if self.keys else None,
                config=Config(
                    s3={"addressing_style": "path"},
                    # One try per call here: `_call` retries with its own, longer backoff.
                    retries={"max_attempts": 1, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=60,
                    max_pool_connections=16,
                ),
            )

    # --- naming ---

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _key(self, name: str) -> str:
        return name.removeprefix(f"{self.prefix}/") if self.prefix else name

    def where(self) -> str:
        endpoint = self.endpoint_url or "AWS S3"
        return f"object storage s3://{self.bucket}/{self.prefix} at {endpoint}"

    # --- calls, retried while the store is unreachable ---

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.5
        while True:
            try:
                return fn()
            except ClientError as exc:
                if _status(exc) < 500 and _code(exc) not in ("SlowDown", "ServiceUnavailable"):
                    raise
                problem: Exception = exc
            except (HTTPClientError, BotoConnectionError, RetriesExceededError) as exc:
                problem = exc  # connection refused, reset, timed out
            except S3UploadFailedError as exc:  # the transfer manager's wrapping of either
                cause = exc.__cause__ or exc.__context__
                if isinstance(cause, ClientError) and _status(cause) < 500:
                    raise cause from None
                problem = exc
            if time.monotonic() + delay > deadline:
                raise StoreUnavailable(
                    f"{self.where()} did not answer for {self.retry_seconds:g} s "
                    f"(S3_RETRY_SECONDS) while it {what}: {problem}"
                ) from None
            log.warning("%s: %s; retrying in %.1f s", self.where(), problem, delay)
            time.sleep(delay)
            delay = min(delay * 2, 8.0)

    def _count(self, direction: str, key: str, size: int) -> None:
        kind = _kind(key)
        name = f"{direction}:{kind}"
        with self._lock:
            self.moved[name] = self.moved.get(name, 0) + size

    # --- the interface ---

    def check(self) -> None:
        """The bucket is there and takes these credentials: StoreRefused saying why not,
        StoreUnavailable when the store does not answer."""
        try:
            self._call("was checked", lambda: self.client.head_bucket(Bucket=self.bucket))
        except ClientError as exc:
            code = _code(exc)
            if code in _MISSING or code == "NoSuchBucket":
                raise StoreRefused(
                    f"{self.where()}: bucket {self.bucket!r} does not exist"
                ) from None
            if code in _REFUSED:
                raise StoreRefused(
                    f"{self.where()} refused the credentials ({code}): check "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                ) from None
            raise StoreRefused(f"{self.where()}: {code or exc}") from None

    def open(self, key: str) -> BinaryIO:
        blob = self.stat(key)
        if blob is None:
            raise FileNotFoundError(key)
        return io.BufferedReader(_Ranged(self, key, blob.size), buffer_size=1 << 20)

    def stat(self, key: str) -> Blob | None:
        name = self._name(key)
        try:
            head = self._call(
                f"looked up {key}", lambda: self.client.head_object(Bucket=self.bucket, Key=name)
            )
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise
        return Blob(key, int(head["ContentLength"]), head["LastModified"], head.get("ETag"))

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def save(self, key: str, source: Path) -> None:
        name = self._name(key)
        size = source.stat().st_size
        if size < _TRANSFER.multipart_threshold:  # one PUT, which answers with the ETag

            def put() -> str:
                with open(source, "rb") as fh:
                    answer = self.client.put_object(Bucket=self.bucket, Key=name, Body=fh)
                return str(answer["ETag"])

            etag: str | None = self._call(f"stored {key}", put)
        else:  # threaded multipart; the object appears at the last call
            self._call(
                f"stored {key}",
                lambda: self.client.upload_file(str(source), self.bucket, name, Config=_TRANSFER),
            )
            blob = self.stat(key) if self.scratch is not None else None
            etag = blob.etag if blob is not None else None
        self._count("uploaded", key, size)
        if self.scratch is not None and etag is not None:
            self.scratch.keep(Scratch.name(etag, size), source)

    def create(self, key: str, source: Path) -> bool:
        name = self._name(key)

        def put() -> None:
            with open(source, "rb") as fh:
                self.client.put_object(Bucket=self.bucket, Key=name, Body=fh, IfNoneMatch="*")

        try:
            self._call(f"created {key}", put)
        except ClientError as exc:
            if _code(exc) in _LOST_RACE or _status(exc) in (409, 412):
                return False
            raise
        self._count("uploaded", key, source.stat().st_size)
        return True

    def save_all(
        self, items: Sequence[tuple[Path, str]], stored: Mapping[Path, str] | None = None
    ) -> None:
        # S3 has no rename of several objects at once: each is whole when it appears, and the
        # videos come last, so a listing that shows the video shows its poster and captions.
        # A file that is a copy of an object (`stored`) is copied by the store: FINALIZE
        # publishes the joined video and the scene files, which are in the bucket already.
        known = stored or {}

        def put(source: Path, key: str) -> None:
            if source in known:  # an unchanged copy: its size is the object's
                self.copy(known[source], key, source.stat().st_size)
            else:
                self.save(key, source)

        first = [(source, key) for source, key in items if not key.endswith(".mp4")]
        with ThreadPoolExecutor(max_workers=4) as pool:
            for done in [pool.submit(put, source, key) for source, key in first]:
                done.result()
        for source, key in items:
            if key.endswith(".mp4"):
                put(source, key)

    def copy(self, source_key: str, key: str, size: int) -> None:
        """The object at `source_key` (of `size` bytes, for the figures) copied to `key` by
        the store (CopyObject, multipart past 8 MiB): no byte through this host, and the
        copy appears whole."""
        origin = {"Bucket": self.bucket, "Key": self._name(source_key)}
        name = self._name(key)
        self._call(
            f"copied {source_key} to {key}",
            lambda: self.client.copy(origin, self.bucket, name, Config=_TRANSFER),
        )
        self._count("copied", key, size)

    def fetch(self, key: str, target: Path, known: Blob | None = None) -> None:
        name = self._name(key)

        def download(path: Path) -> None:
            try:
                self._call(
                    f"fetched {key}",
                    lambda: self.client.download_file(
                        self.bucket, name, str(path), Config=_TRANSFER
                    ),
                )
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    raise FileNotFoundError(key) from None
                raise
            self._count("downloaded", key, path.stat().st_size)

        if self.scratch is None:
            with atomic_path(target) as tmp:
                download(tmp)
            return
        blob = known if known is not None and known.etag else self.stat(key)
        if blob is None:
            raise FileNotFoundError(key)
        self.scratch.fetch(Scratch.name(blob.etag or "", blob.size), target, download)

    def delete(self, key: str) -> None:
        name = self._name(key)
        self._call(
            f"deleted {key}", lambda: self.client.delete_object(Bucket=self.bucket, Key=name)
        )

    def delete_prefix(self, prefix: str) -> None:
        # A folder's key: "work/j1" must not take "work/j10" with it.
        folder = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        names = [self._name(blob.key) for blob in self.list(folder)]
        for start in range(0, len(names), 1000):
            batch = {"Objects": [{"Key": name} for name in names[start : start + 1000]]}
            self._call(
                f"deleted {prefix}",
                lambda b=batch: self.client.delete_objects(Bucket=self.bucket, Delete=b),  # type: ignore[misc]
            )

    def list(self, prefix: str) -> list[Blob]:
        check_prefix(prefix)
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix

        def listing() -> list[Blob]:
            found = []
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                for item in page.get("Contents", []):
                    key = self._key(item["Key"])
                    found.append(
                        Blob(key, int(item["Size"]), item["LastModified"], item.get("ETag"))
                    )
            return found

        return sorted(self._call(f"listed {prefix or 'everything'}", listing), key=lambda b: b.key)

    def url(self, key: str) -> str | None:
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._name(key)},
                ExpiresIn=self.url_seconds,
            )
        )

    def local_path(self, key: str) -> Path | None:
        return None


class _Ranged(io.RawIOBase):
    """A blob read by ranged GETs: seekable, so the API's Range requests read only their part."""

    def __init__(self, store: S3BlobStore, key: str, size: int) -> None:
        self.store, self.key, self.size, self.pos = store, key, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.size - self.pos)
        if want <= 0:
            return 0
        name = self.store._name(self.key)
        span = f"bytes={self.pos}-{self.pos + want - 1}"

        def get() -> bytes:
            answer = self.store.client.get_object(Bucket=self.store.bucket, Key=name, Range=span)
            return bytes(answer["Body"].read())

        data = self.store._call(f"read {self.key}", get)
        buffer[: len(data)] = data
        self.pos += len(data)
        self.store._count("downloaded", self.key, len(data))
        return len(data)


def _kind(key: str) -> str:
    """What a key holds, for the bytes-moved figures: input, clip, work, output, cache."""
    parts = key.split("/")
    if parts[0] == "cache":
        return "cache"
    if len(parts) > 2 and parts[0] == "projects":
        if parts[2] == "work":
            return "clip" if "scenes" in parts else "work"
        return parts[2]  # input, output, cache (speech)
    return "other"
