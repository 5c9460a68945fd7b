"""The canvas of one job: its two parts' shapes and their task ids."""

from __future__ import annotations

from typing import Any

from celery.canvas import Signature, _chain, _chord

from pipeline.registry import Outline
from tasks.canvas import build_canvas, task_id
from tests.plans import still_plan as _plan

ALL_SPOKEN = Outline(3, (0, 1, 2))


def _first(canvas: Any) -> tuple[list[Signature], Signature]:
    """(speech, validate) out of the first part: chord(speech × spoken scenes → validate)."""
    assert isinstance(canvas, _chord)
    return list(canvas.tasks), canvas.body


def _rest(canvas: Any) -> tuple[Signature, list[Signature], Signature, Signature]:
    """(audio_prep, scene builds, concat, finalize) out of the part after the layout.

    Celery folds the task after a chord into the chord's body: audio_prep, then chord(scene
    builds, concat | finalize).
    """
    assert isinstance(canvas, _chain)
    audio, scenes = canvas.tasks
    assert isinstance(scenes, _chord) and isinstance(scenes.body, _chain)
    concat, finalize = scenes.body.tasks
    return audio, list(scenes.tasks), concat, finalize


def test_the_first_part_speaks_every_spoken_scene_then_validates() -> None:
    speech, validate = _first(build_canvas("j1", ALL_SPOKEN))
    assert [s.task for s in speech] == ["render.speech"] * 3
    assert [tuple(s.args) for s in speech] == [("j1", f"SPEECH[{i}]") for i in range(3)]
    assert validate.task == "render.validate"
    assert [s.id for s in speech] == [task_id("j1", f"SPEECH[{i}]") for i in range(3)]
    assert validate.id == "j1.VALIDATE"


def test_one_spoken_scene_is_one_speech_task_named_for_its_scene() -> None:
    (speech,), validate = _first(build_canvas("j1", Outline(3, (2,))))
    assert (speech.task, tuple(speech.args), speech.id) == (
        "render.speech",
        ("j1", "SPEECH[2]"),
        "j1.SPEECH[2]",
    )
    assert validate.id == "j1.VALIDATE"


def test_nothing_spoken_starts_with_validate_alone() -> None:
    # No chord over zero tasks (Celery's edge): the first part is the VALIDATE task itself.
    canvas = build_canvas("j1", Outline(3))
    assert not isinstance(canvas, (_chain, _chord))
    assert (canvas.task, tuple(canvas.args), canvas.id) == (
        "render.validate",
        ("j1",),
        "j1.VALIDATE",
    )
    # The rest does not depend on what was spoken.
    assert build_canvas("j1", Outline(3), _plan(30, 150, 30)) == build_canvas(
        "j1", ALL_SPOKEN, _plan(30, 150, 30)
    )


def test_the_rest_builds_each_unit_of_the_plan_then_joins() -> None:
    # Scene 1 (150 frames) is two chunks of 75; the short scenes are one unit each.
    audio, scenes, concat, finalize = _rest(build_canvas("j1", ALL_SPOKEN, _plan(30, 150, 30)))
    assert [audio.task, concat.task, finalize.task] == [
        "render.audio_prep",
        "render.concat",
        "render.finalize",
    ]
    assert [s.task for s in scenes] == ["render.scene_build"] * 4
    names = ["SCENE_BUILD[0]", "SCENE_BUILD[1/0]", "SCENE_BUILD[1/1]", "SCENE_BUILD[2]"]
    # Each unit's task is given its label: the rest of its task id.
    assert [tuple(s.args) for s in scenes] == [("j1", name) for name in names]
    assert [s.id for s in scenes] == [task_id("j1", name) for name in names]
    assert [audio.id, concat.id, finalize.id] == ["j1.AUDIO_PREP", "j1.CONCAT", "j1.FINALIZE"]


def test_chunking_off_builds_one_unit_per_scene() -> None:
    _, scenes, _, _ = _rest(build_canvas("j1", Outline(2), _plan(300, 300, chunk_frames=0)))
    assert [s.id for s in scenes] == ["j1.SCENE_BUILD[0]", "j1.SCENE_BUILD[1]"]


def test_every_signature_is_immutable() -> None:
    # Stages talk through files and the job row, never through return values.
    speech, validate = _first(build_canvas("j1", Outline(1, (0,))))
    audio, scenes, concat, finalize = _rest(build_canvas("j1", Outline(1), _plan(150)))
    for sig in (*speech, validate, audio, *scenes, concat, finalize):
        assert sig.immutable
