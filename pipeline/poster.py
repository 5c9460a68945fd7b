"""Poster frames: a JPEG of one frame, decoded from a scene clip already encoded.

Each scene's build makes its `scene_NN.jpg`, and FINALIZE the video's `<name>.jpg`, this way:
one frame decoded in this process (PyAV), converted from the clip's BT.709 limited range to
full-range RGB and written by Pillow. Nothing is encoded a second time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import PIL
from av.video.reformatter import ColorRange, Colorspace

from pipeline.plan import Plan, ScenePlan
from pipeline.timeline import exact, round_half_up

JPEG_QUALITY = 90


def poster_name(output_name: str) -> str:
    """The poster published beside a video: `demo.mp4` → `demo.jpg`."""
    return Path(output_name).with_suffix(".jpg").name


def scene_poster_frame(scene: ScenePlan) -> int:
    """The frame of a scene's clip its poster shows: its first shot's visual seen best, as
    its kind says (a still: whole), or the nearest frame no transition draws over. The first
    shot never shows a cross-fade before its last frame, so this frame is one picture, clean.
    """
    shot = scene.shots[0]
    frame = scene.visual(shot).poster_frame(shot)
    # Clear of the transitions drawn over its edges: a frame of its own clip, its body.
    first, end = scene.body
    return min(max(frame, first), end - 1)


def poster_at(plan: Plan, seconds: float | None) -> tuple[int, int]:
    """(scene index, frame within its clip) of the video's poster: at `seconds` into the
    video (clamped to its last frame), or else the first scene's poster frame."""
    if seconds is None:
        return 0, scene_poster_frame(plan.scenes[0])
    frame = min(round_half_up(exact(seconds) * plan.fps), plan.total_frames - 1)
    scene = next(s for s in plan.scenes if s.start_frame <= frame < s.end_frame)
    return scene.index, frame - scene.start_frame


def poster_key(clip_key: str, frame: int) -> str:
    """The render cache's name for frame `frame` of the clip `clip_key` as a poster: what
    decodes it (PyAV) and writes the JPEG (Pillow, at JPEG_QUALITY) are part of it."""
    text = f"poster|{clip_key}|{frame}|{JPEG_QUALITY}|av {av.__version__}|pillow {PIL.__version__}"
    return hashlib.sha256(text.encode()).hexdigest()


def write_frame_jpeg(clip: Path, frame: int, target: Path) -> Path:
    """Decode frame `frame` (from 0) of `clip`'s video and write it to `target` as a JPEG
    (callers give a temp name and rename it into place)."""
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, decoded in enumerate(container.decode(stream)):
            if index == frame:
                picture = decoded.reformat(
                    format="rgb24",
                    src_colorspace=Colorspace.ITU709,
                    dst_colorspace=Colorspace.ITU709,
                    src_color_range=ColorRange.MPEG,
                    dst_color_range=ColorRange.JPEG,
                ).to_image()
                break
        else:
            raise ValueError(f"{clip.name} has no frame {frame}")
    picture.save(target, format="JPEG", quality=JPEG_QUALITY)
    return target
