"""Text layers: a scene's titles, lower thirds, captions and bullets (`SceneSpec.text`), drawn
by libass into the scene's own clip.

Each scene with text gets one ASS file (work/text/scene_NNN.ass) and a fonts folder of its own
(work/text/scene_NNN.fonts/) holding exactly the fonts its layers name (pipeline/fonts.py), so
the pixels are the same on a host with or without system fonts. Layout is computed here, from
the fonts' own advances, never left to libass: every layer is wrapped at word boundaries to the
width its style allows, then shrunk until it fits its box, and its box is placed inside the
safe area (5% margins), so no text is ever cut off. Lines are given to libass as they are
(`WrapStyle: 2`, no wrapping of its own); libass shapes them (HarfBuzz, FriBidi), so Arabic and
Hebrew are drawn right to left with joined letters.

Animations are drawn frame by frame: each frame of an animation is an ASS event of its own
lasting exactly that frame (alpha for a fade, position for a slide, the characters shown for a
typewriter), so a chunk of the scene draws exactly the frames the whole scene draws there.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
)

from pipeline import captions, fonts
from pipeline.atomic import write_text_atomic
from pipeline.fonts import Font
from pipeline.graph import Filter, Graph, Stream
from pipeline.layers.captions import _clock
from pipeline.problems import Problem

if TYPE_CHECKING:
    from pipeline.layers.base import SceneContext
    from pipeline.plan import Plan, ScenePlan

# Bumped when the layout or the ASS written for the same layers changes: a clip's key holds it.
TEXT_VERSION = 1
MAX_TEXT = 500  # characters of one layer
MAX_LAYERS = 10  # layers of one scene
SAFE = 0.05  # the safe area's margin, a share of the frame's width and height

Style = Literal["title", "subtitle", "lowerThird", "caption", "bullet"]
PositionName = Literal["top", "center", "bottom", "lowerThird"]
Animation = Literal["none", "fade", "slideUp", "typewriter"]
Weight = Literal["normal", "bold"]
Background = Literal["none", "box", "shadow"]


@dataclass(frozen=True)
class Preset:
    size: float  # pixels on a 1080-line frame (scaled with the frame)
    weight: Weight
    position: PositionName
    background: Background
    width: float  # the share of the safe area's width the text may take
    height: float  # ... and of its height
    left: bool = False  # lines aligned left (else centred)


PRESETS: dict[str, Preset] = {
    "title": Preset(96, "bold", "center", "shadow", 1.0, 0.6),
    "subtitle": Preset(60, "normal", "bottom", "shadow", 1.0, 0.35),
    "lowerThird": Preset(52, "bold", "lowerThird", "box", 0.6, 0.3, left=True),
    "caption": Preset(44, "normal", "bottom", "box", 0.8, 0.25),
    "bullet": Preset(52, "normal", "center", "shadow", 0.8, 0.8, left=True),
}
BULLET = "•"


# --- the spec ---------------------------------------------------------------------------------


class _Model(BaseModel):
    # `in` is a keyword: the field is `in_`, read and written as "in".
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class Point(_Model):
    """Where the text's centre goes, as shares of the frame's width and height."""

    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)


class Animate(_Model):
    in_: Animation = Field("none", alias="in")
    out: Animation = "none"
    seconds: float = Field(0.5, gt=0, le=5, description="how long each of in and out lasts")


# A preset's name or a point: told apart by the JSON's type, so an error names one of them.
Position = Annotated[
    Union[Annotated[PositionName, Tag("preset")], Annotated[Point, Tag("point")]],  # noqa: UP007
    Discriminator(lambda v: "preset" if isinstance(v, str) else "point"),
]


class TextSpec(_Model):
    """One text layer of a scene (docs/text.md)."""

    text: str = Field(min_length=1, max_length=MAX_TEXT)
    style: Style = "title"
    position: Position | None = None  # None: the style's
    start: float | None = Field(None, ge=0, le=3600, description="seconds into the scene")
    end: float | None = Field(None, gt=0, le=3600, description="seconds into the scene")
    animation: Animate = Animate()
    color: str = Field("#FFFFFF", pattern=r"^#[0-9A-Fa-f]{6}$")
    size: float | None = Field(None, ge=8, le=400, description="pixels on a 1080-line frame")
    weight: Weight | None = None
    background: Background | None = None
    font: str = Field(fonts.DEFAULT_FAMILY, min_length=1, max_length=100)

    @field_validator("text")
    @classmethod
    def _text(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is blank")
        return text

    @field_validator("end")
    @classmethod
    def _end(cls, end: float | None, info: ValidationInfo) -> float | None:
        start = info.data.get("start")
        if end is not None and start is not None and end <= start:
            raise ValueError(f"end ({end} s) must be after start ({start} s)")
        return end


class TextFields(BaseModel):
    """The scene's field text layers are read from (spec.SceneSpec has it: layers.SceneFields)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Titles, lower thirds, captions, bullets drawn over the scene (docs/text.md).
    text: list[TextSpec] | None = Field(None, max_length=MAX_LAYERS)


