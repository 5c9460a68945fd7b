"""pipeline/limits.py: the work a render orders, counted without laying it out, each limit at
it and one over, and VALIDATE and SPEECH checking again with the real files and speech."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline import limits, registry
from pipeline.errors import PipelineError
from pipeline.ffmpeg import Runner
from pipeline.fixtures import ImageFixture, SceneFixture, VoiceFixture, make_tone, write_project
from pipeline.limits import Limits, OverLimit
from pipeline.options import RenderOptions
from pipeline.plan import Plan, build_plan, make_plan
from pipeline.project import ProjectDir
from pipeline.registry import StageRun
from pipeline.spec import ProjectSpec
from pipeline.units import ONCE, scene_unit
from tests import plans
from tests.pipeline_fixtures import ffmpeg_bin, small_project  # noqa: F401 (fixtures)

OPTIONS = RenderOptions(fps=30, min_shot=1.0, max_shot=3.0, xfade=0.0, chunk_seconds=1.0)


def _spec(*images: int) -> ProjectSpec:
    return ProjectSpec.model_validate(
        {"scenes": [{"images": [f"i{n}.jpg" for n in range(k)], "duration": 1} for k in images]}
    )


def _plan_of(seconds: list[float], images: list[int], options: RenderOptions) -> Plan:
    spec = _spec(*images)
    inputs = [
        plans.inputs(tuple(plans.still(f"i{n}.jpg") for n in range(k)), s)
        for s, k in zip(seconds, images, strict=True)
    ]
    return build_plan(spec, options, inputs)


@pytest.mark.parametrize(
    ("seconds", "images", "options"),
    [
        ([1.0, 2.5, 7.3], [1, 2, 3], OPTIONS),
        # Lengthened: 3 images in 1 s with minShot 1 make 3 s.
        ([1.0, 0.2], [3, 1], OPTIONS),
        ([10.0, 4.04], [1, 2], OPTIONS.model_copy(update={"fps": 25, "chunk_seconds": 0.5})),
        ([6.0], [2], OPTIONS.model_copy(update={"chunk_seconds": 0})),
        ([3.0, 3.0], [1, 1], OPTIONS.model_copy(update={"preview": True})),
    ],
)
def test_counted_work_is_what_build_plan_lays_out(
    seconds: list[float], images: list[int], options: RenderOptions
) -> None:
    plan = _plan_of(seconds, images, options)
    work = limits.count_work(list(zip(seconds, images, strict=True)), options, (64, 64))
    assert [s.frames for s in work.scenes] == [s.frames for s in plan.scenes]
    assert [s.shots for s in work.scenes] == [len(s.shots) for s in plan.scenes]
    outline = registry.Outline(len(seconds))  # nothing spoken: SPEECH has no units
    assert limits.unit_count(work, outline.spoken) == len(registry.labels(outline, plan))


def test_chunks_are_counted_at_most_as_many_as_cross_fades_leave() -> None:
    # A fade can merge two chunk boundaries into one: the count is an upper bound.
    options = OPTIONS.model_copy(update={"xfade": 0.5, "chunk_seconds": 0.5})
    plan = _plan_of([9.0], [3], options)
    work = limits.count_work([(9.0, 3)], options, (64, 64))
    assert limits.unit_count(work, ()) >= len(registry.labels(registry.Outline(1), plan))


def test_an_hour_of_shots_of_a_frame_is_counted_without_making_them() -> None:
    options = RenderOptions(fps=30, min_shot=1 / 30, max_shot=1 / 30, xfade=0)
    work = limits.count_work([(3600.0, 1)], options, (1920, 1080))
    assert (work.frames, work.shots) == (108_000, 108_000)
    with pytest.raises(OverLimit, match=r"MAX_JOB_SHOTS \(20000\)") as info:
        limits.check_work(work, options, Limits(min_shot_seconds=0))
    assert info.value.field == "renderOptions.maxShot"


def _work(frames: int, shots: int = 1, chunks: int = 1) -> limits.Work:
    """One scene's work, at 10×10 pixels."""
    return limits.Work((limits.SceneWork(frames, shots, chunks),), 10, 10)


