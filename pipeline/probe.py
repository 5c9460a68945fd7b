"""Probing media with PyAV (libavformat in-process; no ffprobe assumed)."""

from __future__ import annotations

import errno
import math
import re
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from pipeline.errors import PipelineError
from pipeline.timeline import merge_spans

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
            raise PipelineError(f"{path.name}: its video stream has no time base")
        times = [packet.pts for packet in container.demux(stream) if packet.pts is not None]
        return Fraction(stream.time_base), sorted(times)


def off_grid(path: Path, fps: int) -> list[tuple[int, int, Fraction]]:
    """The video packets whose pts is not their frame number times the frame duration, as
    (frame, pts, the pts it should have) in the stream's ticks; [] when every frame n is
    at n/fps exactly."""
    time_base, times = video_packet_times(path)
    step = 1 / (fps * time_base)  # a frame's duration in ticks
    return [(n, pts, n * step) for n, pts in enumerate(times) if pts != n * step]


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
    try:
        opened = open_user_media(path, formats=AUDIO_DEMUXERS)
    except av.FFmpegError as exc:
        # What is on no audio demuxer's list (a picture, a playlist) is refused as EINVAL.
        if exc.errno == errno.EINVAL:
            raise ValueError("has no audio stream (its format is not an audio one)") from None
        raise
    with opened as container:
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
    loud = ((i * window, (i + 1) * window) for i in np.flatnonzero(level > threshold))
    intervals = merge_spans(loud, _BRIDGE_SECONDS)
    return tuple(
        (round(float(a), 3), round(float(b), 3)) for a, b in intervals if b - a >= _SHORTEST_SECONDS
    )


# The most pixels an image may have (width × height), unless the caller says otherwise: 40 MP
# is more than a 7000×5000 photo, while decoding it takes about 160 MB (RGBA). The service's
# MAX_IMAGE_PIXELS is passed in; nothing here reads settings.
MAX_PIXELS = 40_000_000
# Pillow refuses to open anything over twice its own MAX_IMAGE_PIXELS (DecompressionBombError)
# before its header can be looked at: a cap above this could not be told from that refusal.
PILLOW_PIXEL_LIMIT = 2 * (Image.MAX_IMAGE_PIXELS or 0) or 2**31
# Below that, Pillow only warns (from 89 MP); the cap checked on the header replaces the warning.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def header_size(path: Path) -> tuple[int, int] | None:
    """An image's width and height from its header alone (Pillow reads no pixel data until
    asked), or None when Pillow does not know the format. A picture over Pillow's own bomb
    limit raises TooManyPixels, since its header cannot be read past that check."""
    try:
        with Image.open(path) as img:
            return img.size
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise TooManyPixels(int(found[1]) if found else PILLOW_PIXEL_LIMIT + 1, None) from None
    except Exception:  # not an image Pillow knows: FFmpeg may still decode it
        return None


class TooManyPixels(ValueError):
    """An image over the pixel cap; `size` is (width, height) when its header gave them."""

    def __init__(self, pixels: int, size: tuple[int, int] | None, cap: int = 0) -> None:
        self.pixels, self.size, self.cap = pixels, size, cap
        shown = f"is {size[0]}×{size[1]} pixels" if size else f"has {pixels} pixels"
        over = f", over the limit of {cap} pixels ({cap / 1e6:g} MP)" if cap else ""
        super().__init__(f"{shown} ({pixels / 1e6:.1f} MP){over}")


def check_pixels(path: Path, max_pixels: int) -> tuple[int, int] | None:
    """The header's (width, height), or None for a format Pillow does not know; TooManyPixels
    when the image has more than `max_pixels` pixels. Decodes nothing."""
    try:
        size = header_size(path)
    except TooManyPixels as exc:
        raise TooManyPixels(exc.pixels, None, max_pixels) from None
    if size is not None and size[0] * size[1] > max_pixels:
        raise TooManyPixels(size[0] * size[1], size, max_pixels)
    return size


def decoder_pixel_cap(max_pixels: int) -> int:
    """The decoder's `max_pixels` (FFmpeg's option) for images already checked against
    `max_pixels` by their headers. FFmpeg counts its buffer with the rows padded to the
    decoder's alignment (a 12000×12000 PNG is 12032×12000 to it), so an image exactly at the
    cap would be refused; twice the cap still bounds a decode's memory (a file changed after
    it was checked, or one whose header Pillow cannot read)."""
    return 2 * max_pixels


def image_size(path: Path, max_pixels: int | None = None) -> tuple[int, int]:
    """Decode the picture once (as FFmpeg will) and return its stored width and height.

    With `max_pixels`, the decoder refuses (ValueError from PyAV) a picture over that many
    pixels before allocating it: without the option, opening the file alone decodes it."""
    options = {"max_pixels": str(max_pixels)} if max_pixels else {}
    # Pillow has read it as a picture already; FFmpeg may still open only the file itself.
    with av.open(str(path), options={**options, "protocol_whitelist": "file"}) as container:
        if not container.streams.video:
            raise ValueError("is not an image")
        stream = container.streams.video[0]
        stream.codec_context.options = options
        for frame in container.decode(stream):
            return frame.width, frame.height
    raise ValueError("has no decodable picture")


