"""The canvas of one job: its shape and its task ids."""

from __future__ import annotations

from typing import Any

from celery.canvas import Signature, _chain, _chord

from tasks.canvas import build_canvas, task_id


def _parts(
    canvas: Any,
) -> tuple[list[Signature], Signature, Signature, list[Signature], Signature, Signature]:
    """(speech, validate, audio_prep, scene builds, concat, finalize) out of the built canvas.

    Celery folds the task after a chord into the chord's body: chord(speech, validate |
    audio_prep), then chord(scenes, concat | finalize).
    """
    assert isinstance(canvas, _chain)
    speech, scenes = canvas.tasks
    assert isinstance(speech, _chord) and isinstance(scenes, _chord)
    assert isinstance(speech.body, _chain) and isinstance(scenes.body, _chain)
    validate, audio = speech.body.tasks
    concat, finalize = scenes.body.tasks
    return list(speech.tasks), validate, audio, list(scenes.tasks), concat, finalize


def test_chain_of_validate_audio_chord_of_scenes_concat_then_finalize() -> None:
    speech, validate, audio, scenes, concat, finalize = _parts(build_canvas("j1", 3))
    assert [s.task for s in speech] == ["render.speech"] * 3
    assert [tuple(s.args) for s in speech] == [("j1", 0), ("j1", 1), ("j1", 2)]
    assert [validate.task, audio.task, concat.task, finalize.task] == [
        "render.validate",
        "render.audio_prep",
        "render.concat",
        "render.finalize",
    ]
    assert [s.task for s in scenes] == ["render.scene_build"] * 3
    assert [tuple(s.args) for s in scenes] == [("j1", 0), ("j1", 1), ("j1", 2)]


def test_task_ids_derive_from_the_job_and_stage() -> None:
    speech, validate, audio, scenes, concat, finalize = _parts(build_canvas("j1", 2))
    ids = [*(s.id for s in speech), validate.id, audio.id, *(s.id for s in scenes)]
    ids += [concat.id, finalize.id]
    names = ["SPEECH[0]", "SPEECH[1]", "VALIDATE", "AUDIO_PREP", "SCENE_BUILD[0]"]
    names += ["SCENE_BUILD[1]", "CONCAT", "FINALIZE"]
    assert ids == [task_id("j1", name) for name in names]
    assert ids[2] == "j1.VALIDATE"


def test_every_signature_is_immutable() -> None:
    # Stages talk through files and the job row, never through return values.
    speech, validate, audio, scenes, concat, finalize = _parts(build_canvas("j1", 1))
    for sig in (*speech, validate, audio, *scenes, concat, finalize):
        assert sig.immutable
