"""tasks/blobstore.py: the local folder behind the storage interface."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.blobstore import InvalidKey, LocalBlobStore, check_key, output_key


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "src" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_saved_blob_is_the_file_under_its_key(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "root")
    key = output_key("p1", "v.mp4")
    assert not store.exists(key) and store.stat(key) is None
    store.save(key, _file(tmp_path, "a", b"0123456789"))
    assert store.exists(key)
    assert (tmp_path / "root/projects/p1/output/v.mp4").read_bytes() == b"0123456789"
    blob = store.stat(key)
    assert blob is not None and (blob.key, blob.size, blob.name) == (key, 10, "v.mp4")
    with store.open(key) as fh:  # seekable, for Range requests
        fh.seek(3)
        assert fh.read(4) == b"3456"
    assert store.local_path(key) == tmp_path / "root" / key
    assert store.url(key) == (tmp_path / "root" / key).as_uri()
    store.delete(key)
    store.delete(key)  # gone already: nothing happens
    assert not store.exists(key)
    with pytest.raises(FileNotFoundError):
        store.open(key)


def test_save_all_publishes_together_or_not_at_all(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "root")
    store.save(output_key("p1", "a.mp4"), _file(tmp_path, "old", b"old"))
    with pytest.raises(FileNotFoundError):
        store.save_all(
            [
                (_file(tmp_path, "new", b"new"), output_key("p1", "a.mp4")),
                (tmp_path / "src" / "missing", output_key("p1", "b.mp4")),
            ]
        )
    # Nothing published, and no temp file left behind.
    assert os.listdir(tmp_path / "root/projects/p1/output") == ["a.mp4"]
    with store.open(output_key("p1", "a.mp4")) as fh:
        assert fh.read() == b"old"
    store.save_all([(tmp_path / "src" / "new", output_key("p1", "a.mp4"))])
    assert (tmp_path / "root/projects/p1/output/a.mp4").read_bytes() == b"new"
    # Linked, not copied, on one file system (outputs published from work files).
    assert (tmp_path / "root/projects/p1/output/a.mp4").stat().st_ino == (
        tmp_path / "src" / "new"
    ).stat().st_ino


def test_list_and_delete_a_prefix(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    for key in ("projects/p1/work/j1/plan.json", "projects/p1/work/j1/scenes/s.mp4"):
        store.save(key, _file(tmp_path / "x", "f", key.encode()))
    store.save("projects/p1/work/j2/plan.json", _file(tmp_path / "x", "f", b"2"))
    (tmp_path / "projects/p1/work/j1/.s.tmp1.mp4").write_bytes(b"half")  # being written
    listed = [blob.key for blob in store.list("projects/p1/work/j1/")]
    assert listed == ["projects/p1/work/j1/plan.json", "projects/p1/work/j1/scenes/s.mp4"]
    assert store.list("projects/p9/") == []
    store.delete_prefix("projects/p1/work/j1")
    assert store.list("projects/p1/work/") == [store.stat("projects/p1/work/j2/plan.json")]


def test_fetch_copies_a_blob_to_a_local_file(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "root")
    store.save("projects/p1/input/scenes.json", _file(tmp_path, "s", b"{}"))
    target = tmp_path / "scratch" / "input" / "scenes.json"
    store.fetch("projects/p1/input/scenes.json", target)
    assert target.read_bytes() == b"{}"


@pytest.mark.parametrize("key", ["", "/etc/passwd", "a/../b", "a//b", "./a", "a/"])
def test_keys_stay_inside_the_storage(key: str) -> None:
    with pytest.raises(InvalidKey):
        check_key(key)
