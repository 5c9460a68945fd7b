"""The canvas of one job: its shape and its task ids."""

from __future__ import annotations

from typing import Any

from celery.canvas import Signature, _chain, _chord

from tasks.canvas import build_canvas, task_id


def _parts(canvas: Any) -> tuple[Signature, Signature, list[Signature], Signature, Signature]:
    """(validate, audio_prep, scene builds, concat, finalize) out of the built canvas.

    Celery folds the task after a chord into the chord's body: chord(scenes, concat | finalize).
    """
    assert isinstance(canvas, _chain)
    validate, audio, scenes = canvas.tasks
    assert isinstance(scenes, _chord)
    body = scenes.body
    assert isinstance(body, _chain)
    concat, finalize = body.tasks
    return validate, audio, list(scenes.tasks), concat, finalize


def test_chain_of_validate_audio_chord_of_scenes_concat_then_finalize() -> None:
    validate, audio, scenes, concat, finalize = _parts(build_canvas("j1", 3))
    assert [validate.task, audio.task, concat.task, finalize.task] == [
        "render.validate",
        "render.audio_prep",
        "render.concat",
        "render.finalize",
    ]
    assert [s.task for s in scenes] == ["render.scene_build"] * 3
    assert [tuple(s.args) for s in scenes] == [("j1", 0), ("j1", 1), ("j1", 2)]


def test_task_ids_derive_from_the_job_and_stage() -> None:
    validate, audio, scenes, concat, finalize = _parts(build_canvas("j1", 2))
    ids = [validate.id, audio.id, *(s.id for s in scenes), concat.id, finalize.id]
    names = ["VALIDATE", "AUDIO_PREP", "SCENE_BUILD[0]", "SCENE_BUILD[1]", "CONCAT", "FINALIZE"]
    assert ids == [task_id("j1", name) for name in names]
    assert ids[0] == "j1.VALIDATE"


def test_every_signature_is_immutable() -> None:
    # Stages talk through files and the job row, never through return values.
    validate, audio, scenes, concat, finalize = _parts(build_canvas("j1", 1))
    for sig in (validate, audio, *scenes, concat, finalize):
        assert sig.immutable
