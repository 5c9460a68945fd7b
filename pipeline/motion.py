"""Ken Burns moves: which way each shot zooms and pans, and the zoompan filter that draws it.

A move is a pure function of the scene's own content (its images' digests) and the shot's
number within the scene, never of where the scene sits in the video: a rerun renders the same
pixels, and inserting, deleting or reordering scenes leaves every other scene's clip (and its
cache entry, `pipeline.cache`) as it was.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from pipeline.graph import Filter

# Zoom travelled over one shot; small enough to read as "slow" at any shot length.
ZOOM = 0.12
# Pan, as a fraction of the free margin at the zoomed-in end: slight, never to an edge.
_PANS = ((0.5, 0.5), (0.3, 0.5), (0.7, 0.5), (0.5, 0.35), (0.5, 0.65), (0.35, 0.4), (0.65, 0.6))
# zoompan crops at whole input pixels, so the still is scaled once to OVERSAMPLE × the output
# size and a slow move steps by 2/3 of an output pixel at most. At 1× some frames did not move
# at all while others jumped; 1.5× moves as evenly as 2× (smallest frame-to-frame change in the
# Ken Burns render test: 0.17 at 1×, 1.08 at 1.5×, 1.13 at 2×) and costs less: at 1080p 1.5 ms
# a frame and 40 MB of peak memory less than 2×.
OVERSAMPLE = 1.5


def oversampled(width: int, height: int) -> tuple[int, int]:
    """The size a moving still is prepared at (even sides, as yuv420p needs)."""
    return round(width * OVERSAMPLE / 2) * 2, round(height * OVERSAMPLE / 2) * 2


@dataclass(frozen=True)
class Move:
    """Zoom factors and crop positions (0..1 of the free margin) at a shot's first/last frame."""

    zoom_start: float = 1.0
    zoom_end: float = 1.0
    x_start: float = 0.5
    x_end: float = 0.5
    y_start: float = 0.5
    y_end: float = 0.5

    @property
    def still(self) -> bool:
        return self.zoom_start == self.zoom_end == 1.0


STILL = Move()


def kenburns(seed: str, shot: int) -> Move:
    """Zoom in on even shots and out on odd ones, panning slightly in a per-shot direction.

    Every scene opens on its first picture seen whole (the poster frame, `pipeline.poster`).
    `seed` names the scene's content (`pipeline.plan` passes its images' digests): where each
    shot pans follows from it and the shot number alone, never from the scene's place.
    """
    x, y = _PANS[zlib.crc32(f"{seed}:{shot}".encode()) % len(_PANS)]
    if shot % 2 == 0:  # zoom in: from the whole frame towards (x, y)
        return Move(1.0, 1.0 + ZOOM, 0.5, x, 0.5, y)
    return Move(1.0 + ZOOM, 1.0, x, 0.5, y, 0.5)


def zoompan_filter(
    move: Move, frames: int, width: int, height: int, fps: int, first: int = 0, count: int = 0
) -> Filter:
    """zoompan that draws frames [first, first + count) of a `frames`-long move from one input
    frame (count 0: to the end), so a shot can be drawn in pieces with the same pixels."""
    count = count or frames - first
    span = max(frames - 1, 1)
    t = f"(on/{span})" if first == 0 else f"((on+{first})/{span})"

    def lerp(a: float, b: float) -> str:
        return f"{a:.6f}" if a == b else f"({a:.6f}+({b - a:.6f})*{t})"

    return Filter.of(
        "zoompan",
        z=lerp(move.zoom_start, move.zoom_end),
        x=f"(iw-iw/zoom)*{lerp(move.x_start, move.x_end)}",
        y=f"(ih-ih/zoom)*{lerp(move.y_start, move.y_end)}",
        d=count,
        s=f"{width}x{height}",
        fps=fps,
    )
