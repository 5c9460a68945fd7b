"""Probing media with PyAV (libavformat in-process; no ffprobe assumed)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

_RANGES = {1: "tv", 2: "pc"}
_BT709 = 1


def _bt709(value: int) -> str:
    return "bt709" if value == _BT709 else str(value)


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    profile: str | None
    pix_fmt: str | None
    width: int
    height: int
    fps: Fraction
    frames: int  # from the container, or decoded one by one when asked
    duration: float
    color_range: str
    color_primaries: str
    color_trc: str
    colorspace: str


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    sample_rate: int
    channels: int
    duration: float


@dataclass(frozen=True)
class MediaInfo:
    format: str
    duration: float
    video: VideoInfo | None
    audio: AudioInfo | None


def _stream_seconds(stream: av.stream.Stream, fallback: float) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return fallback


def probe(path: Path, *, count_frames: bool = False) -> MediaInfo:
    """Streams, codecs and lengths of a media file; `count_frames` decodes every video frame."""
    with av.open(str(path)) as container:
        total = (container.duration or 0) / av.time_base
        video = audio = None
        if container.streams.video:
            vs = container.streams.video[0]
            cc = vs.codec_context
            frames = vs.frames
            if count_frames or not frames:
                frames = sum(1 for _ in container.decode(vs))
            rate = vs.average_rate or vs.guessed_rate or Fraction(0)
            video = VideoInfo(
                codec=cc.name,
                profile=cc.profile,
                pix_fmt=cc.pix_fmt,
                width=cc.width,
                height=cc.height,
                fps=Fraction(rate),
                frames=frames,
                duration=_stream_seconds(vs, total),
                color_range=_RANGES.get(cc.color_range, "unknown"),
                color_primaries=_bt709(cc.color_primaries),
                color_trc=_bt709(cc.color_trc),
                colorspace=_bt709(cc.colorspace),
            )
        if container.streams.audio:
            aud = container.streams.audio[0]
            acc = aud.codec_context
            audio = AudioInfo(
                codec=acc.name,
                sample_rate=acc.sample_rate,
                channels=acc.channels,
                duration=_stream_seconds(aud, total),
            )
        return MediaInfo(container.format.name, total, video, audio)


def audio_seconds(path: Path) -> float:
    """Exact length of the first audio stream, by decoding it (headers of MP3s can be wrong)."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError("has no audio stream")
        stream = container.streams.audio[0]
        samples = 0
        rate = 0
        for frame in container.decode(stream):
            samples += frame.samples
            rate = frame.sample_rate
        if samples == 0 or rate == 0:
            raise ValueError("has no decodable audio")
        return samples / rate


def image_size(path: Path) -> tuple[int, int]:
    """Decode the picture once (as FFmpeg will) and return its stored width and height."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("is not an image")
        for frame in container.decode(video=0):
            return frame.width, frame.height
    raise ValueError("has no decodable picture")