@pytest.mark.parametrize(
    ("bounds", "within", "over", "field", "setting"),
    [
        (Limits(max_job_frames=100), _work(100), _work(101), "scenes", "MAX_JOB_FRAMES (100)"),
        (
            Limits(max_job_gigapixels=1e-5),
            _work(100),  # 10 × 10 × 100 = 1e4 pixels
            _work(101),
            "renderOptions.resolution",
            "MAX_JOB_GIGAPIXELS (1e-05)",
        ),
        (
            Limits(max_job_shots=5),
            _work(100, shots=5),
            _work(100, shots=6),
            "renderOptions.maxShot",
            "MAX_JOB_SHOTS (5)",
        ),
        (
            # One scene: SPEECH, VALIDATE, AUDIO_PREP, the builds, CONCAT, FINALIZE.
            Limits(max_job_units=9),
            _work(100, chunks=4),
            _work(100, chunks=5),
            "renderOptions.chunkSeconds",
            "MAX_JOB_UNITS (9)",
        ),
    ],
)
def test_each_job_limit_at_it_and_one_over(
    bounds: Limits, within: limits.Work, over: limits.Work, field: str, setting: str
) -> None:
    limits.check_work(within, OPTIONS, bounds)
    with pytest.raises(OverLimit) as info:
        limits.check_work(over, OPTIONS, bounds)
    assert info.value.field == field and setting in str(info.value)


@pytest.mark.parametrize(("shot", "ok"), [(0.1, True), (0.0999, False)])
def test_min_shot_seconds_at_the_floor_and_under(shot: float, ok: bool) -> None:
    for update in ({"min_shot": shot, "xfade": 0}, {"min_shot": shot, "max_shot": shot}):
        options = OPTIONS.model_copy(update=update)
        if ok:
            limits.check_options(options, Limits())
            continue
        with pytest.raises(OverLimit, match=r"MIN_SHOT_SECONDS \(0.1\)") as info:
            limits.check_options(options, Limits())
        assert info.value.field in {"renderOptions.minShot", "renderOptions.maxShot"}


@pytest.mark.parametrize(("shot", "ok"), [(1 / 30, True), (0.0333, False), (1e-7, False)])
def test_a_shot_is_at_least_one_frame(shot: float, ok: bool) -> None:
    # Whatever MIN_SHOT_SECONDS says: a shot shorter than a frame has nothing to show, and
    # 1e-7 s rounds to 0 (a division by 0 in the layout).
    if ok:
        assert RenderOptions(fps=30, min_shot=shot, max_shot=shot, xfade=0).min_shot == shot
        return
    with pytest.raises(ValidationError, match="at least one frame"):
        RenderOptions(fps=30, min_shot=shot, max_shot=shot, xfade=0)


@pytest.mark.parametrize(("count", "ok"), [(3, True), (4, False)])
def test_scenes_at_max_scenes_and_one_over(count: int, ok: bool) -> None:
    spec = _spec(*[1] * count)
    if ok:
        limits.check_spec(spec, OPTIONS, Limits(max_scenes=3))
        return
    with pytest.raises(OverLimit, match=r"4 scenes, over MAX_SCENES \(3\)"):
        limits.check_spec(spec, OPTIONS, Limits(max_scenes=3))


def test_narration_is_counted_only_where_it_is_spoken() -> None:
    spec = ProjectSpec.model_validate(
        {
            "scenes": [
                {"images": ["a.jpg"], "voiceover": "v.wav", "narration": "x" * 50},
                {"images": ["a.jpg"], "narration": "y" * 11},
            ]
        }
    )
    bounds = Limits(max_narration_chars=10)
    limits.check_spec(spec, OPTIONS, bounds)  # no tts: nothing is spoken
    with pytest.raises(OverLimit) as info:
        limits.check_spec(spec, RenderOptions(tts="espeak-ng"), bounds)
    assert info.value.field == "scenes[1].narration"  # scene 0 has a voiceover


