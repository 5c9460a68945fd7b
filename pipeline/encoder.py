"""The video encoder's settings: one value in the plan, so the plan alone decides a clip's bytes.

Every scene clip is encoded with the same settings, which is what lets the concat demuxer join
them with `-c copy`. threads and lookahead belong here too: x264's output depends on both.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Encoder:
    preset: str = "medium"
    crf: int = 18
    threads: int = 0  # libx264 threads; 0: x264's own choice
    lookahead: int = 0  # libx264 rc-lookahead in frames; 0: the preset's own
    codec: str = "libx264"
    # ultrafast alone would signal Constrained Baseline: x264 disables the High features there.
    profile: str = "high"
    pix_fmt: str = "yuv420p"
    color_range: str = "tv"
    colorspace: str = "bt709"
    color_primaries: str = "bt709"
    color_trc: str = "bt709"


def video_codec_args(encoder: Encoder) -> list[str]:
    """The output options that encode a clip's video, from `encoder` alone.

    `lookahead` caps x264's rc-lookahead, which is most of its memory: each frame in it holds
    about 7 MB at 1080p, and preset medium looks 40 frames ahead (about 550 MB in all).
    """
    tuning = ["-rc-lookahead", str(encoder.lookahead)] if encoder.lookahead else []
    return [
        *("-c:v", encoder.codec),
        *("-preset", encoder.preset),
        *("-crf", str(encoder.crf)),
        *("-profile:v", encoder.profile),
        *("-pix_fmt", encoder.pix_fmt),
        *("-color_range", encoder.color_range),
        *("-colorspace", encoder.colorspace),
        *("-color_primaries", encoder.color_primaries),
        *("-color_trc", encoder.color_trc),
        *("-threads", str(encoder.threads)),
        *tuning,
    ]


def clip_timing_args(fps: int) -> list[str]:
    """The MP4 options of a clip: its video track and its movie timed in frames (1/fps).

    Left to itself the muxer times the movie, and so the edit list that says where the
    track ends, in milliseconds, and a clip of a length that is no whole number of them
    (89 frames at 30 fps: 2966.67 ms) was cut at 2966 ms when its last frames were B-frames.
    The concat demuxer starts each clip where the one before ends, so every frame after
    such a clip came 0.65 ms early (502 ticks after its predecessor in 1/15360). In frames,
    every length is exact, and the join's offsets (microseconds) round onto whole frames.
    """
    return ["-video_track_timescale", str(fps), "-movie_timescale", str(fps)]
