"""Transitions between scenes (pipeline/transitions.py, the `transition` units): the rule that
places them and refuses what the neighbours cannot give, their units, labels and keys; and real
renders, probed: every type draws its own frames over the cut, the timeline, the sound and
every voiceover onset are those of the same render with cuts, chunks join to the unchunked
frames, and an edit re-encodes its scene and the transitions touching it, nothing else."""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from celery.canvas import _chain, _chord
from PIL import Image, ImageOps
from pydantic import ValidationError

from pipeline import limits, registry, stages, transitions, units
from pipeline.cache import ClipCache
from pipeline.errors import PipelineError
from pipeline.ffmpeg import Runner
from pipeline.fixtures import ImageFixture, SceneFixture, VoiceFixture, write_project
from pipeline.options import RenderOptions
from pipeline.plan import Plan, build_plan, make_plan, read_plan
from pipeline.poster import scene_poster_frame
from pipeline.probe import probe
from pipeline.project import ProjectDir
from pipeline.render import render
from pipeline.spec import ProjectSpec
from pipeline.transitions import TYPES, TransitionPlan
from pipeline.units import scene_unit, segments, segments_of, transition_unit
from tasks.canvas import build_canvas
from tasks.models import JobTask
from tasks.stages import task_unit
from tests import pipeline_fixtures as fx
from tests import plans
from tests.stage_runs import frame_hashes, render_stages

ffmpeg_bin = fx.ffmpeg_bin
BUILD = registry.BY_NAME["SCENE_BUILD"]


# --- the rule (pure) -----------------------------------------------------------------------


def _spec(*scenes: dict[str, Any]) -> ProjectSpec:
    return ProjectSpec.model_validate({"scenes": [{"images": ["a.jpg"], **s} for s in scenes]})


def test_a_transition_is_centred_on_the_cut() -> None:
    assert (TransitionPlan("fade", 12).before, TransitionPlan("fade", 12).after) == (6, 6)
    # An odd length gives the incoming scene the extra frame.
    assert (TransitionPlan("fade", 15).before, TransitionPlan("fade", 15).after) == (7, 8)
    assert transitions.planned("cut", 1.0, 30) is None
    assert transitions.planned("wipeup", 0.5, 30) == TransitionPlan("wipeup", 15)


def test_the_types_are_the_issues_and_cut_is_the_default() -> None:
    wanted = {"cut", "fade", "fadeblack", "dissolve", "circleopen", "zoomin"}
    wanted |= {
        f"{kind}{way}" for kind in ("wipe", "slide") for way in ("left", "right", "up", "down")
    }
    assert wanted <= set(TYPES)
    spec = _spec({"duration": 1, "transition": {}}, {"duration": 1})
    assert spec.scenes[0].transition is not None
    assert spec.scenes[0].transition.type == "cut"


