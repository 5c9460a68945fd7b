from pathlib import Path

import pytest

from pipeline.__main__ import main
from pipeline.probe import probe
from pipeline.project import ProjectDir
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
    assert "100.0%" in captured.err  # the progress bar reached the end
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


def test_cli_reports_pipeline_errors(
    small_project: ProjectDir, capsys: pytest.CaptureFixture[str]
) -> None:
    small_project.asset("images", "a.jpg").unlink()
    assert main([str(small_project.root), "-o", "v.mp4", *FAST]) == 1
    assert "VALIDATE scene 0 (id 'intro'): image 'a.jpg' does not exist" in capsys.readouterr().err


def test_cli_reports_file_system_errors_without_a_traceback(
    small_project: ProjectDir, capsys: pytest.CaptureFixture[str]
) -> None:
    # A directory where the first scene's clip must go: the clip cannot be renamed into place.
    (small_project.work / "scenes" / "scene_000.mp4" / "keep").mkdir(parents=True)
    assert main([str(small_project.root), "-o", "v.mp4", *FAST]) == 1
    err = capsys.readouterr().err
    assert "error: [Errno 21] Is a directory" in err and "scene_000.mp4" in err
    assert "Traceback" not in err


def test_cli_rejects_bad_options(
    small_project: ProjectDir, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(small_project.root), "-o", "v.mp4", "--resolution", "1921x1080"]) == 2
    assert "even width and height" in capsys.readouterr().err
