"""What a scene's shots show: one module per kind of visual behind one interface (`Visual`).

A kind is a frozen dataclass (its plan data: the file it comes from, by path and digest, and
what VALIDATE learned of it) whose methods do the kind's part of a render: inspect a file
(`inspect`), prepare what a unit needs before drawing (work/stills/ for a still), draw a piece
of a shot into the scene's graph, say what of it is part of a clip's cache key, and pick the
frame a poster shows. The scene builder (`pipeline/scene.py`) and the stages call these and
never ask which kind they hold.

Adding a kind: its module here, its class in `KINDS` and in `VisualPlan` (the union the plan
is read and written through, told apart by `kind`), and its tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field

from pipeline.visuals.base import Visual, VisualError
from pipeline.visuals.clip import Clip
from pipeline.visuals.still import Still

if TYPE_CHECKING:
    from pipeline.project import ProjectDir

# Every kind, by name; the plan is read through VisualPlan, which must list the same classes.
KINDS: dict[str, type[Visual]] = {"still": Still, "clip": Clip}
VisualPlan = Annotated[Union[Still, Clip], Field(discriminator="kind")]  # noqa: UP007


def filters() -> tuple[str, ...]:
    """Every FFmpeg filter some kind of visual draws with."""
    return tuple(dict.fromkeys(f for kind in KINDS.values() for f in kind.filters))


def inspect(kind: str, project: ProjectDir, name: str, max_pixels: int, use: Any = None) -> Visual:
    """The visual of kind `kind` made from the file `name`, used as `use` (the spec's entry,
    for a kind with options) says (VisualError if it cannot be)."""
    return KINDS[kind].inspect(project, name, max_pixels, use)


__all__ = ["KINDS", "Clip", "Still", "Visual", "VisualError", "VisualPlan", "filters", "inspect"]
