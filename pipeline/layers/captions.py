"""Burnt-in captions: the scene's cues (`ScenePlan.captions`) drawn by libass onto its frames.

The cues are written as one ASS file a scene (work/captions/scene_NNN.ass, style and size
from `pipeline.captions.ass`) and drawn with FFmpeg's `subtitles` filter, given a fonts folder
of its own (`fontsdir`): for now the folder holding the font fontconfig finds for
`captions.FONT`, so captions look as they did when libass searched by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pipeline import captions, fonts
from pipeline.atomic import write_text_atomic
from pipeline.graph import Filter, Graph, Stream
from pipeline.problems import Problem

if TYPE_CHECKING:
    from pipeline.layers.base import SceneContext
    from pipeline.plan import Plan, ScenePlan

# How libass is given each frame's time (`_clock`), in the key of every captioned clip: clips
# burnt in before frames were timed by their number drew some cues a frame late.
CAPTION_CLOCK = 2


@dataclass(frozen=True)
class BurntCaptions:
    kind: Literal["captions"] = "captions"
    # How they look (renderOptions.captions); the defaults are how every plan drew them
    # before there was a choice.
    style: captions.Style = "block"
    position: captions.Position = "bottom"
    size: captions.Size = "medium"

    filters: ClassVar[tuple[str, ...]] = ("subtitles", "settb", "setpts")

    # A scene without cues (no narration) draws nothing: no file, no filter, not in its key.

    def files(self, scene: ScenePlan) -> tuple[str, ...]:
        return (f"captions/scene_{scene.index:03d}.ass",) if scene.captions else ()

    def write(self, work: Path, plan: Plan, scene: ScenePlan) -> None:
        for name in self.files(scene):
            text = captions.ass(
                scene.captions,
                plan.width,
                plan.height,
                plan.fps,
                style=self.style,
                position=self.position,
                size=self.size,
            )
            write_text_atomic(work / name, text)

    def assets(self) -> tuple[str, ...]:
        return (fonts.default_font().sha256,)

    def apply(
        self, graph: Graph, picture: Stream, work: Path, plan: Plan, scene: ScenePlan, first: int
    ) -> Stream:
        if not scene.captions:
            return picture
        (name,) = self.files(scene)
        fonts = fonts_dir()
        options: dict[str, str] = {"filename": str(work / name)}
        if fonts is not None:
            options["fontsdir"] = str(fonts)
        # libass draws them onto the finished frames, fades and all; then back to every
        # clip's clock, frame n at n/fps from 0: the encoder must not see the millisecond
        # times, or the frames would last 33 and 34 ms by turns.
        filters = (
            *_clock(plan.fps, first),
            Filter.of("subtitles", **options),
            Filter.of("settb", f"1/{plan.fps}"),
            Filter.of("setpts", "N"),
        )
        return graph.chain(picture, filters)

    def identity(self, scene: ScenePlan) -> dict[str, Any]:
        # The names burnt-in captions had in the key before layers: clips cached then match.
        if not scene.captions:
            return {}
        identity: dict[str, Any] = {
            "captions": [
                {"start": c.start, "end": c.end, "lines": list(c.lines)} for c in scene.captions
            ],
            "burn_in": True,
            "caption_clock": CAPTION_CLOCK,
            "caption_font": fonts.default_font().sha256,
        }
        # Only what differs from the block style at the bottom, medium size: block captions'
        # clips keep the keys they had. The word and karaoke styles draw by each word's frame.
        looks = {"style": self.style, "position": self.position, "size": self.size}
        changed = {k: v for k, v in looks.items() if v != getattr(BurntCaptions, k)}
        if changed:
            identity["caption_look"] = changed
        if self.style != "block":
            identity["caption_words"] = [list(captions.cue_word_frames(c)) for c in scene.captions]
        return identity


def _clock(fps: int, first: int) -> tuple[Filter, ...]:
    """Filters timing each frame for libass by its number in the scene (a chunk's frames at
    their place in it): the same times in a chunk as in the whole scene.

    libass is given a frame's time in whole milliseconds, truncated from a double: a time
    computed by filters (concat's sums, a shift by a chunk's start) can fall a microsecond
    short of a cue starting on that frame and show the cue a frame late. Each frame is timed
    half way through its exact millisecond instead.
    """
    frame_ms = f"floor((N+{first})*1000/{fps})"
    return (Filter.of("settb", "AVTB"), Filter.of("setpts", f"{frame_ms}*1000+500"))


@lru_cache(maxsize=1)
def fonts_dir() -> Path | None:
    """The folder of the packaged font `captions.FONT` names (never the host's)."""
    return fonts.packaged_dir()


class CaptionSource:
    """Burnt-in captions come from the render options (captions.burnIn), over every scene;
    they are drawn in the packaged font, which must have each character of the narration."""

    def problem(self, scene: SceneContext) -> Problem | None:
        if not _burnt_in(scene):
            return None
        missing = fonts.missing_glyphs(fonts.default_font(), scene.scene.narration or "")
        if not missing:
            return None
        field = f"{scene.where}.narration"
        return Problem(
            "font_unusable",
            f"{field}: burnt-in captions are drawn in {fonts.DEFAULT_FAMILY!r}, which has no "
            f"glyph for {fonts.spoken_chars(missing[:10])}; turn captions.burnIn off to keep "
            "them as a subtitle track",
            field,
        )

    def layer(self, scene: SceneContext, frames: int) -> BurntCaptions | None:
        if not _burnt_in(scene):
            return None
        looks = scene.options.captions
        return BurntCaptions(style=looks.style, position=looks.position, size=looks.size)


def _burnt_in(scene: SceneContext) -> bool:
    return scene.options.captions.enabled and scene.options.captions.burn_in
