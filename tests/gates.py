"""Test hooks for the recovery tests: hold a stage's task, or an FFmpeg run, at a known instant.

Loaded into a real worker with `-I tests.gates`; nothing of the product is replaced. With
`GATE_DIR` set in the worker's environment, a task whose stage label has a file
`hold-<label>` there writes `at-<label>` just before it starts (before it claims its stage)
and waits until the test removes the hold file. So a test can cancel or kill "right after
AUDIO_PREP" without sleeping and hoping.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery.signals import task_prerun

from tasks.canvas import parse_task_id

POLL = 0.02


def _file(name: str) -> str:
    """A label as a file name: a chunk's `SCENE_BUILD[1/2]` holds a slash."""
    return name.replace("/", ",")


def hold(gate_dir: Path, name: str) -> Path:
    path = gate_dir / f"hold-{_file(name)}"
    path.touch()
    return path


def reached(gate_dir: Path, name: str) -> bool:
    return (gate_dir / f"at-{_file(name)}").exists()


def reached_file(gate_dir: Path, name: str) -> Path:
    return gate_dir / f"at-{_file(name)}"


@task_prerun.connect
def _wait_at_the_gate(task_id: str | None = None, **_: Any) -> None:
    gate_dir = os.environ.get("GATE_DIR")
    if not gate_dir or not task_id:
        return
    parsed = parse_task_id(task_id)
    if parsed is None:
        return
    label = _file(parsed[1])
    held = Path(gate_dir) / f"hold-{label}"
    if not held.exists():
        return
    (Path(gate_dir) / f"at-{label}").touch()
    while held.exists():
        time.sleep(POLL)


# An FFmpeg stand-in that waits at `hold-ffmpeg` when its arguments contain $GATE_MATCH, then
# runs the real one: the stage's Runner sees a real child process that is slow to start.
FFMPEG_SCRIPT = """#!/bin/sh
case "$*" in
  *"$GATE_MATCH"*)
    if [ -e "$GATE_DIR/hold-ffmpeg" ]; then
      touch "$GATE_DIR/at-ffmpeg"
      while [ -e "$GATE_DIR/hold-ffmpeg" ]; do sleep 0.02; done
    fi;;
esac
exec "$REAL_FFMPEG" "$@"
"""


def gated_ffmpeg(folder: Path) -> Path:
    script = folder / "ffmpeg"
    script.write_text(FFMPEG_SCRIPT)
    script.chmod(0o755)
    return script
