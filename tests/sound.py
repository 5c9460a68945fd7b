"""Helpers for the sound and caption tests: decoded samples, band levels, EBU R128 figures."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from pipeline.ffmpeg import find_ffmpeg


def decode(path: Path, stream: int = 0) -> tuple[np.ndarray, int]:
    """The audio stream as float samples, shape (samples, channels), and its rate."""
    chunks, rate = [], 0
    with av.open(str(path)) as container:
        audio = container.streams.audio[stream]
        resampler: av.AudioResampler | None = None
        for frame in container.decode(audio):
            if resampler is None:
                rate = frame.sample_rate
                resampler = av.AudioResampler(format="flt", layout=frame.layout.name, rate=rate)
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1, len(out.layout.channels)))
    return np.concatenate(chunks), rate


def band_db(samples: np.ndarray, rate: int, low: float, high: float) -> float:
    """Mean power in [low, high) Hz of a stretch of samples, dB, comparable across lengths.

    Welch's way: Hann-windowed 1024-sample segments, half overlapping, averaged, so every
    moment of the stretch weighs the same; each channel on its own (a downmix would add the
    channels' beats).
    """
    frames = samples if samples.ndim == 2 else samples[:, None]
    size = min(1024, frames.shape[0])
    window = np.hanning(size)[:, None]
    freqs = np.fft.rfftfreq(size, 1 / rate)
    band = (freqs >= low) & (freqs < high)
    powers = []
    for start in range(0, frames.shape[0] - size + 1, size // 2):
        spectrum = np.abs(np.fft.rfft(frames[start : start + size] * window, axis=0)) ** 2
        powers.append(spectrum[band].sum(axis=0).mean())
    return float(10 * np.log10(np.mean(powers) / size + 1e-20))


def first_sound(samples: np.ndarray, rate: int, start: float, threshold: float = 0.01) -> float:
    """Seconds from `start` to the first sample louder than `threshold`."""
    begin = round(start * rate)
    loud = np.flatnonzero(np.abs(samples[begin:]).max(axis=1) > threshold)
    return float(loud[0] / rate) if loud.size else float("inf")


@dataclass(frozen=True)
class R128:
    integrated: float  # LUFS
    true_peak: float  # dBTP


def r128(path: Path) -> R128:
    """FFmpeg's own EBU R128 summary of a file's audio: integrated loudness and true peak."""
    done = subprocess.run(
        [
            *(find_ffmpeg(), "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a:0"),
            *("-af", "ebur128=peak=true", "-f", "null", "-"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = done.stderr[done.stderr.rindex("Summary:") :]
    integrated = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    peak = re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    assert integrated and peak, summary
    return R128(float(integrated[1]), float(peak[1]))


def largest_step(samples: np.ndarray) -> float:
    """The largest jump between two neighbouring samples, any channel."""
    return float(np.abs(np.diff(samples, axis=0)).max())
