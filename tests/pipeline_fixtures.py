"""Shared fixtures and helpers for the pipeline tests (import what a test module needs).

Renders are small (320×180, preset veryfast) and made once per session where tests only read them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageStat

from pipeline.capabilities import NEEDS
from pipeline.ffmpeg import Runner, find_ffmpeg
from pipeline.fixtures import ImageFixture, SceneFixture, VoiceFixture, write_project
from pipeline.options import RenderOptions
from pipeline.plan import Plan, read_plan
from pipeline.project import ProjectDir
from pipeline.render import render

SMALL = RenderOptions(
    fps=30, min_shot=0.8, max_shot=3.0, xfade=0.3, crf=23, preset="veryfast", resolution="320x180"
)


@dataclass(frozen=True)
class Rendered:
    project: ProjectDir
    plan: Plan
    output: Path
    progress: tuple[float, ...]


def small_scenes() -> list[SceneFixture]:
    """Five scenes, each there for one feature under test."""
    return [
        # Ken Burns over a textured picture; WAV voiceover longer than the duration.
        SceneFixture(
            (ImageFixture("texture.jpg", 640, 480, "testsrc2"),),
            VoiceFixture("one.wav", 1.3, 440),
            id="motion",
        ),
        # Two flat colours, no motion: the cross-fade between them is easy to measure.
        SceneFixture(
            (
                ImageFixture("red.png", 400, 300, "color:red"),
                ImageFixture("blue.png", 400, 300, "color:blue"),
            ),
            duration=2.0,
            id="fade",
            motion="none",
        ),
        # A portrait PNG and a 4000×3000 JPEG, contained over their blurred backgrounds.
        SceneFixture(
            (
                ImageFixture("portrait.png", 360, 640, "mandelbrot"),
                ImageFixture("huge.jpg", 4000, 3000, "testsrc2"),
            ),
            VoiceFixture("two.mp3", 2.1, 660),
            id="big",
            fit="contain",
        ),
        # Stored landscape red-over-blue, EXIF 6: shown portrait, blue left, red right.
        SceneFixture(
            (ImageFixture("rotated.jpg", 400, 200, "split:red:blue", orientation=6),),
            duration=1.0,
            id="exif",
            fit="contain",
            motion="none",
        ),
        # A short voiceover under a longer duration: padded with silence.
        SceneFixture(
            (ImageFixture("bars.jpg", 480, 270, "smptehdbars"),),
            VoiceFixture("three.wav", 0.4, 880),
            duration=1.2,
            id="padded",
        ),
    ]


@pytest.fixture(scope="session")
def ffmpeg_bin() -> str:
    return find_ffmpeg()


@pytest.fixture(scope="session")
def small_render(tmp_path_factory: pytest.TempPathFactory, ffmpeg_bin: str) -> Rendered:
    project = write_project(tmp_path_factory.mktemp("small"), small_scenes(), ffmpeg_bin)
    progress: list[float] = []
    runner = Runner(ffmpeg_bin, on_progress=progress.append)
    output = render(project, SMALL, "video.mp4", runner, jobs=2)
    return Rendered(project, read_plan(project), output, tuple(progress))


@pytest.fixture
def small_project(tmp_path: Path, ffmpeg_bin: str) -> Iterator[ProjectDir]:
    """A fresh two-scene project a test may break or rerender."""
    yield write_project(
        tmp_path / "p",
        [
            SceneFixture(
                (ImageFixture("a.jpg", 320, 240, "testsrc2"),),
                VoiceFixture("a.wav", 1.0),
                id="intro",
            ),
            SceneFixture((ImageFixture("b.png", 240, 320, "gradients"),), duration=1.0, id="end"),
        ],
        ffmpeg_bin,
    )


_FAKE_LISTINGS = {
    # What FFmpeg 5.1 prints (Debian 12's build): legends, rules and flag columns as it has them.
    "-encoders": (
        "Encoders:\n V..... = Video\n A..... = Audio\n S..... = Subtitle\n"
        " .F.... = Frame-level multithreading\n ..S... = Slice-level multithreading\n"
        " ...X.. = Codec is experimental\n ....B. = Supports draw_horiz_band\n"
        " .....D = Supports direct rendering method 1\n ------\n",
        "encoder",
        " V....D {:<20} fake encoder",
    ),
    "-filters": (
        "Filters:\n  T.. = Timeline support\n  .S. = Slice threading\n  ..C = Command support\n"
        "  A = Audio input/output\n  V = Video input/output\n"
        "  N = Dynamic number and/or type of input/output\n  | = Source or sink filter\n",
        "filter",
        " TSC {:<17} V->V       fake filter",
    ),
    "-demuxers": (
        "Demuxers:\n D. = Demuxing supported\n .E = Muxing supported\n --\n",
        "demuxer",
        " D  {:<15} fake demuxer",
    ),
    "-muxers": (
        "Muxers:\n D. = Demuxing supported\n .E = Muxing supported\n --\n",
        "muxer",
        "  E {:<15} fake muxer",
    ),
}


def fake_ffmpeg(
    folder: Path, *, lacking: Collection[str] = (), version: str = "5.1.6-0+deb12u1"
) -> Path:
    """An executable `folder/ffmpeg` (a shell script) answering -version, -encoders, -filters,
    -demuxers and -muxers as FFmpeg 5.1 does, listing everything a render needs but `lacking`;
    any other command line fails, as a real FFmpeg would with what it lacks."""
    branches = [
        f"  *' -version '*) echo 'ffmpeg version {version} Copyright (c) 2000-2024 the FFmpeg "
        "developers' ;;"
    ]
    for option, (legend, kind, line) in _FAKE_LISTINGS.items():
        names = [name for name in (*NEEDS[kind], "null") if name not in lacking]
        text = legend + "".join(line.format(name) + "\n" for name in names)
        branches.append(f"  *' {option} '*) cat <<'EOF'\n{text}EOF\n  ;;")
    branches.append('  *) echo "fake ffmpeg cannot do: $*" >&2; exit 1 ;;')
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "ffmpeg"
    script.write_text('#!/bin/sh\ncase " $* " in\n' + "\n".join(branches) + "\nesac\n")
    script.chmod(0o755)
    return script


def decode_frames(path: Path, *, size: tuple[int, int] | None = (160, 90)) -> list[Image.Image]:
    """Every video frame as an RGB image (scaled down when `size` is given)."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            image = frame.to_image()
            frames.append(image.resize(size) if size else image)
    return frames


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two frames, 0..255."""
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def mean_rgb(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[float, float, float]:
    r, g, b = ImageStat.Stat(image.crop(box)).mean[:3]
    return r, g, b