def _first_error(data: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    with pytest.raises(ValidationError) as caught:
        ProjectSpec.model_validate(data)
    error = caught.value.errors()[0]
    return tuple(error["loc"]), error["msg"]


def test_an_unknown_type_or_duration_is_refused_naming_the_field() -> None:
    two = [{"images": ["a.jpg"], "duration": 2}, {"images": ["a.jpg"], "duration": 2}]
    two[0]["transition"] = {"type": "spin"}
    loc, message = _first_error({"scenes": two})
    assert loc == ("scenes", 0, "transition", "type") and "'fade'" in message
    for duration in (0, -1, 11, "long"):
        two[0]["transition"] = {"type": "fade", "duration": duration}
        assert _first_error({"scenes": two})[0] == ("scenes", 0, "transition", "duration")


def test_a_transition_out_of_the_last_scene_is_refused_naming_it() -> None:
    loc, message = _first_error(
        {"scenes": [{"images": ["a.jpg"], "duration": 2, "transition": {"type": "fade"}}]}
    )
    assert loc == ("scenes", 0, "transition") and "last scene" in message
    # A cut there says nothing: allowed.
    _spec({"duration": 2, "transition": {"type": "cut"}})


def test_a_transition_may_take_at_most_half_of_either_neighbour() -> None:
    spec = _spec(
        {"duration": 1, "transition": {"type": "fade", "duration": 0.5}},
        {"duration": 1},
    )
    # 15 frames at 30 fps: half of 30 is the most.
    assert transitions.check(spec, 30, [30, 30]) is None
    too_long = transitions.check(spec, 30, [30, 29])
    assert too_long is not None and too_long.field == "scenes[0].transition.duration"
    assert "half of scene 1 (29 frames)" in too_long.message
    first = transitions.check(spec, 30, [28, 60])
    assert first is not None and "half of scene 0 (28 frames)" in first.message
    # A length not known yet (speech not made yet) is checked by VALIDATE.
    assert transitions.check(spec, 30, [None, 30]) is None
    short = transitions.check(
        _spec({"duration": 1, "transition": {"type": "fade", "duration": 0.04}}, {"duration": 1}),
        30,
        [30, 30],
    )
    assert short is not None and "shorter than a transition can be" in short.message


def _built(spec: ProjectSpec, seconds: Sequence[float], **options: Any) -> Plan:
    image = plans.still("a.jpg", 640, 480)
    inputs = [plans.inputs((image,), s) for s in seconds]
    return build_plan(spec, fx.SMALL.model_copy(update=options), inputs)


def test_validate_refuses_what_the_neighbours_cannot_give() -> None:
    spec = _spec(
        {"duration": 2, "transition": {"type": "fade", "duration": 0.6}},
        {"duration": 1},
    )
    with pytest.raises(
        PipelineError, match=r"scenes\[0\]\.transition\.duration: .*half of scene 1"
    ):
        _built(spec, [2.0, 1.0])
    assert _built(spec, [2.0, 1.2]).scenes[0].transition == TransitionPlan("fade", 18)


def test_a_part_of_the_timeline_keeps_only_the_transitions_between_its_neighbours() -> None:
    fade = {"type": "fade", "duration": 0.4}
    spec = _spec(*({"duration": 2, "transition": fade} for _ in range(3)), {"duration": 2})
    whole = _built(spec, [2.0] * 4)
    assert [s.transition is not None for s in whole.scenes] == [True, True, True, False]
    assert [s.head for s in whole.scenes] == [0, 6, 6, 6]
    part = _built(spec, [2.0] * 4, scenes=[0, 2, 3])
    # 0 → 2 are not neighbours in the spec: a cut; 2 → 3 keep theirs.
    assert [s.transition is not None for s in part.scenes] == [False, True, False]
    assert [s.head for s in part.scenes] == [0, 0, 6]


# --- units, labels, keys (pure) ------------------------------------------------------------


def _with_transitions(plan: Plan, *lengths: int, kind: str = "fade") -> Plan:
    """`plan` with a transition of each length after each scene (0: a cut)."""
    scenes = []
    before = 0
    for scene, frames in itertools.zip_longest(plan.scenes, lengths, fillvalue=0):
        transition = TransitionPlan(kind, frames) if frames else None
        scenes.append(dataclasses.replace(scene, transition=transition, head=before))
        before = transition.after if transition else 0
    return dataclasses.replace(plan, scenes=tuple(scenes))


# Scene 0 30 frames; scene 1 two shots of 40 fading at [40, 49); scene 2 60 frames.
PLAN = _with_transitions(plans.fading_plan((30,), (40, 40), (60,), fade=9), 12, 15)


def test_halves_are_labelled_by_their_scenes_and_parse_back() -> None:
    assert transition_unit(0, 0).label("SCENE_BUILD") == "SCENE_BUILD[0~]"
    assert transition_unit(0, 1).label("SCENE_BUILD") == "SCENE_BUILD[~1]"
    for unit in (transition_unit(3, 0), transition_unit(3, 1)):
        assert registry.parse_unit(unit.label("SCENE_BUILD")) == (BUILD, unit)
    assert [units.parse(text) for text in ("~0", "~", "1~2", "x~")] == [None] * 4
    with pytest.raises(ValueError, match="is not a stage label"):
        registry.parse_unit("SPEECH[0~]")
    column = JobTask.__table__.c.name.type.length  # type: ignore[attr-defined]
    assert len(transition_unit(498, 1).label("SCENE_BUILD")) <= column


def test_the_segments_join_in_order_and_each_scene_keeps_its_own_frames(tmp_path: Path) -> None:
    project = ProjectDir(tmp_path)
    names = [unit.clip(project).name for unit in segments(PLAN)]
    assert names == [
        "scene_000.mp4",
        "transition_000_out.mp4",
        "transition_000_in.mp4",
        "scene_001.mp4",
        "transition_001_out.mp4",
        "transition_001_in.mp4",
        "scene_002.mp4",
    ]
    assert sum(unit.frames(PLAN) for unit in segments(PLAN)) == PLAN.total_frames
    # Each scene's clip (scene_NN.mp4) is its frames exactly: the halves over its edges
    # and its body, from its first frame to its last.
    spans = {s.index: [u.span(PLAN) for u in segments_of(PLAN, s.index)] for s in PLAN.scenes}
    assert spans == {0: [(0, 24), (24, 30)], 1: [(0, 6), (6, 73), (73, 80)], 2: [(0, 8), (8, 60)]}
    assert [u.part_of() for u in segments(PLAN)] == [0, 0, 1, 1, 1, 2, 2]
    assert transition_unit(1, 1).draws() == (1, 2)
    labels = registry.labels(registry.Outline(3), PLAN)
    assert labels[labels.index("AUDIO_PREP") + 1 : labels.index("CONCAT")] == [
        "SCENE_BUILD[0]",
        "SCENE_BUILD[0~]",
        "SCENE_BUILD[~1]",
        "SCENE_BUILD[1]",
        "SCENE_BUILD[1~]",
        "SCENE_BUILD[~2]",
        "SCENE_BUILD[2]",
    ]


def test_chunks_split_the_body_only() -> None:
    chunked = dataclasses.replace(PLAN, chunk_frames=20)
    spans = [u.span(chunked) for u in segments_of(chunked, 1)]
    assert spans[0] == (0, 6) and spans[-1] == (73, 80)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    # Inner boundaries stay out of the cross-fade at [40, 49).
    assert not any(40 < end < 49 for _, end in spans[:-1])


def _keys(plan: Plan) -> dict[str, str]:
    return {unit.label("B"): unit.key(plan, "9") for unit in segments(plan)}


def test_an_edit_changes_its_scenes_key_and_the_transitions_touching_it_only() -> None:
    before = _keys(PLAN)
    other = plans.still("other.jpg", 640, 480)
    for index, touched in ((1, {"B[1]", "B[0~]", "B[~1]", "B[1~]", "B[~2]"}), (0, None)):
        scene = PLAN.scenes[index]
        shots = tuple(dataclasses.replace(s, digest=other.sha256) for s in scene.shots)
        edited = dataclasses.replace(scene, visuals=(other,), shots=shots)
        plan = dataclasses.replace(
            PLAN, scenes=tuple(edited if s.index == index else s for s in PLAN.scenes)
        )
        after = _keys(plan)
        changed = {label for label in before if before[label] != after[label]}
        assert changed == (touched or {"B[0]", "B[0~]", "B[~1]"})
    # Another type, or another length, changes that transition's halves alone (a length
    # changes its scenes' bodies too: they hold other frames).
    wiped = _with_transitions(
        plans.fading_plan((30,), (40, 40), (60,), fade=9), 12, 15, kind="wipeup"
    )
    assert {k for k in before if before[k] != _keys(wiped)[k]} == {
        "B[0~]",
        "B[~1]",
        "B[1~]",
        "B[~2]",
    }


def test_a_scene_without_transitions_keeps_its_key_of_before() -> None:
    cut = plans.fading_plan((30,), (40, 40), (60,), fade=9)
    assert scene_unit(0).key(cut, "9") == scene_unit(0).key(_with_transitions(cut, 0, 15), "9")
    assert scene_unit(0).key(cut, "9") != scene_unit(0).key(PLAN, "9")


def test_a_scenes_poster_is_a_frame_no_transition_draws_over() -> None:
    assert scene_poster_frame(PLAN.scenes[0]) == 0
    assert scene_poster_frame(PLAN.scenes[1]) == 6  # frame 0 is under the transition


# --- real renders, probed ------------------------------------------------------------------

OPTIONS = RenderOptions(
    fps=30,
    min_shot=0.8,
    max_shot=3.0,
    xfade=0.3,
    crf=23,
    preset="veryfast",
    resolution="320x180",
    chunk_seconds=0,
)
LOSSLESS = OPTIONS.model_copy(update={"crf": 0})
# Scene 0 → 1 fades, 1 → 2 wipes, 2 → 3 dissolves; 12, 15 and 12 frames.
CHOSEN = [{"type": "fade", "duration": 0.4}, {"type": "wipeleft", "duration": 0.5}]
CHOSEN.append({"type": "dissolve", "duration": 0.4})


def _scenes() -> list[SceneFixture]:
    return [
        # 30 frames of Ken Burns under a voice from its first frame.
        SceneFixture(
            (ImageFixture("texture.jpg", 480, 360, "testsrc2"),),
            VoiceFixture("one.wav", 1.0, 440),
            id="open",
        ),
        # 60 frames: two textured still shots cross-fading at [30, 39), no voice.
        SceneFixture(
            (
                ImageFixture("fractal.png", 400, 300, "mandelbrot"),
                ImageFixture("bars.jpg", 480, 270, "smptehdbars"),
            ),
            duration=2.0,
            id="pictures",
            motion="none",
        ),
        # 36 frames under a voice: its onset must stay on the scene's first frame.
        SceneFixture(
            (ImageFixture("rgb.png", 320, 180, "rgbtestsrc"),),
            VoiceFixture("two.wav", 1.2, 660),
            id="voiced",
            motion="none",
        ),
        # 30 frames, the last scene: no transition out of it.
        SceneFixture((ImageFixture("grid.jpg", 320, 240, "testsrc"),), duration=1.0, id="end"),
    ]


def _project(folder: Path, ffmpeg: str, chosen: Sequence[dict[str, Any] | None]) -> ProjectDir:
    project = write_project(folder, _scenes(), ffmpeg)
    spec = json.loads(project.spec_file.read_text("utf-8"))
    for scene, transition in zip(spec["scenes"], chosen, strict=False):
        if transition is not None:
            scene["transition"] = transition
    project.spec_file.write_text(json.dumps(spec), "utf-8")
    return project


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, ffmpeg_bin: str) -> ProjectDir:
    return _project(tmp_path_factory.mktemp("source"), ffmpeg_bin, CHOSEN)