# Untrusted media. FFmpeg follows references inside some inputs (an HLS playlist, a concat
# script, a few containers' external data references): a file disguised as a video could make
# a render read local files or reach internal URLs. Every open of user media here names the
# demuxer (never a probe of its bytes) and allows the `file` protocol alone; the FFmpeg
# commands do the same (`input_guard`).
SAFE_PROTOCOLS = "file,pipe"
# Video clips: each accepted container by the demuxer that reads it, and the file names it
# may have. A file whose bytes declare another container than its name is refused.
VIDEO_CONTAINERS: dict[str, tuple[str, ...]] = {
    "mov": (".mp4", ".mov", ".m4v"),
    "matroska": (".mkv", ".webm"),
}
VIDEO_CODECS = frozenset({"h264", "hevc", "vp9", "av1", "prores"})
# The longest side a clip may have.
MAX_VIDEO_SIDE = 4096
# A wall-time bound on opening and reading user media in-process (seconds, PyAV's timeout).
OPEN_SECONDS = 20.0
_MOV_FIRST = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid"}
_EBML = b"\x1a\x45\xdf\xa3"
_SEGMENT = b"\x18\x53\x80\x67"
_MAX_BOXES = 100_000


class UnsafeMedia(ValueError):
    """A file refused before any demuxer reads it: not a container we accept, one whose bytes
    declare another container than its name, or one whose structure lies about its size."""


# The demuxers audio (voiceovers, music) is read with: never one that follows references to
# other files or URLs (hls, concat, ...), whatever a file's bytes look like.
AUDIO_DEMUXERS = "wav,w64,mp3,flac,ogg,mov,aac,matroska,aiff,caf,amr,au"


def input_guard(demuxer: str | None) -> list[str]:
    """The input options every FFmpeg command puts before a user file: only `file` (and
    `pipe`) may be opened, and with `demuxer` the file is read as that and nothing else."""
    return ["-protocol_whitelist", SAFE_PROTOCOLS, *(("-f", demuxer) if demuxer else ())]


def audio_guard() -> list[str]:
    """`input_guard` for a voice or a bed: the file protocol, one of the audio demuxers."""
    return [*input_guard(None), "-format_whitelist", AUDIO_DEMUXERS]


def _vint(data: bytes, at: int) -> tuple[int, int, bool]:
    """An EBML variable-length integer at `at`: (value, length, all value bits set)."""
    if at >= len(data) or data[at] == 0:
        raise UnsafeMedia("has a malformed Matroska header")
    first = data[at]
    length = 9 - first.bit_length()
    if at + length > len(data):
        raise UnsafeMedia("has a truncated Matroska header")
    value = first & (0xFF >> length)
    for byte in data[at + 1 : at + length]:
        value = (value << 8) | byte
    return value, length, value == (1 << (7 * length)) - 1


def _matroska(head: bytes, size: int) -> str:
    """'matroska' or 'webm' by the EBML DocType; UnsafeMedia when a size lies."""
    header, length, _ = _vint(head, 4)
    body = 4 + length
    end = body + header
    if end > len(head):
        raise UnsafeMedia("declares a Matroska header longer than the file can hold")
    doctype = b""
    at = body
    while at + 2 < end:
        element = head[at : at + 2]
        value, length, _ = _vint(head, at + 2)
        start = at + 2 + length
        if element == b"\x42\x82":
            doctype = head[start : start + value]
        at = start + value
    if head[end : end + 4] != _SEGMENT:
        raise UnsafeMedia("has no Matroska segment after its header")
    value, length, unknown = _vint(head, end + 4)
    if not unknown and end + 4 + length + value > size:
        raise UnsafeMedia(f"declares a Matroska segment of {value} bytes in a file of {size} bytes")
    if doctype not in (b"matroska", b"webm"):
        raise UnsafeMedia(f"is a Matroska file of unknown kind {doctype!r}")
    return doctype.decode()


def _mov(path: Path, size: int) -> None:
    """Walks the top-level boxes: each must end inside the file (UnsafeMedia if not)."""
    with path.open("rb") as file:
        at = 0
        for _ in range(_MAX_BOXES):
            if at == size:
                return
            file.seek(at)
            box = file.read(16)
            if len(box) < 8:
                raise UnsafeMedia(f"has a truncated box at byte {at}")
            length = int.from_bytes(box[:4], "big")
            if length == 1:
                if len(box) < 16:
                    raise UnsafeMedia(f"has a truncated box at byte {at}")
                length = int.from_bytes(box[8:16], "big")
            elif length == 0:  # to the end of the file
                return
            if length < 8:
                raise UnsafeMedia(f"has a box of {length} bytes at byte {at}")
            if at + length > size:
                raise UnsafeMedia(
                    f"declares a {box[4:8].decode('latin-1')!r} box of {length} bytes at byte "
                    f"{at}, past the end of the file ({size} bytes)"
                )
            at += length
    raise UnsafeMedia(f"has more than {_MAX_BOXES} top-level boxes")


