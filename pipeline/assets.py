"""The kinds of input file a project holds: one registry, read by everything that names them.

Each kind has a name (the upload's `subdir`, the project view's key), a folder under `input/`
and the media its bytes must be. The upload route's allowed subdirs and their OpenAPI enum, the
folders a project is created with, the project view's asset lists, the spec's references
(`ProjectSpec.references`, through the `Refers` marker on its fields) and the demo's upload
loop are all derived from `KINDS`. A new kind (videos) is one entry here, a checker for
its media if it is a new one, and a `Refers(KIND)` on the spec field that names its files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from pipeline.fonts import MAX_FONT_BYTES, is_font
from pipeline.probe import (
    AUDIO_DEMUXERS,
    check_pixels,
    clip_info,
    decoder_pixel_cap,
    open_user_media,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from pipeline.options import RenderOptions


def is_image(path: Path, max_pixels: int) -> bool:
    """An image Pillow decodes, with at least one pixel."""
    try:
        with Image.open(path) as img:
            img.verify()
        # verify() checks structure only; decoding the pixels is what FFmpeg will have to do.
        with Image.open(path) as img:
            img.load()
            return img.width > 0 and img.height > 0
    except Exception:
        return False


def is_audio(path: Path, max_pixels: int) -> bool:
    """A container with an audio stream FFmpeg decodes a frame of."""
    # Opening a file decodes a frame of each stream, a picture's too (an image format Pillow
    # does not know): the decoders' pixel cap keeps that from being a bomb.
    try:
        cap = decoder_pixel_cap(max_pixels)
        with open_user_media(path, formats=AUDIO_DEMUXERS, max_pixels=cap) as container:
            if not container.streams.audio:
                return False
            for _frame in container.decode(audio=0):
                return True
            return False
    except Exception:
        return False


def is_video(path: Path, max_pixels: int) -> bool:
    """A clip we can show: an MP4/MOV, MKV or WebM by its bytes (the name must agree), with a
    video stream of an accepted codec whose first frame decodes (its name is checked against
    its bytes by the upload, which knows it); `video_problem` says why not."""
    return video_problem(path, None, max_pixels) is None


def video_problem(path: Path, name: str | None, max_pixels: int) -> str | None:
    """What keeps the file from being a clip (UnsafeMedia's reasons first: nothing has read
    the bytes then), or None."""
    try:
        clip_info(path, name, max_pixels)
    except Exception as exc:  # PyAV raises many kinds
        return str(exc)
    return None


@dataclass(frozen=True)
class Media:
    """What a file's bytes are, whatever its name says."""

    name: str  # "image"
    noun: str  # "an image": how a message names a file of it
    check: Callable[[Path, int], bool]  # (path, MAX_IMAGE_PIXELS) → whether the bytes are it


IMAGE = Media("image", "an image", is_image)
AUDIO = Media("audio", "audio", is_audio)
FONT = Media("font", "a font", is_font)
VIDEO = Media("video", "a video", is_video)
# In the order the bytes are tried: a font's check reads its first bytes and tables only; a
# video with sound is a video, when no subdir says.
MEDIA = (FONT, IMAGE, VIDEO, AUDIO)


@dataclass(frozen=True)
class AssetKind:
    name: str  # the upload's `subdir`, the project view's key
    folder: str  # under input/
    media: Media
    # An upload without a subdir puts files of this media here (one kind per media at most).
    inferred: bool = True
    # The render option that may name another folder for this kind (`voiceDir`).
    folder_option: str | None = None
    # The largest file of this kind an upload may hold (bytes; None: only the upload's caps).
    max_bytes: int | None = None

    def folder_for(self, options: RenderOptions | None = None) -> str:
        """The folder under input/ a render with these options reads this kind from."""
        if options is not None and self.folder_option is not None:
            return str(getattr(options, self.folder_option))
        return self.folder


IMAGES = AssetKind("images", "images", IMAGE)
VOICEOVERS = AssetKind("voiceovers", "voiceovers", AUDIO, folder_option="voice_dir")
MUSIC = AssetKind("music", "music", AUDIO, inferred=False)
# TTF, OTF or WOFF2, named in a text layer by family (docs/text.md), not by file name.
FONTS = AssetKind("fonts", "fonts", FONT, max_bytes=MAX_FONT_BYTES)
VIDEOS = AssetKind("videos", "videos", VIDEO)

KINDS: tuple[AssetKind, ...] = (IMAGES, VOICEOVERS, MUSIC, FONTS, VIDEOS)
NAMES: tuple[str, ...] = tuple(kind.name for kind in KINDS)
FOLDERS: tuple[str, ...] = tuple(kind.folder for kind in KINDS)
BY_NAME: dict[str, AssetKind] = {kind.name: kind for kind in KINDS}


def inferred_kind(media: Media) -> AssetKind:
    """Where an upload of this media goes when no subdir is given."""
    return next(kind for kind in KINDS if kind.media == media and kind.inferred)


def sniff(path: Path, max_pixels: int, first: Media | None = None) -> Media | None:
    """What the bytes are: the first media whose check passes (`first` tried first: the one
    the upload's subdir expects), or None.

    TooManyPixels for an image over `max_pixels`, found from its header before any decoding.
    """
    check_pixels(path, max_pixels)
    order = (first, *(m for m in MEDIA if m != first)) if first else MEDIA
    return next((media for media in order if media.check(path, max_pixels)), None)


def spoken_names(names: Sequence[str] = NAMES) -> str:
    """'images, voiceovers or music'."""
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]


@dataclass(frozen=True)
class Refers:
    """Marks a spec field (`Annotated[..., Refers(IMAGES)]`) as naming files of this kind."""

    kind: AssetKind


def marked_fields(model: type[BaseModel]) -> list[tuple[str, str, AssetKind]]:
    """The fields of a spec model marked `Refers(kind)`, in order: (attribute, name in the
    JSON, kind)."""
    return [
        (name, info.alias or name, marker.kind)
        for name, info in model.model_fields.items()
        for marker in info.metadata
        if isinstance(marker, Refers)
    ]


@dataclass(frozen=True)
class Reference:
    """One file the spec or the render options name: where, of what kind, which file."""

    field: str  # 'scenes[2].images[0]', 'renderOptions.music'
    kind: AssetKind
    name: str


def missing(
    refs: Sequence[Reference], present: Callable[[str, str], bool], options: RenderOptions | None
) -> list[tuple[str, Reference]]:
    """The references whose file is not there ('folder/name', reference), in order, each file
    once; `present(folder, name)` says whether it is."""
    seen: set[str] = set()
    out = []
    for ref in refs:
        path = f"{ref.kind.folder_for(options)}/{ref.name}"
        if path in seen:
            continue
        seen.add(path)
        if not present(ref.kind.folder_for(options), ref.name):
            out.append((path, ref))
    return out
