"""pipeline/template.py: placeholders resolved over every string of a parsed spec, typed
values, defaults, the escape, and every problem named by its variable."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline import template
from pipeline.spec import ProjectSpec

TEMPLATE: dict[str, Any] = {
    "title": "{{course}}: module {{n}}",
    "variables": {
        "n": {"type": "number", "description": "module number"},
        "secs": {"type": "number", "default": 2.5},
        "photo": {"type": "image"},
    },
    "scenes": [
        {"images": ["{{photo}}", "{{slug}}-b.jpg"], "narration": "Hello {{ name|friend }}."},
        {"images": ["c.png"], "duration": "{{secs}}", "narration": "Literal \\{{name}} stays"},
    ],
    # A field the spec does not know yet is resolved all the same (any string, any depth).
    "extra": {"layers": [{"text": "{{course}}"}]},
}


def _resolve(data: dict[str, Any], raw: dict[str, Any] = TEMPLATE) -> dict[str, Any]:
    return template.resolve(template.parse(raw), data)


def test_every_string_field_is_resolved_with_typed_values_and_defaults() -> None:
    out = _resolve({"course": "Rust", "n": "3", "photo": "p.jpg", "slug": "intro"})
    assert out["title"] == "Rust: module 3"
    assert out["scenes"][0]["images"] == ["p.jpg", "intro-b.jpg"]  # file names
    assert out["scenes"][0]["narration"] == "Hello friend."  # the placeholder's own default
    assert out["scenes"][1]["duration"] == 2.5  # a lone placeholder keeps the number's type
    assert out["extra"]["layers"][0]["text"] == "Rust"
    assert "variables" not in out


def test_a_literal_double_brace_is_written_escaped() -> None:
    out = _resolve({"course": "x", "n": 1, "photo": "p.jpg", "slug": "s", "name": "Ann"})
    assert out["scenes"][1]["narration"] == "Literal {{name}} stays"
    assert out["scenes"][0]["narration"] == "Hello Ann."


def test_undeclared_placeholders_are_text_variables() -> None:
    variables = template.parse(TEMPLATE).variables
    assert {name: v.type for name, v in variables.items()} == {
        "n": "number",
        "secs": "number",
        "photo": "image",
        "course": "text",
        "slug": "text",
        "name": "text",
    }


def _problems(data: dict[str, Any], where: str = "data") -> list[tuple[str, str, str | None]]:
    with pytest.raises(template.TemplateError) as caught:
        template.resolve(template.parse(TEMPLATE), data, where)
    return [(p.code, p.field, p.variable) for p in caught.value.problems]


def test_unknown_wrong_type_and_unresolved_are_all_named() -> None:
    found = _problems({"course": 7, "n": "three", "photo": "p.jpg", "city": "Oslo"}, "rows[4]")
    assert found == [
        ("invalid_variable", "rows[4].course", "course"),
        ("invalid_variable", "rows[4].n", "n"),
        ("unknown_variable", "rows[4].city", "city"),
        ("unresolved_placeholder", "rows[4].slug", "slug"),
    ]


def test_a_file_value_must_be_a_plain_name() -> None:
    found = _problems({"course": "c", "n": 1, "photo": "../etc/passwd", "slug": "s"})
    assert found == [("invalid_variable", "data.photo", "photo")]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"scenes": [{"images": ["a.jpg"], "narration": "open {{ only"}]}, "scenes[0].narration"),
        ({"variables": {"1x": {}}, "scenes": []}, "variables.1x"),
        ({"variables": {"x": {"type": "colour"}}, "scenes": []}, "variables.x"),
        ({"variables": {"x": {"type": "number", "default": "many"}}, "scenes": []}, "variables.x"),
    ],
)
def test_a_bad_template_names_its_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(template.TemplateError) as caught:
        template.parse(raw)
    assert caught.value.first.field == field


def test_a_template_samples_to_a_valid_spec() -> None:
    sampled = template.sample(template.parse(TEMPLATE))
    sampled.pop("extra")
    spec = ProjectSpec.model_validate(sampled)
    assert spec.scenes[1].duration == 2.5  # the declared default
    assert spec.scenes[0].images[0] == "image.jpg"  # an image stand-in


def test_a_value_cannot_inject_structure() -> None:
    out = _resolve({"course": '", "scenes": []', "n": 1, "photo": "p.jpg", "slug": "s"})
    assert out["title"] == '", "scenes": []: module 1'
    assert len(out["scenes"]) == 2
