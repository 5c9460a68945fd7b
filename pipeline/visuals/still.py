"""Still images: a picture decoded once, fitted and scaled, then held or moved (Ken Burns).

Preparing runs in an FFmpeg process of its own: each distinct image decoded once, turned
upright per EXIF, fitted (cover, or contain over a blurred copy of itself) and scaled to the
size the scene's motion needs, written as one raw yuv420p frame to work/stills/. Drawing then
repeats that frame (`loop`) or moves over it (`zoompan`), frame by frame.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from PIL import Image

from pipeline.atomic import file_sha256
from pipeline.graph import Filter, Graph, Stream
from pipeline.motion import oversampled, zoompan_filter
from pipeline.probe import (
    TooManyPixels,
    check_pixels,
    decoder_pixel_cap,
    image_size,
    input_guard,
)
from pipeline.visuals.base import Sound, VisualError

if TYPE_CHECKING:
    from pipeline.encoder import Encoder
    from pipeline.limits import Limits
    from pipeline.plan import Plan, ScenePlan, ShotPlan
    from pipeline.project import ProjectDir
    from pipeline.scene import Piece

_EXIF_ORIENTATION = 0x0112
# EXIF orientation → filters that turn the stored picture upright.
_ORIENT: dict[int, tuple[Filter, ...]] = {
    1: (),
    2: (Filter.of("hflip"),),
    3: (Filter.of("hflip"), Filter.of("vflip")),
    4: (Filter.of("vflip"),),
    5: (Filter.of("transpose", "cclock_flip"),),
    6: (Filter.of("transpose", "clock"),),
    7: (Filter.of("transpose", "clock_flip"),),
    8: (Filter.of("transpose", "cclock"),),
}
# The contain background: a small blurred, darkened cover of the same image.
_BG_SHRINK = 8
_BG_DARKEN = Filter.of("eq", brightness=-0.12, saturation=0.8)
_RAW = ("-pix_fmt", "yuv420p")
# A picture more than this many times as wide as it is tall (or as tall as it is wide) is
# cropped to what the frame can show before it is scaled: scaled first to cover a 1080p frame,
# a 16000×200 strip became a 129600×1620 picture (FFmpeg peaked at about 400 MB; 200×16000,
# about 1 GB) only to be cropped to 2880×1620. Pictures of ordinary shapes (a portrait photo
# in a landscape frame is 3.2 times the frame's area when scaled) are scaled as they always
# were, so their prepared frames, and the clips cached from them, stay the same.
THIN = 4.0
_YUV420P = Filter.of("format", "yuv420p")

# What decoding an image's bytes found (width, height, EXIF orientation), by their sha256: a
# worker that has decoded those bytes once need not decode them again (a resubmission).
_DECODED: dict[str, tuple[int, int, int]] = {}
_DECODED_MAX = 4096


@dataclass(frozen=True, kw_only=True)
class Still:
    path: str  # relative to the project root
    width: int  # as stored, before EXIF rotation
    height: int
    orientation: int = 1  # EXIF orientation tag, 1..8
    # sha256 of the file's bytes: what shots and the render cache name it by, not its name
    sha256: str
    kind: Literal["still"] = "still"

    folder: ClassVar[str] = "images"
    entry: ClassVar[type[Any] | None] = None  # named by a plain file name
    prepares: ClassVar[bool] = True
    filters: ClassVar[tuple[str, ...]] = (
        *("scale", "crop", "split", "gblur", "eq", "overlay", "format"),
        *("transpose", "hflip", "vflip", "zoompan", "loop", "setpts"),
    )

    @property
    def name(self) -> str:
        return Path(self.path).name

    @classmethod
    def inspect(cls, project: ProjectDir, name: str, max_pixels: int, use: Any = None) -> Still:
        """The image `name` in input/images/: its size and orientation, decoded (by its
        header first) under `max_pixels`; VisualError when it cannot be."""
        path = project.asset(cls.folder, name)
        if not path.is_file():
            raise VisualError(f"image {name!r} does not exist")
        digest = file_sha256(path)
        known = _DECODED.get(digest)
        if known is None:
            known = _decode(path, name, max_pixels)
            if len(_DECODED) >= _DECODED_MAX:
                _DECODED.clear()
            _DECODED[digest] = known
        width, height, orientation = known
        if width * height > max_pixels:  # decoded before under a larger cap
            raise _pixel_error(name, TooManyPixels(width * height, (width, height)))
        relative = str(path.relative_to(project.root))
        return cls(
            path=relative, width=width, height=height, orientation=orientation, sha256=digest
        )

    @property
    def own_seconds(self) -> None:
        return None

    def used_as(self, entry: Any) -> bool:
        return True  # a file name: nothing to use it as

    def moves(self, scene_motion: str) -> str:
        return scene_motion

    def refused(self, bounds: Limits) -> str | None:
        return None  # its pixels are checked as it is decoded (`inspect`)

    @property
    def thin(self) -> bool:
        """A strip (THIN): cropped before it is scaled, where it covers the frame."""
        return max(self.width, self.height) > THIN * min(self.width, self.height)

    def identity(self) -> dict[str, Any]:
        # The names stills have always had in the key: clips cached before still match. A
        # strip's clips were drawn from a frame scaled the other way before: not theirs.
        return {
            "width": self.width,
            "height": self.height,
            "orientation": self.orientation,
            "sha256": self.sha256,
            **({"cropped_first": True} if self.thin else {}),
        }

    def prepared_name(self, stem: str, plan: Plan, scene: ScenePlan) -> str:
        made_of: tuple[Any, ...] = (
            self.sha256 or self.path,
            self.orientation,
            scene.fit,
            prepared_size(plan, scene),
            # x264's threads and lookahead never change the frames; the command line gives its
            # last unit more threads, and it must find the stills the others prepared.
            dataclasses.replace(plan.encoder, threads=0, lookahead=0),
        )
        if self.thin:
            made_of += ("cropped first",)
        tag = hashlib.sha256(repr(made_of).encode()).hexdigest()[:12]
        return f"{stem}_{tag}.yuv"

    def prepare_input(self, root: Path, max_pixels: int) -> list[str]:
        # VALIDATE refused images over the cap by their headers; the decoder's own cap keeps a
        # file changed since (or a header that lies) from taking gigabytes to decode.
        cap = ["-max_pixels", str(decoder_pixel_cap(max_pixels))] if max_pixels else []
        # We rotate by the EXIF tag: FFmpeg versions disagree on whether stills autorotate.
        # Pillow read it as a picture; FFmpeg may still open nothing but the file itself.
        guard = input_guard(None)
        return ["-noautorotate", *guard, *cap, "-i", str(root / self.path)]

    def prepare(self, graph: Graph, source: Stream, plan: Plan, scene: ScenePlan) -> Stream:
        """The decoded image as one frame of the prepared size, in the output colours."""
        size = prepared_size(plan, scene)
        upright = graph.chain(source, _ORIENT.get(self.orientation, ()))
        if self.thin and scene.fit != "contain":
            upright = graph.chain(upright, (_shown_part(self.upright_size, size),))
        return _fitted(graph, upright, scene.fit, size, plan.encoder)

    @property
    def upright_size(self) -> tuple[int, int]:
        """Its width and height as shown, turned upright per its EXIF orientation."""
        turned = self.orientation in (5, 6, 7, 8)
        return (self.height, self.width) if turned else (self.width, self.height)

    def prepare_output(self) -> list[str]:
        return ["-frames:v", "1", *_RAW, "-f", "rawvideo"]

    def source_input(self, prepared: Path, plan: Plan, scene: ScenePlan) -> list[str]:
        width, height = prepared_size(plan, scene)
        args = ["-f", "rawvideo", *_RAW, "-video_size", f"{width}x{height}"]
        return [*args, "-framerate", str(plan.fps), "-i", str(prepared)]

    def inputs(
        self,
        root: Path | None,
        prepared: Path | None,
        plan: Plan,
        scene: ScenePlan,
        uses: Sequence[Piece],
    ) -> list[list[str]]:
        # Always its one input, drawn from or not (a chunk that does not show it).
        return [self.source_input(prepared or Path(self.path), plan, scene)]

    def sources(
        self,
        graph: Graph,
        streams: Sequence[Stream],
        plan: Plan,
        scene: ScenePlan,
        uses: Sequence[Piece],
    ) -> list[Stream]:
        # Each piece drawn from its own copy of the one prepared frame.
        return list(graph.split(streams[0], len(uses))) if uses else []

    def draw(self, shot: ShotPlan, piece: Piece, plan: Plan) -> tuple[Filter, ...]:
        count = piece.end - piece.first
        if shot.move.still:
            # Repeat the already-fitted frame: no per-frame scaling at all. The input is read
            # at -framerate fps, so N counts frames; an `fps` filter here would drop the last.
            return (Filter.of("loop", loop=count - 1, size=1), Filter.of("setpts", "N"))
        length = shot.frames + shot.overlap
        return (
            zoompan_filter(
                shot.move, length, plan.width, plan.height, plan.fps, first=piece.first, count=count
            ),
        )

    def sound(self) -> Sound | None:
        return None

    def damage(self, root: Path) -> str | None:
        # Preparing decodes it, and a failure there is blamed on the image already.
        return None

    def poster_frame(self, shot: ShotPlan) -> int:
        # A shot that zooms in starts on the whole picture, one that zooms out ends on it; a
        # still shot is the same throughout.
        if shot.move.zoom_start > shot.move.zoom_end:
            return shot.frames - 1
        return 0


def prepared_size(plan: Plan, scene: ScenePlan) -> tuple[int, int]:
    """Motion is per scene: either every shot zooms (from oversampled stills) or none does.

    A preview takes the lighter path: zoompan from an output-size still (about 2.3 ms a frame
    at 1080p against 5.5 ms oversampled), with slightly less even steps, which a draft can
    afford.
    """
    # Its own shots: a clip's motion is its own (pipeline/visuals/clip.py).
    moving = any(not shot.move.still for shot in scene.shots if shot.kind == "still")
    if moving and not plan.preview:
        return oversampled(plan.width, plan.height)
    return plan.width, plan.height


def _pixel_error(name: str, exc: TooManyPixels) -> VisualError:
    return VisualError(f"image {name!r} {exc} (MAX_IMAGE_PIXELS)")


def _decode(path: Path, name: str, max_pixels: int) -> tuple[int, int, int]:
    # The header first: a small file can hold a picture whose decoding alone takes gigabytes.
    try:
        known = check_pixels(path, max_pixels)
    except TooManyPixels as exc:
        raise _pixel_error(name, exc) from None
    try:
        width, height = image_size(path, decoder_pixel_cap(max_pixels))
    except Exception as exc:  # PyAV raises many kinds; the user needs the file name
        # A format Pillow cannot read has no header size: over the decoder's cap, it fails here.
        capped = "" if known else f" (or has more than {decoder_pixel_cap(max_pixels)} pixels)"
        raise VisualError(f"image {name!r} could not be decoded{capped}: {exc}") from None
    orientation = 1
    try:
        with Image.open(path) as img:
            orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # FFmpeg decodes it; Pillow may not (e.g. an odd format): no rotation
        orientation = 1
    if orientation not in range(1, 9):
        orientation = 1
    return width, height, orientation


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _scale(width: int, height: int, aspect: str, encoder: Encoder) -> Filter:
    """Scale to fit (aspect "decrease") or fill (aspect "increase"), into the output colours."""
    return Filter.of(
        "scale",
        width,
        height,
        force_original_aspect_ratio=aspect,
        out_color_matrix=encoder.colorspace,
        out_range=encoder.color_range,
    )


def fitted(
    graph: Graph,
    image: Stream,
    orientation: int,
    fit: str,
    size: tuple[int, int],
    encoder: Encoder,
) -> Stream:
    """One decoded image (or a clip's frame) turned upright per `orientation`, made one
    `size` yuv420p frame in the output colours."""
    return _fitted(graph, graph.chain(image, _ORIENT.get(orientation, ())), fit, size, encoder)


def _shown_part(picture: tuple[int, int], frame: tuple[int, int]) -> Filter:
    """The middle of `picture` with about the frame's shape: all that covering the frame
    shows of it. A little longer than that along its long side, and centred exactly, so that
    the scale after it is set by its short side, as it was when the whole picture was scaled
    (the crop after the scale trims the rest)."""
    (width, height), (frame_width, frame_height) = picture, frame
    if width * frame_height > height * frame_width:  # wider than the frame
        return Filter.of("crop", _middle(width, height * frame_width / frame_height), height)
    return Filter.of("crop", width, _middle(height, width * frame_height / frame_width))


def _middle(length: int, shown: float) -> int:
    """A crop of `length` a little longer than `shown`, leaving even margins on both sides."""
    kept = math.ceil(shown) + 2
    kept += (length - kept) % 2
    return min(length, kept)


def _fitted(
    graph: Graph, upright: Stream, fit: str, size: tuple[int, int], encoder: Encoder
) -> Stream:
    """One decoded image, turned upright, made one `size` yuv420p frame in the output
    colours."""
    width, height = size
    if fit != "contain":
        return graph.chain(
            upright,
            (
                _scale(width, height, "increase", encoder),
                Filter.of("crop", width, height),
                _YUV420P,
            ),
        )
    bw, bh = _even(width / _BG_SHRINK), _even(height / _BG_SHRINK)
    background, foreground = graph.split(upright, 2)
    background = graph.chain(
        background,
        (
            _scale(bw, bh, "increase", encoder),
            Filter.of("crop", bw, bh),
            Filter.of("gblur", sigma=f"{max(1.0, bw / 40):.2f}"),
            _BG_DARKEN,
            Filter.of("scale", width, height),
            _YUV420P,
        ),
    )
    foreground = graph.chain(foreground, (_scale(width, height, "decrease", encoder), _YUV420P))
    overlay = Filter.of("overlay", "(W-w)/2", "(H-h)/2", format="yuv420")
    return graph.chain(graph.apply(overlay, background, foreground), (_YUV420P,))
