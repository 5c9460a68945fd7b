"""Kinds of layer (pipeline/layers/): the registry, burnt-in captions' part of a clip's key,
their files, and how they are drawn."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from pipeline import fonts, layers
from pipeline.cache import clip_key
from pipeline.capabilities import NEEDS
from pipeline.captions import Cue
from pipeline.layers import KINDS, BurntCaptions, LayerPlan
from pipeline.layers.captions import fonts_dir
from pipeline.plan import build_plan
from pipeline.problems import Problem
from pipeline.scene import scene_graph
from pipeline.spec import ProjectSpec, SceneSpec
from tests import plans
from tests.pipeline_fixtures import SMALL
from tests.plans import plan, scene_plan

VERSION = "ffmpeg version test"
CUES = (Cue(0, 10, ("Hello",)),)


def test_every_kind_is_registered_and_readable_from_the_plan() -> None:
    assert list(KINDS) == ["captions", "text"]
    (union, _) = typing.get_args(LayerPlan)
    assert set(typing.get_args(union) or (union,)) == set(KINDS.values())
    for name, kind in KINDS.items():
        assert kind.__dataclass_fields__["kind"].default == name
        assert set(kind.filters) <= set(NEEDS["filter"])
    assert set(layers.filters()) <= set(NEEDS["filter"])
    # The scene fields kinds read are the spec's, after what the scene shows and says, so the
    # request's schema reads as it did before they were the kinds' own.
    assert list(SceneSpec.model_fields) == [
        *("id", "images", "voiceover", "narration", "duration", "fit", "motion"),
        *layers.SceneFields.model_fields,
        "transition",
    ]
    assert list(layers.SceneFields.model_fields) == ["text"]


def _keys(*scenes: object) -> list[str]:
    whole = plan(*scenes)  # type: ignore[arg-type]
    return [clip_key(whole, scene, VERSION) for scene in whole.scenes]


def test_burnt_in_captions_are_in_the_key_and_soft_ones_are_not() -> None:
    bare = scene_plan()
    soft = dataclasses.replace(bare, captions=CUES)
    burnt = dataclasses.replace(soft, layers=(BurntCaptions(),))
    other = dataclasses.replace(burnt, captions=(Cue(0, 11, ("Hello",)),))
    key_bare, key_soft, key_burnt, key_other = _keys(bare, soft, burnt, other)
    assert key_soft == key_bare  # a subtitle track: the picture is the same
    assert key_burnt != key_bare and key_other != key_burnt
    # The layer's identity is what the key adds.
    assert BurntCaptions().identity(burnt) == {
        "captions": [{"start": 0, "end": 10, "lines": ["Hello"]}],
        "burn_in": True,
        "caption_clock": 2,
        "caption_font": fonts.default_font().sha256,
    }
    # A scene with no cues draws nothing, so burning in changes nothing of it.
    assert _keys(dataclasses.replace(bare, layers=(BurntCaptions(),))) == [key_bare]


def test_burnt_in_captions_write_their_ass_file_and_draw_it_with_a_fonts_folder(
    tmp_path: Path,
) -> None:
    scene = scene_plan(captions=CUES, layers=(BurntCaptions(),))
    whole = plan(scene, width=320, height=180)
    scene = whole.scenes[0]
    layer = scene.layers[0]
    assert layer.files(scene) == ("captions/scene_000.ass",)
    layer.write(tmp_path, whole, scene)
    assert "Dialogue: 0,0:00:00.00,0:00:00.33,Caption,,0,0,0,,Hello" in (
        (tmp_path / "captions" / "scene_000.ass").read_text()
    )
    text = scene_graph(whole, scene, None, tmp_path).compile().text
    assert f"subtitles=filename={tmp_path}/captions/scene_000.ass" in text
    # libass is told where the fonts are: today the folder of the font fontconfig finds.
    fonts = fonts_dir()
    if fonts is not None:
        assert f":fontsdir={fonts}," in text and any(fonts.iterdir())
    # No cues, no file and no filter.
    silent = dataclasses.replace(scene, captions=())
    assert layer.files(silent) == ()
    assert "subtitles" not in scene_graph(whole, silent, None, tmp_path).compile().text


class _Badge:
    """A kind's source as a new kind would write it: here, a badge over scenes whose id says
    so (drawn as karaoke captions, a kind the plan can carry), refused on scenes named 'bad'."""

    def problem(self, scene: layers.SceneContext) -> Problem | None:
        if scene.scene.id == "bad":
            return Problem("validation_error", "no badge on a bad scene", f"{scene.where}.id")
        return None

    def layer(self, scene: layers.SceneContext, frames: int) -> BurntCaptions | None:
        return BurntCaptions(style="karaoke") if scene.scene.id == "badged" else None


def test_a_new_source_is_asked_by_the_plan_through_the_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(layers, "SOURCES", (*layers.SOURCES, _Badge()))
    text = [{"text": "Title", "style": "title"}]
    scenes = [{"id": "plain"}, {"id": "badged", "text": text}, {"id": "bad"}]
    spec = ProjectSpec.model_validate(
        {"scenes": [{**s, "images": ["a.jpg"], "duration": 2.0} for s in scenes]}
    )
    built = build_plan(spec, SMALL, [plans.inputs((plans.still("a.jpg"),), 2.0)] * 3)
    # Its layer is drawn after the kinds before it in SOURCES (the text), on its scene alone.
    assert [[layer.kind for layer in s.layers] for s in built.scenes] == [
        [],
        ["text", "captions"],
        [],
    ]
    # Its problem is found as the others' are (make_plan raises it at VALIDATE), naming the
    # field; on a scene it has nothing against, the kinds before it still speak first.
    context = layers.SceneContext("scenes[2]", spec.scenes[2], SMALL, fonts.catalogue(), 2.0)
    assert layers.problem(context) == Problem(
        "validation_error", "no badge on a bad scene", "scenes[2].id"
    )
    late = SceneSpec.model_validate(
        {"id": "bad", "images": ["a.jpg"], "text": [{"text": "x", "start": 5}]}
    )
    found = layers.problem(dataclasses.replace(context, scene=late))
    assert found is not None and found.field == "scenes[2].text[0].start"
