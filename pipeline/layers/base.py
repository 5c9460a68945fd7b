"""The interface every kind of layer has (`Layer`): something drawn over a scene's picture
after its shots are joined (burnt-in captions today; text, logos, overlays later)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from pipeline.graph import Graph, Stream
    from pipeline.plan import Plan, ScenePlan


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