def test_voiceover_problem_is_what_an_upload_can_ask(tmp_path: Path) -> None:
    path = make_tone(tmp_path / "v.wav", VoiceFixture("v.wav", 2.0))
    assert limits.voiceover_seconds(path) == pytest.approx(2.0, abs=0.01)
    assert limits.voiceover_problem(path, Limits(max_scene_seconds=2.0)) is None
    problem = limits.voiceover_problem(path, Limits(max_scene_seconds=1.99))
    assert problem is not None and "MAX_SCENE_SECONDS (1.99)" in problem
    (tmp_path / "junk.wav").write_bytes(b"not audio")
    assert limits.voiceover_problem(tmp_path / "junk.wav", Limits()) is None  # VALIDATE's job


# --- in the stages ----------------------------------------------------------------------------


def test_validate_refuses_a_voiceover_over_max_scene_seconds(
    tmp_path: Path,
    ffmpeg_bin: str,  # noqa: F811
) -> None:
    project = write_project(
        tmp_path / "p",
        [
            SceneFixture((ImageFixture("b.png", 64, 48, "gradients"),), duration=0.5),
            SceneFixture((ImageFixture("a.jpg", 64, 48, "testsrc2"),), VoiceFixture("a.wav", 1.0)),
        ],
        ffmpeg_bin,
    )
    options = OPTIONS.model_copy(update={"min_shot": 0.5})
    assert make_plan(project, options, ffmpeg_bin, bounds=Limits(max_scene_seconds=1.0))
    with pytest.raises(OverLimit) as info:
        make_plan(project, options, ffmpeg_bin, bounds=Limits(max_scene_seconds=0.99))
    assert info.value.field == "scenes[1].voiceover"
    assert "MAX_SCENE_SECONDS (0.99)" in str(info.value)


def test_validate_refuses_a_timeline_over_max_job_frames(
    small_project: ProjectDir,  # noqa: F811
    ffmpeg_bin: str,  # noqa: F811
) -> None:
    # Scenes of 1 s each, at 30 fps: 60 frames.
    options = OPTIONS.model_copy(update={"min_shot": 0.5})
    assert make_plan(small_project, options, ffmpeg_bin, bounds=Limits(max_job_frames=60))
    with pytest.raises(OverLimit, match=r"61|MAX_JOB_FRAMES \(59\)"):
        make_plan(small_project, options, ffmpeg_bin, bounds=Limits(max_job_frames=59))


def test_speech_refuses_a_narration_over_the_limit_and_validate_the_speech_made(
    tmp_path: Path,
    ffmpeg_bin: str,  # noqa: F811
) -> None:
    project = write_project(
        tmp_path / "p",
        [SceneFixture((ImageFixture("a.jpg", 64, 48, "testsrc2"),), narration="Hello there.")],
        ffmpeg_bin,
    )
    options = RenderOptions(fps=30, min_shot=0.5, max_shot=3.0, xfade=0, tts="espeak-ng")
    run = StageRun(project, options, "v.mp4", Runner(ffmpeg_bin), unit=scene_unit(0))
    speech, validate = registry.BY_NAME["SPEECH"], registry.BY_NAME["VALIDATE"]

    short = dataclasses.replace(run, limits=Limits(max_narration_chars=11))
    with pytest.raises(PipelineError, match=r"^SPEECH scene 0: scenes\[0\]\.narration: 12 ch"):
        registry.run_stage(speech, short)
    assert not (project.root / "cache" / "speech").exists()  # nothing was spoken

    registry.run_stage(speech, dataclasses.replace(run, limits=Limits(max_narration_chars=12)))
    tight = dataclasses.replace(run, unit=ONCE, limits=Limits(max_scene_seconds=0.1))
    with pytest.raises(OverLimit, match=r"^VALIDATE: scenes\[0\]\.narration: the scene's speech"):
        registry.run_stage(validate, tight)
    assert registry.run_stage(validate, dataclasses.replace(run, unit=ONCE)) is not None