def _copy(source: ProjectDir, folder: Path, chosen: Sequence[dict[str, Any] | None]) -> ProjectDir:
    project = ProjectDir(folder)
    shutil.copytree(source.input, project.input)
    spec = json.loads(project.spec_file.read_text("utf-8"))
    for scene, transition in itertools.zip_longest(spec["scenes"], chosen):
        scene.pop("transition", None)
        if transition is not None:
            scene["transition"] = transition
    project.spec_file.write_text(json.dumps(spec), "utf-8")
    return project


def _render(project: ProjectDir, options: RenderOptions, ffmpeg: str) -> Path:
    return render(project, options, "video.mp4", Runner(ffmpeg), jobs=2)


@pytest.fixture(scope="module")
def lossless(
    source: ProjectDir, tmp_path_factory: pytest.TempPathFactory, ffmpeg_bin: str
) -> dict[str, ProjectDir]:
    """The project rendered losslessly with cuts, and with transitions unchunked and in
    chunks of 10 frames."""
    folder = tmp_path_factory.mktemp("lossless")
    made = {
        "cut": _copy(source, folder / "cut", []),
        "whole": _copy(source, folder / "whole", CHOSEN),
        "chunked": _copy(source, folder / "chunked", CHOSEN),
    }
    for name, project in made.items():
        chunks = 1 / 3 if name == "chunked" else 0
        _render(project, LOSSLESS.model_copy(update={"chunk_seconds": chunks}), ffmpeg_bin)
    return made


