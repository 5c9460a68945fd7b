"""The FFmpeg graph of one scene clip, built as data (an argument list) from the plan.

Each distinct image is an input decoded once, rotated per EXIF, fitted and scaled once to the
size the motion needs, and split when the scene cycles it; only zoompan and xfade run per frame.
"""

from __future__ import annotations

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
_TO_OUTPUT_COLOURS = "out_color_matrix=bt709:out_range=tv"
# FFmpeg 7+ encoders take colour tags from the frames, so the graph's last filter sets them
# (the -color_* output options below cover older builds).
_TAGS = "setsar=1,setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709"


def video_codec_args(plan: Plan, threads: int = 0) -> list[str]:
    """Identical for every clip, so the concat demuxer can join them with `-c copy`."""
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
    ]


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _prepare(image: ImageInfo, fit: str, width: int, height: int) -> str:
    """Filters that turn one decoded image into one `width`×`height` yuv420p frame (tv, bt709)."""
    steps = [f for f in (_ORIENT.get(image.orientation, ""),) if f]
    cover = (
        f"scale={width}:{height}:force_original_aspect_ratio=increase:{_TO_OUTPUT_COLOURS},"
        f"crop={width}:{height}"
    )
    if fit == "contain":
        bw, bh = _even(width / _BG_SHRINK), _even(height / _BG_SHRINK)
        rotated = ",".join(steps) + "," if steps else ""
        return (
            f"{rotated}split=2[bgsrc][fgsrc];"
            f"[bgsrc]scale={bw}:{bh}:force_original_aspect_ratio=increase:{_TO_OUTPUT_COLOURS},"
            f"crop={bw}:{bh},gblur=sigma={max(1.0, bw / 40):.2f},{_BG_DARKEN},"
            f"scale={width}:{height},format=yuv420p[bg];"
            f"[fgsrc]scale={width}:{height}:force_original_aspect_ratio=decrease:"
            f"{_TO_OUTPUT_COLOURS},format=yuv420p[fg];"
            f"[bg][fg]overlay=(W-w)/2:(H-h)/2:format=yuv420,format=yuv420p"
        )
    return ",".join([*steps, cover, "format=yuv420p"])


def _shot_filter(shot: ShotPlan, plan: Plan) -> str:
    frames = shot.frames + shot.overlap
    if shot.move.still:
        # Repeat the already-fitted frame: no per-frame scaling at all. The input is read at
        # -framerate fps, so N counts frames; an `fps` filter here would drop the last one.
        return f"loop=loop={frames - 1}:size=1,setpts=N"
    return zoompan_filter(shot.move, frames, plan.width, plan.height, plan.fps)


def scene_graph(plan: Plan, scene: ScenePlan) -> str:
    """filter_complex text producing `[v]`: exactly `scene.frames` frames."""
    parts: list[str] = []
    uses: dict[str, list[int]] = {}
    for number, shot in enumerate(scene.shots):
        uses.setdefault(shot.image, []).append(number)
    # Motion is per scene: either every shot zooms (from oversampled stills) or none does.
    moving = any(not shot.move.still for shot in scene.shots)
    width, height = oversampled(plan.width, plan.height) if moving else (plan.width, plan.height)
    for input_index, image in enumerate(scene.images):
        shots = uses.get(image.path, [])
        if not shots:
            continue
        prepared = _prepare(image, scene.fit, width, height)
        outs = "".join(f"[p{n}]" for n in shots)
        split = f",split={len(shots)}" if len(shots) > 1 else ""
        parts.append(f"[{input_index}:v]{prepared}{split}{outs}")
    for number, shot in enumerate(scene.shots):
        # zoompan's output aspect drifts from 1:1 with the crop; concat wants every shot alike.
        parts.append(f"[p{number}]{_shot_filter(shot, plan)},setsar=1[s{number}]")
    parts.append(_join_shots(plan, scene))
    return ";".join(parts)


def _join_shots(plan: Plan, scene: ScenePlan) -> str:
    """Shots joined into `[v]`, cross-fading for `plan.xfade_frames` at each boundary.

    xfade works in 4:4:4, so FFmpeg converts every frame it is given there and back; it is
    given only the overlapping frames (the outgoing shot's tail and the incoming shot's head)
    and everything else goes straight to concat.
    """
    count = len(scene.shots)
    if count == 1:
        return f"[s0]{_TAGS}[v]"
    fade = plan.xfade_frames
    if fade == 0:
        inputs = "".join(f"[s{n}]" for n in range(count))
        return f"{inputs}concat=n={count}:v=1:a=0,{_TAGS}[v]"
    steps: list[str] = []
    pieces: list[str] = []
    for n, shot in enumerate(scene.shots):
        # Shot n renders [0, frames + overlap): its first `fade` frames (after the first shot)
        # fade in over the previous tail, its last `overlap` frames fade out under the next.
        head = fade if n > 0 else 0
        parts = {
            f"h{n}": (0, head),
            f"b{n}": (head, shot.frames),
            f"t{n}": (shot.frames, shot.frames + shot.overlap),
        }
        parts = {label: bounds for label, bounds in parts.items() if bounds[1] > bounds[0]}
        outs = "".join(f"[{label}in]" for label in parts)
        steps.append(f"[s{n}]split={len(parts)}{outs}" if len(parts) > 1 else f"[s{n}]null{outs}")
        for label, (first, end) in parts.items():
            steps.append(
                f"[{label}in]trim=start_frame={first}:end_frame={end},setpts=PTS-STARTPTS[{label}]"
            )
        if n > 0:
            steps.append(
                f"[t{n - 1}][h{n}]xfade=transition=fade:duration={fade / plan.fps:.6f}:offset=0,"
                f"format=yuv420p[f{n}]"
            )
            pieces.append(f"[f{n}]")
        if f"b{n}" in parts:
            pieces.append(f"[b{n}]")
    steps.append(f"{''.join(pieces)}concat=n={len(pieces)}:v=1:a=0,{_TAGS}[v]")
    return ";".join(steps)


def scene_source_args(project_root: Path, plan: Plan, scene: ScenePlan) -> list[str]:
    """The inputs and graph of a scene clip, up to its `[v]` output: what feeds the encoder."""
    args: list[str] = []
    for image in scene.images:
        # We rotate by the EXIF tag: FFmpeg versions disagree on whether stills autorotate.
        args += ["-noautorotate", "-framerate", str(plan.fps), "-i", str(project_root / image.path)]
    return [*args, "-filter_complex", scene_graph(plan, scene), "-map", "[v]"]


def scene_args(
    project_root: Path, plan: Plan, scene: ScenePlan, out: Path, threads: int
) -> list[str]:
    return [
        *scene_source_args(project_root, plan, scene),
        "-an",
        *video_codec_args(plan, threads),
        "-frames:v",
        str(scene.frames),
        "-f",
        "mp4",
        str(out),
    ]
