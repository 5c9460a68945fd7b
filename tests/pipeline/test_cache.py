"""The render cache (pipeline/cache.py): what a clip's key covers, the store's integrity and
bounds, and scene builds that hit, miss, race and bypass it with real FFmpeg."""

from __future__ import annotations

import dataclasses
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from pipeline import cache as cache_module
from pipeline import stages
from pipeline.cache import ClipCache, ClipReport, clip_key, output_key
from pipeline.capabilities import inspect_ffmpeg
from pipeline.captions import Cue
from pipeline.chunks import chunk_spans
from pipeline.errors import Cancelled, PipelineError
from pipeline.ffmpeg import Runner
from pipeline.fixtures import ImageFixture, SceneFixture, VoiceFixture, write_project
from pipeline.layers import BurntCaptions
from pipeline.layers import captions as caption_layer
from pipeline.options import RenderOptions
from pipeline.plan import Plan, build_plan, make_plan, read_plan
from pipeline.probe import probe
from pipeline.project import ProjectDir
from pipeline.registry import StageRun
from pipeline.render import run_in_order
from pipeline.spec import ProjectSpec
from tests import pipeline_fixtures as fx
from tests import plans
from tests.pipeline_fixtures import SMALL
from tests.stage_runs import Built, frame_hashes, render_stages

ffmpeg_bin = fx.ffmpeg_bin
VERSION = "ffmpeg version test"

# --- what a key covers (pure: plans built from checked inputs) ----------------------------

Scene = tuple[str, float, str | None]  # (image digest, seconds, voiceover)


def _plan(scenes: Sequence[Scene], options: RenderOptions = SMALL, **kw: Any) -> Plan:
    spec = ProjectSpec.model_validate(
        {
            "scenes": [
                {"id": f"id{i}-{digest}", "images": [f"{digest}.jpg"], "duration": seconds}
                for i, (digest, seconds, _) in enumerate(scenes)
            ]
        }
    )
    inputs = [
        plans.inputs((plans.still(f"{digest}.jpg", 640, 480, 1, digest * 8),), seconds, voice)
        for digest, seconds, voice in scenes
    ]
    return build_plan(spec, options, inputs, **kw)


def _keys(plan: Plan, version: str = VERSION) -> list[str]:
    return [clip_key(plan, scene, version) for scene in plan.scenes]


# Lengths that are not whole frames at 30 fps: rounding them together would move later scenes.
THREE: list[Scene] = [("a", 1.01, "va.wav"), ("b", 1.37, None), ("c", 2.22, "vc.mp3")]


def test_inserting_deleting_or_reordering_scenes_keeps_the_others_keys() -> None:
    before = _keys(_plan(THREE))
    assert len(set(before)) == 3
    inserted = _keys(_plan([THREE[0], ("new", 1.13, None), *THREE[1:]]))
    assert inserted[0] == before[0] and inserted[2:] == before[1:]
    assert inserted[1] not in before
    assert _keys(_plan(THREE[1:])) == before[1:]  # the first deleted
    assert _keys(_plan(THREE[::-1])) == before[::-1]  # reordered


def test_a_voiceover_of_another_length_changes_only_its_scene() -> None:
    before = _keys(_plan(THREE))
    longer = _keys(_plan([("a", 1.53, "va.wav"), *THREE[1:]]))
    assert longer[0] != before[0] and longer[1:] == before[1:]


def test_sound_and_names_are_not_in_the_key() -> None:
    plan = _plan(THREE)
    scene = plan.scenes[0]
    # Another voiceover of the same length, another id, another place, another file name.
    renamed = (dataclasses.replace(scene.visuals[0], path="input/images/other name.jpg"),)
    moved = dataclasses.replace(
        scene,
        index=7,
        id="elsewhere",
        start_frame=999,
        voiceover="input/voiceovers/other.mp3",
        visuals=renamed,
    )
    assert clip_key(plan, moved, VERSION) == clip_key(plan, scene, VERSION)
    # The image's bytes are: same name, other digest, other key.
    changed = dataclasses.replace(scene.visuals[0], sha256="f" * 64)
    other = dataclasses.replace(
        scene,
        visuals=(changed,),
        shots=tuple(dataclasses.replace(s, digest=changed.sha256) for s in scene.shots),
    )
    assert clip_key(plan, other, VERSION) != clip_key(plan, scene, VERSION)


