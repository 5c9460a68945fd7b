"""Kinds of visual (pipeline/visuals/): the registry, and a still's part of a clip's key,
its prepared file and its poster frame."""

from __future__ import annotations

import dataclasses
import typing

from pipeline import visuals
from pipeline.cache import clip_key
from pipeline.capabilities import NEEDS
from pipeline.motion import STILL, Move
from pipeline.poster import scene_poster_frame
from pipeline.visuals import KINDS, Still, VisualPlan
from tests.plans import plan, scene_plan, shot, still

VERSION = "ffmpeg version test"


def test_every_kind_is_registered_and_readable_from_the_plan() -> None:
    assert list(KINDS) == ["still", "clip"]
    # The plan's union lists the same classes, each told apart by its own `kind`.
    (union, _) = typing.get_args(VisualPlan)
    assert set(typing.get_args(union) or (union,)) == set(KINDS.values())
    for name, kind in KINDS.items():
        assert kind.__dataclass_fields__["kind"].default == name
        # What it draws with is what the FFmpeg check asks every binary for.
        assert set(kind.filters) <= set(NEEDS["filter"])
    assert set(visuals.filters()) <= set(NEEDS["filter"])


def _scene(image: Still) -> tuple[object, object]:
    scene = scene_plan(visuals=(image,), shots=(shot(image, 30),))
    whole = plan(scene, width=320, height=180)
    return whole, whole.scenes[0]


def test_a_stills_identity_is_in_the_key_and_its_name_is_not() -> None:
    image = still("a.jpg", 640, 480, sha256="a" * 64)
    whole, scene = _scene(image)
    key = clip_key(whole, scene, VERSION)  # type: ignore[arg-type]
    assert image.identity() == {"width": 640, "height": 480, "orientation": 1, "sha256": "a" * 64}
    # Same bytes under another name: the same clip.
    renamed = dataclasses.replace(image, path="input/images/elsewhere.jpg")
    assert clip_key(*_scene(renamed), VERSION) == key  # type: ignore[arg-type]
    # Every field of its identity changes the key.
    for change in ({"sha256": "b" * 64}, {"orientation": 6}, {"width": 641}):
        other = dataclasses.replace(image, **change)  # type: ignore[arg-type]
        assert clip_key(*_scene(other), VERSION) != key, change  # type: ignore[arg-type]


def test_a_shot_names_its_visual_by_kind_and_digest() -> None:
    a, b = still("a.jpg"), still("b.jpg")
    scene = scene_plan(visuals=(a, b), shots=(shot(b, 10), shot(a, 10)))
    assert [scene.visual(s).name for s in scene.shots] == ["b.jpg", "a.jpg"]
    assert (scene.shots[0].kind, scene.shots[0].digest) == ("still", b.sha256)


def test_a_stills_prepared_file_is_named_for_what_it_is_made_from() -> None:
    image = still("a.jpg")
    whole, scene = _scene(image)
    name = image.prepared_name("scene_000_0", whole, scene)  # type: ignore[arg-type]
    assert name.startswith("scene_000_0_") and name.endswith(".yuv")
    turned = dataclasses.replace(image, orientation=6)
    assert turned.prepared_name("scene_000_0", whole, scene) != name  # type: ignore[arg-type]


def test_a_stills_poster_frame_shows_it_whole() -> None:
    image = still()
    zoom_out = scene_plan(visuals=(image,), shots=(shot(image, 40, 0, Move(1.12, 1.0)),))
    assert image.poster_frame(zoom_out.shots[0]) == 39 == scene_poster_frame(zoom_out)
    held = scene_plan(visuals=(image,), shots=(shot(image, 40, 0, STILL),))
    assert scene_poster_frame(held) == 0
