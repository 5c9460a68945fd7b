"""The stage registry: labels, weights, steps, and the stage a failure is reported in."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline import registry
from pipeline.errors import PipelineError
from pipeline.ffmpeg import Runner
from pipeline.options import RenderOptions
from pipeline.project import ProjectDir
from pipeline.registry import Outline, Stage, StageRun
from pipeline.spec import ProjectSpec
from pipeline.units import ONCE, Unit, chunk_unit, scene_unit
from tests.plans import fading_plan

# Two scenes, both spoken by TTS.
SPOKEN = Outline(2, (0, 1))


def _pairs(units: list[Unit]) -> list[tuple[int | None, int | None]]:
    return [(unit.scene, unit.chunk) for unit in units]


def test_labels_run_in_order_with_one_per_scene_for_per_scene_stages() -> None:
    assert registry.labels(SPOKEN) == [
        "SPEECH[0]",
        "SPEECH[1]",
        "VALIDATE",
        "AUDIO_PREP",
        "SCENE_BUILD[0]",
        "SCENE_BUILD[1]",
        "CONCAT",
        "FINALIZE",
    ]
    assert registry.labels(Outline(0)) == ["VALIDATE", "AUDIO_PREP", "CONCAT", "FINALIZE"]


def test_speech_runs_only_for_the_scenes_tts_speaks() -> None:
    # Nothing spoken: exactly the seed's stages, VALIDATE first.
    assert registry.labels(Outline(3)) == [
        "VALIDATE",
        "AUDIO_PREP",
        "SCENE_BUILD[0]",
        "SCENE_BUILD[1]",
        "SCENE_BUILD[2]",
        "CONCAT",
        "FINALIZE",
    ]
    # Scene 2 alone: its label keeps its scene number.
    labels = registry.labels(Outline(3, (2,)))
    assert [label for label in labels if label.startswith("SPEECH")] == ["SPEECH[2]"]
    assert labels[:2] == ["SPEECH[2]", "VALIDATE"]
    assert _pairs(registry.BY_NAME["SCENE_BUILD"].units(Outline(3, (2,)))) == [
        (0, None),
        (1, None),
        (2, None),
    ]


def test_the_outline_speaks_a_narration_only_where_tts_says_it() -> None:
    spec = ProjectSpec.model_validate(
        {
            "scenes": [
                {"images": ["a.jpg"], "voiceover": "a.wav", "narration": "Said by a person."},
                {"images": ["b.jpg"], "duration": 2},
                {"images": ["c.jpg"], "narration": "Spoken by the engine."},
                {"images": ["d.jpg"], "narration": "   ", "duration": 1},
            ]
        }
    )
    assert registry.outline(spec, RenderOptions(tts="espeak-ng")) == Outline(4, (2,))
    # Without TTS nothing is spoken, narrations or not.
    assert registry.outline(spec, RenderOptions()) == Outline(4)


@pytest.mark.parametrize("stage", registry.STAGES, ids=lambda s: s.name)
def test_every_label_parses_back_to_its_stage(stage: Stage) -> None:
    for scene, label in enumerate(stage.labels(Outline(3, (0, 1, 2)))):
        parsed = registry.parse_label(label)
        assert parsed == (stage, scene if stage.per_scene else None)


@pytest.mark.parametrize(
    "label", ["SCENE_BUILD", "VALIDATE[0]", "NOPE", "SCENE_BUILD[x]", "scene_build[1]", ""]
)
def test_labels_that_name_no_stage_are_refused(label: str) -> None:
    with pytest.raises(ValueError):
        registry.parse_label(label)


# Scene 0 is one chunk; scene 1 (86 frames, a fade at [36, 46)) two of 46 and 40 frames.
CHUNKED = fading_plan((30,), (36, 50), chunk_frames=43, fade=10)


def test_a_plan_gives_a_chunked_stage_one_label_per_chunk() -> None:
    assert registry.labels(SPOKEN, CHUNKED) == [
        "SPEECH[0]",
        "SPEECH[1]",
        "VALIDATE",
        "AUDIO_PREP",
        "SCENE_BUILD[0]",
        "SCENE_BUILD[1/0]",
        "SCENE_BUILD[1/1]",
        "CONCAT",
        "FINALIZE",
    ]
    # Chunking off: the labels without a plan.
    unchunked = dataclasses.replace(CHUNKED, chunk_frames=0)
    assert registry.labels(SPOKEN, unchunked) == registry.labels(SPOKEN)
    stage = registry.BY_NAME["SCENE_BUILD"]
    assert _pairs(stage.units(SPOKEN, CHUNKED)) == [(0, None), (1, 0), (1, 1)]
    with pytest.raises(ValueError, match="does not run in chunks"):
        registry.BY_NAME["SPEECH"].label(chunk_unit(1, 0))


def test_every_unit_label_parses_back() -> None:
    for label in registry.labels(SPOKEN, CHUNKED):
        stage, unit = registry.parse_unit(label)
        assert stage.label(unit) == label
        assert registry.parse_label(label) == (stage, unit.scene)
    assert registry.parse_unit("SCENE_BUILD[1/0]") == (
        registry.BY_NAME["SCENE_BUILD"],
        chunk_unit(1, 0),
    )
    assert registry.clip_scene_of("SCENE_BUILD[1/1]") == 1
    assert registry.scene_of("SCENE_BUILD[1/1]") == 1
    shuffled = registry.labels(SPOKEN, CHUNKED)[::-1]
    assert sorted(shuffled, key=registry.order_key) == registry.labels(SPOKEN, CHUNKED)


@pytest.mark.parametrize(
    "label",
    ["VALIDATE[1/0]", "SPEECH[1/0]", "SCENE_BUILD[1/]", "SCENE_BUILD[/0]", "SCENE_BUILD[1/0/0]"],
)
def test_chunk_labels_of_stages_that_have_none_are_refused(label: str) -> None:
    with pytest.raises(ValueError, match="is not a stage label"):
        registry.parse_unit(label)


def test_weights_split_a_per_scene_stage_by_frames_and_keep_the_total() -> None:
    total = sum(stage.weight for stage in registry.STAGES)
    weights = registry.weights(SPOKEN, fading_plan((100,), (300,)))
    assert weights["SCENE_BUILD[1]"] == pytest.approx(3 * weights["SCENE_BUILD[0]"])
    assert weights["SPEECH[1]"] == pytest.approx(3 * weights["SPEECH[0]"])
    assert sum(weights.values()) == pytest.approx(total)
    assert sum(registry.weights(Outline(5, (0, 4))).values()) == pytest.approx(total)
    before = registry.weights(SPOKEN)
    assert before["SCENE_BUILD[1]"] == before["SCENE_BUILD[0]"]


def test_a_stage_with_no_runs_has_no_weight_and_one_spoken_scene_has_all_of_speech() -> None:
    speech = registry.BY_NAME["SPEECH"].weight
    total = sum(stage.weight for stage in registry.STAGES)
    silent = registry.weights(Outline(2), fading_plan((100,), (300,)))
    assert not any(label.startswith("SPEECH") for label in silent)
    assert sum(silent.values()) == pytest.approx(total - speech)
    one = registry.weights(Outline(2, (1,)), fading_plan((100,), (300,)))
    assert one["SPEECH[1]"] == pytest.approx(speech)
    assert sum(one.values()) == pytest.approx(total)


def test_weights_split_a_chunked_scene_by_its_chunks_frames() -> None:
    total = sum(stage.weight for stage in registry.STAGES)
    weights = registry.weights(SPOKEN, CHUNKED)
    assert set(weights) == set(registry.labels(SPOKEN, CHUNKED))
    assert sum(weights.values()) == pytest.approx(total)
    build = registry.BY_NAME["SCENE_BUILD"].weight
    # 116 frames: scene 0's 30, scene 1's chunks of 46 and 40; SPEECH still per scene.
    assert weights["SCENE_BUILD[0]"] == pytest.approx(build * 30 / 116)
    assert weights["SCENE_BUILD[1/0]"] == pytest.approx(build * 46 / 116)
    assert weights["SCENE_BUILD[1/1]"] == pytest.approx(build * 40 / 116)
    assert weights["SPEECH[1]"] == pytest.approx(registry.BY_NAME["SPEECH"].weight * 86 / 116)


def test_steps_before_the_plan_stop_at_validate_and_the_plan_gives_the_rest() -> None:
    before = registry.steps(SPOKEN)
    assert [[(stage.name, u.scene, u.chunk) for stage, u in step] for step in before] == [
        [("SPEECH", 0, None), ("SPEECH", 1, None)],
        [("VALIDATE", None, None)],
    ]
    after = registry.steps(SPOKEN, CHUNKED)
    assert [[(stage.name, u.scene, u.chunk) for stage, u in step] for step in after] == [
        [("AUDIO_PREP", None, None)],
        [("SCENE_BUILD", 0, None), ("SCENE_BUILD", 1, 0), ("SCENE_BUILD", 1, 1)],
        [("CONCAT", None, None)],
        [("FINALIZE", None, None)],
    ]
    # Together, every label once, in running order.
    labels = [stage.label(unit) for step in before + after for stage, unit in step]
    assert labels == registry.labels(SPOKEN, CHUNKED)
    assert registry.STAGES[registry.LAYOUT].name == "VALIDATE"


def test_nothing_to_speak_makes_no_speech_step() -> None:
    # Not an empty step (a chord over no tasks): the first part is VALIDATE alone.
    before = registry.steps(Outline(3))
    assert [[(stage.name, u.scene, u.chunk) for stage, u in step] for step in before] == [
        [("VALIDATE", None, None)]
    ]
    assert [stage.name for stage, _ in registry.steps(Outline(3, (1,)))[0]] == ["SPEECH"]
    assert registry.LAST is registry.STAGES[-1]


def _run(tmp_path: Path, scene: int | None = None) -> StageRun:
    unit = ONCE if scene is None else scene_unit(scene)
    return StageRun(ProjectDir(tmp_path), RenderOptions(), "v.mp4", Runner("ffmpeg"), unit)


def test_run_stage_binds_the_runner_and_locates_errors(tmp_path: Path) -> None:
    seen: list[tuple[str, int | None]] = []

    def body(run: StageRun) -> None:
        seen.append((run.runner.stage, run.runner.scene))
        raise PipelineError("image 'a.jpg' could not be decoded")

    stage = dataclasses.replace(registry.BY_NAME["SCENE_BUILD"], body=body)
    with pytest.raises(PipelineError) as info:
        registry.run_stage(stage, _run(tmp_path, scene=2))
    assert seen == [("SCENE_BUILD", 2)]
    assert str(info.value) == "SCENE_BUILD scene 2: image 'a.jpg' could not be decoded"


def test_an_error_that_names_its_stage_keeps_it(tmp_path: Path) -> None:
    def body(run: StageRun) -> None:
        raise PipelineError("clip missing", stage="CONCAT", scene=1)

    stage = dataclasses.replace(registry.BY_NAME["FINALIZE"], body=body)
    with pytest.raises(PipelineError) as info:
        registry.run_stage(stage, _run(tmp_path))
    assert str(info.value) == "CONCAT scene 1: clip missing"


def test_a_per_scene_stage_needs_its_scene() -> None:
    with pytest.raises(ValueError):
        registry.BY_NAME["SCENE_BUILD"].label()
    with pytest.raises(ValueError):
        registry.BY_NAME["CONCAT"].label(scene_unit(1))


def test_every_work_file_a_stage_reads_is_written_by_a_stage_before_it() -> None:
    # The declarations the task layer fetches and publishes by (tests/tasks/test_stages.py renders
    # through them); a read no earlier stage writes would be fetched from nowhere.
    written: set[str] = set(registry.PINNED)  # the job's own spec, there before any stage
    for stage in registry.STAGES:
        # A per-scene stage may read what its other units write (a scene's other chunks).
        before = written | set(stage.writes) if stage.per_scene else written
        for pattern in stage.reads:
            if pattern.startswith("work/"):
                assert pattern in before, f"{stage.name} reads {pattern}, written by none before"
        written |= set(stage.writes)
    assert all(p.startswith(("work/", "cache/")) for s in registry.STAGES for p in s.writes)


def test_work_patterns_are_located_in_the_runs_own_folder(tmp_path: Path) -> None:
    project = ProjectDir(tmp_path)
    assert registry.located(project, "work/plan.json") == "work/plan.json"
    assert registry.located(project.for_run("j1"), "work/scenes/*") == "work/j1/scenes/*"
    assert registry.located(project.for_run("j1"), "input/*") == "input/*"
