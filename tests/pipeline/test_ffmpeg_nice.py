"""pipeline/ffmpeg.Runner runs FFmpeg below its caller's CPU priority (FFMPEG_NICE)."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.ffmpeg import Runner


def niceness_seen_by(tmp_path: Path, nice: int) -> int:
    out = tmp_path / f"nice-{nice}.txt"
    script = tmp_path / "ffmpeg"
    # The 19th field of /proc/<pid>/stat is the process's nice value.
    script.write_text(f"#!/bin/sh\ncut -d' ' -f19 /proc/$$/stat > {out}\n")
    script.chmod(0o755)
    Runner(ffmpeg=str(script), nice=nice).run([], expected_seconds=1)
    return int(out.read_text())


def test_ffmpeg_runs_nicer_than_its_caller(tmp_path: Path) -> None:
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert niceness_seen_by(tmp_path, 0) == mine
    assert niceness_seen_by(tmp_path, 7) == min(mine + 7, 19)
    assert os.getpriority(os.PRIO_PROCESS, 0) == mine  # the caller is left as it was
