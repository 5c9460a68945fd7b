"""The command line's orchestrator (pipeline/render.py): AUDIO_PREP beside the scene builds,
the units longest first, and the same bytes however the stages overlap."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pipeline import registry
from pipeline.ffmpeg import Runner
from pipeline.fixtures import ImageFixture, SceneFixture, write_project
from pipeline.plan import make_plan
from pipeline.project import ProjectDir
from pipeline.render import longest_first, render
from pipeline.units import segments
from tests.pipeline_fixtures import SMALL, ffmpeg_bin, small_project  # noqa: F401 (fixtures)

# Chunks of half a second: each scene of the two-scene project is built in two units.
CHUNKED = SMALL.model_copy(update={"chunk_seconds": 0.5, "resolution": "160x90"})


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_overlapped_stages_make_the_same_files_as_one_at_a_time(
    small_project: ProjectDir,  # noqa: F811
    ffmpeg_bin: str,  # noqa: F811
) -> None:
    # One job: every stage in turn. Two: AUDIO_PREP beside the scene builds, whose scene
    # outputs wait for its master; the units longest first. Same x264 threads for both.
    started: list[str] = []
    render(
        small_project, CHUNKED, "v.mp4", Runner(ffmpeg_bin), 1, threads=1, on_stage=started.append
    )
    one_at_a_time = _digests(small_project.output)
    assert started == ["VALIDATE", "AUDIO_PREP", "SCENE_BUILD", "CONCAT", "FINALIZE"]

    started.clear()
    done: list[str] = []
    render(
        small_project,
        CHUNKED,
        "v.mp4",
        Runner(ffmpeg_bin),
        2,
        threads=1,
        on_stage=started.append,
        on_stage_done=lambda name, seconds: done.append(name),
    )
    assert started == ["VALIDATE", "SCENE_BUILD", "CONCAT", "FINALIZE"]
    assert done == ["AUDIO_PREP"]
    assert _digests(small_project.output) == one_at_a_time
    assert {"v.mp4", "scene_00.mp4", "scene_01.mp4"} <= set(one_at_a_time)


def test_a_failed_stage_beside_the_builds_is_the_error_reported(
    small_project: ProjectDir,  # noqa: F811
    ffmpeg_bin: str,  # noqa: F811
) -> None:
    # The master cannot be put in place: AUDIO_PREP fails while the clips are being built,
    # and the scene outputs waiting for it fail with it; the error is AUDIO_PREP's own.
    (small_project.work / "audio.wav").mkdir(parents=True)
    with pytest.raises(IsADirectoryError, match=r"audio\.wav"):
        render(small_project, CHUNKED, "v.mp4", Runner(ffmpeg_bin), 2, threads=1)
    assert not (small_project.work / "outputs").exists() or not any(
        (small_project.work / "outputs").glob("scene_*.mp4")
    )


def test_units_start_longest_first(tmp_path: Path, ffmpeg_bin: str) -> None:  # noqa: F811
    scenes = [
        SceneFixture((ImageFixture(f"{n}.png", 64, 36, "testsrc2"),), duration=seconds)
        for n, seconds in enumerate((0.5, 2.0, 1.0))
    ]
    project = write_project(tmp_path / "p", scenes, ffmpeg_bin)
    plan = make_plan(project, SMALL, ffmpeg_bin)
    units = segments(plan)
    ordered = longest_first(units, plan)
    assert [unit.scene for unit in ordered] == [1, 2, 0]
    assert longest_first(units, None) == units  # before the plan: as they are


def test_only_a_once_stage_writing_named_files_runs_beside_the_next() -> None:
    from pipeline.render import _may_run_beside_next

    beside = [stage.name for stage in registry.STAGES if _may_run_beside_next(stage)]
    assert beside == ["AUDIO_PREP"]


def _logging_ffmpeg(folder: Path, ffmpeg: str) -> tuple[Path, Path]:
    """An FFmpeg that notes its niceness and its last argument (the file it writes), then
    runs the real one."""
    log = folder / "niceness.log"
    script = folder / "ffmpeg"
    script.write_text(
        "#!/bin/sh\n"
        "for last; do :; done\n"
        f'echo "$(cut -d" " -f19 /proc/$$/stat) $last" >> {log}\n'
        f'exec {ffmpeg} "$@"\n'
    )
    script.chmod(0o755)
    return script, log


def test_what_runs_beside_the_builds_runs_below_them(
    small_project: ProjectDir,  # noqa: F811
    ffmpeg_bin: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    # AUDIO_PREP and the scene files run BESIDE_NICE below the unit encodes, so they take the
    # core a last unit leaves idle rather than the encodes' share; alone (one job), nothing
    # is lowered.
    from pipeline.render import BESIDE_NICE

    script, log = _logging_ffmpeg(tmp_path, ffmpeg_bin)
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    lowered = min(mine + BESIDE_NICE, 19)
    render(small_project, CHUNKED, "v.mp4", Runner(str(script)), 2, threads=1)
    # Each file is written to a temp name: ".scene_00.<random>.tmp.mp4".
    seen = [line.split(" ", 1) for line in log.read_text().splitlines() if "/" in line]
    by_file = {Path(path).name.split(".")[1]: int(nice) for nice, path in seen}
    assert by_file["scene_00"] == by_file["scene_01"] == lowered  # the scene files
    assert by_file["audio"] == lowered  # AUDIO_PREP's
    encodes = [int(n) for n, path in seen if "_part" in path]
    assert encodes and set(encodes) == {mine}

    log.unlink()
    render(small_project, CHUNKED, "v.mp4", Runner(str(script)), 1, threads=1)
    assert {int(line.split()[0]) for line in log.read_text().splitlines()} == {mine}
