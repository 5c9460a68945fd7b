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
from pipeline.registry import Stage, StageRun


def test_labels_run_in_order_with_one_per_scene_for_per_scene_stages() -> None:
    assert registry.labels(2) == [
        "SPEECH[0]",
        "SPEECH[1]",
        "VALIDATE",
        "AUDIO_PREP",
        "SCENE_BUILD[0]",
        "SCENE_BUILD[1]",
        "CONCAT",
        "FINALIZE",
    ]
    assert registry.labels(0) == ["VALIDATE", "AUDIO_PREP", "CONCAT", "FINALIZE"]


@pytest.mark.parametrize("stage", registry.STAGES, ids=lambda s: s.name)
def test_every_label_parses_back_to_its_stage(stage: Stage) -> None:
    for scene, label in enumerate(stage.labels(3)):
        parsed = registry.parse_label(label)
        assert parsed == (stage, scene if stage.per_scene else None)


@pytest.mark.parametrize(
    "label", ["SCENE_BUILD", "VALIDATE[0]", "NOPE", "SCENE_BUILD[x]", "scene_build[1]", ""]
)
def test_labels_that_name_no_stage_are_refused(label: str) -> None:
    with pytest.raises(ValueError):
        registry.parse_label(label)


def test_weights_split_a_per_scene_stage_by_frames_and_keep_the_total() -> None:
    total = sum(stage.weight for stage in registry.STAGES)
    weights = registry.weights(2, [100, 300])
    assert weights["SCENE_BUILD[1]"] == pytest.approx(3 * weights["SCENE_BUILD[0]"])
    assert sum(weights.values()) == pytest.approx(total)
    assert sum(registry.weights(5).values()) == pytest.approx(total)


def test_steps_group_the_runs_of_a_per_scene_stage() -> None:
    steps = registry.steps(3)
    assert [len(step) for step in steps] == [3, 1, 1, 3, 1, 1]
    assert [scene for _, scene in steps[0]] == [0, 1, 2]  # SPEECH, before VALIDATE
    assert [scene for _, scene in steps[3]] == [0, 1, 2]
    assert registry.LAST is registry.STAGES[-1]


def _run(tmp_path: Path, scene: int | None = None) -> StageRun:
    return StageRun(ProjectDir(tmp_path), RenderOptions(), "v.mp4", Runner("ffmpeg"), scene)


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
        registry.BY_NAME["CONCAT"].label(1)
