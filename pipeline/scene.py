"""The FFmpeg commands of one scene clip, built as data (argument lists) from the plan.

Two commands. The first prepares the scene's visuals (pipeline/visuals/: each still decoded
once, turned upright, fitted and scaled to the size the motion needs, written as one raw
frame). The second draws each shot's pieces from what was prepared, joins them with their
cross-fades, applies the scene's layers in order (pipeline/layers/: burnt-in captions) and
encodes the clip. Preparing in a process of its own frees the decoded originals (18 MB for a
4000×3000 JPEG, plus the scaler's buffers) before libx264 starts filling its lookahead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline import transitions
from pipeline.chunks import fades
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
    """
    graph = Graph()
    picture = draw_scene(graph, plan, scene, span, work)
    graph.output(graph.chain(picture, _tags(plan.encoder)))
    return graph


def draw_scene(
    graph: Graph,
    plan: Plan,
    scene: ScenePlan,
    span: tuple[int, int] | None = None,
    work: Path | None = None,
    first_input: int = 0,
) -> Stream:
    """Frames [first, end) of the scene (`span`; None: all of them) drawn into `graph`, fed
    by its prepared visuals as inputs `first_input` + n, its layers applied: the picture
    before its colour tags.

    Every piece of a shot (the head that fades in, the body, the tail that fades out) is drawn
    from the prepared input by its own filters: only single stills are split, never a stream
    of frames. Splitting the frame stream of a shot (and trimming each branch) queued the
    frames one branch had not asked for yet: about 25 MB more at 1080p for half-second fades.
    A span that cuts a cross-fade (a transition's edge may) is drawn with the whole fade, then
    trimmed: a fade's frames depend on where it is in the fade. A video clip's frames are a
    stream by nature: each shot's are read once and split into its pieces, which follow one
    another, so a branch queues at most a fade's frames.
    """
    drawn_span = _around_fades(plan, scene, span)
    drawn = pieces(plan, scene, drawn_span)
    sources: dict[Piece, Stream] = {}
    index = first_input
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
    if span is not None and drawn_span != span:
        assert drawn_span is not None
        picture = graph.chain(
            picture,
            (
                Filter.of(
                    "trim", start_frame=span[0] - drawn_span[0], end_frame=span[1] - drawn_span[0]
                ),
                Filter.of("setpts", "PTS-STARTPTS"),
            ),
        )
    if scene.layers and work is None:
        raise ValueError(f"scene {scene.label} has layers: their work folder is needed")
    for layer in scene.layers:
        assert work is not None
        picture = layer.apply(graph, picture, work, plan, scene, span[0] if span else 0)
    return picture


def _around_fades(
    plan: Plan, scene: ScenePlan, span: tuple[int, int] | None
) -> tuple[int, int] | None:
    """`span` widened to the whole of any cross-fade its ends fall inside."""
    if span is None:
        return None
    first, end = span
    for start, stop in fades(plan, scene):
        if start < first < stop:
            first = start
        if start < end < stop:
            end = stop
    return first, end


def _inputs(
    plan: Plan,
    scene: ScenePlan,
    span: tuple[int, int] | None,
    root: Path | None,
    prepared: Sequence[Path],
) -> list[list[str]]:
    """The input options of the scene's drawing of `span`, in the order `draw_scene` numbers
    them (the same pieces: a span widened to the cross-fades it cuts)."""
    drawn = pieces(plan, scene, _around_fades(plan, scene, span))
    feeds = _feeds(plan, scene, drawn, root, prepared)
    return [options for _, inputs in feeds for options in inputs]


def transition_args(
    plan: Plan,
    index: int,
    window: tuple[int, int],
    prepared: Mapping[int, Sequence[Path]],
    out: Path,
    work: Path | None = None,
    root: Path | None = None,
) -> list[str]:
    """The command of frames [first, end) of the transition from scene `index` into the next
    (`pipeline.transitions`), encoded like any scene clip: the outgoing scene's last frames and
    the incoming one's first, each drawn by its own graph (`prepared`: each scene's prepared
    visuals, by scene index), blended."""
    outgoing, incoming = plan.scenes[index], plan.scenes[index + 1]
    transition = outgoing.transition
    if transition is None:
        raise ValueError(f"scene {outgoing.label} has no transition into the next")
    out_span = (outgoing.frames - transition.before, outgoing.frames)
    into = (0, transition.after)
    outgoing_inputs = _inputs(plan, outgoing, out_span, root, prepared[outgoing.index])
    incoming_inputs = _inputs(plan, incoming, into, root, prepared[incoming.index])
    args = [option for options in (*outgoing_inputs, *incoming_inputs) for option in options]
    graph = Graph()
    last = draw_scene(graph, plan, outgoing, out_span, work)
    first = draw_scene(graph, plan, incoming, into, work, first_input=len(outgoing_inputs))
    picture = transitions.draw(graph, last, first, transition, plan.fps, window)
    graph.output(graph.chain(picture, _tags(plan.encoder)))
    compiled = graph.compile()
    (video,) = compiled.maps
    return [
        *args,
        *("-filter_complex", compiled.text, "-map", video, "-an"),
        *video_codec_args(plan.encoder),
        *("-frames:v", str(window[1] - window[0])),
        *clip_timing_args(plan.fps),
        *("-f", "mp4", str(out)),
    ]


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
    args = [option for options in _inputs(plan, scene, span, root, prepared) for option in options]
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
