"""Probing media with PyAV (libavformat in-process; no ffprobe assumed)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

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


def video_packet_times(path: Path) -> tuple[Fraction, list[int]]:
    """The first video stream's time base and every packet's pts, in presentation order
    (the packets only: nothing is decoded)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.time_base is None:
            raise ValueError(f"{path.name}: its video stream has no time base")
        times = [packet.pts for packet in container.demux(stream) if packet.pts is not None]
        return Fraction(stream.time_base), sorted(times)


def off_grid(path: Path, fps: int) -> list[tuple[int, int, Fraction]]:
    """The video packets whose pts is not their frame number times the frame duration, as
    (frame, pts, the pts it should have) in the stream's ticks; [] when every frame n is
    at n/fps exactly."""
    time_base, times = video_packet_times(path)
    step = 1 / (fps * time_base)  # a frame's duration in ticks
    return [(n, pts, n * step) for n, pts in enumerate(times) if pts != n * step]


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


# The speech scan: 20 ms windows; a window is speech when louder than both the floor and the
# loudest window less the range; pauses shorter than the bridge do not split an interval.
_WINDOW_SECONDS = 0.02
_FLOOR_DB = -50.0
_RANGE_DB = 35.0
_BRIDGE_SECONDS = 0.3
_SHORTEST_SECONDS = 0.08
SILENT_DB = -60.0  # a sample peak at or below this is silence end to end


@dataclass(frozen=True)
class AudioScan:
    """One decode of an audio file: its exact length, sample peak and where it is not quiet."""

    seconds: float
    sample_rate: int
    channels: int
    peak_db: float  # dBFS of the largest sample, -inf for digital silence
    speech: tuple[tuple[float, float], ...]  # [start, end) seconds of sound, in order

    @property
    def silent(self) -> bool:
        return self.peak_db <= SILENT_DB


def scan_audio(path: Path) -> AudioScan:
    """Decode the first audio stream once: length, peak and the intervals that hold sound.

    ValueError when the file has no audio stream or no samples. Memory stays small however
    long the file: each decoded frame is folded into 20 ms window powers and dropped.
    """
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError("has no audio stream")
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels or 1
        scanner: _Scanner | None = None
        for frame in container.decode(stream):
            if scanner is None:
                scanner = _Scanner(frame.sample_rate, frame.layout.name)
            scanner.add(frame)
    if scanner is None or scanner.samples == 0:
        raise ValueError("has no decodable audio")
    return scanner.result(channels)


class _Scanner:
    def __init__(self, rate: int, layout: str) -> None:
        self.rate = rate
        self.window = max(1, round(rate * _WINDOW_SECONDS))
        # Packed float at the source rate and layout: the exact length and the true sample peak.
        self.resampler = av.AudioResampler(format="flt", layout=layout, rate=rate)
        self.samples = 0
        self.peak = 0.0
        self.pending = np.zeros(0, np.float64)  # per-sample power not yet in a whole window
        self.powers: list[np.ndarray] = []

    def add(self, frame: av.AudioFrame) -> None:
        for out in self.resampler.resample(frame):
            data = out.to_ndarray().reshape(-1, len(out.layout.channels))
            if data.size == 0:
                continue
            self.samples += data.shape[0]
            self.peak = max(self.peak, float(np.max(np.abs(data))))
            power = np.mean(data.astype(np.float64) ** 2, axis=1)
            self.pending = np.concatenate((self.pending, power))
            whole = len(self.pending) // self.window * self.window
            if whole:
                self.powers.append(self.pending[:whole].reshape(-1, self.window).mean(axis=1))
                self.pending = self.pending[whole:]

    def result(self, channels: int) -> AudioScan:
        peak_db = 20 * math.log10(self.peak) if self.peak > 0 else -math.inf
        powers = np.concatenate(self.powers) if self.powers else np.zeros(0)
        return AudioScan(
            seconds=self.samples / self.rate,
            sample_rate=self.rate,
            channels=channels,
            peak_db=peak_db,
            speech=_sound_intervals(powers, self.window / self.rate),
        )


def _sound_intervals(powers: np.ndarray, window: float) -> tuple[tuple[float, float], ...]:
    if powers.size == 0:
        return ()
    level = 10 * np.log10(np.maximum(powers, 1e-12))
    threshold = max(_FLOOR_DB, float(level.max()) - _RANGE_DB)
    intervals: list[list[float]] = []
    for index in np.flatnonzero(level > threshold):
        start, end = index * window, (index + 1) * window
        if intervals and start - intervals[-1][1] <= _BRIDGE_SECONDS:
            intervals[-1][1] = end
        else:
            intervals.append([start, end])
    return tuple(
        (round(float(a), 3), round(float(b), 3)) for a, b in intervals if b - a >= _SHORTEST_SECONDS
    )


def image_size(path: Path) -> tuple[int, int]:
    """Decode the picture once (as FFmpeg will) and return its stored width and height."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("is not an image")
        for frame in container.decode(video=0):
            return frame.width, frame.height
    raise ValueError("has no decodable picture")