def _windows(plan: Plan) -> list[range]:
    """The frames of the video each transition draws over."""
    return [
        range(s.end_frame - s.transition.before, s.end_frame + s.transition.after)
        for s in plan.scenes
        if s.transition is not None
    ]


def test_the_timeline_is_that_of_the_same_render_with_cuts(
    lossless: dict[str, ProjectDir], ffmpeg_bin: str
) -> None:
    cut, whole = lossless["cut"], lossless["whole"]
    plan, cut_plan = read_plan(whole), read_plan(cut)
    assert [(s.start_frame, s.frames) for s in plan.scenes] == [
        (s.start_frame, s.frames) for s in cut_plan.scenes
    ]
    assert [len(w) for w in _windows(plan)] == [12, 15, 12]
    videos = [project.output / "video.mp4" for project in (whole, cut)]
    infos = [probe(video, count_frames=True) for video in videos]
    assert [i.video.frames for i in infos if i.video] == [plan.total_frames] * 2 == [156] * 2
    gaps = [i.video.duration - i.audio.duration for i in infos if i.video and i.audio]
    assert len(gaps) == 2 and gaps[0] == gaps[1]
    # Every frame outside the transitions is the hard cut's own; every window differs.
    ours, theirs = (frame_hashes(ffmpeg_bin, video) for video in videos)
    inside = {frame for window in _windows(plan) for frame in window}
    for frame in range(plan.total_frames):
        assert (ours[frame] == theirs[frame]) == (frame not in inside), frame
    # Each scene's own file is the video's frames over its span, and its own length.
    for scene in plan.scenes:
        own = whole.output / f"scene_{scene.index:02d}.mp4"
        assert frame_hashes(ffmpeg_bin, own) == ours[scene.start_frame : scene.end_frame]


