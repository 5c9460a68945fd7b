"""Units of work: each kind's label, frames, clip and place; the plan's segments in join order;
and a kind registered here reaching the labels, weights, canvas and join with no other change."""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path

import pytest
from celery.canvas import _chain, _chord

from pipeline import registry, stages, units
from pipeline.errors import PipelineError
from pipeline.plan import Plan
from pipeline.project import ProjectDir
from pipeline.spec import MAX_SCENES
from pipeline.units import ONCE, Kind, Place, Unit, chunk_unit, scene_unit, segments
from tasks.canvas import build_canvas
from tasks.models import JobTask
from tasks.stages import task_unit
from tests.plans import fading_plan, still_plan

# Scene 0 in one piece (30 frames); scene 1 (86 frames, a fade at [36, 46)) in chunks of 46
# and 40; scene 2 (160 frames, fades at [30, 40), [70, 80), [110, 120)) in four chunks.
CHUNKED = fading_plan((30,), (36, 50), (40, 40, 40, 40), chunk_frames=43, fade=10)
BUILD = registry.BY_NAME["SCENE_BUILD"]


def test_each_kind_labels_its_runs_as_ever_and_parses_them_back() -> None:
    assert ONCE.label("VALIDATE") == "VALIDATE"
    assert scene_unit(3).label("SPEECH") == "SPEECH[3]"
    assert chunk_unit(3, 1).label("SCENE_BUILD") == "SCENE_BUILD[3/1]"
    for unit in (ONCE, scene_unit(12), chunk_unit(0, 7)):
        inside = re.fullmatch(r"X(?:\[(.*)\])?", unit.label("X"))
        assert inside is not None and units.parse(inside[1]) == unit
    assert [units.parse(text) for text in ("", "1/", "/0", "1/0/0", "x", "-1")] == [None] * 6


def test_a_unit_is_a_value_not_a_tuple() -> None:
    assert chunk_unit(1, 0) == Unit("chunk", 1, 0) and chunk_unit(1, 0) != (1, 0)
    assert len({scene_unit(1), scene_unit(1), chunk_unit(1, 0)}) == 2
    with pytest.raises(ValueError, match="no unit kind 'nope'"):
        Unit("nope", 1).label("SCENE_BUILD")


@pytest.mark.parametrize("chunk_frames", [0, 43, 20])
def test_segments_frames_cover_the_video_once(chunk_frames: int) -> None:
    plan = dataclasses.replace(CHUNKED, chunk_frames=chunk_frames)
    found = segments(plan)
    assert sum(unit.frames(plan) for unit in found) == plan.total_frames
    for scene in plan.scenes:
        spans = [unit.span(plan) for unit in units.segments_of(plan, scene.index)]
        assert spans[0][0] == 0 and spans[-1][1] == scene.frames
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))


def test_segments_are_todays_listing_scene_by_scene(tmp_path: Path) -> None:
    project = ProjectDir(tmp_path)
    names = [unit.clip(project).name for unit in segments(CHUNKED)]
    assert names == [
        "scene_000.mp4",
        "scene_001_part000.mp4",
        "scene_001_part001.mp4",
        "scene_002_part000.mp4",
        "scene_002_part001.mp4",
        "scene_002_part002.mp4",
        "scene_002_part003.mp4",
    ]
    unchunked = dataclasses.replace(CHUNKED, chunk_frames=0)
    assert [unit.clip(project).name for unit in segments(unchunked)] == [
        "scene_000.mp4",
        "scene_001.mp4",
        "scene_002.mp4",
    ]
    # The same files stages.py has always named, scene by scene.
    for plan in (CHUNKED, unchunked):
        assert [unit.clip(project) for unit in segments(plan)] == [
            clip for scene in plan.scenes for clip in stages.scene_clips(project, plan, scene.index)
        ]


def test_a_chunk_and_a_whole_scene_have_the_cache_keys_of_before() -> None:
    from pipeline.cache import clip_key

    scene = CHUNKED.scenes[1]
    assert scene_unit(0).key(CHUNKED, "9") == clip_key(CHUNKED, CHUNKED.scenes[0], "9")
    assert chunk_unit(1, 1).key(CHUNKED, "9") == clip_key(CHUNKED, scene, "9", (46, 86))
    assert scene_unit(0).piece(CHUNKED) is None and chunk_unit(1, 1).piece(CHUNKED) == (46, 86)


def test_labels_fit_the_stage_rows_name_column() -> None:
    # A label longer than the column would fail on PostgreSQL (see JobTask.name).
    longest = max(len(stage.name) for stage in registry.STAGES)
    name = "X" * longest
    column = JobTask.__table__.c.name.type.length  # type: ignore[attr-defined]
    assert len(chunk_unit(MAX_SCENES - 1, 9999).label(name)) <= column


# --- a kind added here: a clip between two scenes ------------------------------------------


