"""Video clips made by our FFmpeg for the clip tests: sources whose frames say which they are,
projects that use them, and decoding what a render made of them."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from pipeline.ffmpeg import Runner
from pipeline.options import RenderOptions
from pipeline.project import ProjectDir
from pipeline.render import render

# Frame n of a counting source is a flat grey of luma 16 + STEP·(n mod LEVELS): told apart
# after a lossy encode and a rescale.
STEP = 4
LEVELS = 55


def run(ffmpeg: str, *args: str) -> None:
    subprocess.run([ffmpeg, "-hide_banner", "-v", "error", "-y", *args], check=True)


def counting(
    ffmpeg: str,
    out: Path,
    *,
    fps: int | str = 25,
    seconds: float = 4.0,
    size: str = "64x36",
    codec: tuple[str, ...] = ("-c:v", "libx264", "-qp", "0", "-preset", "ultrafast"),
    extra: tuple[str, ...] = (),
    sound: bool = False,
) -> Path:
    """A clip whose frame n is grey level `level(n)`: flat frames, lossless; with `sound`, a
    440 Hz tone beside it."""
    graph = (
        f"color=c=black:s={size}:r={fps}:d={seconds},format=yuv420p,"
        f"geq=lum='16+{STEP}*mod(N\\,{LEVELS})':cb=128:cr=128"
    )
    tone = ("-f", "lavfi", "-i", f"sine=f=440:d={seconds}", "-c:a", "aac") if sound else ()
    run(ffmpeg, "-f", "lavfi", "-i", graph, *tone, *codec, "-g", "50", *extra, str(out))
    return out


def peak_db(video: Path, start: float = 0.0, end: float | None = None) -> float:
    """The largest sample of the video's audio between `start` and `end` seconds, dBFS."""
    with av.open(str(video)) as container:
        stream = container.streams.audio[0]
        peak = 0.0
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base) if frame.pts is not None else 0.0
            if t < start or (end is not None and t >= end):
                continue
            peak = max(peak, float(np.abs(frame.to_ndarray()).max()))
    return 20 * float(np.log10(peak)) if peak > 0 else -float("inf")


def level(frame: int) -> int:
    return 16 + STEP * (frame % LEVELS)


def frame_of(luma: float) -> int:
    """The counting source's frame number (mod LEVELS) a grey level shows."""
    return round((luma - 16) / STEP) % LEVELS


def vfr(ffmpeg: str, out: Path, seconds: float = 21.0) -> Path:
    """A variable-frame-rate counting clip: frame n at t(n), steps of 1/50 to 1/10 s."""
    made = counting(ffmpeg, out.with_suffix(".cfr.mp4"), fps=50, seconds=seconds)
    # Keep frames whose number is not 1 or 2 (mod 7), leaving gaps of 20, 60 and 20 ms.
    keep = "not(eq(mod(n\\,7)\\,1))*not(eq(mod(n\\,7)\\,2))"
    run(
        ffmpeg,
        *("-i", str(made), "-vf", f"select='{keep}'", "-fps_mode", "passthrough"),
        *("-c:v", "libx264", "-qp", "0", "-preset", "ultrafast", "-enc_time_base", "1/1000"),
        str(out),
    )
    return out


def source_times(path: Path) -> list[tuple[Fraction, int]]:
    """Each frame of a counting clip: (its time, the number it shows)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [
            (Fraction(f.pts) * stream.time_base, frame_of(luma_plane(f).mean()))
            for f in container.decode(stream)
        ]


def shown_at(times: list[tuple[Fraction, int]], slot: int, fps: int, start: Fraction) -> int:
    """What the grid frame `slot` of a clip placed from `start` must show: the last source
    frame whose time (from `start`) rounds to that frame or before, by the documented rule."""
    chosen = times[0][1]
    for t, shown in times:
        if _round_near((t - start) * fps) <= slot:
            chosen = shown
    return chosen


def _round_near(value: Fraction) -> int:
    whole = int(value // 1)
    return whole + 1 if value - whole >= Fraction(1, 2) else whole


def luma_plane(frame: av.VideoFrame) -> np.ndarray:
    """The Y plane as stored (tv range: 16..235), not converted to full-range grey."""
    return frame.reformat(format="yuv420p").to_ndarray()[: frame.height].astype(np.float64)


def lumas(video: Path) -> list[float]:
    """The mean luma of the centre of every decoded frame of `video`."""
    with av.open(str(video)) as container:
        out = []
        for frame in container.decode(video=0):
            grey = luma_plane(frame)
            h, w = grey.shape
            out.append(float(grey[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].mean()))
        return out


def gray_frames(video: Path, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    with av.open(str(video)) as container:
        frames = []
        for frame in container.decode(video=0):
            if size is not None:
                frame = frame.reformat(width=size[0], height=size[1])
            frames.append(frame.to_ndarray(format="gray").astype(np.float64))
        return frames


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def project_with(
    root: Path, scenes: list[dict[str, Any]], files: dict[str, Path] | None = None
) -> ProjectDir:
    """A project holding `files` ('videos/a.mp4': source) and the spec `scenes`."""
    project = ProjectDir(root)
    project.create()
    for where, source in (files or {}).items():
        folder, name = where.split("/")
        project.asset(folder, name).write_bytes(source.read_bytes())
    project.spec_file.write_text(json.dumps({"scenes": scenes}), "utf-8")
    return project


def small_options(**given: Any) -> RenderOptions:
    base: dict[str, Any] = {
        "resolution": "320x180",
        "fps": 30,
        "preset": "ultrafast",
        "crf": 0,
        "xfade": 0,
        "cache": False,
        "loudness": False,
    }
    return RenderOptions.model_validate({**base, **given})


def render_here(project: ProjectDir, ffmpeg: str, **options: Any) -> Path:
    return render(project, small_options(**options), "video.mp4", Runner(ffmpeg))
