"""Helpers for the render-cache, preview and poster tests: every stage of the registry run
in order with a cache (as the workers run them), and decoded-frame hashes of a video."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

from pipeline.cache import ClipCache, ClipReport
from pipeline.ffmpeg import Runner
from pipeline.options import RenderOptions
from pipeline.project import ProjectDir
from pipeline.registry import StageRun
from pipeline.render import run_in_order
from tests.pipeline_fixtures import SMALL


@dataclasses.dataclass
class Built:
    reports: list[ClipReport]
    log: list[str]

    @property
    def outcomes(self) -> list[str]:
        return [r.outcome for r in self.reports]

    @property
    def encodes(self) -> int:
        """FFmpeg commands that encoded a scene clip (libx264), from the runner's log."""
        return sum("libx264" in line for line in self.log if " -i " in line)


def render_stages(
    project: ProjectDir,
    ffmpeg: str,
    cache: ClipCache | None,
    options: RenderOptions = SMALL,
    output: str = "video.mp4",
) -> Built:
    """Every stage of the registry in order, as the workers run them, with this cache."""
    built = Built([], [])
    runner = Runner(ffmpeg, log=built.log.append)
    base = StageRun(project, options, output, runner, cache=cache, on_clip=built.reports.append)
    run_in_order(base)
    return built


def frame_hashes(ffmpeg: str, video: Path) -> list[str]:
    """The md5 of every decoded video frame, in order."""
    args = ["-hide_banner", "-loglevel", "error", "-i", str(video), "-map", "0:v:0"]
    out = subprocess.run(
        [ffmpeg, *args, "-f", "framemd5", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if not line.startswith("#")]
