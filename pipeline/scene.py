"""The FFmpeg commands of one scene clip, built as data (argument lists) from the plan.

Two commands. The first prepares the scene's stills: each distinct image decoded once, rotated
per EXIF, fitted and scaled to the size the motion needs, and written as one raw yuv420p frame.
The second draws and encodes the clip from those frames; only zoompan, loop and xfade run per
frame. Preparing in a process of its own frees the decoded originals (18 MB for a 4000×3000
JPEG, plus the scaler's buffers) before libx264 starts filling its lookahead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.motion import oversampled, zoompan_filter
from pipeline.plan import ImageInfo, Plan, ScenePlan, ShotPlan

# EXIF orientation → filters that turn the stored picture upright.
_ORIENT = {
    1: "",
    2: "hflip",
    3: "hflip,vflip",
    4: "vflip",
    5: "transpose=cclock_flip",
    6: "transpose=clock",
    7: "transpose=clock_flip",
    8: "transpose=cclock",
}
# The contain background: a small blurred, darkened cover of the same image.
_BG_SHRINK = 8
_BG_DARKEN = "eq=brightness=-0.12:saturation=0.8"
_RAW = ("-pix_fmt", "yuv420p")
_TO_OUTPUT_COLOURS = "out_color_matrix=bt709:out_range=tv"
# FFmpeg 7+ encoders take colour tags from the frames, so the graph's last filter sets them
# (the -color_* output options below cover older builds).
_TAGS = "setsar=1,setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709"


def video_codec_args(plan: Plan, threads: int = 0, lookahead: int = 0) -> list[str]:
    """Identical for every clip, so the concat demuxer can join them with `-c copy`.

    `lookahead` caps x264's rc-lookahead, which is most of its memory: each frame in it holds
    about 7 MB at 1080p, and preset medium looks 40 frames ahead (about 550 MB in all).
    """
    tuning = ["-rc-lookahead", str(lookahead)] if lookahead else []
    return [
        "-c:v",
        "libx264",
        "-preset",
        plan.preset,
        "-crf",
        str(plan.crf),
        "-profile:v",
        "high",  # ultrafast still signals Constrained Baseline: x264 disables High features
        "-pix_fmt",
        "yuv420p",
        "-color_range",
        "tv",
        "-colorspace",
        "bt709",
        "-color_primaries",
        "bt709",
        "-color_trc",
        "bt709",
        "-threads",
        str(threads),
        *tuning,
    ]


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _prepare(image: ImageInfo, fit: str, width: int, height: int, tag: str) -> str:
    """Filters that turn one decoded image into one `width`×`height` yuv420p frame (tv, bt709).

    `tag` keeps the link labels of a contain graph apart from those of the scene's other images.
    """
    steps = [f for f in (_ORIENT.get(image.orientation, ""),) if f]
    cover = (
        f"scale={width}:{height}:force_original_aspect_ratio=increase:{_TO_OUTPUT_COLOURS},"
        f"crop={width}:{height}"
    )
    if fit == "contain":
        bw, bh = _even(width / _BG_SHRINK), _even(height / _BG_SHRINK)
        rotated = ",".join(steps) + "," if steps else ""
        return (
            f"{rotated}split=2[bgsrc{tag}][fgsrc{tag}];"
            f"[bgsrc{tag}]scale={bw}:{bh}:force_original_aspect_ratio=increase:{_TO_OUTPUT_COLOURS},"
            f"crop={bw}:{bh},gblur=sigma={max(1.0, bw / 40):.2f},{_BG_DARKEN},"
            f"scale={width}:{height},format=yuv420p[bg{tag}];"
            f"[fgsrc{tag}]scale={width}:{height}:force_original_aspect_ratio=decrease:"
            f"{_TO_OUTPUT_COLOURS},format=yuv420p[fg{tag}];"
            f"[bg{tag}][fg{tag}]overlay=(W-w)/2:(H-h)/2:format=yuv420,format=yuv420p"
        )
    return ",".join([*steps, cover, "format=yuv420p"])


def _pieces(plan: Plan, scene: ScenePlan) -> list[tuple[str, int, int, int]]:
    """(label, shot, first, end): the frame ranges each shot is drawn in.

    Shot n renders [0, frames + overlap): its first `fade` frames (after the first shot) fade in
    over the previous shot's tail, its last `overlap` frames fade out under the next one's head.
    """
    fade = plan.xfade_frames
    pieces = []
    for n, shot in enumerate(scene.shots):
        head = fade if n > 0 else 0
        for label, first, end in (
            (f"h{n}", 0, head),
            (f"b{n}", head, shot.frames),
            (f"t{n}", shot.frames, shot.frames + shot.overlap),
        ):
            if end > first:
                pieces.append((label, n, first, end))
    return pieces


def still_size(plan: Plan, scene: ScenePlan) -> tuple[int, int]:
    """Motion is per scene: either every shot zooms (from oversampled stills) or none does."""
    moving = any(not shot.move.still for shot in scene.shots)
    return oversampled(plan.width, plan.height) if moving else (plan.width, plan.height)


def stills_args(
    project_root: Path, plan: Plan, scene: ScenePlan, targets: Sequence[Path]
) -> list[str]:
    """One command writing each of `scene.images`, prepared, to its raw frame in `targets`."""
    width, height = still_size(plan, scene)
    args: list[str] = []
    for image in scene.images:
        # We rotate by the EXIF tag: FFmpeg versions disagree on whether stills autorotate.
        args += ["-noautorotate", "-i", str(project_root / image.path)]
    graph = ";".join(
        f"[{index}:v]{_prepare(image, scene.fit, width, height, str(index))}[still{index}]"
        for index, image in enumerate(scene.images)
    )
    args += ["-filter_complex", graph]
    for index, target in enumerate(targets):
        args += ["-map", f"[still{index}]", "-frames:v", "1", *_RAW, "-f", "rawvideo"]
        args.append(str(target))
    return args


def _piece_filter(shot: ShotPlan, first: int, end: int, plan: Plan) -> str:
    if shot.move.still:
        # Repeat the already-fitted frame: no per-frame scaling at all. The input is read at
        # -framerate fps, so N counts frames; an `fps` filter here would drop the last one.
        return f"loop=loop={end - first - 1}:size=1,setpts=N"
    length = shot.frames + shot.overlap
    return zoompan_filter(
        shot.move, length, plan.width, plan.height, plan.fps, first=first, count=end - first
    )


def scene_graph(plan: Plan, scene: ScenePlan) -> str:
    """filter_complex text producing `[v]`: exactly `scene.frames` frames.

    Every piece of a shot (the head that fades in, the body, the tail that fades out) is drawn
    from the prepared still by its own zoompan or loop: only single stills are split, never a
    stream of frames. Splitting the frame stream of a shot (and trimming each branch) queued the
    frames one branch had not asked for yet: about 25 MB more at 1080p for half-second fades.
    """
    parts: list[str] = []
    pieces = _pieces(plan, scene)
    uses: dict[str, list[str]] = {}
    for label, n, _, _ in pieces:
        uses.setdefault(scene.shots[n].image, []).append(label)
    for input_index, image in enumerate(scene.images):
        labels = uses.get(image.path, [])
        if labels:
            outs = "".join(f"[p{label}]" for label in labels)
            parts.append(f"[{input_index}:v]split={len(labels)}{outs}")
    for label, n, first, end in pieces:
        # zoompan's output aspect drifts from 1:1 with the crop; concat wants every piece alike.
        parts.append(
            f"[p{label}]{_piece_filter(scene.shots[n], first, end, plan)},setsar=1[{label}]"
        )
    parts.append(_join(plan, [label for label, *_ in pieces]))
    return ";".join(parts)


def _join(plan: Plan, labels: list[str]) -> str:
    """The pieces in order into `[v]`: each tail cross-faded with the next head, then concat.

    xfade works in 4:4:4, so FFmpeg converts every frame it is given there and back; it is given
    only the overlapping frames.
    """
    if len(labels) == 1:
        return f"[{labels[0]}]{_TAGS}[v]"
    steps: list[str] = []
    joined: list[str] = []
    for label in labels:
        if label.startswith("h"):
            tail, n = joined.pop(), label[1:]
            if not tail.startswith("[t"):
                raise ValueError(f"shot {n} fades in but the shot before it has no tail")
            steps.append(
                f"{tail}[{label}]xfade=transition=fade:duration={plan.xfade_frames / plan.fps:.6f}"
                f":offset=0,format=yuv420p[f{n}]"
            )
            joined.append(f"[f{n}]")
        else:
            joined.append(f"[{label}]")
    steps.append(f"{''.join(joined)}concat=n={len(joined)}:v=1:a=0,{_TAGS}[v]")
    return ";".join(steps)


def scene_source_args(plan: Plan, scene: ScenePlan, stills: Sequence[Path]) -> list[str]:
    """The inputs and graph of a scene clip, up to its `[v]` output: what feeds the encoder."""
    width, height = still_size(plan, scene)
    args: list[str] = []
    for still in stills:
        args += ["-f", "rawvideo", *_RAW, "-video_size", f"{width}x{height}"]
        args += ["-framerate", str(plan.fps), "-i", str(still)]
    return [*args, "-filter_complex", scene_graph(plan, scene), "-map", "[v]"]


def scene_args(
    plan: Plan,
    scene: ScenePlan,
    stills: Sequence[Path],
    out: Path,
    *,
    threads: int = 0,
    lookahead: int = 0,
) -> list[str]:
    return [
        *scene_source_args(plan, scene, stills),
        "-an",
        *video_codec_args(plan, threads, lookahead),
        "-frames:v",
        str(scene.frames),
        "-f",
        "mp4",
        str(out),
    ]
