import pickle

from pipeline.errors import Cancelled, PipelineError


def test_message_names_stage_scene_id_and_stderr() -> None:
    err = PipelineError(
        "image 'a.jpg' could not be decoded",
        stage="SCENE_BUILD",
        scene=2,
        scene_id="intro",
        stderr_tail="Invalid data found",
    )
    assert str(err) == (
        "SCENE_BUILD scene 2 (id 'intro'): image 'a.jpg' could not be decoded: Invalid data found"
    )
    assert str(PipelineError("boom", stage="CONCAT")) == "CONCAT: boom"


def test_errors_survive_pickling_with_their_fields() -> None:
    err = Cancelled("cancelled", stage="SCENE_BUILD", scene=1, scene_id="x", stderr_tail="t")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is Cancelled
    assert (copy.stage, copy.scene, copy.scene_id, copy.message, copy.stderr_tail) == (
        "SCENE_BUILD",
        1,
        "x",
        "cancelled",
        "t",
    )


def test_with_context_keeps_the_class() -> None:
    err = Cancelled("cancelled", stage="SCENE_BUILD", scene=0).with_context(scene_id="intro")
    assert isinstance(err, Cancelled) and str(err) == "SCENE_BUILD scene 0 (id 'intro'): cancelled"
