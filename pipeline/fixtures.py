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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from pipeline.ffmpeg import find_ffmpeg
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
    name: str  # .wav or .mp3
    seconds: float
    frequency: int = 440


@dataclass(frozen=True)
class SceneFixture:
    images: tuple[ImageFixture, ...]
    voiceover: VoiceFixture | None = None
    duration: float | None = None
    id: str | None = None
    fit: str | None = None
    motion: str | None = None


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
    return None


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


def make_tone(path: Path, voice: VoiceFixture, ffmpeg: str | None = None) -> Path:
    ffmpeg = ffmpeg or find_ffmpeg()
    path.parent.mkdir(parents=True, exist_ok=True)
    tone = f"sine=frequency={voice.frequency}:sample_rate=44100:duration={voice.seconds}"
    codec = ["-c:a", "libmp3lame", "-b:a", "96k"] if path.suffix == ".mp3" else []
    _ffmpeg(ffmpeg, ["-f", "lavfi", "-i", tone, *codec, str(path)], path)
    return path


def write_project(
    root: Path, scenes: Sequence[SceneFixture], ffmpeg: str | None = None
) -> ProjectDir:
    """Create `root` as a project folder holding the given scenes' files and scenes.json."""
    ffmpeg = ffmpeg or find_ffmpeg()
    project = ProjectDir(root)
    project.create()
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
        for key in ("duration", "id", "fit", "motion"):
            value = getattr(scene, key)
            if value is not None:
                entry[key] = value
        spec_scenes.append(entry)
    project.spec_file.write_text(json.dumps({"scenes": spec_scenes}, indent=2), "utf-8")
    return project


def sample_scenes(width: int = 1280, height: int = 720) -> list[SceneFixture]:
    """The demo's project: 4 scenes, about 15 s, JPEG and PNG, WAV and MP3, one portrait image."""
    return [
        SceneFixture(
            (ImageFixture("title.jpg", width, height, "testsrc2"),),
            VoiceFixture("intro.wav", 3.2, 440),
            id="intro",
        ),
        SceneFixture(
            (
                ImageFixture("field.jpg", width * 2, height * 2, "gradients"),
                ImageFixture("bars.png", width, height, "smptehdbars"),
            ),
            VoiceFixture("middle.mp3", 5.4, 550),
            id="middle",
        ),
        SceneFixture(
            (ImageFixture("portrait.png", height, width, "mandelbrot"),),
            duration=3.0,
            id="portrait",
            fit="contain",
        ),
        SceneFixture(
            (ImageFixture("closing.jpg", width, height, "testsrc2"),),
            VoiceFixture("outro.wav", 3.4, 660),
            id="outro",
        ),
    ]


def make_sample_project(root: Path, ffmpeg: str | None = None) -> ProjectDir:
    return write_project(root, sample_scenes(), ffmpeg)


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