# --- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextItem:
    """One layer as the plan holds it: every default settled, times in frames of the scene."""

    text: str
    style: Style
    position: str  # a preset's name, or "point" (then x, y)
    x: float
    y: float
    start: int  # first frame shown, from the scene's first frame
    end: int  # first frame no longer shown
    enter: Animation
    leave: Animation
    animation_frames: int
    color: str
    size: float
    weight: Weight
    background: Background
    font: str  # the family
    font_sha256: str
    font_file: str  # relative to the project root; "" for the packaged default


def item(
    spec: TextSpec, font: Font, fps: int, frames: int, project_root: Path | None = None
) -> TextItem:
    """The plan's item for `spec` drawn with `font` in a scene of `frames` frames."""
    preset = PRESETS[spec.style]
    position = spec.position if spec.position is not None else preset.position
    start = round((spec.start or 0.0) * fps)
    end = frames if spec.end is None else round(spec.end * fps)
    start, end = min(start, frames - 1), min(max(end, start + 1), frames)
    font_file = ""
    if not font.packaged:
        font_file = str(font.path.relative_to(project_root) if project_root else font.path)
    return TextItem(
        text=spec.text,
        style=spec.style,
        position=position if isinstance(position, str) else "point",
        x=position.x if isinstance(position, Point) else 0.5,
        y=position.y if isinstance(position, Point) else 0.5,
        start=start,
        end=end,
        enter=spec.animation.in_,
        leave=spec.animation.out,
        animation_frames=max(1, round(spec.animation.seconds * fps)),
        color=spec.color.upper(),
        size=spec.size if spec.size is not None else preset.size,
        weight=spec.weight or preset.weight,
        background=spec.background or preset.background,
        font=font.family,
        font_sha256=font.sha256,
        font_file=font_file,
    )


# --- layout -----------------------------------------------------------------------------------

# libass's synthetic bold widens each glyph a little; wrapping and shrinking assume it did more.
_BOLD = 1.06
# Room kept for ink outside the advances (overhangs, outlines).
_SLACK = 0.96


@dataclass(frozen=True)
class Layout:
    size: int  # the ASS font size
    lines: tuple[str, ...]
    pad: int  # the box's padding or the outline, each side
    shadow: int  # the shadow's offset
    left: float  # the text block's edges in pixels, padding included
    top: float
    width: float
    height: float
    line_height: float
    align_left: bool


def _pads(size: int, background: Background) -> tuple[int, int, int]:
    """(padding each side, outline width, shadow offset) for text of this size."""
    if background == "box":
        pad = max(2, round(size * 0.25))
        return pad, pad, 0
    if background == "shadow":
        outline = max(1, round(size * 0.04))
        return outline, outline, max(1, round(size * 0.05))
    return 0, 0, 0


