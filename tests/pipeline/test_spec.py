"""pipeline/spec.py: the spec's references with their field paths, and its one reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import assets
from pipeline.errors import PipelineError
from pipeline.options import RenderOptions
from pipeline.spec import InvalidSpec, ProjectSpec, read_spec, render_references

SPEC = ProjectSpec.model_validate(
    {
        "scenes": [
            {"images": ["a.jpg", "b.jpg"], "voiceover": "one.wav"},
            {"images": ["c.png"], "duration": 2.0},
            {"images": ["a.jpg", "d.jpg", "a.jpg"], "voiceover": "three.wav"},
        ]
    }
)


def test_references_name_every_file_with_its_field_path_and_kind() -> None:
    refs = [(ref.field, ref.kind.name, ref.name) for ref in SPEC.references()]
    assert refs == [
        ("scenes[0].images[0]", "images", "a.jpg"),
        ("scenes[0].images[1]", "images", "b.jpg"),
        ("scenes[0].voiceover", "voiceovers", "one.wav"),
        ("scenes[1].images[0]", "images", "c.png"),
        ("scenes[2].images[0]", "images", "a.jpg"),
        ("scenes[2].images[1]", "images", "d.jpg"),
        ("scenes[2].images[2]", "images", "a.jpg"),
        ("scenes[2].voiceover", "voiceovers", "three.wav"),
    ]


def test_a_render_references_its_music_bed_too() -> None:
    options = RenderOptions.model_validate({"music": "bed.mp3"})
    last = render_references(SPEC, options)[-1]
    assert (last.field, last.kind, last.name) == ("renderOptions.music", assets.MUSIC, "bed.mp3")
    assert render_references(SPEC, RenderOptions()) == SPEC.references()


def test_read_spec_is_none_without_a_file_and_names_the_first_field_at_fault(
    tmp_path: Path,
) -> None:
    path = tmp_path / "scenes.json"
    assert read_spec(path) is None
    path.write_text('{"scenes": [{"images": []}]}')
    with pytest.raises(InvalidSpec) as caught:
        read_spec(path)
    assert isinstance(caught.value, PipelineError)
    assert str(caught.value) == (
        "input/scenes.json is not valid: scenes.0.images: List should have at least 1 item "
        "after validation, not 0"
    )
    path.write_text(SPEC.model_dump_json())
    assert read_spec(path) == SPEC
