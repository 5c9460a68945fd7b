"""The interface every kind of layer has (`Layer`): something drawn over a scene's picture
after its shots are joined (text, burnt-in captions; logos, overlays later), and how a kind
comes from a render request (`LayerSource`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from pipeline.fonts import Font
    from pipeline.graph import Graph, Stream
    from pipeline.options import RenderOptions
    from pipeline.plan import Plan, ScenePlan
    from pipeline.problems import Problem
    from pipeline.spec import SceneSpec


class Layer(Protocol):
    @property
    def kind(self) -> str: ...

    filters: ClassVar[tuple[str, ...]]  # the FFmpeg filters it applies (capabilities)

    def files(self, scene: ScenePlan) -> tuple[str, ...]:
        """The work files it draws from, relative to the work folder (written by `write`)."""
        ...

    def write(self, work: Path, plan: Plan, scene: ScenePlan) -> None:
        """Write its `files` under `work` from the plan (atomically; a rerun overwrites)."""
        ...

    def assets(self) -> tuple[str, ...]:
        """The sha256 digests of the input files (fonts, pictures) it needs."""
        ...

    def apply(
        self, graph: Graph, picture: Stream, work: Path, plan: Plan, scene: ScenePlan, first: int
    ) -> Stream:
        """`picture` (the scene's frames from scene frame `first`, at n/fps) with the layer
        drawn on; the result is timed the same way."""
        ...

    def identity(self, scene: ScenePlan) -> dict[str, Any]:
        """What of it decides a clip's pixels, as named fields of the clip's cache key (names
        no other kind uses)."""
        ...


@dataclass(frozen=True)
class SceneContext:
    """What a kind of layer sees of one scene of a render request when it checks it and when it
    plans its layer (`LayerSource`)."""

    where: str  # the scene's field, e.g. 'scenes[2]'
    scene: SceneSpec
    options: RenderOptions
    fonts: Mapping[str, Font]  # the fonts the render may name (fonts.catalogue)
    # The scene's length, when it is known: always at VALIDATE; before that (the API's checks
    # at submit) only for a scene with a duration and nothing spoken to lengthen it.
    seconds: float | None
    root: Path | None = None  # the project folder, which uploaded fonts are named against


class LayerSource(Protocol):
    """How a kind of layer comes from the request: the problems of a scene's request for it,
    and its layer in the scene's plan."""

    def problem(self, scene: SceneContext) -> Problem | None:
        """The first thing wrong with what the scene asks of this kind, naming its field."""
        ...

    def layer(self, scene: SceneContext, frames: int) -> Layer | None:
        """Its layer over the scene (`frames` long), or None when the scene asks for none;
        called once `problem` found nothing."""
        ...
