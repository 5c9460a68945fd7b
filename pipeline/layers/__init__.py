"""What is drawn over a scene's picture after its shots: one module per kind of layer behind
one interface (`Layer`). A scene's plan holds its layers in order (`ScenePlan.layers`); the
scene builder applies each in turn and never asks which kind it holds.

A kind comes from the render request through its `LayerSource`, which checks what a scene asks
of it and plans its layer; `SOURCES` lists them in the order their layers are drawn.

Adding a kind: its module here, its class in `KINDS` and in `LayerPlan` (the union the plan is
read and written through, told apart by `kind`), its source in `SOURCES`, the model of the
scene fields it reads (if it has any) among `SceneFields`' bases, and its tests.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from pipeline.layers.base import Layer, LayerSource, SceneContext
from pipeline.layers.captions import BurntCaptions, CaptionSource
from pipeline.layers.text import TextFields, TextLayers, TextSource
from pipeline.problems import Problem

# Every kind, by name; the plan is read through LayerPlan, which must list the same classes.
KINDS: dict[str, type[Layer]] = {"captions": BurntCaptions, "text": TextLayers}
LayerPlan = Annotated[Union[BurntCaptions, TextLayers], Field(discriminator="kind")]  # noqa: UP007


class SceneFields(TextFields):
    """The fields of a scene's spec that kinds of layer read, a base per kind that has some
    (spec.SceneSpec inherits them)."""


# In drawing order: the captions over the text, so a title never hides what is being said.
SOURCES: tuple[LayerSource, ...] = (TextSource(), CaptionSource())


def problem(scene: SceneContext) -> Problem | None:
    """The first thing wrong with what the scene asks of some kind of layer."""
    return next((found for s in SOURCES if (found := s.problem(scene)) is not None), None)


def planned(scene: SceneContext, frames: int) -> tuple[LayerPlan, ...]:
    """The scene's layers, in drawing order."""
    # Every source's layer is one of LayerPlan's classes (its KINDS entry).
    return tuple(
        layer  # type: ignore[misc]
        for source in SOURCES
        if (layer := source.layer(scene, frames)) is not None
    )


def filters() -> tuple[str, ...]:
    """Every FFmpeg filter some kind of layer applies."""
    return tuple(dict.fromkeys(f for kind in KINDS.values() for f in kind.filters))


__all__ = [
    "KINDS",
    "SOURCES",
    "BurntCaptions",
    "Layer",
    "LayerPlan",
    "LayerSource",
    "SceneContext",
    "SceneFields",
    "TextLayers",
    "filters",
    "planned",
    "problem",
]
