"""What is drawn over a scene's picture after its shots: one module per kind of layer behind
one interface (`Layer`). A scene's plan holds its layers in order (`ScenePlan.layers`); the
scene builder applies each in turn and never asks which kind it holds.

Adding a kind: its module here, its class in `KINDS` and in `LayerPlan` (the union the plan is
read and written through, told apart by `kind`), and its tests.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from pipeline.layers.base import Layer
from pipeline.layers.captions import BurntCaptions
from pipeline.layers.text import TextLayers

# Every kind, by name; the plan is read through LayerPlan, which must list the same classes.
KINDS: dict[str, type[Layer]] = {"captions": BurntCaptions, "text": TextLayers}
LayerPlan = Annotated[Union[BurntCaptions, TextLayers], Field(discriminator="kind")]  # noqa: UP007


def filters() -> tuple[str, ...]:
    """Every FFmpeg filter some kind of layer applies."""
    return tuple(dict.fromkeys(f for kind in KINDS.values() for f in kind.filters))


__all__ = ["KINDS", "BurntCaptions", "Layer", "LayerPlan", "TextLayers", "filters"]