class Between(Kind):
    """A stand-in for a transition: a 5-frame clip after each scene but the last."""

    name = "between"
    segment = True

    def suffix(self, unit: Unit) -> str:
        return f"[{unit.scene_index}~{unit.scene_index + 1}]"

    def parse(self, inside: str | None) -> Unit | None:
        found = re.fullmatch(r"(\d+)~(\d+)", inside or "")
        if found is None or int(found[2]) != int(found[1]) + 1:
            return None
        return Unit("between", int(found[1]))

    def segments(self, plan: Plan) -> list[Unit]:
        return [Unit("between", scene.index) for scene in plan.scenes[:-1]]

    def frames(self, plan: Plan, unit: Unit) -> int:
        return 5

    def clip(self, project: ProjectDir, unit: Unit) -> Path:
        return project.work / "scenes" / f"between_{unit.scene_index:03d}.mp4"

    def key(self, plan: Plan, unit: Unit, ffmpeg_version: str) -> str:
        return f"between-{unit.scene_index}"

    def draws(self, unit: Unit) -> tuple[int, ...]:
        return (unit.scene_index, unit.scene_index + 1)

    def part_of(self, unit: Unit) -> int | None:
        return None  # of two scenes, so of neither one's own clip

    def place(self, unit: Unit) -> Place:
        return (unit.scene_index, 1, 0)


@pytest.fixture
def between(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(units.KINDS, "between", Between())


PLAN = still_plan(30, 150, 30)  # scene 1 in two chunks of 75
OUTLINE = registry.Outline(3)


@pytest.mark.usefixtures("between")
def test_a_new_kind_is_in_the_labels_and_weights() -> None:
    labels = registry.labels(OUTLINE, PLAN)
    assert labels[labels.index("AUDIO_PREP") + 1 : labels.index("CONCAT")] == [
        "SCENE_BUILD[0]",
        "SCENE_BUILD[0~1]",
        "SCENE_BUILD[1/0]",
        "SCENE_BUILD[1/1]",
        "SCENE_BUILD[1~2]",
        "SCENE_BUILD[2]",
    ]
    assert sorted(labels[::-1], key=registry.order_key) == labels
    assert registry.parse_unit("SCENE_BUILD[0~1]") == (BUILD, Unit("between", 0))
    assert registry.clip_scene_of("SCENE_BUILD[0~1]") is None
    with pytest.raises(ValueError, match="is not a stage label"):
        registry.parse_unit("SPEECH[0~1]")  # SPEECH builds no clips
    weights = registry.weights(OUTLINE, PLAN)
    total = sum(stage.weight for stage in registry.STAGES if stage.name != "SPEECH")
    assert sum(weights.values()) == pytest.approx(total)  # nothing spoken: no SPEECH
    assert weights["SCENE_BUILD[0~1]"] == pytest.approx(BUILD.weight * 5 / (210 + 10))


@pytest.mark.usefixtures("between")
def test_a_new_kind_is_a_task_of_the_canvas() -> None:
    canvas = build_canvas("j1", OUTLINE, PLAN)
    assert isinstance(canvas, _chain)
    builds = canvas.tasks[1]
    assert isinstance(builds, _chord)
    assert [s.id for s in builds.tasks][1] == "j1.SCENE_BUILD[0~1]"
    (arg,) = builds.tasks[1].args[1:]
    assert task_unit(BUILD, arg) == Unit("between", 0)


@pytest.mark.usefixtures("between")
def test_a_new_kind_is_joined_in_its_place(tmp_path: Path) -> None:
    project = ProjectDir(tmp_path)
    wanted = [unit.clip(project) for unit in segments(PLAN)]
    for clip in wanted:
        if "between_001" not in clip.name:
            clip.parent.mkdir(parents=True, exist_ok=True)
            clip.touch()
    with pytest.raises(PipelineError, match=r"clip between_001\.mp4 is missing"):
        stages.segment_clips(project, PLAN)
    (project.work / "scenes" / "between_001.mp4").touch()
    listing = stages.write_listing(
        tmp_path / "work" / "concat.txt", stages.segment_clips(project, PLAN)
    )
    assert listing.read_text().splitlines()[1:] == [
        "file 'scenes/scene_000.mp4'",
        "file 'scenes/between_000.mp4'",
        "file 'scenes/scene_001_part000.mp4'",
        "file 'scenes/scene_001_part001.mp4'",
        "file 'scenes/between_001.mp4'",
        "file 'scenes/scene_002.mp4'",
    ]
    # A scene's own clip (scene_NN.mp4, its poster) is still its clip or chunks alone.
    assert stages.scene_clips(project, PLAN, 1) == wanted[2:4]


@pytest.mark.usefixtures("between")
def test_stills_stay_until_every_clip_drawn_from_them_is_built(tmp_path: Path) -> None:
    project = ProjectDir(tmp_path)
    stills = stages.scene_stills(project, PLAN, 2)
    for path in [*stills, *(unit.clip(project) for unit in segments(PLAN))]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    (project.work / "scenes" / "between_001.mp4").unlink()
    stages._remove_stills(project, PLAN, 2)  # scene 2's clip is built; 1~2 draws on it too
    assert all(path.is_file() for path in stills)
    (project.work / "scenes" / "between_001.mp4").touch()
    stages._remove_stills(project, PLAN, 2)
    assert not any(path.exists() for path in stills)


def test_a_task_reads_its_unit_from_its_label_or_from_numbers_sent_before_labels() -> None:
    assert task_unit(BUILD, "SCENE_BUILD[1/0]") == chunk_unit(1, 0)
    assert task_unit(BUILD, "SCENE_BUILD[2]") == scene_unit(2)
    assert task_unit(registry.BY_NAME["VALIDATE"], None) == ONCE
    # A message queued by the release before (args job, scene[, chunk]) still runs.
    assert task_unit(BUILD, 1, 0) == chunk_unit(1, 0)
    assert task_unit(BUILD, 2) == scene_unit(2)
    with pytest.raises(ValueError, match="not a unit of SCENE_BUILD"):
        task_unit(BUILD, "SPEECH[2]")
