"""The fonts text is drawn with: the packaged default, the project's uploads, and what they can
draw.

libass finds fonts through fontconfig, so a host without system fonts would draw nothing and a
host with other fonts would draw other pixels. Every layer that draws text therefore hands
libass a fonts folder of its own (`fontsdir`) holding exactly the fonts it names: the default
sans (Noto Sans, OFL, from the `fontpkg-noto-sans` wheel) or a font the user uploaded with
`subdir=fonts`, named by its family. A text whose font lacks a glyph is refused before the
render (`missing_glyphs`), so libass never falls back to a system font.

Sizes follow libass: a font of size S (in ASS units, which are pixels here: PlayRes is the
frame) has S pixels from its OS/2 Windows ascent to descent, so the scale is S over their sum.
`text_width` adds the glyphs' advances at that scale: wrapping and shrinking are computed from
the font's own metrics, the same on every host.
"""

from __future__ import annotations

import hashlib
import io
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from fontTools.ttLib import TTFont

DEFAULT_FAMILY = "Noto Sans"
# The default font's wheel, and the file of its upright face in it.
_PACKAGE = "fontpkg_noto_sans"
_DEFAULT_FILE = "NotoSans[wdth,wght].ttf"
# What an uploaded font may be, by its first bytes: TrueType, OpenType (CFF), WOFF2.
_MAGIC = (b"\x00\x01\x00\x00", b"true", b"OTTO", b"wOF2")
# A font upload's cap: CJK fonts are 10–20 MB; anything far beyond is not a font we draw.
MAX_FONT_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Font:
    family: str
    path: Path
    sha256: str

    @property
    def packaged(self) -> bool:
        return self.path.parent == packaged_dir()


def packaged_dir() -> Path:
    """The folder of the default font's wheel (its faces only)."""
    return Path(str(resources.files(_PACKAGE).joinpath("files")))


@lru_cache(maxsize=1)
def default_font() -> Font:
    path = packaged_dir() / _DEFAULT_FILE
    return Font(DEFAULT_FAMILY, path, _sha256(path))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _open(path: Path) -> TTFont:
    return TTFont(str(path), lazy=True, fontNumber=0)


def family_of(path: Path) -> str | None:
    """The family name libass matches (name ID 1), or None when the file is not a font."""
    try:
        with path.open("rb") as fh:
            if fh.read(4) not in _MAGIC:
                return None
        font = _open(path)
        name = font["name"]
        family = name.getBestFamilyName() or name.getDebugName(1)
        if not family or not font.getBestCmap():
            return None
        return str(family)
    except Exception:  # fontTools raises many kinds on a damaged file (TTLibError, KeyError...)
        return None


def is_font(path: Path, max_pixels: int = 0) -> bool:
    """A TTF, OTF or WOFF2 file fontTools reads a family name and a character map from."""
    return family_of(path) is not None


def read(path: Path) -> Font | None:
    family = family_of(path)
    return Font(family, path, _sha256(path)) if family is not None else None


def catalogue(folder: Path | None = None) -> dict[str, Font]:
    """The fonts a render may name, by family (lower case): the packaged default, then every
    font uploaded to `folder` (input/fonts/), in name order; an upload of the default's family
    takes its place."""
    found = {DEFAULT_FAMILY.lower(): default_font()}
    if folder is not None and folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                font = read(path)
                if font is not None:
                    found[font.family.lower()] = font
    return found


def families(fonts: Mapping[str, Font]) -> list[str]:
    return sorted({font.family for font in fonts.values()})


@dataclass(frozen=True)
class _Metrics:
    scale_units: int  # OS/2 winAscent + winDescent: the units a size covers
    line_units: int  # hhea ascent − descent + gap: libass's line height
    advances: Mapping[int, int]  # code point → advance width, in font units
    fallback: int  # the advance of a character without a glyph (.notdef)


@lru_cache(maxsize=32)
def _metrics(path: Path, sha256: str) -> _Metrics:
    font = _open(path)
    cmap = font.getBestCmap()
    hmtx = font["hmtx"]
    os2 = font.get("OS/2")
    hhea = font["hhea"]
    line = hhea.ascent - hhea.descent + hhea.lineGap
    scale = (os2.usWinAscent + os2.usWinDescent) if os2 is not None else 0
    advances = {cp: hmtx[glyph][0] for cp, glyph in cmap.items()}
    return _Metrics(scale or line, line, advances, hmtx[font.getGlyphOrder()[0]][0])


def text_width(font: Font, text: str, size: float) -> float:
    """The width of `text` in pixels at ASS size `size`, from the glyphs' advances."""
    metrics = _metrics(font.path, font.sha256)
    units = sum(metrics.advances.get(ord(c), metrics.fallback) for c in text if _drawn(c))
    return units * size / metrics.scale_units


def line_height(font: Font, size: float) -> float:
    """The distance between two lines' baselines in pixels at ASS size `size`."""
    metrics = _metrics(font.path, font.sha256)
    return metrics.line_units * size / metrics.scale_units


def _drawn(char: str) -> bool:
    """Whether a character needs a glyph: not a control or format character (ZWJ, RLM...)."""
    return unicodedata.category(char) not in {"Cc", "Cf", "Zl", "Zp"}


def missing_glyphs(font: Font, text: str) -> list[str]:
    """The characters of `text` the font has no glyph for, each once, in order (spaces and
    control and format characters need none)."""
    advances = _metrics(font.path, font.sha256).advances
    missing = dict.fromkeys(
        c for c in text if _drawn(c) and not c.isspace() and ord(c) not in advances
    )
    return list(missing)


def spoken_chars(chars: Iterable[str]) -> str:
    """'"ש" (U+05E9), "ל" (U+05DC)': characters as a message names them."""
    return ", ".join(f'"{c}" (U+{ord(c):04X})' for c in chars)


def stage(fonts: Iterable[Font], folder: Path) -> None:
    """Make `folder` hold exactly these fonts, as libass reads them (a WOFF2 decompressed to
    its TrueType or OpenType bytes), each named by its digest: a folder of its own per
    layer, so what libass can pick from is what the layer names and nothing else."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, Font] = {}
    for font in fonts:
        wanted[f"{font.sha256[:32]}{_suffix(font.path)}"] = font
    for stale in folder.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    for name, font in wanted.items():
        target = folder / name
        if target.is_file():
            continue
        tmp = folder / f".{name}.tmp"
        data = font.path.read_bytes()
        if data[:4] == b"wOF2":
            data = _decompressed(data)
        tmp.write_bytes(data)
        tmp.replace(target)


def _suffix(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(8)
    # A WOFF2 header names the flavour of the font it holds at bytes 4–8.
    flavour = head[4:8] if head[:4] == b"wOF2" else head[:4]
    return ".otf" if flavour == b"OTTO" else ".ttf"


def _decompressed(data: bytes) -> bytes:
    font = TTFont(io.BytesIO(data))
    font.flavor = None
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()
