"""api/limits.py: each route's body is held to its own limit while it arrives.

JSON routes take MAX_JSON_MB; only the upload route takes MAX_UPLOAD_MB. Announced lengths are
refused before a byte is read; chunked bodies (no Content-Length) as soon as they go over.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from fastapi.testclient import TestClient

from tests.conftest import SPEC, AppFactory, error_of, jpeg_bytes, tree

MIB = 1024 * 1024
SCENES = "/v1/projects/p1/scenes"


def _spec_of_size(size: int) -> bytes:
    """A valid spec padded with JSON whitespace to exactly `size` bytes."""
    text = json.dumps(SPEC).encode()
    return text + b" " * (size - len(text))


def _chunked(body: bytes, piece: int = 64 * 1024) -> Iterator[bytes]:
    # A generator body: httpx sends it chunked, with no Content-Length.
    for start in range(0, len(body), piece):
        yield body[start : start + piece]


def _put(client: TestClient, body: bytes | Iterator[bytes]) -> object:
    return client.put(SCENES, content=body, headers={"Content-Type": "application/json"})


def test_a_json_body_at_max_json_mb_passes_and_one_byte_more_is_refused(
    make_client: AppFactory, storage: Path
) -> None:
    client = make_client(max_json_mb=1)
    at_limit = _put(client, _spec_of_size(MIB))
    assert at_limit.status_code == 200, at_limit.text  # type: ignore[attr-defined]
    before = tree(storage)
    over = _put(client, _spec_of_size(MIB + 1))
    assert over.status_code == 413  # type: ignore[attr-defined]
    error = error_of(over)
    assert error["code"] == "too_large"
    assert error["message"] == "the request body is larger than MAX_JSON_MB (1 MiB) allows"
    assert over.headers["connection"] == "close"  # type: ignore[attr-defined]
    assert tree(storage) == before


def test_a_chunked_json_body_is_held_to_the_same_limit(
    make_client: AppFactory, storage: Path
) -> None:
    client = make_client(max_json_mb=1)
    at_limit = _put(client, _chunked(_spec_of_size(MIB)))
    assert at_limit.status_code == 200, at_limit.text  # type: ignore[attr-defined]
    before = tree(storage)
    # No Content-Length: counted as it arrives.
    over = _put(client, _chunked(_spec_of_size(MIB + 1)))
    assert over.status_code == 413  # type: ignore[attr-defined]
    error = error_of(over)
    assert error["code"] == "too_large"
    assert "MAX_JSON_MB (1 MiB)" in error["message"]
    assert tree(storage) == before


def test_the_default_json_limit_refuses_what_issue_22_sent(client: TestClient) -> None:
    # 29 MiB to PUT /scenes used to be read and parsed whole (the API grew by 700 MB).
    response = _put(client, b"[" + b"0," * (29 * MIB // 2) + b"0]")
    assert response.status_code == 413  # type: ignore[attr-defined]
    assert "MAX_JSON_MB (2 MiB)" in error_of(response)["message"]


def test_only_the_upload_route_takes_more_than_max_json_mb(
    make_client: AppFactory, storage: Path
) -> None:
    client = make_client(max_json_mb=1, max_upload_mb=3)
    big = jpeg_bytes() + b"\x00" * (2 * MIB)  # a JPEG with trailing bytes decodes
    files = {"files": ("big.jpg", big, "image/jpeg")}
    response = client.post("/v1/projects/p1/assets", files=files)
    assert response.status_code == 201, response.text
    assert (storage / "projects/p1/input/images/big.jpg").stat().st_size == len(big)
    # The same bytes on another route: the JSON limit.
    response = client.post("/v1/projects/p1/render", content=big)
    assert response.status_code == 413
    assert "MAX_JSON_MB" in error_of(response)["message"]
    # The upload route's own limit, announced: refused before it is read.
    response = client.post(
        "/v1/projects/p1/assets",
        files={"files": ("huge.jpg", jpeg_bytes() + b"\x00" * (5 * MIB), "image/jpeg")},
    )
    assert response.status_code == 413
    assert error_of(response)["message"] == (
        "the request body is larger than MAX_UPLOAD_MB (3 MiB) allows"
    )
