"""Drafts: renderOptions.preview (small, fast, same timeline) and parts of the timeline
(renderOptions.scenes and .range), planned and rendered."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cache import ClipCache, clip_key
from pipeline.errors import PipelineError
from pipeline.fixtures import ImageFixture, SceneFixture, VoiceFixture, write_project
from pipeline.motion import oversampled
from pipeline.options import RenderOptions, TimeRange
from pipeline.plan import Plan, build_plan, make_plan, preview_size
from pipeline.probe import probe
from pipeline.spec import ProjectSpec
from pipeline.visuals.still import prepared_size as still_size
from tests import pipeline_fixtures as fx
from tests import plans
from tests.pipeline_fixtures import SMALL
from tests.stage_runs import render_stages

ffmpeg_bin = fx.ffmpeg_bin

HD = SMALL.model_copy(update={"resolution": "1280x720", "preset": "medium", "crf": 18})


@pytest.mark.parametrize(
    ("target", "draft"),
    [
        ((1920, 1080), (640, 360)),
        ((1080, 1920), (360, 640)),
        ((1080, 1080), (640, 640)),
        ((3840, 2160), (640, 360)),
        ((320, 180), (320, 180)),  # never larger than the target
        ((1366, 768), (640, 360)),
    ],
)
def test_a_preview_is_at_most_640_a_side_in_the_targets_aspect(
    target: tuple[int, int], draft: tuple[int, int]
) -> None:
    assert preview_size(*target) == draft


def _plan(options: RenderOptions) -> Plan:
    seconds = [1.01, 2.37, 0.9, 3.3]
    spec = ProjectSpec.model_validate(
        {"scenes": [{"images": [f"{n}.jpg"], "duration": s} for n, s in enumerate(seconds)]}
    )
    inputs = [
        plans.inputs((plans.still(f"{n}.jpg", 640, 480, 1, f"{n}" * 64),), s)
        for n, s in enumerate(seconds)
    ]
    return build_plan(spec, options, inputs)


def test_a_preview_keeps_the_timeline_with_a_smaller_faster_picture() -> None:
    full = _plan(HD)
    draft = _plan(HD.model_copy(update={"preview": True}))
    assert (draft.width, draft.height) == (640, 360)
    assert draft.encoder.preset == "superfast" and draft.encoder.crf == 23
    assert draft.preview and draft.draft and not full.draft
    assert draft.fps == full.fps and draft.xfade_frames == full.xfade_frames
    timeline = [(s.start_frame, s.frames, [shot.frames for shot in s.shots]) for s in full.scenes]
    assert [(s.start_frame, s.frames, [t.frames for t in s.shots]) for s in draft.scenes] == (
        timeline
    )
    assert [s.shots[0].move for s in draft.scenes] == [s.shots[0].move for s in full.scenes]
    # The lighter motion path: zoompan from output-size stills, not oversampled ones.
    moving = next(s for s in full.scenes if not s.shots[0].move.still)
    assert still_size(full, moving) == oversampled(full.width, full.height)
    assert still_size(draft, draft.scenes[moving.index]) == (640, 360)
    # Built a scene per unit, whatever the chunk length: a draft's frames are cheap.
    assert full.chunk_frames == 75 and draft.chunk_frames == 0
    # Other clips than the full render's: cached apart.
    keys = {clip_key(full, s, "v") for s in full.scenes}
    assert not keys & {clip_key(draft, s, "v") for s in draft.scenes}


def test_scenes_picks_scenes_in_timeline_order_back_to_back() -> None:
    full = _plan(SMALL)
    part = _plan(SMALL.model_copy(update={"scenes": [3, 1]}))
    assert part.part == (1, 3) and part.draft
    assert [s.index for s in part.scenes] == [0, 1]
    assert [s.start_frame for s in part.scenes] == [0, full.scenes[1].frames]
    assert part.total_frames == full.scenes[1].frames + full.scenes[3].frames
    # The same clips as in the whole video: a part is made of cached scenes.
    assert [clip_key(part, s, "v") for s in part.scenes] == [
        clip_key(full, full.scenes[i], "v") for i in (1, 3)
    ]
    with pytest.raises(PipelineError, match=r"renderOptions.scenes: no scene 4 \(the project"):
        _plan(SMALL.model_copy(update={"scenes": [0, 4]}))


def test_range_picks_the_scenes_it_overlaps() -> None:
    full = _plan(SMALL)  # scenes of 30, 71, 27 and 99 frames at 30 fps
    assert [s.frames for s in full.scenes] == [30, 71, 27, 99]

    def picked(start: float, end: float) -> tuple[int, ...] | None:
        return _plan(SMALL.model_copy(update={"range": TimeRange(start=start, end=end)})).part

    assert picked(0.0, 0.5) == (0,)
    assert picked(0.9, 1.1) == (0, 1)
    assert picked(1.0, 3.35) == (1,)  # frames 30 to 101: scene 1 exactly
    assert picked(3.4, 100.0) == (2, 3)
    with pytest.raises(PipelineError, match=r"renderOptions.range: 8.0–9.0 s is outside"):
        picked(8.0, 9.0)


def test_range_and_scenes_together_are_refused() -> None:
    with pytest.raises(ValueError, match="give range or scenes, not both"):
        RenderOptions.model_validate({"range": {"from": 0, "to": 1}, "scenes": [0]})
    with pytest.raises(ValueError, match=r"to \(1.0\) must be after from \(2.0\)"):
        RenderOptions.model_validate({"range": {"from": 2, "to": 1}})


def _scenes() -> list[SceneFixture]:
    return [
        SceneFixture(
            (ImageFixture("a.jpg", 640, 480, "testsrc2"),), VoiceFixture("a.wav", 1.0, 440)
        ),
        SceneFixture(
            (ImageFixture("b.jpg", 640, 480, "mandelbrot"),), VoiceFixture("b.wav", 1.4, 660)
        ),
        SceneFixture((ImageFixture("c.png", 480, 640, "smptehdbars"),), duration=0.8),
    ]


def test_a_preview_renders_the_whole_timeline_small(tmp_path: Path, ffmpeg_bin: str) -> None:
    project = write_project(tmp_path / "p", _scenes(), ffmpeg_bin)
    cache = ClipCache(tmp_path / "cache")
    draft = HD.model_copy(update={"preview": True})
    built = render_stages(project, ffmpeg_bin, cache, draft, "preview.mp4")
    assert built.outcomes == ["encoded"] * 3
    info = probe(project.output / "preview.mp4", count_frames=True)
    assert info.video is not None and info.audio is not None
    assert (info.video.width, info.video.height) == (640, 360)
    assert info.video.frames == make_plan(project, HD, ffmpeg_bin).total_frames == 96
    assert abs(info.audio.duration - info.video.duration) <= 1 / 30
    assert any("-preset superfast" in line for line in built.log)
    # A draft publishes its video and poster, no per-scene files.
    assert sorted(p.name for p in project.output.iterdir()) == ["preview.jpg", "preview.mp4"]
    # Cached too: a second preview encodes nothing.
    again = render_stages(project, ffmpeg_bin, cache, draft, "preview.mp4")
    assert again.outcomes == ["cached"] * 3 and again.encodes == 0


def test_a_part_has_its_scenes_frames_and_sound(tmp_path: Path, ffmpeg_bin: str) -> None:
    project = write_project(tmp_path / "p", _scenes(), ffmpeg_bin)
    cache = ClipCache(tmp_path / "cache")
    full = render_stages(project, ffmpeg_bin, cache)
    scene_files = {p.name: p.read_bytes() for p in project.output.glob("scene_*")}
    part = render_stages(
        project, ffmpeg_bin, cache, SMALL.model_copy(update={"scenes": [1]}), "b.mp4"
    )
    assert part.outcomes == ["cached"] and full.outcomes == ["encoded"] * 3
    info = probe(project.output / "b.mp4", count_frames=True)
    assert info.video is not None and info.audio is not None
    assert info.video.frames == 42  # scene 1 alone: 1.4 s at 30 fps
    assert abs(info.audio.duration - 1.4) <= 1 / 30
    # The full render's per-scene files are left as they were.
    assert {p.name: p.read_bytes() for p in project.output.glob("scene_*")} == scene_files