def video_container(path: Path, name: str | None = None) -> str:
    """The demuxer that reads the clip at `path` ('mov' or 'matroska'), from its bytes alone
    (nothing decodes them); UnsafeMedia when they are no container we accept, declare another
    one than `name`'s extension (None: no name to agree with, yet), or lie about their
    sizes."""
    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(64 * 1024)
    suffix = Path(name).suffix.lower() if name is not None else None
    if len(head) >= 8 and head[4:8] in _MOV_FIRST:
        found, demuxer = "an MP4/MOV", "mov"
        _mov(path, size)
    elif head.startswith(_EBML):
        kind = _matroska(head, size)
        found, demuxer = ("a WebM" if kind == "webm" else "a Matroska"), "matroska"
        # A WebM is a Matroska; a file named .webm must be one, though.
        if suffix == ".webm" and kind != "webm":
            raise UnsafeMedia(f"is {found} file, not the WebM its name says")
    else:
        raise UnsafeMedia("is not an MP4, MOV, MKV or WebM file")
    if suffix is not None and suffix not in VIDEO_CONTAINERS[demuxer]:
        raise UnsafeMedia(f"is {found} file, which its name ({suffix or 'no extension'}) denies")
    return demuxer


def open_user_media(
    path: Path, demuxer: str | None = None, *, formats: str | None = None, max_pixels: int = 0
) -> av.container.InputContainer:
    """`av.open` of a user's file: the `file` protocol only, read by `demuxer` (or by one of
    the demuxers `formats` lists), a pixel cap on its decoders, a wall-time bound on opening and
    reading it."""
    options = {"protocol_whitelist": "file"}
    if formats:
        options["format_whitelist"] = formats
    if max_pixels:
        options["max_pixels"] = str(max_pixels)
    return av.open(str(path), format=demuxer, options=options, timeout=OPEN_SECONDS)


@dataclass(frozen=True)
class ClipInfo:
    """What VALIDATE and the upload check learn of a video clip."""

    demuxer: str
    codec: str
    width: int  # as displayed (after its rotation)
    height: int
    rotation: int  # degrees counter-clockwise the stored picture is turned for display
    seconds: float  # its video's length
    start: float  # its video's first timestamp (seconds)
    fps: float  # average, for messages only: frames are placed by their timestamps
    has_audio: bool


def clip_info(path: Path, name: str | None, max_pixels: int) -> ClipInfo:
    """Probe and decode the first frame of the clip at `path`, named `name` (None: a name not
    known yet, which its container is then not checked against); ValueError saying what is
    wrong when it is no clip we can show."""
    demuxer = video_container(path, name)
    # A side over MAX_VIDEO_SIDE is refused below; the decoders refuse anything bigger still.
    cap = max_pixels or MAX_VIDEO_SIDE * MAX_VIDEO_SIDE
    with open_user_media(path, demuxer, max_pixels=decoder_pixel_cap(cap)) as container:
        if not container.streams.video:
            raise ValueError("has no video stream")
        stream = container.streams.video[0]
        codec = stream.codec_context.codec.canonical_name  # the format, not the decoder
        if codec not in VIDEO_CODECS:
            raise ValueError(f"is {codec} video; clips must be {', '.join(sorted(VIDEO_CODECS))}")
        width, height = stream.codec_context.width, stream.codec_context.height
        if max(width, height) > MAX_VIDEO_SIDE:
            raise ValueError(f"is {width}×{height}, over {MAX_VIDEO_SIDE} pixels a side")
        stream.codec_context.options = {"max_pixels": str(decoder_pixel_cap(cap))}
        first = next(iter(container.decode(stream)), None)
        if first is None:
            raise ValueError("has no decodable frame")
        rotation = round((first.rotation or 0) / 90) * 90 % 360
        if stream.time_base is None:
            raise ValueError("has no time base")
        start = float((stream.start_time or 0) * stream.time_base)
        seconds = _stream_seconds(stream, (container.duration or 0) / av.time_base)
        if seconds <= 0:
            raise ValueError("has no length")
        rate = stream.average_rate or stream.guessed_rate or 0
        turned = rotation in (90, 270)
        return ClipInfo(
            demuxer=demuxer,
            codec=codec,
            width=height if turned else width,
            height=width if turned else height,
            rotation=rotation,
            seconds=seconds,
            start=start,
            fps=float(rate),
            has_audio=bool(container.streams.audio),
        )
