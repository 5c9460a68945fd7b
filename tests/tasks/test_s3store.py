"""tasks/s3store.py, tasks/scratch.py and tasks/bucket_cache.py against a real S3-compatible
server (SeaweedFS's `weed mini`, tests/s3server.py): no mocks."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from pipeline import registry
from pipeline.ffmpeg import Runner, find_ffmpeg
from pipeline.fixtures import ImageFixture, SceneFixture, VoiceFixture, write_project
from pipeline.probe import probe
from pipeline.project import ProjectDir
from pipeline.registry import StageRun
from pipeline.render import run_in_order
from tasks import workspace
from tasks.blobstore import StoreRefused, StoreUnavailable
from tasks.bucket_cache import PREFIX, BucketCache
from tasks.s3store import S3BlobStore, parse_url
from tasks.scratch import Scratch
from tests.pipeline_fixtures import SMALL
from tests.s3server import SECRET_KEY, S3Server, s3_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as s3:
        yield s3


_PREFIXES = iter(range(10_000))


def _store(server: S3Server, scratch: Path | None = None, **kw: object) -> S3BlobStore:
    """A store of its own prefix of the bucket (each test sees only its objects)."""
    args = server.client_args()
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    client = boto3.client(
        "s3",
        **args,
        config=boto3.session.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    return S3BlobStore(
        server.bucket,
        f"t{next(_PREFIXES)}-{time.monotonic_ns()}",
        endpoint_url=server.endpoint,
        scratch=Scratch(scratch) if scratch is not None else None,
        client=client,
        **kw,  # type: ignore[arg-type]
    )


def _file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_parse_url_names_the_bucket_and_prefix() -> None:
    assert parse_url("s3://renders/a/b/") == ("renders", "a/b")
    assert parse_url("s3://renders") == ("renders", "")
    with pytest.raises(ValueError, match="s3://bucket"):
        parse_url("http://renders/x")


def test_blobs_round_trip_with_ranges_multipart_list_and_delete(
    server: S3Server, tmp_path: Path
) -> None:
    store = _store(server)
    big = os.urandom(9 * 2**20 + 5)  # over the 8 MiB multipart threshold: a multipart upload
    store.save("projects/p/output/v.mp4", _file(tmp_path / "v.mp4", big))
    store.save("projects/p/output/v.jpg", _file(tmp_path / "v.jpg", b"jpeg"))
    store.save("projects/p/work/j/plan.json", _file(tmp_path / "plan.json", b"{}"))

    blob = store.stat("projects/p/output/v.mp4")
    assert blob is not None and blob.size == len(big) and blob.name == "v.mp4"
    assert store.stat("projects/p/output/none.mp4") is None
    assert store.exists("projects/p/output/v.jpg")
    with store.open("projects/p/output/v.mp4") as fh:
        fh.seek(9 * 2**20)
        assert fh.read(5) == big[9 * 2**20 : 9 * 2**20 + 5]
        fh.seek(0)
        assert fh.read() == big
    with pytest.raises(FileNotFoundError):
        store.open("projects/p/output/none.mp4")

    keys = [b.key for b in store.list("projects/p/")]
    assert keys == [
        "projects/p/output/v.jpg",
        "projects/p/output/v.mp4",
        "projects/p/work/j/plan.json",
    ]
    assert [b.key for b in store.list("projects/p/output/")] == keys[:2]

    store.fetch("projects/p/output/v.mp4", tmp_path / "back.mp4")
    assert (tmp_path / "back.mp4").read_bytes() == big
    with pytest.raises(FileNotFoundError):
        store.fetch("projects/p/output/none.mp4", tmp_path / "none.mp4")
    assert not (tmp_path / "none.mp4").exists()

    store.delete_prefix("projects/p/work/")
    store.delete("projects/p/output/v.jpg")
    store.delete("projects/p/output/v.jpg")  # nothing there: nothing happens
    assert [b.key for b in store.list("projects/p/")] == ["projects/p/output/v.mp4"]


def test_a_host_downloads_a_blob_once_and_never_what_it_saved(
    server: S3Server, tmp_path: Path
) -> None:
    store = _store(server, tmp_path / "scratch")
    store.save("projects/p/input/a.jpg", _file(tmp_path / "a.jpg", b"A" * 1000))
    other = _store(server)  # another host writes b
    other.prefix = store.prefix
    other.save("projects/p/input/b.jpg", _file(tmp_path / "b.jpg", b"B" * 2000))

    for attempt in range(3):
        store.fetch("projects/p/input/a.jpg", tmp_path / f"u{attempt}" / "a.jpg")
        store.fetch("projects/p/input/b.jpg", tmp_path / f"u{attempt}" / "b.jpg")
        assert (tmp_path / f"u{attempt}" / "b.jpg").read_bytes() == b"B" * 2000
    # a.jpg this host uploaded, b.jpg it downloaded once: the other fetches were links.
    assert store.moved == {"uploaded:input": 1000, "downloaded:input": 2000}

    # A blob rewritten under the same key is new content: fetched again.
    other.save("projects/p/input/b.jpg", _file(tmp_path / "b2.jpg", b"C" * 2000))
    store.fetch("projects/p/input/b.jpg", tmp_path / "u9" / "b.jpg")
    assert (tmp_path / "u9" / "b.jpg").read_bytes() == b"C" * 2000
    assert store.moved["downloaded:input"] == 4000


def test_scratch_evicts_least_recently_used_but_never_a_file_in_use(tmp_path: Path) -> None:
    unbounded = Scratch(tmp_path / "scratch")
    now = time.time_ns()
    for age, name in enumerate(("new", "mid", "old"), start=1):
        unbounded.keep(name, _file(tmp_path / name, b"x" * 1000))
        (tmp_path / name).unlink()  # the unit that made it is over
        os.utime(unbounded.path(name), ns=(now - age * 10**9, now))
    scratch = Scratch(tmp_path / "scratch", max_bytes=2500)
    # "old" is linked into a running unit: it stays, and "mid" goes instead.
    assert scratch.get("old", tmp_path / "unit" / "old")
    os.utime(scratch.path("old"), ns=(0, now))
    removed = scratch.evict()
    assert [p.name for p in removed] == ["mid"]
    assert scratch.path("old").exists() and scratch.path("new").exists()
    (tmp_path / "unit" / "old").unlink()
    scratch.keep("newest", _file(tmp_path / "newest", b"y" * 1000))  # made by a running unit
    assert not scratch.path("old").exists()  # least recently used, and no longer in use
    assert scratch.path("new").exists() and scratch.path("newest").exists()
    assert scratch.total_bytes() <= 2500


def test_create_is_won_by_exactly_one_of_racing_writers(server: S3Server, tmp_path: Path) -> None:
    store = _store(server)
    sources = [_file(tmp_path / f"w{n}", f"writer {n}".encode() * 1000) for n in range(8)]
    start = threading.Barrier(len(sources))
    won: list[int] = []

    def write(n: int) -> None:
        start.wait()
        if store.create("cache/clips/k.mp4", sources[n]):
            won.append(n)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(len(sources))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    store.fetch("cache/clips/k.mp4", tmp_path / "got")
    assert (tmp_path / "got").read_bytes() == sources[won[0]].read_bytes()
    assert not store.create("cache/clips/k.mp4", sources[0])


def test_presigned_url_reads_without_credentials_until_it_expires(
    server: S3Server, tmp_path: Path
) -> None:
    store = _store(server, url_seconds=2)
    store.save("projects/p/output/v.mp4", _file(tmp_path / "v.mp4", b"video bytes"))
    url = store.url("projects/p/output/v.mp4")
    assert url is not None
    got = httpx.get(url, headers={"Range": "bytes=6-10"})
    assert (got.status_code, got.content) == (206, b"bytes")
    tampered = url.replace("v.mp4", "w.mp4")
    assert httpx.get(tampered).status_code == 403
    time.sleep(3)  # the URL's lifetime passing is what is tested
    assert httpx.get(url).status_code == 403


def test_check_refuses_a_wrong_secret_and_a_missing_bucket(server: S3Server) -> None:
    _store(server).check()
    wrong = S3BlobStore(
        server.bucket,
        endpoint_url=server.endpoint,
        client=boto3.client("s3", **{**server.client_args(), "aws_secret_access_key": "wrong"}),
    )
    with pytest.raises(StoreRefused, match=r"refused the credentials.*AWS_SECRET_ACCESS_KEY"):
        wrong.check()
    missing = _store(server)
    missing.bucket = "no-such-bucket"
    with pytest.raises(StoreRefused, match="bucket 'no-such-bucket' does not exist"):
        missing.check()
    assert SECRET_KEY != "wrong"


def test_an_outage_is_retried_until_the_store_returns_or_the_bound(tmp_path: Path) -> None:
    with s3_server(tmp_path / "s3") as server:
        store = _store(server, retry_seconds=60)
        store.save("projects/p/input/a.jpg", _file(tmp_path / "a.jpg", b"A"))
        server.stop()
        short = _store(server, retry_seconds=1)
        with pytest.raises(StoreUnavailable, match=r"object storage s3://renders/.* at http"):
            short.stat("projects/p/input/a.jpg")

        answer: list[object] = []
        reader = threading.Thread(
            target=lambda: answer.append(store.stat("projects/p/input/a.jpg"))
        )
        reader.start()
        server.start()  # the reader was retrying all along; now it is answered
        reader.join()
        assert answer and answer[0] is not None


def _counting_build(
    target: Path, built: list[str], barrier: threading.Barrier | None = None
) -> None:
    if barrier is not None:
        barrier.wait()
    target.write_bytes(b"clip bytes " * 1000)
    built.append(target.name)


def test_two_hosts_racing_on_one_key_leave_one_valid_object(
    server: S3Server, tmp_path: Path
) -> None:
    store = _store(server)
    hosts = [BucketCache(tmp_path / f"host{n}", 10**9, store=store) for n in range(2)]
    barrier = threading.Barrier(2)
    built: list[str] = []
    logs: list[str] = []
    results: list[tuple[bool, int]] = []

    def job(n: int) -> None:
        target = tmp_path / f"job{n}" / "clip.mp4"
        target.parent.mkdir()
        results.append(
            hosts[n].get_or_build(
                "k" * 64, target, lambda: _counting_build(target, built, barrier), logs.append
            )
        )

    threads = [threading.Thread(target=job, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [(False, 11000), (False, 11000)]  # both built, both have the clip
    assert [b.key for b in store.list(PREFIX)] == [
        f"{PREFIX}{'k' * 64}.json",
        f"{PREFIX}{'k' * 64}.mp4",
    ]
    assert sum("stored by another host first" in line for line in logs) == 1

    # A third host finds it in the bucket: no build, its bytes checked.
    third = BucketCache(tmp_path / "host3", 10**9, store=store)
    target = tmp_path / "job3.mp4"
    assert third.get_or_build(
        "k" * 64, target, lambda: _counting_build(target, built), logs.append
    ) == (True, 11000)
    assert len(built) == 2 and target.read_bytes() == b"clip bytes " * 1000


def test_a_damaged_bucket_entry_is_removed_and_rebuilt(server: S3Server, tmp_path: Path) -> None:
    store = _store(server)
    first = BucketCache(tmp_path / "a", 10**9, store=store)
    built: list[str] = []
    target = tmp_path / "one.mp4"
    first.get_or_build("d" * 64, target, lambda: _counting_build(target, built), print)
    store.save(f"{PREFIX}{'d' * 64}.mp4", _file(tmp_path / "bad", b"truncated"))
    logs: list[str] = []
    other = BucketCache(tmp_path / "b", 10**9, store=store)
    target2 = tmp_path / "two.mp4"
    hit, _ = other.get_or_build(
        "d" * 64, target2, lambda: _counting_build(target2, built), logs.append
    )
    assert not hit and len(built) == 2
    assert any("in the bucket failed its check: removed" in line for line in logs)
    blob = store.stat(f"{PREFIX}{'d' * 64}.mp4")
    assert blob is not None and blob.size == 11000  # the rebuilt entry replaced it


def test_bucket_eviction_honours_the_cap_least_recently_used_first(
    server: S3Server, tmp_path: Path
) -> None:
    store = _store(server)
    built: list[str] = []
    for n, key in enumerate(("a" * 64, "b" * 64, "c" * 64)):
        cache = BucketCache(tmp_path / f"h{n}", 25_000, store=store)  # room for two entries
        target = tmp_path / f"{n}.mp4"
        cache.get_or_build(key, target, lambda t=target: _counting_build(t, built), print)
        time.sleep(1.1)  # S3 times are whole seconds: the order of use must be seen
        if n == 1:  # "a" used again after "b" was stored: "b" is the least recently used
            BucketCache(tmp_path / "h9", 25_000, store=store).get_or_build(
                "a" * 64, tmp_path / "x.mp4", lambda: None, print
            )
            time.sleep(1.1)
    left = {b.key.removeprefix(PREFIX).split(".")[0][0] for b in store.list(PREFIX)}
    assert left == {"a", "c"}


def test_a_whole_render_through_the_bucket(server: S3Server, tmp_path: Path) -> None:
    # Every stage in its own unit folder of a scratch, fetching its declared reads from the
    # bucket and saving its writes there, as a worker without a shared folder does.
    store = _store(server, tmp_path / "scratch")
    here = ProjectDir(tmp_path / "local" / "projects" / "p1")
    write_project(
        here.root,
        [
            SceneFixture(
                (ImageFixture("a.jpg", 160, 120, "testsrc2"),), VoiceFixture("one.wav", 1.0, 440)
            ),
            SceneFixture((ImageFixture("b.png", 160, 120, "color:red"),), duration=2.5),
        ],
    )
    for path in sorted(here.input.rglob("*")):
        if path.is_file():
            store.save(f"projects/p1/{path.relative_to(here.root).as_posix()}", path)
    project = ProjectDir(tmp_path / "elsewhere" / "projects" / "p1").for_run("j1")
    options = SMALL.model_copy(update={"chunk_seconds": 1.0})
    commands: list[str] = []
    base = StageRun(project, options, "v.mp4", Runner(find_ffmpeg(), log=commands.append))
    run_in_order(
        base, lambda stage, run: workspace.run_unit(store, stage, run, tmp_path / "scratch")
    )
    assert not project.root.exists()  # nothing ran in a folder of its own
    store.fetch("projects/p1/output/v.mp4", tmp_path / "v.mp4")
    info = probe(tmp_path / "v.mp4")
    assert info.video is not None and (info.video.width, info.video.height) == (320, 180)
    assert store.exists("projects/p1/output/v.jpg")
    # The second scene is built in chunks on this one "host": its stills were prepared once,
    # shared through the scratch, and never went to the bucket.
    chunks = [c for c in commands if "SCENE_BUILD" in c and "ffmpeg pid" in c]
    assert len(chunks) > 3
    stills = [c for c in commands if c.startswith(("/", "ffmpeg")) and c.endswith(".yuv")]
    assert len(stills) == 2, stills
    assert not [b.key for b in store.list("projects/p1/") if "stills" in b.key]
    assert registry.LAST.name == "FINALIZE"
    # What FINALIZE published that was in the bucket already (the joined video, the scene
    # files) was copied there by the store, not uploaded again: at most the poster and the
    # captions it made itself went up as outputs.
    outputs = {b.name: b.size for b in store.list("projects/p1/output/")}
    assert {"v.mp4", "scene_00.mp4", "scene_01.mp4", "scene_00.jpg"} <= set(outputs)
    videos = sum(size for name, size in outputs.items() if name.endswith(".mp4"))
    made = sum(
        size
        for name, size in outputs.items()
        if not name.endswith(".mp4") and not name.startswith("scene_")
    )
    copied, uploaded = store.moved["copied:output"], store.moved.get("uploaded:output", 0)
    assert copied >= videos
    assert copied + uploaded == sum(outputs.values())
    assert uploaded <= made
