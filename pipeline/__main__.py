"""`python -m pipeline PROJECT_DIR -o OUT.mp4 [options]`: render a project folder locally."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from pipeline.console import ConsoleProgress
from pipeline.errors import PipelineError
from pipeline.ffmpeg import Runner, find_ffmpeg
from pipeline.options import RenderOptions
from pipeline.plan import read_plan
from pipeline.project import ProjectDir
from pipeline.render import render, usable_cpus


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline", description="Render a project folder into a narrated MP4."
    )
    parser.add_argument("project", type=Path, help="folder with input/scenes.json")
    parser.add_argument("-o", "--output", required=True, help="output file name, e.g. video.mp4")
    group = parser.add_argument_group("render options", "omitted ones take the default shown")
    for name, field in RenderOptions.model_fields.items():
        group.add_argument(f"--{name.replace('_', '-')}", **_option_flag(field))
    cores = usable_cpus()
    parser.add_argument(
        "--jobs",
        type=_positive,
        default=cores,
        help="scene clips (or chunks) built at once, each x264 with its share of the cores; "
        f"fewer take less memory (default: the usable cores, {cores} here)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="x264 threads each (0: the cores divided among the jobs; x264 picks with one job)",
    )
    parser.add_argument(
        "--lookahead", type=int, default=0, help="x264 rc-lookahead frames (0: the preset's)"
    )
    parser.add_argument(
        "--ffmpeg", help="FFmpeg binary (default: $FFMPEG_BINARY, else the wheel's)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log FFmpeg commands")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _option_flag(field: FieldInfo) -> dict[str, Any]:
    """argparse's keywords for one render option; the flag is None when not given."""
    annotation = field.annotation
    if get_origin(annotation) in (Union, types.UnionType):  # `str | None`: None is "not given"
        (annotation,) = (arg for arg in get_args(annotation) if arg is not type(None))
    bounds = [
        f"{sign} {getattr(rule, kind)}"
        for rule in field.metadata
        for kind, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))
        if hasattr(rule, kind)
    ]
    range_ = f"; {', '.join(bounds)}" if bounds else ""
    # argparse %-formats help strings.
    default = field.default
    if isinstance(default, BaseModel):
        default = json.dumps(default.model_dump(by_alias=True))
    help = f"{field.description}{range_} (default: {default})".replace("%", "%%")
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction, "help": help}
    if get_origin(annotation) is Literal:
        return {"choices": get_args(annotation), "help": help}
    if get_origin(annotation) or (
        isinstance(annotation, type) and issubclass(annotation, BaseModel)
    ):
        # An object (or list) option takes JSON, or a shorthand word: `--tts espeak-ng`,
        # `--captions '{"burnIn": true}'`; a bare `--captions` is true, `--no-captions` false.
        return {"action": _JsonFlag, "metavar": "JSON", "help": help}
    return {"type": annotation, "help": help}


def _json_value(text: str) -> Any:
    """A flag's value as JSON, else as the plain string it is (`--tts espeak-ng`)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


class _JsonFlag(argparse.Action):
    """`--name JSON`, `--name` (true) and `--no-name` (false), for object-typed options."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        negated = [f"--no-{s[2:]}" for s in option_strings if s.startswith("--")]
        super().__init__([*option_strings, *negated], dest, nargs="?", **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if option_string is not None and option_string.startswith("--no-"):
            if values is not None:
                parser.error(f"{option_string} takes no value")
            setattr(namespace, self.dest, False)
        else:
            setattr(namespace, self.dest, True if values is None else _json_value(values))


def options_from_args(args: argparse.Namespace) -> RenderOptions:
    given = {name: getattr(args, name) for name in RenderOptions.model_fields}
    return RenderOptions.model_validate({k: v for k, v in given.items() if v is not None})


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
    progress = ConsoleProgress(sys.stderr)
    runner = Runner(find_ffmpeg(args.ffmpeg), on_progress=progress.update, log=log.info)
    started = time.monotonic()
    try:
        produced = render(
            project,
            options,
            output.name,
            runner,
            jobs=args.jobs,
            threads=args.threads,
            lookahead=args.lookahead,
            on_stage=progress.enter,
            on_stage_done=progress.stage_done,
        )
    except (PipelineError, OSError) as exc:
        progress.close(completed=False)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        progress.close(completed=False)
        sys.stderr.write("interrupted\n")
        return 130
    wall = time.monotonic() - started
    progress.close()
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
