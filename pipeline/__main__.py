"""`python -m pipeline PROJECT_DIR -o OUT.mp4 [options]`: render a project folder locally."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from pipeline.errors import PipelineError
from pipeline.ffmpeg import Runner, find_ffmpeg
from pipeline.options import RenderOptions
from pipeline.plan import read_plan
from pipeline.project import ProjectDir
from pipeline.stages import render

_BAR = 30


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline", description="Render a project folder into a narrated MP4."
    )
    parser.add_argument("project", type=Path, help="folder with input/scenes.json")
    parser.add_argument("-o", "--output", required=True, help="output file name, e.g. video.mp4")
    parser.add_argument("--fps", type=int)
    parser.add_argument("--min-shot", type=float)
    parser.add_argument("--max-shot", type=float)
    parser.add_argument("--xfade", type=float)
    parser.add_argument("--crf", type=int)
    parser.add_argument("--preset")
    parser.add_argument("--resolution", help="WIDTHxHEIGHT, e.g. 1920x1080, 1080x1920")
    parser.add_argument("--fit", choices=["cover", "contain"])
    parser.add_argument("--motion", choices=["kenburns", "none"])
    parser.add_argument("--jobs", type=int, default=1, help="scene clips built at once")
    parser.add_argument("--threads", type=int, default=0, help="x264 threads (0: x264 picks)")
    parser.add_argument(
        "--lookahead", type=int, default=0, help="x264 rc-lookahead frames (0: the preset's)"
    )
    parser.add_argument("--ffmpeg", help="FFmpeg binary (default: $FFMPEG_BINARY, PATH, wheel)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log FFmpeg commands")
    return parser


def options_from_args(args: argparse.Namespace) -> RenderOptions:
    fields = ("fps", "min_shot", "max_shot", "xfade", "crf", "preset", "resolution", "fit")
    given = {name: getattr(args, name) for name in (*fields, "motion")}
    return RenderOptions(**{k: v for k, v in given.items() if v is not None})


class _ProgressBar:
    def __init__(self) -> None:
        self.fraction = 0.0
        self.stage = ""

    def update(self, fraction: float) -> None:
        self.fraction = max(self.fraction, fraction)
        self._draw()

    def enter(self, stage: str) -> None:
        self.stage = stage
        self._draw()

    def _draw(self) -> None:
        filled = int(self.fraction * _BAR)
        bar = "#" * filled + "-" * (_BAR - filled)
        sys.stderr.write(f"\r[{bar}] {self.fraction * 100:5.1f}% {self.stage:<12}")
        sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    log = logging.getLogger("pipeline")
    try:
        options = options_from_args(args)
    except ValidationError as exc:
        print(f"error: invalid options: {exc}", file=sys.stderr)
        return 2
    project = ProjectDir(args.project.resolve())
    output = Path(args.output)
    bar = _ProgressBar()
    runner = Runner(
        find_ffmpeg(args.ffmpeg),
        on_progress=bar.update,
        log=log.info,
        threads=args.threads,
        lookahead=args.lookahead,
    )
    started = time.monotonic()
    try:
        produced = render(project, options, output.name, runner, jobs=args.jobs, on_stage=bar.enter)
    except (PipelineError, OSError) as exc:
        sys.stderr.write("\n")
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
    wall = time.monotonic() - started
    sys.stderr.write("\n")
    if output.parent != Path("") and output.resolve() != produced.resolve():
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(produced, output)
        produced = output
    plan = read_plan(project)
    size = produced.stat().st_size
    print(
        f"{produced}: {plan.duration_seconds:.2f}s, {plan.total_frames} frames at {plan.fps} fps, "
        f"{plan.width}x{plan.height}, {size / 1e6:.1f} MB, wall {wall:.1f}s, "
        f"{plan.duration_seconds / wall:.2f}x real time"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
