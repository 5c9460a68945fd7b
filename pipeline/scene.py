"""The FFmpeg commands of one scene clip, built as data (argument lists) from the plan.

Two commands. The first prepares the scene's stills: each distinct image decoded once, rotated
per EXIF, fitted and scaled to the size the motion needs, and written as one raw yuv420p frame.
The second draws and encodes the clip from those frames; only zoompan, loop and xfade run per
frame. Preparing in a process of its own frees the decoded originals (18 MB for a 4000×3000
JPEG, plus the scaler's buffers) before libx264 starts filling its lookahead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.encoder import Encoder, clip_timing_args, video_codec_args
from pipeline.graph import Filter, Graph, Stream
from pipeline.motion import oversampled, zoompan_filter
from pipeline.plan import ImageInfo, Plan, ScenePlan, ShotPlan
from pipeline.probe import decoder_pixel_cap

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
_YUV420P = Filter.of("format", "yuv420p")


def _tags(encoder: Encoder) -> tuple[Filter, ...]:
    """The last filters of a clip. FFmpeg 7+ encoders take colour tags from the frames, so the
    graph sets them (the encoder's -color_* output options cover older builds)."""
    return (
        Filter.of("setsar", 1),
        Filter.of(
            "setparams",
            range=encoder.color_range,
            color_primaries=encoder.color_primaries,
            color_trc=encoder.color_trc,
            colorspace=encoder.colorspace,
        ),
    )


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


def _prepare(
    graph: Graph, image: Stream, info: ImageInfo, fit: str, size: tuple[int, int], encoder: Encoder
) -> Stream:
    """One decoded image turned into one `size` yuv420p frame in the output colours."""
    width, height = size
    upright = graph.chain(image, _ORIENT.get(info.orientation, ()))
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


@dataclass(frozen=True)
class Piece:
    """Frames [first, end) of shot `shot`: the head that fades in, the body, or the tail that
    fades out."""

    kind: Literal["head", "body", "tail"]
    shot: int
    first: int
    end: int


def pieces(plan: Plan, scene: ScenePlan, span: tuple[int, int] | None = None) -> list[Piece]:
    """The frame ranges each shot is drawn in, in timeline order; with `span` (frames [first,
    end) of the scene, a chunk's) only what falls in it, a body cut to fit.

    Shot n renders [0, frames + overlap): its first `fade` frames (after the first shot) fade in
    over the previous shot's tail, its last `overlap` frames fade out under the next one's head.
    """
    fade = plan.xfade_frames
    found = []
    start = 0  # the shot's first frame in the scene
    for n, shot in enumerate(scene.shots):
        head = fade if n > 0 else 0
        for piece in (
            Piece("head", n, 0, head),
            Piece("body", n, head, shot.frames),
            Piece("tail", n, shot.frames, shot.frames + shot.overlap),
        ):
            if piece.end > piece.first:
                found.append(_within(piece, start, span) if span is not None else piece)
        start += shot.frames
    return [piece for piece in found if piece is not None]


def _within(piece: Piece, start: int, span: tuple[int, int]) -> Piece | None:
    """The part of `piece` (of a shot starting at scene frame `start`) inside `span`."""
    first, end = max(piece.first, span[0] - start), min(piece.end, span[1] - start)
    if end <= first:
        return None
    if (first, end) != (piece.first, piece.end) and piece.kind != "body":
        raise ValueError(f"frames {span} cut the cross-fade of shot {piece.shot}")
    return Piece(piece.kind, piece.shot, first, end)


def still_size(plan: Plan, scene: ScenePlan) -> tuple[int, int]:
    """Motion is per scene: either every shot zooms (from oversampled stills) or none does.

    A preview takes the lighter path: zoompan from an output-size still (about 2.3 ms a frame
    at 1080p against 5.5 ms oversampled), with slightly less even steps, which a draft can
    afford.
    """
    moving = any(not shot.move.still for shot in scene.shots)
    if moving and not plan.preview:
        return oversampled(plan.width, plan.height)
    return plan.width, plan.height


def stills_graph(plan: Plan, scene: ScenePlan) -> Graph:
    """Input n (scene image n) prepared: graph output n."""
    graph = Graph()
    size = still_size(plan, scene)
    for index, image in enumerate(scene.images):
        source = graph.input(index, "v")
        graph.output(_prepare(graph, source, image, scene.fit, size, plan.encoder))
    return graph


def stills_args(
    project_root: Path, plan: Plan, scene: ScenePlan, targets: Sequence[Path]
) -> list[str]:
    """One command writing each of `scene.images`, prepared, to its raw frame in `targets`."""
    args: list[str] = []
    # VALIDATE refused images over the cap by their headers; the decoder's own cap keeps a
    # file changed since (or a header that lies) from taking gigabytes to decode.
    cap = ["-max_pixels", str(decoder_pixel_cap(plan.max_pixels))] if plan.max_pixels else []
    for image in scene.images:
        # We rotate by the EXIF tag: FFmpeg versions disagree on whether stills autorotate.
        args += ["-noautorotate", *cap, "-i", str(project_root / image.path)]
    compiled = stills_graph(plan, scene).compile()
    args += ["-filter_complex", compiled.text]
    for still, target in zip(compiled.maps, targets, strict=True):
        args += ["-map", still, "-frames:v", "1", *_RAW, "-f", "rawvideo", str(target)]
    return args


def _piece_filters(shot: ShotPlan, piece: Piece, plan: Plan) -> tuple[Filter, ...]:
    count = piece.end - piece.first
    if shot.move.still:
        # Repeat the already-fitted frame: no per-frame scaling at all. The input is read at
        # -framerate fps, so N counts frames; an `fps` filter here would drop the last one.
        return (Filter.of("loop", loop=count - 1, size=1), Filter.of("setpts", "N"))
    length = shot.frames + shot.overlap
    return (
        zoompan_filter(
            shot.move, length, plan.width, plan.height, plan.fps, first=piece.first, count=count
        ),
    )


def scene_graph(
    plan: Plan,
    scene: ScenePlan,
    subtitles: Path | None = None,
    span: tuple[int, int] | None = None,
) -> Graph:
    """The graph of a scene clip, fed by its prepared stills (input n: scene image n); its one
    output has exactly `scene.frames` frames, or with `span` (a chunk's frames [first, end) of
    the scene) exactly those frames, the same pixels as the whole scene's graph draws there.

    Every piece of a shot (the head that fades in, the body, the tail that fades out) is drawn
    from the prepared still by its own zoompan or loop: only single stills are split, never a
    stream of frames. Splitting the frame stream of a shot (and trimming each branch) queued the
    frames one branch had not asked for yet: about 25 MB more at 1080p for half-second fades.
    """
    graph = Graph()
    drawn = pieces(plan, scene, span)
    users: dict[str, list[Piece]] = {}
    for piece in drawn:
        users.setdefault(scene.shots[piece.shot].image, []).append(piece)
    stills: dict[Piece, Stream] = {}
    for index, image in enumerate(scene.images):
        if image.path in users:
            copies = graph.split(graph.input(index, "v"), len(users[image.path]))
            stills.update(zip(users[image.path], copies, strict=True))
    streams = []
    for piece in drawn:
        shot = scene.shots[piece.shot]
        # zoompan's output aspect drifts from 1:1 with the crop; concat wants every piece alike.
        filters = (*_piece_filters(shot, piece, plan), Filter.of("setsar", 1))
        streams.append((piece, graph.chain(stills[piece], filters)))
    # Burnt-in captions (the scene's plan holds them; `subtitles` is their ASS file): libass
    # draws them onto the finished frames, fades and all.
    burn: tuple[Filter, ...] = ()
    if subtitles is not None:
        subtitled = Filter.of("subtitles", filename=str(subtitles))
        burn = (*_caption_clock(plan, span[0] if span else 0), subtitled)
        # Then back to every clip's clock, frame n at n/fps from 0: the encoder must not see
        # the millisecond times, or the frames would last 33 and 34 ms by turns.
        burn += (Filter.of("settb", f"1/{plan.fps}"), Filter.of("setpts", "N"))
    graph.output(graph.chain(_join(graph, plan, streams), (*burn, *_tags(plan.encoder))))
    return graph


def _caption_clock(plan: Plan, first: int) -> tuple[Filter, ...]:
    """Filters timing each frame for libass by its number in the scene (a chunk's frames at
    their place in it): the same times in a chunk as in the whole scene.

    libass is given a frame's time in whole milliseconds, truncated from a double: a time
    computed by filters (concat's sums, a shift by a chunk's start) can fall a microsecond
    short of a cue starting on that frame and show the cue a frame late. Each frame is timed
    half way through its exact millisecond instead.
    """
    frame_ms = f"floor((N+{first})*1000/{plan.fps})"
    return (Filter.of("settb", "AVTB"), Filter.of("setpts", f"{frame_ms}*1000+500"))


def _join(graph: Graph, plan: Plan, streams: list[tuple[Piece, Stream]]) -> Stream:
    """The pieces in order: each tail cross-faded with the next head, then concatenated.

    xfade works in 4:4:4, so FFmpeg converts every frame it is given there and back; it is given
    only the overlapping frames.
    """
    if len(streams) == 1:
        return streams[0][1]
    fade = Filter.of(
        "xfade", transition="fade", duration=f"{plan.xfade_frames / plan.fps:.6f}", offset=0
    )
    joined: list[tuple[Piece | None, Stream]] = []  # None: a cross-fade
    for piece, stream in streams:
        if piece.kind != "head":
            joined.append((piece, stream))
            continue
        before, tail = joined.pop() if joined else (None, None)
        if before is None or tail is None or before.kind != "tail":
            raise ValueError(f"shot {piece.shot} fades in but the shot before it has no tail")
        joined.append((None, graph.chain(graph.apply(fade, tail, stream), (_YUV420P,))))
    concat = Filter.of("concat", n=len(joined), v=1, a=0)
    return graph.apply(concat, *(stream for _, stream in joined))


def scene_source_args(
    plan: Plan,
    scene: ScenePlan,
    stills: Sequence[Path],
    subtitles: Path | None = None,
    span: tuple[int, int] | None = None,
) -> list[str]:
    """The inputs and graph of a scene clip (or of its chunk `span`), up to its mapped output:
    what feeds the encoder."""
    width, height = still_size(plan, scene)
    args: list[str] = []
    for still in stills:
        args += ["-f", "rawvideo", *_RAW, "-video_size", f"{width}x{height}"]
        args += ["-framerate", str(plan.fps), "-i", str(still)]
    compiled = scene_graph(plan, scene, subtitles, span).compile()
    (video,) = compiled.maps
    return [*args, "-filter_complex", compiled.text, "-map", video]


def scene_args(
    plan: Plan,
    scene: ScenePlan,
    stills: Sequence[Path],
    out: Path,
    subtitles: Path | None = None,
    span: tuple[int, int] | None = None,
) -> list[str]:
    """The whole scene-clip command: its graph encoded with the plan's encoder, video only;
    `subtitles` is the ASS file of its burnt-in captions, if it has any. With `span`, the
    chunk of the clip that is frames [first, end) of the scene."""
    first, end = span if span is not None else (0, scene.frames)
    return [
        *scene_source_args(plan, scene, stills, subtitles, span),
        "-an",
        *video_codec_args(plan.encoder),
        "-frames:v",
        str(end - first),
        *clip_timing_args(plan.fps),
        "-f",
        "mp4",
        str(out),
    ]
