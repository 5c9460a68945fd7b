import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
import pytest

from pipeline.errors import Cancelled, PipelineError
from pipeline.ffmpeg import Runner, child_env, find_ffmpeg
from tests import pipeline_fixtures as fx

ffmpeg_bin = fx.ffmpeg_bin

# An FFmpeg run that would last ten minutes: paced at real time by -re.
ENDLESS = ["-re", "-f", "lavfi", "-i", "testsrc2=s=64x36:r=10:d=600", "-f", "null", "-"]


def _pid_from(lines: list[str]) -> int:
    for line in lines:
        if "ffmpeg pid" in line and line.endswith("started"):
            return int(line.split("ffmpeg pid ")[1].split()[0])
    raise AssertionError(f"no pid logged in {lines}")


def _gone(pid: int) -> bool:
    """True once `pid` no longer exists (or is only a zombie nobody has reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in {"Z", "X"}


def test_the_wheels_ffmpeg_wins_over_one_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Debian's /usr/bin/ffmpeg (5.1) used to win here, and render other bytes than the wheel's.
    fake = fx.fake_ffmpeg(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.delenv("FFMPEG_BINARY", raising=False)
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    assert shutil.which("ffmpeg") == str(fake)
    found = find_ffmpeg()
    assert found == imageio_ffmpeg.get_ffmpeg_exe()
    assert os.access(found, os.X_OK)
    version = subprocess.run([found, "-version"], capture_output=True, text=True, check=True)
    assert "5.1.6" not in version.stdout


def test_find_ffmpeg_prefers_explicit_then_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fx.fake_ffmpeg(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FFMPEG_BINARY", "ffmpeg")  # named: PATH's is then what was asked for
    assert find_ffmpeg() == str(fake)
    bundled = imageio_ffmpeg.get_ffmpeg_exe()
    assert find_ffmpeg(bundled) == bundled  # the explicit argument (the CLI's --ffmpeg) first
    monkeypatch.setenv("FFMPEG_BINARY", "/nope/ffmpeg")
    with pytest.raises(FileNotFoundError, match="'/nope/ffmpeg' not found"):
        find_ffmpeg()
    with pytest.raises(FileNotFoundError, match="nope"):
        find_ffmpeg("/nope/ffmpeg")


def test_progress_is_monotonic_and_ends_at_one(ffmpeg_bin: str) -> None:
    seen: list[float] = []
    runner = Runner(ffmpeg_bin, on_progress=seen.append, stage="CONCAT")
    runner.run(
        ["-f", "lavfi", "-i", "testsrc2=s=64x36:r=25:d=4", "-f", "null", "-"],
        expected_seconds=4.0,
    )
    assert seen and seen[-1] == 1.0
    assert seen == sorted(seen)
    assert all(0.0 <= f <= 1.0 for f in seen)


def test_failure_names_stage_scene_and_stderr_tail(ffmpeg_bin: str) -> None:
    logged: list[str] = []
    runner = Runner(ffmpeg_bin, log=logged.append, stage="SCENE_BUILD", scene=3)
    with pytest.raises(PipelineError) as info:
        runner.run(["-i", "/nonexistent/input.jpg", "-f", "null", "-"], expected_seconds=1.0)
    err = info.value
    assert err.stage == "SCENE_BUILD" and err.scene == 3
    assert "/nonexistent/input.jpg" in err.stderr_tail
    assert str(err).startswith("SCENE_BUILD scene 3: ffmpeg exited with status")
    assert any("-hide_banner" in line for line in logged)  # the command line was logged


def test_cancel_kills_the_child(ffmpeg_bin: str) -> None:
    logged: list[str] = []
    progressed: list[float] = []
    runner = Runner(
        ffmpeg_bin,
        on_progress=progressed.append,
        should_cancel=lambda: bool(progressed),
        log=logged.append,
        stage="SCENE_BUILD",
        scene=1,
    )
    with pytest.raises(Cancelled) as info:
        runner.run(ENDLESS, expected_seconds=600)
    assert info.value.stage == "SCENE_BUILD" and info.value.scene == 1
    assert _gone(_pid_from(logged))


def test_any_base_exception_kills_the_child_and_propagates(ffmpeg_bin: str) -> None:
    logged: list[str] = []

    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    runner = Runner(ffmpeg_bin, on_progress=interrupt, log=logged.append)
    with pytest.raises(KeyboardInterrupt):
        runner.run(ENDLESS, expected_seconds=600)
    assert _gone(_pid_from(logged))


_ORPHAN_SCRIPT = """
import sys
from pipeline.ffmpeg import Runner
def started(line):
    if line.endswith("started"):
        print(line.split("ffmpeg pid ")[1].split()[0], flush=True)
Runner(sys.argv[1], log=started).run(
    ["-re", "-f", "lavfi", "-i", "testsrc2=s=64x36:r=10:d=600", "-f", "null", "-"],
    expected_seconds=600)
"""


def test_no_orphan_when_the_parent_is_killed(ffmpeg_bin: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT, ffmpeg_bin],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert not _gone(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    # PR_SET_PDEATHSIG: the kernel kills the child as its parent dies; wait for the reaper.
    deadline = time.monotonic() + 10
    while not _gone(child):
        assert time.monotonic() < deadline, f"ffmpeg {child} survived its parent"
        os.sched_yield()


def test_ffmpeg_runs_with_huge_pages_asked_of_malloc_keeping_the_users_tunables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in FFmpeg that writes down the environment it was given.
    seen = tmp_path / "tunables"
    fake = tmp_path / "ffmpeg"
    fake.write_text(f'#!/bin/sh\nprintf "%s" "$GLIBC_TUNABLES" > {seen}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    Runner(str(fake)).run([], expected_seconds=1)
    assert seen.read_text() == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    # A user's own choice of the setting wins; with none set, it is the only tunable.
    assert child_env({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})["GLIBC_TUNABLES"] == (
        "glibc.malloc.hugetlb=0"
    )
    assert child_env({})["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
