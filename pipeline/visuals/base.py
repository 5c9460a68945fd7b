"""The interface every kind of visual has (`Visual`), and the error of one that cannot be shown."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pipeline.graph import Filter, Graph, Stream
    from pipeline.limits import Limits
    from pipeline.plan import Plan, ScenePlan, ShotPlan
    from pipeline.project import ProjectDir
    from pipeline.scene import Piece


@dataclass(frozen=True)
class Sound:
    """A visual's own sound as the mix plays it (a clip's, when its spec asks for it)."""

    path: str  # relative to the project root
    input_options: tuple[str, ...]  # how FFmpeg must open it (its demuxer, the protocols)
    start: float  # seconds of the file where it starts
    seconds: float  # how long it lasts at most
    volume: float  # dB


class VisualError(ValueError):
    """A referenced file that cannot be shown; the message names it and what is wrong."""


class Visual(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def path(self) -> str: ...  # relative to the project root

    @property
    def sha256(self) -> str: ...  # of the file's bytes: what shots and cache keys name it by

    folder: ClassVar[str]  # where in input/ its files are named from
    # The object a spec `images` entry names one by (`kind`, its file by a field marked
    # `Refers`, its options; `timed` if it has a length of its own), or None: a plain file
    # name names it (a still).
    entry: ClassVar[type[Any] | None]
    # Whether a unit prepares it first (work/stills/: `prepare_*`, `prepared_name`); one that
    # does not is read by the scene's drawing itself (`inputs`).
    prepares: ClassVar[bool]
    filters: ClassVar[tuple[str, ...]]  # the FFmpeg filters it draws with (capabilities)

    @property
    def name(self) -> str: ...

    @property
    def own_seconds(self) -> float | None:
        """How long it plays (a clip's used stretch), or None: a picture, as long as its shot."""
        ...

    def used_as(self, entry: Any) -> bool:
        """Whether it is the visual the spec entry `entry` names, used as that entry says."""
        ...

    def moves(self, scene_motion: str) -> str:
        """The motion its shots take, given the scene's (`kenburns` or `none`)."""
        ...

    def refused(self, bounds: Limits) -> str | None:
        """What the deployment's limits refuse of it, naming the file and the limit; or None."""
        ...

    def identity(self) -> dict[str, Any]:
        """What of it decides a clip's pixels (never its path), for the clip's cache key."""
        ...

    def prepared_name(self, stem: str, plan: Plan, scene: ScenePlan) -> str:
        """The name of its prepared file (in work/stills/), named for what it is made from."""
        ...

    def prepare_input(self, root: Path, max_pixels: int) -> list[str]:
        """The input options and file of the command that prepares it."""
        ...

    def prepare(self, graph: Graph, source: Stream, plan: Plan, scene: ScenePlan) -> Stream:
        """Its source turned into what the scene's drawing reads."""
        ...

    def prepare_output(self) -> list[str]:
        """The output options of its prepared file (after its -map)."""
        ...

    def source_input(self, prepared: Path, plan: Plan, scene: ScenePlan) -> list[str]:
        """The input options and file the scene's drawing reads it from."""
        ...

    def inputs(
        self,
        root: Path | None,
        prepared: Path | None,
        plan: Plan,
        scene: ScenePlan,
        uses: Sequence[Piece],
    ) -> list[list[str]]:
        """The inputs (options and file) the scene's drawing reads it from, to draw `uses`
        (the pieces that show it in this unit): its prepared file, or its own file under the
        project `root`."""
        ...

    def sources(
        self,
        graph: Graph,
        streams: Sequence[Stream],
        plan: Plan,
        scene: ScenePlan,
        uses: Sequence[Piece],
    ) -> list[Stream]:
        """One stream for each piece in `uses`, from `streams` (its `inputs`, in order)."""
        ...

    def draw(self, shot: ShotPlan, piece: Piece, plan: Plan) -> tuple[Filter, ...]:
        """The filters drawing `piece` of `shot` from one copy of its prepared input."""
        ...

    @classmethod
    def inspect(cls, project: ProjectDir, name: str, max_pixels: int, use: Any = None) -> Visual:
        """The visual made from the file `name` in its input folder, used as `use` (the
        spec's entry for a kind that has options) says; VisualError naming the file when it
        cannot be shown."""
        ...

    def sound(self) -> Sound | None:
        """Its own sound in the mix under the narration, or None (silent, or muted)."""
        ...

    def damage(self, root: Path) -> str | None:
        """After a drawing command failed: what in its file under the project `root` fails
        to decode, and where (naming the file and the time), or None if nothing does."""
        ...

    def poster_frame(self, shot: ShotPlan) -> int:
        """The frame of `shot` (from its first) that shows it best, whole and clean."""
        ...
