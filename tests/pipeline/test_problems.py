"""pipeline/problems.py: the checks the API and VALIDATE share, worded once."""

from __future__ import annotations

from pipeline.options import RenderOptions
from pipeline.problems import Problem, unknown_scenes


def test_unknown_scenes_names_the_first_beyond_the_spec() -> None:
    options = RenderOptions.model_validate({"scenes": [1, 5, 9]})
    assert unknown_scenes(options, 6) == Problem(
        "validation_error",
        "renderOptions.scenes: no scene 9 (the project has 6, numbered from 0)",
        "renderOptions.scenes",
    )
    assert unknown_scenes(options, 10) is None
    assert unknown_scenes(RenderOptions(), 1) is None


def test_as_a_pipeline_error_the_message_leads_with_its_field_once() -> None:
    led = Problem("validation_error", "renderOptions.scenes: no scene 9", "renderOptions.scenes")
    assert str(led.error()) == "renderOptions.scenes: no scene 9"
    plain = Problem("no_narration", "no scene has one", "renderOptions.captions")
    assert str(plain.error()) == "renderOptions.captions: no scene has one"
