import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import registry, stages
from pipeline.__main__ import _parser, main, options_from_args
from pipeline.options import RenderOptions
from pipeline.probe import probe
from pipeline.project import ProjectDir
from pipeline.render import usable_cpus
from tests import pipeline_fixtures as fx

ffmpeg_bin = fx.ffmpeg_bin
small_project = fx.small_project

FAST = ["--resolution", "160x90", "--preset", "superfast", "--min-shot", "0.5", "--xfade", "0.2"]


def test_cli_renders_and_summarises(
    small_project: ProjectDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "elsewhere" / "movie.mp4"
    code = main([str(small_project.root), "-o", str(out), *FAST, "--fps", "25", "--jobs", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "100.0% done" in captured.err  # the progress reached the end
    assert "2.00s, 50 frames at 25 fps, 160x90" in captured.out
    assert "x real time" in captured.out
    info = probe(out)
    assert info.video is not None and info.video.frames == 50
    assert (small_project.output / "movie.mp4").exists()


def test_cli_passes_x264_threads_and_lookahead(
    small_project: ProjectDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tuned.mp4"
    args = [*FAST, "--preset", "medium", "--threads", "1", "--lookahead", "5"]
    assert main([str(small_project.root), "-o", str(out), *args]) == 0, capsys.readouterr().err
    # x264 writes the options it ran with into the stream (an SEI), once per scene clip.
    written = out.read_bytes()
    assert written.count(b" rc_lookahead=5 ") == 2 and written.count(b" threads=1 ") == 2


def test_cli_by_default_builds_a_clip_per_core_each_x264_on_its_share_the_last_on_all(
    small_project: ProjectDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cores = usable_cpus()
    assert _parser().parse_args(["p", "-o", "v.mp4"]).jobs == cores
    if cores < 2:
        pytest.skip("one core: one job, x264's own threads")
    out = tmp_path / "default.mp4"
    assert main([str(small_project.root), "-o", str(out), *FAST]) == 0, capsys.readouterr().err
    # The first scene clip was encoded with its share of the cores, one x264 thread per core;
    # the last one started, which runs alone once the other ends, with every core.
    written = out.read_bytes()
    assert written.count(b" threads=1 ") == 1
    assert written.count(f" threads={cores} ".encode()) == 1
    # Threads the caller chose are every unit's.
    assert main([str(small_project.root), "-o", str(out), *FAST, "--threads", "1"]) == 0
    assert out.read_bytes().count(b" threads=1 ") == 2


def test_cli_jobs_default_to_the_cores_this_process_may_use() -> None:
    # Pinned to one core (taskset, a container's cpuset): one job, whatever the machine has.
    shown = subprocess.run(
        [sys.executable, "-m", "pipeline", "-h"],
        preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "(default: the usable cores, 1 here)" in " ".join(shown.split())


def test_cli_reports_pipeline_errors(
    small_project: ProjectDir, capsys: pytest.CaptureFixture[str]
) -> None:
    small_project.asset("images", "a.jpg").unlink()
    assert main([str(small_project.root), "-o", "v.mp4", *FAST]) == 1
    assert "VALIDATE scene 0 (id 'intro'): image 'a.jpg' does not exist" in capsys.readouterr().err


def test_cli_reports_file_system_errors_without_a_traceback(
    small_project: ProjectDir, capsys: pytest.CaptureFixture[str]
) -> None:
    # A directory where the first scene's output must go (work/scenes/, where its clip goes,
    # is cleared by every render): the output cannot be renamed into place.
    video, _ = stages.scene_output_files(small_project, 0)
    (video / "keep").mkdir(parents=True)
    assert main([str(small_project.root), "-o", "v.mp4", *FAST]) == 1
    err = capsys.readouterr().err
    assert "error: [Errno 21] Is a directory" in err and "scene_00.mp4" in err
    assert "Traceback" not in err


def test_cli_rejects_bad_options(
    small_project: ProjectDir, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(small_project.root), "-o", "v.mp4", "--resolution", "1921x1080"]) == 2
    assert "even width and height" in capsys.readouterr().err


def test_option_flags_build_render_options_from_the_given_ones_only() -> None:
    args = _parser().parse_args(
        ["p", "-o", "v.mp4", "--min-shot", "1.5", "--crf", "23", "--fit", "contain", "--ducking"]
    )
    options = options_from_args(args)
    assert (options.min_shot, options.crf, options.fit, options.ducking.on) == (
        1.5,
        23,
        "contain",
        True,
    )
    assert options.fps == RenderOptions().fps and options.preset == RenderOptions().preset
    assert options_from_args(_parser().parse_args(["p", "-o", "v.mp4"])) == RenderOptions()
    no_ducking = _parser().parse_args(["p", "-o", "v.mp4", "--no-ducking", "--voice-dir", "vo"])
    assert (options_from_args(no_ducking).ducking.on, options_from_args(no_ducking).voice_dir) == (
        False,
        "vo",
    )


def test_option_flags_check_types_and_choices(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in (["--preset", "turbo"], ["--fps", "fast"], ["--motion", "spin"]):
        with pytest.raises(SystemExit) as exited:
            _parser().parse_args(["p", "-o", "v.mp4", *bad])
        assert exited.value.code == 2
        assert bad[0] in capsys.readouterr().err


def test_cross_field_option_errors_name_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path), "-o", "v.mp4", "--min-shot", "2", "--xfade", "2"]) == 2
    lines = capsys.readouterr().err.splitlines()
    # pydantic puts the field on its own line above the message.
    located = lines.index("xfade")
    assert "xfade (2.0) must be shorter than minShot (2.0)" in lines[located + 1]


def _cli(project: ProjectDir, out: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline", str(project.root), "-o", str(out), *FAST]


def test_cli_off_a_terminal_prints_a_line_per_stage_with_its_time(
    small_project: ProjectDir, tmp_path: Path
) -> None:
    # What CI, nohup or `> render.log 2>&1` get: pipes, not a terminal.
    done = subprocess.run(_cli(small_project, tmp_path / "v.mp4"), capture_output=True, check=True)
    assert b"\r" not in done.stdout + done.stderr
    lines = done.stderr.decode().splitlines()
    stage_lines = [re.fullmatch(r"(\w+) +\d+\.\d s +\d+\.\d% done", line) for line in lines]
    assert all(stage_lines), lines
    # Every stage with something to run: nothing is spoken here, so no SPEECH.
    ran = [stage.name for stage in registry.STAGES if stage.units(registry.Outline(2))]
    assert ran[0] == "VALIDATE"
    assert [m[1] for m in stage_lines if m] == ran
    assert lines[-1].endswith("100.0% done")
    assert "x real time" in done.stdout.decode()


def test_cli_on_a_terminal_redraws_one_bar(small_project: ProjectDir, tmp_path: Path) -> None:
    terminal, side = pty.openpty()
    with subprocess.Popen(_cli(small_project, tmp_path / "v.mp4"), stderr=side) as cli:
        os.close(side)
        shown = b""
        while True:
            try:
                read = os.read(terminal, 4096)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not read:
                break
            shown += read
    os.close(terminal)
    assert cli.returncode == 0, shown
    drawn = shown.decode()
    # A pty turns "\n" into "\r\n": the bar is the line's redraws, ended once.
    assert drawn.count("\n") == 1 and drawn.endswith("\r\n")
    assert drawn.count("\r[") > len(registry.STAGES)
    assert "[" + "#" * 30 + "] 100.0% FINALIZE" in drawn
    assert " done" not in drawn
