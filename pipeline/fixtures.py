"""Deterministic sample projects, made by code: for the tests, the benchmark and the demo.

Images come from FFmpeg's lavfi sources (testsrc2, mandelbrot, smptehdbars, colour fields) or
are drawn with Pillow (a colour gradient, two flat halves), written as JPEG or PNG at any size,
optionally with an EXIF orientation tag; voiceovers are sine tones of a given length as WAV or MP3.
Only sources FFmpeg has had for years are used (4.x and Debian 12's 5.1 have them all), so the
samples can be made with whatever FFmpeg FFMPEG_BINARY names.
"""

from __future__ import annotations

import json
import subprocess
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from pipeline.ffmpeg import find_ffmpeg
from pipeline.graph import Filter, chain_text
from pipeline.project import ProjectDir


@dataclass(frozen=True)
class ImageFixture:
    name: str  # the suffix (.jpg/.png) picks the format
    width: int
    height: int
    # testsrc2, mandelbrot, smptehdbars, "color:<colour>" (FFmpeg's lavfi sources), or drawn
    # with Pillow: "gradients" (a smooth colour field) or "split:<top>:<bottom>" (two flat
    # halves: what EXIF rotation tests need)
    source: str = "testsrc2"
    orientation: int = 1  # EXIF orientation written into a JPEG (the stored pixels stay as made)


@dataclass(frozen=True)
class VoiceFixture:
    # The suffix picks the format: .wav (16-bit unless `pcm` says, e.g. pcm_s24le, pcm_u8,
    # pcm_f32le), .mp3, .m4a (AAC), .ogg (Vorbis), .opus, .flac.
    name: str
    seconds: float
    frequency: int = 440
    sample_rate: int = 44100
    channels: int = 1
    pcm: str | None = None
    level: float = 0.125  # amplitude of the tone (as lavfi sine makes it), 0 for silence
    # Where the tone sounds (seconds); silence elsewhere. None: all the way through.
    bursts: tuple[tuple[float, float], ...] | None = None
    # A voice-like buzz instead of a pure tone: this many harmonics of `frequency` (amplitude
    # 1/k, in phase, together peaking at `level`) under `syllables` Hz of a syllable envelope.
    harmonics: int = 1
    syllables: float = 0.0
    # With the tone, 2 ms clicks every 0.25 s of this amplitude (mouth clicks, plosives).
    clicks: float = 0.0


@dataclass(frozen=True)
class MusicFixture:
    """A music-like bed: a chord with a tremolo, stereo, whose end does not meet its start
    (a naive loop of it clicks)."""

    name: str
    seconds: float
    sample_rate: int = 44100


@dataclass(frozen=True)
class SceneFixture:
    images: tuple[ImageFixture, ...]
    voiceover: VoiceFixture | None = None
    duration: float | None = None
    id: str | None = None
    fit: str | None = None
    motion: str | None = None
    narration: str | None = None


class FixtureError(RuntimeError):
    """FFmpeg could not make a sample file; the message names the file, the binary and why."""


def _lavfi(source: str, width: int, height: int) -> str:
    if source.startswith("color:"):
        return f"color=c={source.split(':', 1)[1]}:s={width}x{height}"
    return f"{source}=s={width}x{height}"