def _samples(video: Path) -> np.ndarray:
    with av.open(str(video)) as container:
        frames = [f.to_ndarray() for f in container.decode(audio=0)]
    return np.concatenate(frames, axis=1)[0]


def test_the_sound_and_every_voiceover_onset_are_unchanged(
    lossless: dict[str, ProjectDir],
) -> None:
    cut, whole = lossless["cut"], lossless["whole"]
    plan = read_plan(whole)
    ours, theirs = (_samples(p.output / "video.mp4") for p in (whole, cut))
    assert np.array_equal(ours, theirs)
    for scene in (plan.scenes[0], plan.scenes[2]):  # the voiced ones
        start = scene.start_frame * 1600  # 48 kHz at 30 fps
        since = max(0, start - 1600)
        loud = np.flatnonzero(np.abs(ours[since : start + 3200]) > 0.05)
        onset = int(loud[0]) + since
        assert abs(onset - start) <= 48, (scene.label, onset - start)  # within 1 ms


def test_chunks_with_a_transition_join_to_the_unchunked_frames(
    lossless: dict[str, ProjectDir], ffmpeg_bin: str
) -> None:
    whole, chunked = lossless["whole"], lossless["chunked"]
    plan = read_plan(chunked)
    assert len(list((chunked.work / "scenes").glob("scene_001_part*.mp4"))) > 2
    # The second scene's body (frames [6, 53), a cross-fade at [30, 39) inside) is built in
    # chunks of its own; with the halves around it, each joins by stream copy.
    for name in ("video.mp4", "scene_01.mp4", "scene_02.mp4"):
        assert frame_hashes(ffmpeg_bin, chunked.output / name) == frame_hashes(
            ffmpeg_bin, whole.output / name
        ), name
    assert plan.scenes[1].body == (6, 53)


def test_the_first_and_last_scene_keep_their_outer_edges(
    lossless: dict[str, ProjectDir], ffmpeg_bin: str
) -> None:
    whole, cut = lossless["whole"], lossless["cut"]
    plan = read_plan(whole)
    first, last = plan.scenes[0], plan.scenes[-1]
    assert first.head == 0 and last.transition is None and last.head == 6
    assert [u.kind for u in segments_of(plan, 0)] == ["scene", "transition"]
    assert [u.kind for u in segments_of(plan, 3)] == ["transition", "scene"]
    ours = frame_hashes(ffmpeg_bin, whole.output / "video.mp4")
    theirs = frame_hashes(ffmpeg_bin, cut.output / "video.mp4")
    assert ours[0] == theirs[0] and ours[-1] == theirs[-1]
    # The posters show frames no transition draws over.
    for scene in plan.scenes:
        poster = scene_poster_frame(scene)
        assert scene.head <= poster < scene.frames - scene.tail


def _window_frames(project: ProjectDir, plan: Plan, index: int, ffmpeg: str) -> list[Image.Image]:
    """The decoded frames of the transition out of scene `index`: both halves built alone."""
    runner = Runner(ffmpeg)
    frames: list[Image.Image] = []
    for half in (0, 1):
        clip = stages.build_unit(project, plan, transition_unit(index, half), runner)
        frames += fx.decode_frames(clip)
    return frames


