"""The work of the render stages, one call each (the registry, `pipeline.registry`, says which
stage runs which): the master audio, a scene's clip, the join, the published outputs.

Every stage is idempotent (a rerun overwrites its own work file atomically), writes only under
`work/` (finalize writes `output/`), and leaves work files in place on failure.
"""

from __future__ import annotations

import dataclasses
import os
import re
from contextlib import ExitStack
from pathlib import Path

from pipeline import audio, mux
from pipeline.atomic import atomic_path, link_or_copy, write_text_atomic
from pipeline.errors import Cancelled, PipelineError
from pipeline.ffmpeg import Runner
from pipeline.names import check_safe_name
from pipeline.plan import Plan
from pipeline.probe import probe
from pipeline.project import ProjectDir
from pipeline.scene import scene_args, stills_args

JOINED_FILE = "joined.mp4"
CONCAT_LIST = "concat.txt"
_SCENE_OUTPUT = re.compile(r"^scene_(\d+)\.mp4$")


def scene_clip(project: ProjectDir, index: int) -> Path:
    return project.work / "scenes" / f"scene_{index:03d}.mp4"


def scene_stills(project: ProjectDir, plan: Plan, index: int) -> list[Path]:
    """The prepared frames of a scene's images, one raw file each."""
    folder = project.work / "stills"
    return [folder / f"scene_{index:03d}_{n}.yuv" for n in range(len(plan.scenes[index].images))]


def master_audio(project: ProjectDir) -> Path:
    return project.work / audio.MASTER_FILE


def joined(project: ProjectDir) -> Path:
    return project.work / JOINED_FILE


def scene_output_name(index: int) -> str:
    return f"scene_{index:02d}.mp4"


def prepare_audio(project: ProjectDir, plan: Plan, runner: Runner) -> Path:
    """AUDIO_PREP: the master track, work/audio.wav."""
    target = master_audio(project)
    with atomic_path(target) as tmp:
        runner.run(
            audio.master_track_args(project.root, plan, tmp),
            expected_seconds=plan.duration_seconds,
        )
    return target


def prepare_stills(project: ProjectDir, plan: Plan, index: int, runner: Runner) -> list[Path]:
    """The first half of a scene's build: its images, fitted and scaled, as raw frames."""
    stills = scene_stills(project, plan, index)
    with ExitStack() as renames:
        # Renamed into place only when every still is written, like any other work file.
        temps = [renames.enter_context(atomic_path(still)) for still in stills]
        dataclasses.replace(runner, on_progress=None).run(
            stills_args(project.root, plan, plan.scenes[index], temps),
            expected_seconds=0,
        )
    return stills


def build_scene(project: ProjectDir, plan: Plan, index: int, runner: Runner) -> Path:
    """A scene's clip: work/scenes/scene_NNN.mp4, video only, exactly the scene's frames.

    The scene's stills are prepared first (work/stills/, removed once the clip is built).
    """
    scene = plan.scenes[index]
    target = scene_clip(project, index)
    try:
        stills = prepare_stills(project, plan, index, runner)
        with atomic_path(target) as tmp:
            runner.run(
                scene_args(plan, scene, stills, tmp),
                expected_seconds=plan.scene_seconds(index),
            )
    except PipelineError as exc:
        if isinstance(exc, Cancelled):
            raise exc.with_context(scene_id=scene.id) from exc
        names = ", ".join(repr(image.name) for image in scene.images)
        raise exc.with_context(
            message=f"rendering image(s) {names} failed ({exc.message})", scene_id=scene.id
        ) from exc
    for still in stills:
        still.unlink(missing_ok=True)
    return target


def concat(project: ProjectDir, plan: Plan, runner: Runner) -> Path:
    """CONCAT: clips joined by stream copy (no second encode), muxed with the AAC master audio."""
    lines = ["ffconcat version 1.0"]
    for scene in plan.scenes:
        clip = scene_clip(project, scene.index)
        if not clip.is_file():
            raise PipelineError(
                f"clip {clip.name} is missing", scene=scene.index, scene_id=scene.id
            )
        lines.append(f"file '{clip.relative_to(project.work)}'")
    listing = project.work / CONCAT_LIST
    write_text_atomic(listing, "\n".join(lines) + "\n")
    target = joined(project)
    with atomic_path(target) as tmp:
        runner.run(
            mux.concat_args(listing, master_audio(project), tmp),
            expected_seconds=plan.duration_seconds,
        )
    return target


def check_output(path: Path, plan: Plan) -> None:
    """The joined video has exactly the planned frames, both streams, and A/V in step."""
    try:
        info = probe(path)
    except Exception as exc:
        raise PipelineError(f"{path.name} cannot be read: {exc}") from None
    problems = []
    if info.video is None or info.video.codec != "h264":
        problems.append("no H.264 video stream")
    elif info.video.frames != plan.total_frames:
        problems.append(f"{info.video.frames} frames instead of {plan.total_frames}")
    if info.audio is None or info.audio.sample_rate != plan.sample_rate:
        problems.append(f"no {plan.sample_rate} Hz audio stream")
    if info.video is not None and info.audio is not None:
        gap = abs(info.video.duration - info.audio.duration)
        if gap > 1 / plan.fps + 1e-3:
            problems.append(f"audio and video lengths differ by {gap:.3f}s")
    if problems:
        raise PipelineError(f"{path.name} failed its check: {'; '.join(problems)}")


def _scaled(runner: Runner, done: int, total: int) -> Runner:
    report = runner.on_progress
    if report is None:
        return runner
    return dataclasses.replace(runner, on_progress=lambda f: report((done + f) / total))


def finalize(project: ProjectDir, plan: Plan, output_name: str, runner: Runner) -> Path:
    """FINALIZE: check work/joined.mp4, then publish it and output/scene_NN.mp4 together.

    Everything is written to temp files first and renamed at the end, so a failure leaves the
    previous render's outputs intact.
    """
    check_safe_name(output_name)
    source = joined(project)
    check_output(source, plan)
    project.output.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    steps = len(plan.scenes) + 1
    try:
        for scene in plan.scenes:
            target = project.output / scene_output_name(scene.index)
            tmp = project.output / f".{target.stem}.tmp{os.getpid()}.mp4"
            staged.append((tmp, target))
            runner_i = _scaled(runner, scene.index, steps)
            runner_i.run(
                mux.scene_output_args(
                    plan, scene.index, scene_clip(project, scene.index), master_audio(project), tmp
                ),
                scene=scene.index,
                expected_seconds=plan.scene_seconds(scene.index),
            )
        final = project.output / output_name
        final_tmp = project.output / f".{final.stem}.tmp{os.getpid()}.mp4"
        staged.append((final_tmp, final))
        link_or_copy(source, final_tmp)
        # The last moment a cancel can stop the render: after this the outputs are published.
        if runner.should_cancel is not None and runner.should_cancel():
            raise Cancelled("cancelled before the output was written")
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, target in staged:
        os.replace(tmp, target)
    _remove_stale_scene_outputs(project, len(plan.scenes))
    if runner.on_progress is not None:
        runner.on_progress(1.0)
    return final


def _remove_stale_scene_outputs(project: ProjectDir, count: int) -> None:
    for path in project.output.glob("scene_*.mp4"):
        match = _SCENE_OUTPUT.match(path.name)
        if match and int(match[1]) >= count:
            path.unlink(missing_ok=True)
