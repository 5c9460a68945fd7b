"""The FFmpeg commands of one scene clip, built as data (argument lists) from the plan.

Two commands. The first prepares the scene's visuals (pipeline/visuals/: each still decoded
once, turned upright, fitted and scaled to the size the motion needs, written as one raw
frame). The second draws each shot's pieces from what was prepared, joins them with their
cross-fades, applies the scene's layers in order (pipeline/layers/: burnt-in captions) and
encodes the clip. Preparing in a process of its own frees the decoded originals (18 MB for a
4000×3000 JPEG, plus the scaler's buffers) before libx264 starts filling its lookahead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.encoder import Encoder, clip_timing_args, video_codec_args
from pipeline.graph import Filter, Graph, Stream
from pipeline.plan import Plan, ScenePlan
from pipeline.visuals import Visual

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


def stills_graph(plan: Plan, scene: ScenePlan) -> Graph:
    """Input n (the scene's nth visual that prepares) prepared: graph output n."""
    graph = Graph()
    for index, visual in enumerate(_preparing(scene)):
        graph.output(visual.prepare(graph, graph.input(index, "v"), plan, scene))
    return graph


def _preparing(scene: ScenePlan) -> list[Visual]:
    return [visual for visual in scene.visuals if visual.prepares]


def stills_args(
    project_root: Path, plan: Plan, scene: ScenePlan, targets: Sequence[Path]
) -> list[str]:
    """One command writing each of the scene's visuals that prepare, prepared, to its file in
    `targets`."""
    args: list[str] = []
    preparing = _preparing(scene)
    for visual in preparing:
        args += visual.prepare_input(project_root, plan.max_pixels)
    compiled = stills_graph(plan, scene).compile()
    args += ["-filter_complex", compiled.text]
    for prepared, visual, target in zip(compiled.maps, preparing, targets, strict=True):
        args += ["-map", prepared, *visual.prepare_output(), str(target)]
    return args


def _feeds(
    plan: Plan,
    scene: ScenePlan,
    drawn: Sequence[Piece],
    root: Path | None = None,
    prepared: Sequence[Path] = (),
) -> list[tuple[list[Piece], list[list[str]]]]:
    """For each visual, in order: the pieces drawn from it and the inputs it is read from
    (`prepared`: the prepared files of the visuals that prepare, in order)."""
    files = iter(prepared)
    feeds = []
    for visual in scene.visuals:
        uses = [p for p in drawn if scene.visual(scene.shots[p.shot]) is visual]
        made = next(files, None) if visual.prepares else None
        feeds.append((uses, visual.inputs(root, made, plan, scene, uses)))
    return feeds


def scene_graph(
    plan: Plan,
    scene: ScenePlan,
    span: tuple[int, int] | None = None,
    work: Path | None = None,
) -> Graph:
    """The graph of a scene clip, fed by its visuals' inputs (`Visual.inputs`, in order); its
    one output has exactly `scene.frames` frames, or with `span` (a chunk's frames [first,
    end) of the scene) exactly those frames, the same pixels as the whole scene's graph draws
    there. Its layers draw from their files in `work` (the stages' work folder).

    Every piece of a shot (the head that fades in, the body, the tail that fades out) is drawn
    from the prepared input by its own filters: only single stills are split, never a stream
    of frames. Splitting the frame stream of a shot (and trimming each branch) queued the
    frames one branch had not asked for yet: about 25 MB more at 1080p for half-second fades.
    A video clip's frames are a stream by nature: each shot's are read once and split into its
    pieces, which follow one another, so a branch queues at most a fade's frames.
    """
    graph = Graph()
    drawn = pieces(plan, scene, span)
    sources: dict[Piece, Stream] = {}
    index = 0
    for visual, (uses, inputs) in zip(scene.visuals, _feeds(plan, scene, drawn), strict=True):
        fed = [graph.input(index + n, "v") for n in range(len(inputs))]
        index += len(inputs)
        sources.update(zip(uses, visual.sources(graph, fed, plan, scene, uses), strict=True))
    streams = []
    for piece in drawn:
        shot = scene.shots[piece.shot]
        # zoompan's output aspect drifts from 1:1 with the crop; concat wants every piece alike.
        filters = (*scene.visual(shot).draw(shot, piece, plan), Filter.of("setsar", 1))
        streams.append((piece, graph.chain(sources[piece], filters)))
    picture = _join(graph, plan, streams)
    if scene.layers and work is None:
        raise ValueError(f"scene {scene.label} has layers: their work folder is needed")
    for layer in scene.layers:
        assert work is not None
        picture = layer.apply(graph, picture, work, plan, scene, span[0] if span else 0)
    graph.output(graph.chain(picture, _tags(plan.encoder)))
    return graph


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
    prepared: Sequence[Path],
    *,
    span: tuple[int, int] | None = None,
    work: Path | None = None,
    root: Path | None = None,
) -> list[str]:
    """The inputs and graph of a scene clip (or of its chunk `span`), up to its mapped output:
    what feeds the encoder. `prepared`: the prepared file of each visual that prepares, in
    order; `root`: the project's, which the others (clips) are read from."""
    args: list[str] = []
    drawn = pieces(plan, scene, span)
    for _uses, inputs in _feeds(plan, scene, drawn, root, prepared):
        for options in inputs:
            args += options
    compiled = scene_graph(plan, scene, span, work).compile()
    (video,) = compiled.maps
    return [*args, "-filter_complex", compiled.text, "-map", video]


def scene_args(
    plan: Plan,
    scene: ScenePlan,
    prepared: Sequence[Path],
    out: Path,
    *,
    span: tuple[int, int] | None = None,
    work: Path | None = None,
    root: Path | None = None,
) -> list[str]:
    """The whole scene-clip command: its graph encoded with the plan's encoder, video only;
    its layers' files are in `work`. With `span`, the chunk of the clip that is frames
    [first, end) of the scene."""
    first, end = span if span is not None else (0, scene.frames)
    return [
        *scene_source_args(plan, scene, prepared, span=span, work=work, root=root),
        "-an",
        *video_codec_args(plan.encoder),
        "-frames:v",
        str(end - first),
        *clip_timing_args(plan.fps),
        "-f",
        "mp4",
        str(out),
    ]
