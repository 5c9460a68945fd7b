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


def test_a_nicer_ffmpeg_lowers_its_session_group_too(tmp_path: Path) -> None:
    # FFmpeg starts a session of its own; where the kernel schedules sessions as groups
    # (autogroup), the CPU is shared between groups first, and a niceness inside a group of
    # one weighs nothing against the caller's encodes. Its group must be as nice as it is.
    if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() != "1":
        assert niceness_seen_by(tmp_path, 7) == min(os.getpriority(os.PRIO_PROCESS, 0) + 7, 19)
        return  # no groups to lower: the niceness alone decides
    out = tmp_path / "group.txt"
    script = tmp_path / "ffmpeg"
    script.write_text(f"#!/bin/sh\ncat /proc/$$/autogroup > {out}\n")
    script.chmod(0o755)
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    Runner(ffmpeg=str(script), nice=7).run([], expected_seconds=1)
    assert out.read_text().split()[-2:] == ["nice", str(min(mine + 7, 19))]
    Runner(ffmpeg=str(script)).run([], expected_seconds=1)
    assert out.read_text().split()[-2:] == ["nice", "0"]  # a new session's group, as it was
