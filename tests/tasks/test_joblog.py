"""tasks/joblog.py: a job's log where hosts share no folder (a store that is not the folder:
tests/blobstores.py), and where they do (the local folder, where nothing more is saved)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks import joblog
from tasks.blobstore import LocalBlobStore, StoreUnavailable
from tasks.storage import Storage
from tests.blobstores import RemoteBlobStore

JOB = "0123456789abcdef0123456789abcdef"


def _line(second: int, label: str, text: str) -> str:
    return f"2026-12-04T18:00:{second:02d}+00:00 [{label}] {text}"


def test_an_attempts_lines_are_saved_when_it_ends_even_by_an_error(tmp_path: Path) -> None:
    store = RemoteBlobStore(tmp_path / "bucket")
    lines: list[str] = []
    with (
        pytest.raises(RuntimeError),
        joblog.shipping(store, JOB, "SCENE_BUILD[1/2]", 2, lines),
    ):
        lines += [_line(1, "SCENE_BUILD[1/2]", "started"), _line(2, "SCENE_BUILD[1/2]", "failed")]
        raise RuntimeError("the body failed")
    key = f"logs/{JOB}/SCENE_BUILD[1,2].2.log"
    assert store.saved == [key]
    assert store.path(key).read_text().splitlines() == lines


def test_nothing_is_saved_where_every_host_shares_the_log_folder(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    with joblog.shipping(store, JOB, "CONCAT", 1, [_line(1, "CONCAT", "done")]):
        pass
    assert not (tmp_path / "logs").exists()
    storage = Storage(tmp_path)
    storage.append_log(JOB, _line(1, "CONCAT", "done"))
    assert joblog.tail(storage, store, JOB) == [_line(1, "CONCAT", "done")]


def test_the_log_merges_this_hosts_lines_with_every_saved_attempt_by_time(
    tmp_path: Path,
) -> None:
    store = RemoteBlobStore(tmp_path / "bucket")
    api_host = Storage(tmp_path / "api-host")
    # A line both here and saved (a worker on the API's host) is shown once.
    api_host.append_log(JOB, _line(0, "VALIDATE", "started"))
    api_host.append_log(JOB, _line(5, "CONCAT", "started"))
    with joblog.shipping(store, JOB, "VALIDATE", 1, [_line(0, "VALIDATE", "started")]):
        pass
    build = [_line(s, "SCENE_BUILD[0]", f"line {s}") for s in (1, 2, 3)]
    with joblog.shipping(store, JOB, "SCENE_BUILD[0]", 1, build):
        pass
    with joblog.shipping(store, JOB, "SCENE_BUILD[1]", 1, [_line(2, "SCENE_BUILD[1]", "x")]):
        pass
    assert joblog.tail(api_host, store, JOB) == [
        _line(0, "VALIDATE", "started"),
        build[0],
        build[1],
        _line(2, "SCENE_BUILD[1]", "x"),
        build[2],
        _line(5, "CONCAT", "started"),
    ]
    assert joblog.tail(api_host, store, JOB, lines=2) == [build[2], _line(5, "CONCAT", "started")]


def test_a_store_that_does_not_answer_leaves_this_hosts_lines(tmp_path: Path) -> None:
    class Down(RemoteBlobStore):
        def list(self, prefix: str) -> list:  # type: ignore[type-arg]
            raise StoreUnavailable("the bucket did not answer")

    api_host = Storage(tmp_path / "api-host")
    api_host.append_log(JOB, _line(0, "VALIDATE", "started"))
    assert joblog.tail(api_host, Down(tmp_path / "bucket"), JOB) == [
        _line(0, "VALIDATE", "started")
    ]