def test_the_image_pixel_cap_is_not_in_the_key() -> None:
    """The cap refuses images and gives FFmpeg's decoders a `-max_pixels`; it never changes a
    picture, so clips cached before it existed (or under another cap) stay valid."""
    plan = _plan(THREE)
    capped = dataclasses.replace(plan, max_pixels=40_000_000)
    assert _keys(capped) == _keys(dataclasses.replace(plan, max_pixels=1)) == _keys(plan)


@pytest.mark.parametrize(
    "change",
    [
        {"fps": 25},
        {"resolution": "640x360"},
        {"xfade": 0.2},
        {"crf": 20},
        {"preset": "fast"},
        {"fit": "contain"},
        {"motion": "none"},
        {"max_shot": 0.9},
        {"preview": True},
    ],
)
def test_every_picture_setting_is_in_the_key(change: dict[str, Any]) -> None:
    base = _keys(_plan(THREE))
    changed = _keys(_plan(THREE, SMALL.model_copy(update=change)))
    assert not set(base) & set(changed)


def test_encoder_threads_and_the_ffmpeg_build_are_in_the_key() -> None:
    base = _keys(_plan(THREE))
    assert not set(base) & set(_keys(_plan(THREE, threads=2)))
    assert not set(base) & set(_keys(_plan(THREE, lookahead=10)))
    assert not set(base) & set(_keys(_plan(THREE), "ffmpeg version other"))


def _chunk_keys(plan: Plan) -> list[list[str]]:
    """Each scene's clip keys: one per chunk, as its build asks for them."""
    keys = []
    for scene in plan.scenes:
        spans = chunk_spans(plan, scene)
        keys.append([clip_key(plan, scene, VERSION, s if len(spans) > 1 else None) for s in spans])
    return keys


def test_each_chunk_has_a_key_and_the_chunk_length_changes_only_chunked_scenes() -> None:
    scenes: list[Scene] = [("a", 1.0, None), ("b", 3.0, None)]
    chunked = _chunk_keys(_plan(scenes, SMALL.model_copy(update={"chunk_seconds": 1.0})))
    assert [len(keys) for keys in chunked] == [1, 3]
    assert len({key for keys in chunked for key in keys}) == 4
    whole = _chunk_keys(_plan(scenes, SMALL.model_copy(update={"chunk_seconds": 0})))
    # A scene of one chunk is its clip, whatever the chunk length.
    assert chunked[0] == whole[0]
    assert not set(chunked[1]) & set(whole[1])
    longer = _chunk_keys(_plan(scenes, SMALL.model_copy(update={"chunk_seconds": 1.5})))
    assert longer[0] == whole[0] and not set(longer[1]) & set(chunked[1] + whole[1])


def test_how_burnt_in_captions_are_timed_is_in_the_key_of_a_captioned_clip_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = _plan(THREE)
    cue = Cue(0, 10, ("Hello",))
    captioned = dataclasses.replace(plan.scenes[0], captions=(cue,), layers=(BurntCaptions(),))
    plan = dataclasses.replace(plan, scenes=(captioned, *plan.scenes[1:]))
    before = _keys(plan)
    monkeypatch.setattr(caption_layer, "CAPTION_CLOCK", caption_layer.CAPTION_CLOCK + 1)
    after = _keys(plan)
    # A clip drawn with the older clock is not served as one drawn with the new.
    assert after[0] != before[0] and after[1:] == before[1:]


def test_how_a_clips_mp4_is_timed_is_in_every_clips_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = _keys(_plan(THREE))
    # A clip timed in milliseconds (could end short of its frames) is not served as one
    # timed in frames.
    monkeypatch.setattr(cache_module, "clip_timing_args", lambda fps: [])
    assert not set(before) & set(_keys(_plan(THREE)))


# --- the store (files only) ---------------------------------------------------------------


