"""RenderOptions is the one place an option is written: the API's patch model, the DEFAULT_*
settings and the command line's flags all follow it."""

from __future__ import annotations

from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.schemas import RenderOptionsPatch
from pipeline.__main__ import _parser
from pipeline.options import Preset, RenderOptions
from tasks.settings import Settings, SettingsError, defaulted_options, load_settings

OPTIONS = RenderOptions.model_fields


def test_every_option_is_in_the_patch_model_with_its_alias_and_description() -> None:
    patch = RenderOptionsPatch.model_fields
    assert list(patch) == list(OPTIONS)
    for name, field in OPTIONS.items():
        assert field.description, f"{name} has no description"
        assert patch[name].alias == field.alias
        assert patch[name].description == field.description
        assert patch[name].default is None


def test_the_patch_checks_types_but_leaves_ranges_to_the_merged_options() -> None:
    assert RenderOptionsPatch.model_validate({"fps": 0}).model_dump(exclude_unset=True) == {
        "fps": 0
    }
    with pytest.raises(ValidationError, match="preset"):
        RenderOptionsPatch.model_validate({"preset": "warp"})
    with pytest.raises(ValidationError) as caught:
        RenderOptionsPatch.model_validate({"sharpen": True})
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_every_option_is_a_command_line_flag() -> None:
    actions = {action.dest: action for action in _parser()._actions}
    for name, field in OPTIONS.items():
        action = actions[name]
        assert action.option_strings[0] == "--" + name.replace("_", "-")
        assert action.default is None  # not given: the option's own default applies
        assert field.description and field.description in (action.help or "")
    assert tuple(actions["preset"].choices or ()) == get_args(Preset)


def test_defaulted_options_are_those_with_default_settings() -> None:
    expected = ("fps", "min_shot", "max_shot", "xfade", "crf", "preset", "resolution")
    expected += ("chunk_seconds",)
    assert defaulted_options() == expected
    assert set(defaulted_options()) <= set(OPTIONS)
    for name in defaulted_options():
        assert f"default_{name}" in Settings.model_fields


def test_default_settings_take_the_options_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in defaulted_options():
        monkeypatch.delenv(f"DEFAULT_{name.upper()}", raising=False)
    assert Settings().default_options() == RenderOptions()


def test_openapi_shows_each_options_description_and_range(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    properties = doc["components"]["schemas"]["RenderOptionsPatch"]["properties"]
    assert list(properties) == [field.alias for field in OPTIONS.values()]
    for field in OPTIONS.values():
        assert properties[field.alias]["description"] == field.description
    assert (properties["fps"]["minimum"], properties["fps"]["maximum"]) == (1, 60)
    assert (properties["crf"]["minimum"], properties["crf"]["maximum"]) == (0, 51)
    assert properties["minShot"]["exclusiveMinimum"] == 0
    enum = properties["preset"]["anyOf"][0]["enum"]
    assert tuple(enum) == get_args(Preset)


@pytest.mark.parametrize(
    ("given", "field", "message"),
    [
        ({"minShot": 9, "maxShot": 3}, "minShot", "must not exceed maxShot"),
        ({"xfade": 3}, "xfade", "must be shorter than minShot"),
        ({"minShot": 1, "xfade": 1}, "xfade", "must be shorter than minShot"),
    ],
)
def test_cross_field_errors_name_the_field(given: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RenderOptions.model_validate(given)
    (error,) = caught.value.errors()
    assert error["loc"] == (field,)
    assert message in error["msg"]


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DEFAULT_MIN_SHOT": "9", "DEFAULT_MAX_SHOT": "3"}, "DEFAULT_MIN_SHOT"),
        ({"DEFAULT_XFADE": "3"}, "DEFAULT_XFADE"),
        ({"DEFAULT_RESOLUTION": "1921x1080"}, "DEFAULT_RESOLUTION"),
    ],
)
def test_cross_field_errors_in_the_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str
) -> None:
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=f"invalid settings: {variable}: "):
        load_settings()


def test_a_patch_with_an_unknown_option_is_422_naming_it(client: TestClient) -> None:
    response = client.post("/v1/projects/p1/render", json={"renderOptions": {"sharpen": True}})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "renderOptions.sharpen"
    assert "renderOptions.sharpen" in error["message"]


@pytest.mark.parametrize("seconds", [0.01, 0.49, -1, 601])
def test_a_chunk_length_too_short_or_too_long_is_refused(seconds: float) -> None:
    with pytest.raises(ValidationError) as info:
        RenderOptions(chunk_seconds=seconds)
    assert info.value.errors()[0]["loc"] == ("chunk_seconds",)


@pytest.mark.parametrize("seconds", [0, 0.5, 2.5, 600])
def test_chunking_off_or_a_chunk_length_from_half_a_second_is_taken(seconds: float) -> None:
    assert RenderOptions(chunk_seconds=seconds).chunk_seconds == seconds
