"""The canvas of one job: its two parts' shapes and their task ids."""

from __future__ import annotations

from typing import Any

from celery.canvas import Signature, _chain, _chord

from tasks.canvas import build_canvas, task_id
from tests.plans import still_plan as _plan


def _first(canvas: Any) -> tuple[list[Signature], Signature]:
    """(speech, validate) out of the first part: chord(speech × n → validate)."""
    assert isinstance(canvas, _chain)
    (speech,) = canvas.tasks
    assert isinstance(speech, _chord)
    return list(speech.tasks), speech.body


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


def test_the_first_part_speaks_every_scene_then_validates() -> None:
    speech, validate = _first(build_canvas("j1", 3))
    assert [s.task for s in speech] == ["render.speech"] * 3
    assert [tuple(s.args) for s in speech] == [("j1", 0), ("j1", 1), ("j1", 2)]
    assert validate.task == "render.validate"
    assert [s.id for s in speech] == [task_id("j1", f"SPEECH[{i}]") for i in range(3)]
    assert validate.id == "j1.VALIDATE"


def test_the_rest_builds_each_unit_of_the_plan_then_joins() -> None:
    # Scene 1 (150 frames) is two chunks of 75; the short scenes are one unit each.
    audio, scenes, concat, finalize = _rest(build_canvas("j1", 3, _plan(30, 150, 30)))
    assert [audio.task, concat.task, finalize.task] == [
        "render.audio_prep",
        "render.concat",
        "render.finalize",
    ]
    assert [s.task for s in scenes] == ["render.scene_build"] * 4
    assert [tuple(s.args) for s in scenes] == [("j1", 0), ("j1", 1, 0), ("j1", 1, 1), ("j1", 2)]
    names = ["SCENE_BUILD[0]", "SCENE_BUILD[1/0]", "SCENE_BUILD[1/1]", "SCENE_BUILD[2]"]
    assert [s.id for s in scenes] == [task_id("j1", name) for name in names]
    assert [audio.id, concat.id, finalize.id] == ["j1.AUDIO_PREP", "j1.CONCAT", "j1.FINALIZE"]


def test_chunking_off_builds_one_unit_per_scene() -> None:
    _, scenes, _, _ = _rest(build_canvas("j1", 2, _plan(300, 300, chunk_frames=0)))
    assert [s.id for s in scenes] == ["j1.SCENE_BUILD[0]", "j1.SCENE_BUILD[1]"]


def test_every_signature_is_immutable() -> None:
    # Stages talk through files and the job row, never through return values.
    speech, validate = _first(build_canvas("j1", 1))
    audio, scenes, concat, finalize = _rest(build_canvas("j1", 1, _plan(150)))
    for sig in (*speech, validate, audio, *scenes, concat, finalize):
        assert sig.immutable