def _entry(cache: ClipCache, key: str, data: bytes, tmp: Path, used: float | None = None) -> None:
    source = tmp / f"{key}.src"
    source.write_bytes(data)
    with cache.holding(key):
        cache.store(key, source, frames=1)
    if used is not None:
        os.utime(cache.root / f"{key}.json", (used, used))


def test_fetch_links_a_stored_clip_and_marks_it_used(tmp_path: Path) -> None:
    cache = ClipCache(tmp_path / "cache")
    _entry(cache, "k1", b"clip bytes", tmp_path, used=1000.0)
    target = tmp_path / "work" / "scene_000.mp4"
    with cache.holding("k1"):
        assert cache.fetch("k1", target) == len(b"clip bytes")
    assert target.read_bytes() == b"clip bytes"
    assert target.stat().st_ino == cache.clip("k1").stat().st_ino  # linked, not copied
    assert cache.entries()[0].used > 1000.0  # last in line for eviction now


@pytest.mark.parametrize(
    "damage",
    [
        lambda clip: clip.write_bytes(clip.read_bytes()[:-3]),  # truncated
        lambda clip: clip.write_bytes(b"x" * clip.stat().st_size),  # same size, other bytes
        lambda clip: clip.unlink(),
    ],
)
def test_a_damaged_entry_is_removed_never_served(
    tmp_path: Path, damage: Callable[[Path], object]
) -> None:
    cache = ClipCache(tmp_path / "cache")
    _entry(cache, "k1", b"0123456789", tmp_path)
    clip = cache.clip("k1")
    damage(clip)
    said: list[str] = []
    with cache.holding("k1"):
        assert cache.fetch("k1", tmp_path / "out.mp4", said.append) is None
    assert not (tmp_path / "out.mp4").exists()
    assert cache.entries() == [] and not clip.exists()
    assert len(said) == 1 and "failed its check" in said[0]


def test_eviction_keeps_the_newest_and_never_a_held_entry(tmp_path: Path) -> None:
    cache = ClipCache(tmp_path / "cache", max_bytes=250)
    for n, key in enumerate(("old", "held", "middle", "new")):
        _entry(cache, key, bytes(100), tmp_path, used=1000.0 + n)
    assert cache.total_bytes() == 400
    release = threading.Event()
    holding = threading.Event()

    def job_using_held() -> None:
        with cache.holding("held"):
            holding.set()
            release.wait(10)

    user = threading.Thread(target=job_using_held)
    user.start()
    try:
        assert holding.wait(10)
        removed = cache.evict(keep={"new"})
    finally:
        release.set()
        user.join()
    # Oldest first, skipping the one in use, until 200 ≤ 250 bytes remain.
    assert removed == ["old", "middle"]
    assert [e.key for e in cache.entries()] == ["held", "new"]
    # Under a cap smaller than one clip, the newest is what stays.
    tiny = ClipCache(cache.root, max_bytes=1)
    assert tiny.evict(keep={"new"}) == ["held"]
    assert [e.key for e in tiny.entries()] == ["new"]


def test_a_job_waiting_for_a_key_can_be_cancelled(tmp_path: Path) -> None:
    cache = ClipCache(tmp_path / "cache")
    cancel = threading.Event()
    outcome: list[BaseException] = []
    asked = threading.Event()

    def should_cancel() -> bool:
        asked.set()
        return cancel.is_set()

    def waiter() -> None:
        try:
            with cache.holding("k", should_cancel):
                pass
        except BaseException as exc:
            outcome.append(exc)

    with cache.holding("k"):
        thread = threading.Thread(target=waiter)
        thread.start()
        assert asked.wait(10)  # it is waiting for the key, polling for a cancel
        cancel.set()
        thread.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled)


# --- scene builds with real FFmpeg --------------------------------------------------------


def _scenes(tag: str = "") -> list[SceneFixture]:
    return [
        SceneFixture(
            (ImageFixture(f"a{tag}.jpg", 480, 360, "testsrc2"),),
            VoiceFixture(f"a{tag}.wav", 1.0, 440),
            id=f"intro{tag}",
        ),
        SceneFixture(
            (
                ImageFixture(f"b{tag}.png", 320, 240, "color:red"),
                ImageFixture(f"c{tag}.png", 320, 240, "color:blue"),
            ),
            duration=2.0,
            id=f"two{tag}",
        ),
    ]