def test_every_type_draws_its_own_frames_over_the_cut(
    source: ProjectDir, tmp_path: Path, ffmpeg_bin: str
) -> None:
    project = _copy(source, tmp_path / "types", CHOSEN)
    plan = make_plan(project, OPTIONS, ffmpeg_bin)
    outgoing = plan.scenes[1]
    assert outgoing.transition == TransitionPlan("wipeleft", 15)
    # The hard cut's frames there: scene 1's last 7, scene 2's first 8.
    runner = Runner(ffmpeg_bin)
    cut = dataclasses.replace(
        plan,
        scenes=tuple(dataclasses.replace(s, transition=None, head=0) for s in plan.scenes),
    )
    before = fx.decode_frames(stages.build_unit(project, cut, scene_unit(1), runner))[-7:]
    after = fx.decode_frames(stages.build_unit(project, cut, scene_unit(2), runner))[:8]
    hard = before + after
    drawn: dict[str, list[Image.Image]] = {}
    for kind in TYPES:
        if kind == "cut":
            continue
        chosen = TransitionPlan(kind, 15)
        scenes = list(plan.scenes)
        scenes[1] = dataclasses.replace(outgoing, transition=chosen)
        frames = _window_frames(
            project, dataclasses.replace(plan, scenes=tuple(scenes)), 1, ffmpeg_bin
        )
        assert len(frames) == 15, kind
        drawn[kind] = frames
    # Nothing silently a cut: every type's window differs from the hard cut's ...
    for kind, frames in drawn.items():
        change = _mean_difference(frames, hard)
        assert change > 2.0, (kind, change)
    # ... and from every other type's.
    for (a, fa), (b, fb) in itertools.combinations(drawn.items(), 2):
        assert _mean_difference(fa, fb) > 0.5, (a, b)
    # And a transition opens on the outgoing picture, whole: its first frame is the cut's.
    for kind, frames in drawn.items():
        assert fx.difference(frames[0], hard[0]) < 3.0, kind


def _mean_difference(a: Sequence[Image.Image], b: Sequence[Image.Image]) -> float:
    return sum(fx.difference(x, y) for x, y in zip(a, b, strict=True)) / len(a)


def _edit_image(project: ProjectDir, name: str) -> None:
    path = project.asset("images", name)
    with Image.open(path) as image:
        edited = ImageOps.invert(image.convert("RGB"))
    edited.save(path)


@pytest.mark.parametrize(
    ("image", "wanted"),
    [
        # The middle scene: its body and both transitions' halves.
        ("fractal.png", ["B[1]", "B[0~]", "B[~1]", "B[1~]", "B[~2]"]),
        # The first and the last: their body and the one transition each has.
        ("texture.jpg", ["B[0]", "B[0~]", "B[~1]"]),
        ("grid.jpg", ["B[3]", "B[2~]", "B[~3]"]),
    ],
)
def test_an_edit_encodes_its_scene_and_the_transitions_touching_it(
    source: ProjectDir, tmp_path: Path, ffmpeg_bin: str, image: str, wanted: list[str]
) -> None:
    project = _copy(source, tmp_path / "p", CHOSEN)
    cache = ClipCache(tmp_path / "cache")
    first = render_stages(project, ffmpeg_bin, cache, OPTIONS)
    plan = read_plan(project)
    built = [unit.label("B") for unit in segments(plan)]
    assert len(built) == 4 + 2 * 3
    assert first.outcomes == ["encoded"] * len(built) and first.encodes == len(built)
    _edit_image(project, image)
    again = render_stages(project, ffmpeg_bin, cache, OPTIONS)
    encoded = [
        label for label, r in zip(built, again.reports, strict=True) if r.outcome == "encoded"
    ]
    assert sorted(encoded) == sorted(wanted)
    assert again.encodes == len(wanted)
    info = probe(project.output / "video.mp4", count_frames=True)
    assert info.video is not None and info.video.frames == plan.total_frames


def test_a_workers_task_reads_a_half_from_its_label() -> None:
    canvas = build_canvas("j1", registry.Outline(3), PLAN)
    assert isinstance(canvas, _chain)
    builds = canvas.tasks[1]
    assert isinstance(builds, _chord)
    ids = [s.id for s in builds.tasks]
    assert ids[1:3] == ["j1.SCENE_BUILD[0~]", "j1.SCENE_BUILD[~1]"]
    halves = (transition_unit(0, 0), transition_unit(0, 1))
    for signature, unit in zip(builds.tasks[1:3], halves, strict=True):
        (label,) = signature.args[1:]
        assert task_unit(BUILD, label) == unit
    # The API's per-scene view counts each half with the scene whose frames it holds.
    assert registry.clip_scene_of("SCENE_BUILD[~1]") == 1
    assert registry.clip_scene_of("SCENE_BUILD[0~]") == 0


def test_the_work_limits_count_both_halves_of_every_transition() -> None:
    fade = {"type": "fade", "duration": 0.4}
    spec = _spec(
        {"duration": 2, "transition": fade}, {"duration": 2, "transition": fade}, {"duration": 2}
    )
    work = limits.check(spec, fx.SMALL, [2.0, 2.0, 2.0], (320, 180), limits.Limits())
    assert work.transitions == 2
    plan = _built(spec, [2.0] * 3)
    outline = registry.outline(spec, fx.SMALL)
    assert limits.unit_count(work, outline.spoken) == len(registry.labels(outline, plan))
