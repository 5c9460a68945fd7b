import errno
import os
from pathlib import Path

import pytest

from pipeline.atomic import atomic_path, link_or_copy, publish_together


def test_atomic_path_leaves_the_old_file_when_the_write_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.suffix == ".mp4" and tmp.parent == tmp_path
        tmp.write_bytes(b"half")
        raise RuntimeError("ffmpeg died")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_link_or_copy_links_on_one_file_system(tmp_path: Path) -> None:
    source, target = tmp_path / "joined.mp4", tmp_path / "out" / ".final.tmp.mp4"
    source.write_bytes(b"video" * 1000)
    target.parent.mkdir()
    target.write_bytes(b"stale temp file of a crashed run")
    link_or_copy(source, target)
    assert target.read_bytes() == source.read_bytes()
    assert os.stat(target).st_ino == os.stat(source).st_ino


def test_link_or_copy_copies_across_file_systems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cross_device(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    source, target = tmp_path / "joined.mp4", tmp_path / "final.mp4"
    source.write_bytes(os.urandom(3 << 20))
    link_or_copy(source, target)
    assert target.read_bytes() == source.read_bytes()
    assert os.stat(target).st_ino != os.stat(source).st_ino


def test_publishing_a_link_of_the_same_file_leaves_no_temp_file(tmp_path: Path) -> None:
    # A rerun served from the cache links the same entry to the output it already is.
    entry = tmp_path / "entry.mp4"
    entry.write_bytes(b"clip")
    target = tmp_path / "out" / "video.mp4"
    target.parent.mkdir()
    os.link(entry, target)
    publish_together([(entry, target)])
    with atomic_path(target) as tmp:
        link_or_copy(entry, tmp)
    assert sorted(p.name for p in target.parent.iterdir()) == ["video.mp4"]
    assert target.read_bytes() == b"clip"