def test_a_second_project_with_the_same_pictures_encodes_nothing(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    cache = ClipCache(tmp_path / "cache")
    first_project = write_project(tmp_path / "one", _scenes(), ffmpeg_bin)
    first = render_stages(first_project, ffmpeg_bin, cache)
    assert first.outcomes == ["encoded", "encoded"] and first.encodes == 2
    # Other file names, other scene ids, a voiceover of the same length in another pitch, and a
    # scene inserted in front: the two known scenes come from the cache.
    scenes = _scenes()
    scenes[0] = dataclasses.replace(scenes[0], voiceover=VoiceFixture("other.wav", 1.0, 880))
    inserted = SceneFixture((ImageFixture("new.jpg", 400, 300, "mandelbrot"),), duration=1.0)
    second_project = write_project(tmp_path / "two", [inserted, *scenes], ffmpeg_bin)
    second = render_stages(second_project, ffmpeg_bin, cache)
    assert second.outcomes == ["encoded", "cached", "cached"]
    assert second.encodes == 1
    assert any("cache hit" in line for line in second.log)
    for old, new in ((0, 1), (1, 2)):
        assert (
            stages.scene_clip(second_project, new).read_bytes()
            == stages.scene_clip(first_project, old).read_bytes()
        )
    assert second.reports[1].size == stages.scene_clip(first_project, 0).stat().st_size
    info = probe(second_project.output / "video.mp4", count_frames=True)
    assert info.video is not None and info.video.frames == 30 + 30 + 60


def test_a_fully_cached_render_is_frame_identical_to_an_uncached_one(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    cache = ClipCache(tmp_path / "cache")
    scenes = fx.small_scenes()
    stored = write_project(tmp_path / "stored", scenes, ffmpeg_bin)
    assert set(render_stages(stored, ffmpeg_bin, cache).outcomes) == {"encoded"}
    cached = write_project(tmp_path / "cached", scenes, ffmpeg_bin)
    hits = render_stages(cached, ffmpeg_bin, cache)
    assert set(hits.outcomes) == {"cached"} and hits.encodes == 0
    fresh = write_project(tmp_path / "fresh", scenes, ffmpeg_bin)
    uncached = render_stages(fresh, ffmpeg_bin, None)
    assert uncached.encodes == len(scenes)
    a = frame_hashes(ffmpeg_bin, cached.output / "video.mp4")
    b = frame_hashes(ffmpeg_bin, fresh.output / "video.mp4")
    assert len(a) == make_plan(fresh, SMALL, ffmpeg_bin).total_frames
    assert a == b


def test_a_truncated_cache_clip_is_rebuilt(tmp_path: Path, ffmpeg_bin: str) -> None:
    cache = ClipCache(tmp_path / "cache")
    project = write_project(tmp_path / "p", _scenes(), ffmpeg_bin)
    first = render_stages(project, ffmpeg_bin, cache)
    victim = first.reports[1].key  # the second scene's clip
    assert victim is not None
    clip = cache.clip(victim)
    data = clip.read_bytes()
    clip.unlink()  # a new file: the job's own clips (hard links) stay whole
    clip.write_bytes(data[: len(data) // 2])
    again = render_stages(write_project(tmp_path / "q", _scenes(), ffmpeg_bin), ffmpeg_bin, cache)
    assert sorted(again.outcomes) == ["cached", "encoded"] and again.encodes == 1
    assert any("failed its check" in line for line in again.log)
    assert clip.read_bytes() == data  # rebuilt whole, the same bytes
    info = probe(tmp_path / "q" / "output" / "video.mp4", count_frames=True)
    assert info.video is not None and info.video.frames == 90


def test_two_builds_of_one_clip_at_once_encode_it_once(tmp_path: Path, ffmpeg_bin: str) -> None:
    cache = ClipCache(tmp_path / "cache")
    projects = [write_project(tmp_path / n, _scenes(), ffmpeg_bin) for n in ("x", "y")]
    plans = [make_plan(p, SMALL, ffmpeg_bin) for p in projects]
    inspect_ffmpeg(ffmpeg_bin)  # asked once up front, not by both threads at once
    reports: list[ClipReport] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def build(project: ProjectDir, plan: Plan) -> None:
        try:
            start.wait(10)
            stages.build_scene(
                project, plan, 0, Runner(ffmpeg_bin), cache=cache, report=reports.append
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=build, args=pair) for pair in zip(projects, plans, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sorted(r.outcome for r in reports) == ["cached", "encoded"]
    assert len(cache.entries()) == 1
    clips = [stages.scene_clip(p, 0).read_bytes() for p in projects]
    assert clips[0] == clips[1] == cache.clip(cache.entries()[0].key).read_bytes()


def test_cache_false_encodes_every_scene_and_stores_nothing(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    cache = ClipCache(tmp_path / "cache")
    project = write_project(tmp_path / "p", _scenes(), ffmpeg_bin)
    render_stages(project, ffmpeg_bin, cache)
    stored = cache.entries()
    again = write_project(tmp_path / "q", _scenes(), ffmpeg_bin)
    bypass = render_stages(again, ffmpeg_bin, cache, SMALL.model_copy(update={"cache": False}))
    assert bypass.outcomes == ["encoded", "encoded"] and bypass.encodes == 2
    assert cache.entries() == stored


def test_a_full_cache_removes_old_clips_after_a_store(tmp_path: Path, ffmpeg_bin: str) -> None:
    cache = ClipCache(tmp_path / "cache", max_bytes=1)
    project = write_project(tmp_path / "p", _scenes(), ffmpeg_bin)
    built = render_stages(project, ffmpeg_bin, cache)
    assert built.outcomes == ["encoded", "encoded"]
    # Each store made room: only what was stored last (the join, made after every scene's
    # clip, output and poster) is left.
    (left,) = cache.entries()
    kept = probe(cache.clip(left.key, ".mp4"), count_frames=True)
    whole = probe(project.output / "video.mp4", count_frames=True)
    assert kept.audio is not None and kept.video is not None and whole.video is not None
    assert kept.video.frames == whole.video.frames  # the whole video: the join
    assert any("cache full: removed" in line for line in built.log)
    shutil.rmtree(project.work)
    # The clips the job linked stay whole whatever the cache removes.
    assert probe(project.output / "video.mp4").video is not None


def test_an_identical_render_runs_no_ffmpeg(tmp_path: Path, ffmpeg_bin: str) -> None:
    cache = ClipCache(tmp_path / "cache")
    first = write_project(tmp_path / "one", _scenes(), ffmpeg_bin)
    render_stages(first, ffmpeg_bin, cache)
    again = write_project(tmp_path / "two", _scenes(), ffmpeg_bin)
    built = render_stages(again, ffmpeg_bin, cache)
    # The master track and its AAC (AUDIO_PREP), the join, the per-scene outputs and the
    # posters are the same commands on the same content: linked from the cache, byte for byte.
    assert [line for line in built.log if line.startswith(ffmpeg_bin)] == []
    assert sum("master track linked" in line for line in built.log) == 1
    for path in ("work/audio.wav", "work/audio.m4a", "work/audio.wav.sha256", "output/video.mp4"):
        assert (again.root / path).read_bytes() == (first.root / path).read_bytes(), path
    assert sum("join linked" in line for line in built.log) == 1
    assert sum("scene output linked" in line for line in built.log) == 2
    info = probe(again.output / "video.mp4", count_frames=True)
    assert info.video is not None and info.video.frames == 90
    assert sorted(p.name for p in again.output.iterdir()) == [
        "scene_00.jpg",
        "scene_00.mp4",
        "scene_01.jpg",
        "scene_01.mp4",
        "video.jpg",
        "video.mp4",
    ]
    # Other sound, same pictures: the clips are found, the join is made again.
    scenes = _scenes()
    scenes[0] = dataclasses.replace(scenes[0], voiceover=VoiceFixture("a.wav", 1.0, 990))
    revoiced = render_stages(
        write_project(tmp_path / "three", scenes, ffmpeg_bin), ffmpeg_bin, cache
    )
    assert revoiced.outcomes == ["cached", "cached"]
    assert sum("-f concat" in line for line in revoiced.log) == 1


def test_an_output_key_names_every_input_or_there_is_none(tmp_path: Path) -> None:
    root, out = tmp_path / "p", tmp_path / "p" / "work" / ".tmp.mp4"
    clip, audio = root / "work" / "c.mp4", root / "work" / "audio.wav"
    args = ["-i", str(clip), "-i", str(audio), "-c:v", "copy", str(out)]
    key = output_key("k", VERSION, args, {clip: "clipkey", audio: "d1"}, out, root)
    # Another job's folder and temp name, the same content: the same key.
    other_root, other_out = tmp_path / "q", tmp_path / "q" / "x.mp4"
    moved = [a.replace(str(root), str(other_root)).replace(str(out), str(other_out)) for a in args]
    moved[-1] = str(other_out)
    inputs = {other_root / "work" / "c.mp4": "clipkey", other_root / "work" / "audio.wav": "d1"}
    assert key is not None
    assert output_key("k", VERSION, moved, inputs, other_out, other_root) == key
    assert output_key("k", VERSION, args, {clip: "clipkey", audio: "d2"}, out, root) != key
    # A file whose content is not named: no key, the command always runs.
    assert output_key("k", VERSION, args, {clip: "clipkey"}, out, root) is None
    embedded = [*args[:-1], "-vf", f"subtitles={root}/a.ass", str(out)]
    assert output_key("k", VERSION, embedded, {clip: "c", audio: "d"}, out, root) is None


def test_validate_decodes_the_same_image_bytes_once(
    tmp_path: Path, ffmpeg_bin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.visuals import still as planning

    first = write_project(tmp_path / "one", _scenes("x"), ffmpeg_bin)
    before = make_plan(first, SMALL, ffmpeg_bin)
    # The same bytes in another project: known by their digest, not decoded again.
    second = write_project(tmp_path / "two", _scenes("x"), ffmpeg_bin)

    def no_decode(path: Path) -> tuple[int, int]:
        raise AssertionError(f"{path} decoded again")

    monkeypatch.setattr(planning, "image_size", no_decode)
    again = make_plan(second, SMALL, ffmpeg_bin)
    assert [s.visuals for s in again.scenes] == [s.visuals for s in before.scenes]
    # Other bytes under a known name are decoded (and a broken file is still refused).
    (second.input / "images" / "ax.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    monkeypatch.undo()
    with pytest.raises(PipelineError, match=r"'ax\.jpg' could not be decoded"):
        make_plan(second, SMALL, ffmpeg_bin)


# --- chunks of a scene, each its own unit and its own entry --------------------------------

# Scene 1 (60 frames, two shots fading at 30) in three chunks of 20; scene 0 (30) in one.
CHUNKED = SMALL.model_copy(update={"chunk_seconds": 0.7})


def _render_units(
    project: ProjectDir, ffmpeg: str, cache: ClipCache, options: RenderOptions = CHUNKED
) -> Built:
    """Every stage of the registry in order, one run per unit (per chunk once the plan is
    made), as the workers run them."""
    built = Built([], [])
    runner = Runner(ffmpeg, log=built.log.append)
    base = StageRun(
        project, options, "video.mp4", runner, cache=cache, on_clip=built.reports.append
    )
    run_in_order(base)
    return built


def test_a_chunked_scene_is_cached_chunk_by_chunk(tmp_path: Path, ffmpeg_bin: str) -> None:
    cache = ClipCache(tmp_path / "cache")
    first_project = write_project(tmp_path / "one", _scenes(), ffmpeg_bin)
    first = _render_units(first_project, ffmpeg_bin, cache)
    plan = read_plan(first_project)
    assert [len(chunk_spans(plan, s)) for s in plan.scenes] == [1, 3]
    assert first.outcomes == ["encoded"] * 4 and first.encodes == 4
    assert len({r.key for r in first.reports}) == 4
    # An identical render encodes nothing: every chunk is linked from the cache.
    second_project = write_project(tmp_path / "two", _scenes(), ffmpeg_bin)
    second = _render_units(second_project, ffmpeg_bin, cache)
    assert second.outcomes == ["cached"] * 4 and second.encodes == 0
    for path in stages.scene_clips(second_project, plan, 1):
        assert path.read_bytes() == (first_project.work / "scenes" / path.name).read_bytes()
    assert frame_hashes(ffmpeg_bin, second_project.output / "video.mp4") == frame_hashes(
        ffmpeg_bin, first_project.output / "video.mp4"
    )
    # Other chunk lengths: scene 0 (one chunk either way) is found, scene 1 is encoded anew.
    other = write_project(tmp_path / "three", _scenes(), ffmpeg_bin)
    longer = _render_units(
        other, ffmpeg_bin, cache, CHUNKED.model_copy(update={"chunk_seconds": 1.0})
    )
    assert longer.outcomes == ["cached", "encoded", "encoded"] and longer.encodes == 2
    info = probe(other.output / "video.mp4", count_frames=True)
    assert info.video is not None and info.video.frames == 90


def test_a_damaged_chunk_entry_is_rebuilt(tmp_path: Path, ffmpeg_bin: str) -> None:
    cache = ClipCache(tmp_path / "cache")
    first = _render_units(write_project(tmp_path / "p", _scenes(), ffmpeg_bin), ffmpeg_bin, cache)
    victim = first.reports[1].key  # scene 1's first chunk
    assert victim is not None
    clip = cache.clip(victim)
    data = clip.read_bytes()
    clip.unlink()  # a new file: the job's own clips (hard links) stay whole
    clip.write_bytes(data[: len(data) // 2])
    project = write_project(tmp_path / "q", _scenes(), ffmpeg_bin)
    again = _render_units(project, ffmpeg_bin, cache)
    assert again.outcomes == ["cached", "encoded", "cached", "cached"] and again.encodes == 1
    assert any("failed its check" in line for line in again.log)
    assert clip.read_bytes() == data  # rebuilt whole, the same bytes
    info = probe(project.output / "video.mp4", count_frames=True)
    assert info.video is not None and info.video.frames == 90
    # The stills the rebuilt chunk was drawn from are gone, though its scene's last chunks
    # came from the cache.
    assert list((project.work / "stills").iterdir()) == []


def test_every_plan_field_marked_picture_is_in_every_clips_key() -> None:
    plan = _plan(THREE)
    before = _keys(plan)
    marked = [f.name for f in dataclasses.fields(plan) if f.metadata.get("picture")]
    assert marked == ["fps", "width", "height", "encoder", "xfade_frames"]
    changes = {
        "fps": 25,
        "width": plan.width + 2,
        "height": plan.height + 2,
        "encoder": dataclasses.replace(plan.encoder, crf=plan.encoder.crf + 1),
        "xfade_frames": plan.xfade_frames + 1,
    }
    for name, value in changes.items():
        changed = _keys(dataclasses.replace(plan, **{name: value}))
        assert not set(changed) & set(before), name


def _mixed(built: Built) -> bool:
    """Whether a logged FFmpeg command wrote a master track or a mix (to a temp .wav)."""
    return any(line.endswith(".tmp.wav") for line in built.log)


def test_the_master_track_is_mixed_again_for_another_voice_or_target(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    cache = ClipCache(tmp_path / "cache")
    assert _mixed(
        render_stages(write_project(tmp_path / "a", _scenes(), ffmpeg_bin), ffmpeg_bin, cache)
    )
    # A voice of the same name and length with other content; the same voice for another
    # loudness target.
    scenes = _scenes()
    scenes[0] = dataclasses.replace(scenes[0], voiceover=VoiceFixture("a.wav", 1.0, 880))
    built = render_stages(write_project(tmp_path / "b", scenes, ffmpeg_bin), ffmpeg_bin, cache)
    assert _mixed(built) and not any("master track linked" in line for line in built.log)
    louder = SMALL.model_copy(
        update={"loudness": SMALL.loudness.model_copy(update={"target": -12})}
    )
    again = write_project(tmp_path / "c", _scenes(), ffmpeg_bin)
    assert _mixed(render_stages(again, ffmpeg_bin, cache, louder))
