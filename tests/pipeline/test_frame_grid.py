"""Every frame on the grid: each video packet of every output is at exactly its frame number
times the frame duration (`pipeline.probe.off_grid`), whatever its scenes carry: burnt-in
captions, speech TTS made, chunks, clips and joins taken from the render cache, a preview."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from pipeline import stages
from pipeline.cache import ClipCache
from pipeline.chunks import chunk_spans
from pipeline.errors import PipelineError
from pipeline.fixtures import ImageFixture, SceneFixture, write_project
from pipeline.options import RenderOptions
from pipeline.plan import Plan, read_plan
from pipeline.probe import off_grid, probe, video_packet_times
from pipeline.project import ProjectDir
from tests import pipeline_fixtures as fx
from tests.stage_runs import Built, render_stages

ffmpeg_bin = fx.ffmpeg_bin
FPS = 30

OPTIONS = RenderOptions(
    fps=FPS,
    resolution="320x180",
    preset="veryfast",
    crf=20,
    min_shot=1.0,
    max_shot=10.0,
    xfade=0.3,
    tts="espeak-ng",
    captions={"burnIn": True, "language": "en"},
    chunk_seconds=2.0,  # 60 frames: the narrated scene is two chunks, the 80-frame one one
)


def _scenes() -> list[SceneFixture]:
    return [
        # 80 frames (2666.67 ms), one unit: a clip whose MP4 was timed in milliseconds ended
        # at 2666 ms here (B-frames last), and every later frame of the video came 0.65 ms
        # early (measured with FFmpeg 9.0.2, libx264 165).
        SceneFixture((ImageFixture("dawn.jpg", 640, 360, "photo:dawn"),), duration=80 / FPS),
        # Spoken by TTS, its captions burnt in, long enough for two chunks.
        SceneFixture(
            (ImageFixture("noon.jpg", 640, 360, "photo:noon"),),
            narration="Boats leave the harbour early, and the gulls follow them far out to sea.",
        ),
        SceneFixture((ImageFixture("dusk.png", 640, 360, "photo:dusk"),), duration=1.2),
    ]


def assert_on_grid(video: Path, frames: int, fps: int = FPS) -> None:
    """Every packet of `video` at n × the frame duration, n = 0 … frames-1."""
    time_base, times = video_packet_times(video)
    assert len(times) == frames, video.name
    assert off_grid(video, fps) == [], video.name
    assert times[-1] * time_base == Fraction(frames - 1, fps), video.name


@pytest.fixture(scope="module")
def rendered(
    tmp_path_factory: pytest.TempPathFactory, ffmpeg_bin: str
) -> tuple[ProjectDir, ClipCache, Built]:
    """The project rendered once through every stage, with a fresh cache."""
    root = tmp_path_factory.mktemp("grid")
    project = write_project(root / "project", _scenes(), ffmpeg_bin)
    cache = ClipCache(root / "cache")
    return project, cache, render_stages(project, ffmpeg_bin, cache, OPTIONS)


def _check_render(project: ProjectDir, plan: Plan, name: str) -> None:
    assert_on_grid(project.output / name, plan.total_frames)
    for scene in plan.scenes:
        assert_on_grid(project.output / stages.scene_output_name(scene.index), scene.frames)


def test_every_output_of_a_render_with_captions_speech_and_chunks_is_on_the_grid(
    rendered: tuple[ProjectDir, ClipCache, Built],
) -> None:
    project, _, built = rendered
    plan = read_plan(project)
    # What the render had to carry: a scene spoken by TTS with burnt-in captions, in chunks,
    # after a scene whose length is no whole number of milliseconds.
    assert plan.scenes[0].frames == 80 and len(chunk_spans(plan, plan.scenes[0])) == 1
    spoken = plan.scenes[1]
    assert "cache/speech" in (spoken.voiceover or "") and spoken.burn_in and spoken.captions
    assert len(chunk_spans(plan, spoken)) == 2
    assert built.outcomes.count("encoded") == 4  # 1 + 2 chunks + 1, none from the cache
    _check_render(project, plan, "video.mp4")
    # Each clip says its exact length: n frames, not n/fps rounded to milliseconds.
    for scene in plan.scenes:
        spans = chunk_spans(plan, scene)
        for clip, (first, end) in zip(
            stages.scene_clips(project, plan, scene.index), spans, strict=True
        ):
            info = probe(clip)
            assert info.video is not None
            assert info.video.duration == pytest.approx((end - first) / FPS, abs=1e-9), clip.name


def test_a_render_from_the_cache_and_a_preview_are_on_the_grid(
    rendered: tuple[ProjectDir, ClipCache, Built], ffmpeg_bin: str, tmp_path: Path
) -> None:
    _, cache, _ = rendered
    # Another project with the same scenes: every clip comes from the cache.
    again = write_project(tmp_path / "again", _scenes(), ffmpeg_bin)
    built = render_stages(again, ffmpeg_bin, cache, OPTIONS)
    assert built.outcomes == ["cached"] * 4 and built.encodes == 0
    _check_render(again, read_plan(again), "video.mp4")
    draft = render_stages(
        again, ffmpeg_bin, cache, OPTIONS.model_copy(update={"preview": True}), "draft.mp4"
    )
    assert draft.outcomes == ["encoded"] * 3  # a preview is never chunked
    assert_on_grid(again.output / "draft.mp4", read_plan(again).total_frames)


def test_finalize_refuses_a_video_off_the_grid(
    rendered: tuple[ProjectDir, ClipCache, Built], ffmpeg_bin: str, tmp_path: Path
) -> None:
    # The same packets, every timestamp from frame 100 on 10 ticks early (as in the report).
    project, _, _ = rendered
    plan = read_plan(project)
    early = tmp_path / "early.mp4"
    shift = "pts=if(gte(PTS\\,100*512)\\,PTS-10\\,PTS):dts=if(gte(DTS\\,99*512)\\,DTS-10\\,DTS)"
    args = ["-hide_banner", "-loglevel", "error", "-i", str(project.output / "video.mp4")]
    args += ["-c", "copy", "-bsf:v", f"setts={shift}", str(early)]
    subprocess.run(
        [ffmpeg_bin, *args],
        check=True,
        timeout=60,
    )
    assert off_grid(early, FPS)[0][:2] == (100, 100 * 512 - 10)
    with pytest.raises(PipelineError, match="off the 1/30 s grid, from frame 100"):
        stages.check_output(early, plan)