def _wrap(paragraph: str, font: Font, size: float, width: float, bold: float) -> list[str]:
    """The paragraph in lines no wider than `width` (greedy): broken at spaces, and between
    any two characters of a word written without spaces (Chinese, Japanese); a word wider
    than that stands alone on its line (the size then shrinks)."""
    lines: list[str] = []
    for word in paragraph.split():
        pieces = list(word) if any(_wide(c) for c in word) else [word]
        for n, piece in enumerate(pieces):
            joiner = "" if n else " "
            if lines and fonts.text_width(font, lines[-1] + joiner + piece, size) * bold <= width:
                lines[-1] += joiner + piece
            else:
                lines.append(piece)
    return lines or [""]


def _wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def layout(text: TextItem, font: Font, width: int, height: int) -> Layout:
    """Where and how big `text` is drawn on a `width`×`height` frame: wrapped, then shrunk until
    its block fits the box its style allows, the block inside the safe area."""
    preset = PRESETS[text.style]
    safe_w, safe_h = width * (1 - 2 * SAFE), height * (1 - 2 * SAFE)
    max_w, max_h = safe_w * preset.width, safe_h * preset.height
    bold = _BOLD if text.weight == "bold" else 1.0
    paragraphs = [p for p in (line.strip() for line in text.text.splitlines()) if p] or [""]
    if text.style == "bullet":
        mark = BULLET if not fonts.missing_glyphs(font, BULLET) else "-"
        paragraphs = [f"{mark} {p}" for p in paragraphs]
    size = max(1, round(text.size * min(height, width * 9 / 16) / 1080))
    while True:
        pad, _, shadow = _pads(size, text.background)
        room_w = (max_w - 2 * pad - shadow) * _SLACK
        room_h = (max_h - 2 * pad - shadow) * _SLACK
        lines = [line for p in paragraphs for line in _wrap(p, font, size, room_w, bold)]
        widest = max(fonts.text_width(font, line, size) * bold for line in lines)
        step = fonts.line_height(font, size)
        if (widest <= room_w and step * len(lines) <= room_h) or size == 1:
            break
        size -= max(1, size // 24)
    block_w = widest / _SLACK + 2 * pad + shadow
    block_h = step * len(lines) / _SLACK + 2 * pad + shadow
    left, top = _place(text, preset, width, height, block_w, block_h)
    return Layout(size, tuple(lines), pad, shadow, left, top, block_w, block_h, step, preset.left)


def _place(
    text: TextItem, preset: Preset, width: int, height: int, block_w: float, block_h: float
) -> tuple[float, float]:
    """The block's top left corner: where its position puts it, moved inside the safe area."""
    margin_x, margin_y = width * SAFE, height * SAFE
    if text.position == "top":
        left, top = (width - block_w) / 2, margin_y
    elif text.position == "bottom":
        left, top = (width - block_w) / 2, height - margin_y - block_h
    elif text.position == "lowerThird":
        left, top = margin_x, height * 0.85 - block_h
    elif text.position == "center":
        left, top = (width - block_w) / 2, (height - block_h) / 2
    else:
        left, top = text.x * width - block_w / 2, text.y * height - block_h / 2
    left = min(max(left, margin_x), width - margin_x - block_w)
    top = min(max(top, margin_y), height - margin_y - block_h)
    return left, top


# --- the ASS file -----------------------------------------------------------------------------


def _escape(line: str) -> str:
    # Braces start override tags and a backslash an escape in ASS: keep them as plain text.
    return line.replace("\\", "\\\u200b").replace("{", "(").replace("}", ")")


def _colour(hex_rgb: str, alpha: int = 0) -> str:
    r, g, b = hex_rgb[1:3], hex_rgb[3:5], hex_rgb[5:7]
    return f"&H{alpha:02X}{b}{g}{r}".upper()


def _style(name: str, text: TextItem, shape: Layout) -> str:
    _, outline, shadow = _pads(shape.size, text.background)
    box = text.background == "box"
    outline_colour = "&H60000000" if box else "&H00101010"
    return (
        f"Style: {name},{text.font},{shape.size},{_colour(text.color)},&H000000FF,"
        f"{outline_colour},&H80000000,{-1 if text.weight == 'bold' else 0},0,0,0,100,100,0,0,"
        f"{3 if box else 1},{outline},{shadow},7,0,0,0,1"
    )


def _events(n: int, text: TextItem, shape: Layout, fps: int) -> list[str]:
    """The layer's events: one per frame while it animates in or out, one for the rest."""
    x = shape.left + (shape.pad if shape.align_left else shape.width / 2)
    y = shape.top + shape.pad
    slide = shape.line_height * 0.75
    span = text.end - text.start
    enter = min(text.animation_frames, span // 2) if text.enter != "none" else 0
    leave = min(text.animation_frames, span // 2) if text.leave != "none" else 0
    lines = [_escape(line) for line in shape.lines]
    box_alpha = 0x60 if text.background == "box" else 0x00

    def event(first: int, end: int, shown: float, how: Animation) -> str:
        # `shown`: how far in the animation is (1: fully there).
        dx, dy, alpha, chars = 0.0, 0.0, 1.0, None
        if how == "fade":
            alpha = shown
        elif how == "slideUp":
            alpha, dy = shown, slide * (1 - shown)
        elif how == "typewriter":
            chars = math.ceil(sum(len(line) for line in lines) * shown)
        tags = [f"\\an{7 if shape.align_left else 8}", f"\\pos({x + dx:.1f},{y + dy:.1f})"]
        if alpha < 1:
            tags += [
                f"\\1a&H{255 - round(255 * alpha):02X}&",
                f"\\3a&H{255 - round((255 - box_alpha) * alpha):02X}&",
                f"\\4a&H{255 - round(0x7F * alpha):02X}&",
            ]
        body = "\\N".join(lines)
        if chars is not None:
            body = _typed(lines, chars)
        start, stop = captions.ass_clock(first, fps), captions.ass_clock(end, fps)
        return f"Dialogue: {n},{start},{stop},L{n},,0,0,0,," + "{" + "".join(tags) + "}" + body

    events = []
    for k in range(enter):
        at = text.start + k
        events.append(event(at, at + 1, (k + 1) / (enter + 1), text.enter))
    events.append(event(text.start + enter, text.end - leave, 1.0, "none"))
    for k in range(leave):
        at = text.end - leave + k
        events.append(event(at, at + 1, (leave - k) / (leave + 1), text.leave))
    return events


def _typed(lines: list[str], chars: int) -> str:
    """The lines with only their first `chars` characters shown: the rest drawn transparent,
    so every line keeps the place and shape it has once typed out."""
    hidden = "{\\1a&HFF&\\3a&HFF&\\4a&HFF&}"
    out, left = [], chars
    for line in lines:
        if left >= len(line):
            out.append(line)
        elif left <= 0:
            out.append(hidden + line if line else line)
        else:
            out.append(line[:left] + hidden + line[left:])
        left -= len(line)
    return "\\N".join(out)


def ass(items: tuple[TextItem, ...], found: list[Font], width: int, height: int, fps: int) -> str:
    """One scene's text layers for libass."""
    styles, events = [], []
    for n, (text, font) in enumerate(zip(items, found, strict=True)):
        shape = layout(text, font, width, height)
        styles.append(_style(f"L{n}", text, shape))
        events += _events(n, text, shape, fps)
    return captions.ass_document(width, height, styles, events)


# --- the layer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextLayers:
    items: tuple[TextItem, ...] = ()
    kind: Literal["text"] = "text"

    filters: ClassVar[tuple[str, ...]] = ("subtitles", "settb", "setpts")

    def files(self, scene: ScenePlan) -> tuple[str, ...]:
        return (f"text/scene_{scene.index:03d}.ass",) if self.items else ()

    def fonts_folder(self, work: Path, scene: ScenePlan) -> Path:
        return work / "text" / f"scene_{scene.index:03d}.fonts"

    def fonts(self, root: Path) -> list[Font]:
        """Each item's font: the packaged default, or its file in the project at `root`."""
        found = []
        for text in self.items:
            if not text.font_file:
                found.append(fonts.default_font())
            else:
                found.append(Font(text.font, root / text.font_file, text.font_sha256))
        return found

    def write(self, work: Path, plan: Plan, scene: ScenePlan) -> None:
        if not self.items:
            return
        (name,) = self.files(scene)
        found = self.fonts(_project_root(work))
        fonts.stage(found, self.fonts_folder(work, scene))
        write_text_atomic(work / name, ass(self.items, found, plan.width, plan.height, plan.fps))

    def assets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.font_sha256 for t in self.items if t.font_file))

    def apply(
        self, graph: Graph, picture: Stream, work: Path, plan: Plan, scene: ScenePlan, first: int
    ) -> Stream:
        if not self.items:
            return picture
        (name,) = self.files(scene)
        # As burnt-in captions: each frame timed by its number in the scene for libass, then
        # back to every clip's clock.
        filters = (
            *_clock(plan.fps, first),
            Filter.of(
                "subtitles",
                filename=str(work / name),
                fontsdir=str(self.fonts_folder(work, scene)),
            ),
            Filter.of("settb", f"1/{plan.fps}"),
            Filter.of("setpts", "N"),
        )
        return graph.chain(picture, filters)

    def identity(self, scene: ScenePlan) -> dict[str, Any]:
        if not self.items:
            return {}
        keyed = []
        for text in self.items:
            fields = asdict(text)
            del fields["font_file"]  # the font is named by its bytes
            keyed.append(fields)
        return {"text_layers": keyed, "text_version": TEXT_VERSION}


def _project_root(work: Path) -> Path:
    """The project root a work folder (work/ or work/<run>/) belongs to."""
    return work.parent if work.name == "work" else work.parent.parent


# --- checks -----------------------------------------------------------------------------------


def font_problem(
    where: str, specs: list[TextSpec] | None, found: Mapping[str, Font]
) -> Problem | None:
    """The first text layer of a scene (`where`: 'scenes[2]') whose font is not among `found`
    (the catalogue: fonts.catalogue) or lacks a glyph of its text."""
    for n, spec in enumerate(specs or ()):
        font = found.get(spec.font.lower())
        if font is None:
            return Problem(
                "font_unusable",
                f"{where}.text[{n}].font: font {spec.font!r} is not available (fonts: "
                f"{', '.join(fonts.families(found))}); upload it with subdir=fonts",
                f"{where}.text[{n}].font",
            )
        if missing := fonts.missing_glyphs(font, spec.text):
            return Problem(
                "font_unusable",
                f"{where}.text[{n}].text: font {font.family!r} has no glyph for "
                f"{fonts.spoken_chars(missing[:10])}"
                + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
                + "; upload a font that has them with subdir=fonts and name it in font",
                f"{where}.text[{n}].text",
            )
    return None


def timing_problem(where: str, specs: list[TextSpec] | None, seconds: float) -> Problem | None:
    """The first text layer of a scene `seconds` long that starts or ends outside it."""
    for n, spec in enumerate(specs or ()):
        for name in ("start", "end"):
            at = getattr(spec, name)
            if at is not None and (at > seconds or (name == "start" and at >= seconds)):
                return Problem(
                    "validation_error",
                    f"{where}.text[{n}].{name}: {at} s is outside the scene ({seconds:.3f} s)",
                    f"{where}.text[{n}].{name}",
                )
    return None


class TextSource:
    """A scene's text layers come from its `text` list: every layer's font is one the render
    has, with a glyph for each character, and starts and ends inside the scene."""

    def problem(self, scene: SceneContext) -> Problem | None:
        specs = scene.scene.text
        if bad := font_problem(scene.where, specs, scene.fonts):
            return bad
        return None if scene.seconds is None else timing_problem(scene.where, specs, scene.seconds)

    def layer(self, scene: SceneContext, frames: int) -> TextLayers | None:
        specs = scene.scene.text
        if not specs:
            return None
        fps = scene.options.fps
        found = scene.fonts
        return TextLayers(
            tuple(item(s, found[s.font.lower()], fps, frames, scene.root) for s in specs)
        )
