"""The stages orchestration drives, one call each: AUDIO_PREP, SCENE_BUILD, CONCAT, FINALIZE.

Every stage is idempotent (a rerun overwrites its own work file atomically), writes only under
`work/` (finalize writes `output/`), and leaves work files in place on failure.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from pipeline import audio
from pipeline.atomic import atomic_path, link_or_copy, write_text_atomic
from pipeline.errors import Cancelled, PipelineError
from pipeline.ffmpeg import Runner
from pipeline.names import check_safe_name
from pipeline.options import RenderOptions
from pipeline.plan import Plan, make_plan, write_plan
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
            stage="AUDIO_PREP",
            scene=None,
            expected_seconds=plan.duration_seconds,
        )
    return target


def prepare_stills(project: ProjectDir, plan: Plan, index: int, runner: Runner) -> list[Path]:
    """The first half of SCENE_BUILD: the scene's images, fitted and scaled, as raw frames."""
    stills = scene_stills(project, plan, index)
    with ExitStack() as renames:
        # Renamed into place only when every still is written, like any other work file.
        temps = [renames.enter_context(atomic_path(still)) for still in stills]
        dataclasses.replace(runner, on_progress=None).run(
            stills_args(project.root, plan, plan.scenes[index], temps),
            stage="SCENE_BUILD",
            scene=index,
            expected_seconds=0,
        )
    return stills


def build_scene(project: ProjectDir, plan: Plan, index: int, runner: Runner) -> Path:
    """SCENE_BUILD: work/scenes/scene_NNN.mp4, video only, exactly the scene's frames.

    The scene's stills are prepared first (work/stills/, removed once the clip is built).
    """
    scene = plan.scenes[index]
    target = scene_clip(project, index)
    try:
        stills = prepare_stills(project, plan, index, runner)
        with atomic_path(target) as tmp:
            runner.run(
                scene_args(
                    plan, scene, stills, tmp, threads=runner.threads, lookahead=runner.lookahead
                ),
                stage="SCENE_BUILD",
                scene=index,
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
                "CONCAT", f"clip {clip.name} is missing", scene=scene.index, scene_id=scene.id
            )
        lines.append(f"file '{clip.relative_to(project.work)}'")
    listing = project.work / CONCAT_LIST
    write_text_atomic(listing, "\n".join(lines) + "\n")
    target = joined(project)
    with atomic_path(target) as tmp:
        runner.run(
            [
                "-f",
                "concat",
                "-safe",
                "0",
                "-i",
                str(listing),
                "-i",
                str(master_audio(project)),
                "-map",
                "0:v:0",
                "-map",
                "1:a:0",
                "-c:v",
                "copy",
                *audio.AAC_ARGS,
                "-movflags",
                "+faststart",
                "-f",
                "mp4",
                str(tmp),
            ],
            stage="CONCAT",
            scene=None,
            expected_seconds=plan.duration_seconds,
        )
    return target


def check_output(path: Path, plan: Plan, *, stage: str = "FINALIZE") -> None:
    """The joined video has exactly the planned frames, both streams, and A/V in step."""
    try:
        info = probe(path)
    except Exception as exc:
        raise PipelineError(stage, f"{path.name} cannot be read: {exc}") from None
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
        raise PipelineError(stage, f"{path.name} failed its check: {'; '.join(problems)}")


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
                [
                    "-i",
                    str(scene_clip(project, scene.index)),
                    "-i",
                    str(master_audio(project)),
                    "-map",
                    "0:v:0",
                    "-map",
                    "1:a:0",
                    "-c:v",
                    "copy",
                    "-af",
                    audio.scene_audio_filter(plan, scene.index),
                    *audio.AAC_ARGS,
                    "-movflags",
                    "+faststart",
                    "-f",
                    "mp4",
                    str(tmp),
                ],
                stage="FINALIZE",
                scene=scene.index,
                expected_seconds=plan.scene_seconds(scene.index),
            )
        final = project.output / output_name
        final_tmp = project.output / f".{final.stem}.tmp{os.getpid()}.mp4"
        staged.append((final_tmp, final))
        link_or_copy(source, final_tmp)
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


# Share of the whole render each stage gets in render()'s overall progress.
_WEIGHTS = {
    "VALIDATE": 0.01,
    "AUDIO_PREP": 0.02,
    "SCENE_BUILD": 0.9,
    "CONCAT": 0.03,
    "FINALIZE": 0.04,
}


def render(
    project: ProjectDir,
    options: RenderOptions,
    output_name: str,
    runner: Runner,
    jobs: int = 1,
    *,
    on_stage: Callable[[str], None] | None = None,
) -> Path:
    """All stages in order, `jobs` scene builds at a time; on_progress sees 0..1 overall."""
    report = runner.on_progress
    lock = threading.Lock()
    offsets = {}
    acc = 0.0
    for name, weight in _WEIGHTS.items():
        offsets[name] = acc
        acc += weight

    def stage_runner(stage: str) -> Runner:
        if report is None:
            return runner
        base, weight = offsets[stage], _WEIGHTS[stage]
        return dataclasses.replace(runner, on_progress=lambda f: report(base + weight * f))

    def enter(stage: str) -> None:
        if on_stage is not None:
            on_stage(stage)
        if runner.log is not None:
            runner.log(f"stage {stage} at {time.strftime('%H:%M:%S')}")

    enter("VALIDATE")
    project.work.mkdir(parents=True, exist_ok=True)
    plan = make_plan(project, options, runner.ffmpeg)
    write_plan(project, plan)
    enter("AUDIO_PREP")
    prepare_audio(project, plan, stage_runner("AUDIO_PREP"))
    enter("SCENE_BUILD")
    jobs = max(1, min(jobs, len(plan.scenes)))
    threads = runner.threads or (max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else 0)
    done = [0.0] * len(plan.scenes)
    total = plan.total_frames

    def scene_runner(index: int) -> Runner:
        weight = plan.scenes[index].frames / total
        base, share = offsets["SCENE_BUILD"], _WEIGHTS["SCENE_BUILD"]

        def progress(fraction: float) -> None:
            with lock:
                done[index] = fraction * weight
                overall = base + share * sum(done)
            if report is not None:
                report(overall)

        return dataclasses.replace(runner, on_progress=progress, threads=threads)

    if jobs == 1:
        for scene in plan.scenes:
            build_scene(project, plan, scene.index, scene_runner(scene.index))
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [
                pool.submit(build_scene, project, plan, s.index, scene_runner(s.index))
                for s in plan.scenes
            ]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    enter("CONCAT")
    concat(project, plan, stage_runner("CONCAT"))
    enter("FINALIZE")
    return finalize(project, plan, output_name, stage_runner("FINALIZE"))
