"""What a scene's shots show: one module per kind of visual behind one interface (`Visual`).

A kind is a frozen dataclass (its plan data: the file it comes from, by path and digest, and
what VALIDATE learned of it) whose methods do the kind's part of a render: inspect a file
(`inspect`), prepare what a unit needs before drawing (work/stills/ for a still), draw a piece
of a shot into the scene's graph, say what of it is part of a clip's cache key, and pick the
frame a poster shows. The scene builder (`pipeline/scene.py`) and the stages call these and
never ask which kind they hold.

Adding a kind: its module here, its class in `KINDS` and in `VisualPlan` (the union the plan
is read and written through, told apart by `kind`), its spec object (if a plain file name does
not name it) in `SpecEntry`, and its tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Discriminator, Field, Tag

from pipeline.assets import marked_fields
from pipeline.visuals.base import Visual, VisualError
from pipeline.visuals.clip import Clip, ClipSpec
from pipeline.visuals.still import Still

if TYPE_CHECKING:
    from pipeline.project import ProjectDir

# Every kind, by name; the plan is read through VisualPlan, which must list the same classes.
KINDS: dict[str, type[Visual]] = {"still": Still, "clip": Clip}
VisualPlan = Annotated[Union[Still, Clip], Field(discriminator="kind")]  # noqa: UP007
PLAIN = "still"  # the kind a plain file name in a scene's `images` names
# The kinds a spec object names, by name: their `entry` models.
ENTRIES = {name: kind.entry for name, kind in KINDS.items() if kind.entry is not None}


def entry_tag(value: Any) -> str:
    """Which branch of `SpecEntry` reads a scene's `images` entry: "image" for a file name,
    else the kind whose object names its file by a field the object has (the first kind's
    when it has none, so that the error names that kind's field)."""
    if isinstance(value, str):
        return "image"
    first = next(iter(ENTRIES))
    if isinstance(value, dict):
        return next((name for name, e in ENTRIES.items() if _file_field(e)[1] in value), first)
    return str(getattr(value, "kind", first))  # a kind's object, or what no kind reads


# An entry of a scene's `images`: an image's file name, or a kind's object (read as the
# `entry` of its class in KINDS, which must list the same).
SpecEntry = Annotated[
    Annotated[str, Tag("image")] | Annotated[ClipSpec, Tag("clip")],
    Discriminator(entry_tag),
]


def named_by(entry: Any) -> tuple[str, str]:
    """The kind of visual and the file name a scene's `images` entry names."""
    if isinstance(entry, str):
        return PLAIN, entry
    return str(entry.kind), str(getattr(entry, _file_field(type(entry))[0]))


def entry_timed(entry: Any) -> bool:
    """Whether an `images` entry names a visual with a length of its own (a clip)."""
    return bool(getattr(entry, "timed", False))


def _file_field(entry: type[Any]) -> tuple[str, str]:
    """The field of a kind's spec object that names its file, the one marked `Refers`: its
    attribute and its name in the JSON."""
    name, key, _ = marked_fields(entry)[0]
    return name, key


def filters() -> tuple[str, ...]:
    """Every FFmpeg filter some kind of visual draws with."""
    return tuple(dict.fromkeys(f for kind in KINDS.values() for f in kind.filters))


def inspect(kind: str, project: ProjectDir, name: str, max_pixels: int, use: Any = None) -> Visual:
    """The visual of kind `kind` made from the file `name`, used as `use` (the spec's entry,
    for a kind with options) says (VisualError if it cannot be)."""
    return KINDS[kind].inspect(project, name, max_pixels, use)


__all__ = [
    "ENTRIES",
    "KINDS",
    "PLAIN",
    "Clip",
    "ClipSpec",
    "SpecEntry",
    "Still",
    "Visual",
    "VisualError",
    "VisualPlan",
    "entry_tag",
    "entry_timed",
    "filters",
    "inspect",
    "named_by",
]