def _drawn(image: ImageFixture) -> Image.Image | None:
    """The picture of a Pillow-drawn source; None for FFmpeg's sources."""
    size = (image.width, image.height)
    if image.source.startswith("split:"):
        _, top, bottom = image.source.split(":")
        img = Image.new("RGB", size, bottom)
        img.paste(Image.new("RGB", (image.width, image.height // 2), top), (0, 0))
        return img
    if image.source == "gradients":
        # Not lavfi's `gradients`, whose options differ between releases: the samples could
        # not be made with Debian 12's FFmpeg 5.1. Pillow draws the same pixels whatever FFmpeg
        # is installed. Red fades from the left edge, green grows downwards, blue peaks in the
        # middle: smooth, and different everywhere.
        ramp = Image.linear_gradient("L")
        red = ramp.rotate(90).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        blue = Image.radial_gradient("L").point(lambda v: 255 - v)
        bands = [band.resize(size, Image.Resampling.BILINEAR) for band in (red, ramp, blue)]
        return Image.merge("RGB", bands)
    if image.source.startswith("photo:"):
        return _photo(image.width, image.height, image.source.split(":", 1)[1])
    return None


# --- photo-like landscapes: the demo's pictures ----------------------------------------------
# Sky gradient, the sun's glow, three ridges of mountains by midpoint displacement, their
# reflection rippling in a lake, a soft blur and film grain. Seeded: the same bytes every time.

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class _Palette:
    sky: tuple[RGB, RGB]  # top, horizon
    sun: RGB
    sun_at: tuple[float, float]  # fractions of the width and height
    ridges: tuple[RGB, RGB, RGB]  # far to near
    water: RGB


_PALETTES = {
    "dawn": _Palette(
        ((255, 183, 130), (92, 124, 178)),
        (255, 230, 190),
        (0.7, 0.42),
        ((120, 110, 150), (80, 78, 115), (48, 52, 80)),
        (60, 80, 120),
    ),
    "noon": _Palette(
        ((200, 225, 245), (70, 130, 200)),
        (255, 255, 240),
        (0.25, 0.15),
        ((150, 170, 190), (90, 130, 100), (50, 90, 60)),
        (40, 100, 140),
    ),
    "dusk": _Palette(
        ((250, 120, 70), (40, 30, 80)),
        (255, 200, 120),
        (0.45, 0.5),
        ((110, 60, 90), (70, 40, 70), (30, 22, 45)),
        (70, 40, 70),
    ),
    "night": _Palette(
        ((40, 50, 90), (5, 8, 25)),
        (230, 235, 255),
        (0.8, 0.2),
        ((40, 45, 75), (25, 30, 55), (12, 14, 30)),
        (15, 20, 40),
    ),
}


def _ridge(width: int, rng: np.random.Generator, base: float, amplitude: float) -> np.ndarray:
    heights = np.array([rng.random(), rng.random()])
    spread = 1.0
    while len(heights) - 1 < width:
        mids = (heights[:-1] + heights[1:]) / 2 + rng.normal(0, spread, len(heights) - 1) * 0.5
        joined = np.empty(len(heights) * 2 - 1)
        joined[0::2], joined[1::2] = heights, mids
        heights, spread = joined, spread * 0.55
    line = np.interp(np.linspace(0, len(heights) - 1, width), np.arange(len(heights)), heights)
    line = (line - line.min()) / (np.ptp(line) + 1e-9)
    return base - amplitude * line


def _photo(width: int, height: int, kind: str) -> Image.Image:
    palette = _PALETTES[kind]
    rng = np.random.default_rng(zlib.crc32(f"{kind}:{width}x{height}".encode()))
    top, bottom = (np.array(c, float) for c in palette.sky)
    y = np.linspace(0, 1, height)[:, None, None]
    img = np.broadcast_to(bottom + (top - bottom) * (1 - y) ** 1.3, (height, width, 3)).copy()
    xx, yy = np.meshgrid(np.linspace(0, 1, width), np.linspace(0, 1, height))
    sun_x, sun_y = palette.sun_at
    distance = np.sqrt(((xx - sun_x) * width / height) ** 2 + (yy - sun_y) ** 2)
    glow = np.exp(-((distance / 0.18) ** 2))[..., None] * 0.6 + (distance < 0.035)[..., None]
    img += (np.array(palette.sun, float) - img) * np.clip(glow, 0, 1)
    horizon = 0.68
    for n, color in enumerate(palette.ridges):
        line = _ridge(width, rng, horizon - 0.02 * (2 - n), 0.32 - 0.08 * n) * height
        shade = np.array(color, float) * (0.9 + 0.06 * rng.random((height, width, 1)))
        img = np.where((yy * height > line[None, :])[..., None], shade, img)
    h0 = int(horizon * height)
    rows = np.arange(h0, height)
    mirrored = np.clip(2 * h0 - rows, 0, h0 - 1)
    ripple = (np.sin(rows[:, None] * 0.9 + xx[h0:] * 40) * 3).astype(int)
    cols = np.clip(np.arange(width)[None, :] + ripple, 0, width - 1)
    img[h0:] = img[mirrored[:, None], cols] * 0.55 + np.array(palette.water, float) * 0.45
    soft = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(max(0.6, width / 800))
    )
    grain = rng.normal(0, 6, (height, width, 1))
    return Image.fromarray(np.clip(np.asarray(soft, float) + grain, 0, 255).astype(np.uint8))


def _ffmpeg(ffmpeg: str, args: list[str], made: Path) -> None:
    try:
        subprocess.run(
            [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as exc:
        reason = exc.stderr.decode("utf-8", "replace").strip() or f"exit status {exc.returncode}"
        raise FixtureError(f"FFmpeg {ffmpeg} could not make {made.name}: {reason}") from None
    except OSError as exc:
        raise FixtureError(f"FFmpeg {ffmpeg} could not make {made.name}: {exc}") from None


def make_image(path: Path, image: ImageFixture, ffmpeg: str | None = None) -> Path:
    ffmpeg = ffmpeg or find_ffmpeg()
    path.parent.mkdir(parents=True, exist_ok=True)
    drawn = _drawn(image)
    if drawn is not None:
        exif = Image.Exif()
        if image.orientation != 1:
            exif[0x0112] = image.orientation
        drawn.save(path, exif=exif)
        return path
    source = ["-f", "lavfi", "-i", _lavfi(image.source, image.width, image.height)]
    if image.orientation == 1:
        _ffmpeg(ffmpeg, [*source, "-frames:v", "1", "-q:v", "3", str(path)], path)
        return path
    raw = path.with_suffix(".src.png")
    _ffmpeg(ffmpeg, [*source, "-frames:v", "1", str(raw)], path)
    with Image.open(raw) as img:
        exif = Image.Exif()
        exif[0x0112] = image.orientation
        img.convert("RGB").save(path, quality=90, exif=exif)
    raw.unlink()
    return path


_CODECS = {
    ".mp3": ["-c:a", "libmp3lame", "-b:a", "96k"],
    ".m4a": ["-c:a", "aac", "-b:a", "96k"],
    ".ogg": ["-c:a", "libvorbis", "-q:a", "3"],
    ".opus": ["-c:a", "libopus", "-b:a", "64k"],
    ".flac": ["-c:a", "flac"],
}


def make_blank_png(path: Path, width: int, height: int) -> Path:
    """A valid black 1-bit PNG of any size, written row by row: a 12000×12000 picture (what a
    decompression bomb looks like) is about 40 KB and takes no more memory to make than a row.
    """
    path.parent.mkdir(parents=True, exist_ok=True)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    row = b"\x00" * (1 + (width + 7) // 8)  # filter type 0, then the row's bits
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header))
        out.write(chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def _encode_args(path: Path, pcm: str | None = None) -> list[str]:
    if path.suffix == ".wav":
        return ["-c:a", pcm or "pcm_s16le"]
    return _CODECS.get(path.suffix, [])


def make_tone(path: Path, voice: VoiceFixture, ffmpeg: str | None = None) -> Path:
    ffmpeg = ffmpeg or find_ffmpeg()
    path.parent.mkdir(parents=True, exist_ok=True)
    gate = "1"
    if voice.bursts is not None:
        gate = "+".join(f"between(t,{a},{b})" for a, b in voice.bursts) or "0"
    wave = f"sin(2*PI*{voice.frequency}*t)"
    if voice.harmonics > 1:
        terms = [f"cos(2*PI*{voice.frequency * k}*t)/{k}" for k in range(1, voice.harmonics + 1)]
        peak = sum(1 / k for k in range(1, voice.harmonics + 1))
        wave = f"({'+'.join(terms)})/{peak:.6f}"
    if voice.syllables > 0:
        wave = f"pow(sin(PI*{voice.syllables}*t),2)*{wave}"
    sound = f"{voice.level}*({gate})*{wave}"
    if voice.clicks > 0:
        sound += f"+{voice.clicks}*({gate})*lt(mod(t,0.25),0.002)*sin(2*PI*1500*t)"
    channels = "|".join([sound] * voice.channels)
    tone = chain_text([Filter.of("aevalsrc", channels, s=voice.sample_rate, d=voice.seconds)])
    codec = _encode_args(path, voice.pcm)
    _ffmpeg(ffmpeg, ["-f", "lavfi", "-i", tone, *codec, str(path)], path)
    return path


def make_music(path: Path, music: MusicFixture, ffmpeg: str | None = None) -> Path:
    ffmpeg = ffmpeg or find_ffmpeg()
    path.parent.mkdir(parents=True, exist_ok=True)
    swell = "(0.9+0.1*sin(2*PI*4*t))"  # a 4 Hz tremolo: any quarter second averages it out
    chord = "0.30*sin(2*PI*{a}*t)+0.22*sin(2*PI*{b}*t)+0.16*sin(2*PI*{c}*t)+0.08*sin(2*PI*{d}*t)"
    left = f"{swell}*({chord.format(a=220, b=277.18, c=329.63, d=440)})"
    right = f"{swell}*({chord.format(a=220.5, b=277.6, c=330.1, d=554.37)})"
    source = chain_text(
        [Filter.of("aevalsrc", f"{left}|{right}", s=music.sample_rate, d=music.seconds)]
    )
    _ffmpeg(ffmpeg, ["-f", "lavfi", "-i", source, *_encode_args(path), str(path)], path)
    return path


def write_project(
    root: Path,
    scenes: Sequence[SceneFixture],
    ffmpeg: str | None = None,
    music: Sequence[MusicFixture] = (),
) -> ProjectDir:
    """Create `root` as a project folder holding the given scenes' files and scenes.json, and
    any `music` beds in input/music/."""
    ffmpeg = ffmpeg or find_ffmpeg()
    project = ProjectDir(root)
    project.create()
    for bed in music:
        target = project.asset("music", bed.name)
        if not target.exists():
            make_music(target, bed, ffmpeg)
    spec_scenes = []
    for scene in scenes:
        for image in scene.images:
            target = project.asset("images", image.name)
            if not target.exists():
                make_image(target, image, ffmpeg)
        entry: dict[str, object] = {"images": [image.name for image in scene.images]}
        if scene.voiceover is not None:
            target = project.asset("voiceovers", scene.voiceover.name)
            if not target.exists():
                make_tone(target, scene.voiceover, ffmpeg)
            entry["voiceover"] = scene.voiceover.name
        for key in ("duration", "id", "fit", "motion", "narration"):
            value = getattr(scene, key)
            if value is not None:
                entry[key] = value
        spec_scenes.append(entry)
    project.spec_file.write_text(json.dumps({"scenes": spec_scenes}, indent=2), "utf-8")
    return project


def sample_scenes(width: int = 1280, height: int = 720) -> list[SceneFixture]:
    """The demo's project: 4 narrated scenes (spoken by the default TTS engine, about 25 s),
    photo-like landscapes as JPEG and PNG, one of them twice the size, one portrait."""
    return [
        SceneFixture(
            (ImageFixture("dawn.jpg", width * 2, height * 2, "photo:dawn"),),
            narration="Welcome to Render API. Every picture in this video was drawn by code, "
            "and every word you hear is spoken by its built-in voice.",
            id="intro",
        ),
        SceneFixture(
            (
                ImageFixture("noon.jpg", width, height, "photo:noon"),
                ImageFixture("dusk.png", width, height, "photo:dusk"),
            ),
            narration="Each scene lasts as long as its narration. The pictures drift slowly, "
            "and cross-fade from one to the next.",
            id="pictures",
        ),
        SceneFixture(
            (ImageFixture("portrait.jpg", height, width, "photo:night"),),
            narration="Under the voice, a music bed loops without a seam, and dips whenever "
            "someone speaks.",
            id="portrait",
            fit="contain",
        ),
        SceneFixture(
            (ImageFixture("closing.jpg", width, height, "photo:dusk"),),
            narration="The mix is brought to broadcast loudness, and the captions follow "
            "every word. Thanks for watching!",
            id="outro",
        ),
    ]


def sample_music() -> list[MusicFixture]:
    """The demo's music bed: shorter than the video, so it loops."""
    return [MusicFixture("bed.mp3", 9.0)]


def make_sample_project(root: Path, ffmpeg: str | None = None) -> ProjectDir:
    """The demo's project, for a first render by hand (the README's curl walk-through)."""
    return write_project(root, sample_scenes(), ffmpeg, music=sample_music())


def bench_scenes() -> list[SceneFixture]:
    """The benchmark's project: 6 scenes, 3–12 s voiceovers, 800×600 up to 4000×3000 JPEG and
    a portrait PNG."""
    sizes = [(800, 600), (1920, 1080), (4000, 3000), (2400, 1600), (1280, 960), (3000, 2000)]
    voices = [3.0, 7.5, 12.0, 5.0, 9.0, 4.0]
    sources = ["testsrc2", "gradients", "testsrc2", "mandelbrot", "smptehdbars", "testsrc2"]
    scenes = []
    for index, ((w, h), seconds, source) in enumerate(zip(sizes, voices, sources, strict=True)):
        images = [ImageFixture(f"b{index}a.jpg", w, h, source)]
        if seconds > 6:
            images.append(ImageFixture(f"b{index}b.jpg", h, w, "testsrc2"))
        if index == 3:
            images = [ImageFixture("b3portrait.png", 1080, 1920, "mandelbrot")]
        suffix = ".mp3" if index % 2 else ".wav"
        scenes.append(
            SceneFixture(
                tuple(images),
                VoiceFixture(f"v{index}{suffix}", seconds, 300 + 60 * index),
                id=f"s{index}",
            )
        )
    return scenes


def make_bench_project(root: Path, ffmpeg: str | None = None) -> ProjectDir:
    return write_project(root, bench_scenes(), ffmpeg)
