"""The work of the render stages, one call each (the registry, `pipeline.registry`, says which
stage runs which): the master audio, a scene's clip, the join, the published outputs.

Every stage is idempotent (a rerun overwrites its own work file atomically), writes only under
`work/` (finalize returns what is published to `output/`: `Publication`), and leaves work
files in place on failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import av

from pipeline import audio, captions, mux
from pipeline.atomic import atomic_path, publish_together, write_text_atomic
from pipeline.cache import ClipCache, ClipReport, output_key
from pipeline.capabilities import UnfitFFmpeg, inspect_ffmpeg
from pipeline.errors import Cancelled, PipelineError
from pipeline.ffmpeg import Runner
from pipeline.names import check_safe_name
from pipeline.plan import Plan, file_sha256
from pipeline.poster import (
    poster_at,
    poster_key,
    poster_name,
    scene_poster_frame,
    write_frame_jpeg,
)
from pipeline.probe import off_grid, probe
from pipeline.project import ProjectDir
from pipeline.scene import stills_args
from pipeline.units import Unit, chunk_unit, scene_unit, segments, segments_of

JOINED_FILE = "joined.mp4"
MASTER_DIGEST = "audio.wav.sha256"
CONCAT_LIST = "concat.txt"
CAPTIONS_SRT = "captions.srt"
FINAL_DIR = "final"
_SCENE_OUTPUT = re.compile(r"^scene_(\d+)\.(?:mp4|jpg)$")


def scene_clip(project: ProjectDir, index: int) -> Path:
    """The clip of a scene built in one piece."""
    return scene_unit(index).clip(project)


def chunk_clip(project: ProjectDir, index: int, chunk: int) -> Path:
    """Chunk `chunk` of the clip of a scene built in chunks (`pipeline.chunks`)."""
    return chunk_unit(index, chunk).clip(project)


def scene_clips(project: ProjectDir, plan: Plan, index: int) -> list[Path]:
    """A scene's clip files in order: one, or its chunks. Joined, they are its clip."""
    return [unit.clip(project) for unit in segments_of(plan, index)]


def clip_at(project: ProjectDir, plan: Plan, index: int, frame: int) -> tuple[Path, int]:
    """The clip file holding frame `frame` of scene `index`, and the frame's number in it."""
    for unit in segments_of(plan, index):
        first, end = unit.span(plan)
        if first <= frame < end:
            return unit.clip(project), frame - first
    raise ValueError(f"scene {index} has no frame {frame}")


def scene_complete(project: ProjectDir, plan: Plan, index: int) -> bool:
    """Whether every clip file of the scene has been built (by whichever workers)."""
    return all(path.is_file() for path in scene_clips(project, plan, index))


def _drawn_from_built(project: ProjectDir, plan: Plan, index: int) -> bool:
    """Whether every clip drawn from scene `index`'s stills has been built."""
    drawing = [unit for unit in segments(plan) if index in unit.draws()]
    return all(unit.clip(project).is_file() for unit in drawing)


def scene_stills(project: ProjectDir, plan: Plan, index: int) -> list[Path]:
    """What a scene's visuals are drawn from, prepared (one file each), shared by its chunks.

    Each visual names its file for what it is made from (for a still: the image's bytes, its
    rotation, the fit, the size, the colours), so a file left by an earlier run of the folder
    is never taken for this one's.
    """
    scene = plan.scenes[index]
    folder = project.work / "stills"
    return [
        folder / visual.prepared_name(f"scene_{index:03d}_{n}", plan, scene)
        for n, visual in enumerate(scene.visuals)
        if visual.prepares
    ]


def master_audio(project: ProjectDir) -> Path:
    return project.work / audio.MASTER_FILE


def joined(project: ProjectDir) -> Path:
    return project.work / JOINED_FILE


def scene_output_name(index: int) -> str:
    return f"scene_{index:02d}.mp4"


def master_aac(project: ProjectDir) -> Path:
    return project.work / audio.MASTER_AAC_FILE


def prepare_audio(
    project: ProjectDir, plan: Plan, runner: Runner, *, cache: ClipCache | None = None
) -> Path:
    """AUDIO_PREP: the master track, work/audio.wav: the whole mix in one graph, then (for a
    loudness target) its measured gain in light passes over the float mix (`_gain_passes`);
    and the master as the video's AAC track, work/audio.m4a, which CONCAT copies.

    With a `cache`, a master (and its AAC) made before from the same files by the same mix
    and passes is linked in instead: a resubmission, or a change of picture only, mixes
    nothing."""
    target, aac = master_audio(project), master_aac(project)
    # A rerun writes a new master: the old digest and AAC must not outlive it.
    (project.work / MASTER_DIGEST).unlink(missing_ok=True)
    aac.unlink(missing_ok=True)
    key = _master_key(project, plan, runner) if cache is not None else None
    if cache is None or key is None:
        _make_master(project, plan, runner)
        _make_aac(target, aac, runner)
    else:
        log = runner.log or (lambda _line: None)
        hit, _ = cache.get_or_build(
            key,
            target,
            lambda: _make_master(project, plan, runner),
            log,
            should_cancel=runner.should_cancel,
            suffix=".wav",
        )
        if hit:
            log(f"cache hit {key[:16]}: master track linked, nothing mixed")
        cache.get_or_build(
            _digest_of([key, "aac"]),
            aac,
            lambda: _make_aac(target, aac, runner),
            log,
            should_cancel=runner.should_cancel,
            suffix=".m4a",
        )
    _write_master_digest(project)
    return target


def _make_master(project: ProjectDir, plan: Plan, runner: Runner) -> None:
    if plan.loudness is None:
        with atomic_path(master_audio(project)) as tmp:
            runner.run(
                audio.master_track_args(project.root, plan, tmp),
                expected_seconds=plan.duration_seconds,
            )
    else:
        _loudness_master(project, plan, runner)


def _make_aac(master: Path, aac: Path, runner: Runner) -> None:
    if not aac.is_file():  # a loudness check may have encoded it already
        _encode_aac(master, aac, runner)


# Bumped when how the master is made from the mix changes in a way its key does not show: the
# key holds the mix command, a pass's command, the AAC's arguments and the passes' constants,
# not the logic that picks each pass's gain (audio.next_gain).
_MASTER_RECIPE = 1
_PASS_CONSTANTS = (
    *("TRUE_PEAK_CEILING", "PEAK_MARGIN", "LIMIT_BELOW", "TOLERANCE", "MAX_PASSES"),
    *("AAC_RISK", "AAC_STEP"),
)


def _master_key(project: ProjectDir, plan: Plan, runner: Runner) -> str | None:
    """The master track's cache key: its mix command with each file it reads named by its
    content, and how the passes and the AAC are made from the mix. None when a file is
    missing (the mix then fails, saying which) or the command names a file of unknown
    content."""
    # Placeholders for the job's own work files, which the key must not name.
    stats = Path(audio.STATS_FILE) if plan.loudness is not None else None
    out = Path(audio.MASTER_FILE)
    limited = audio.Gain(0.0, True)
    recipe = [
        *audio.master_track_args(project.root, plan, out, stats),
        *(f"recipe={_MASTER_RECIPE}", f"loudness={plan.loudness}"),
        *audio.gain_args(Path(audio.MIX_FILE), out, limited, plan.sample_rate, stats),
        *audio.AAC_ARGS,
        *(f"{name}={getattr(audio, name)}" for name in _PASS_CONSTANTS),
    ]
    # A clip's sound is read from its file, whose digest the plan holds (a clip may be large).
    known = {
        project.root / visual.path: visual.sha256
        for scene in plan.scenes
        for visual in scene.visuals
        if visual.sha256
    }
    try:
        files = {
            path: known.get(path) or file_sha256(path)
            for path in audio.mix_inputs(plan, project.root)
        }
    except FileNotFoundError:
        return None
    return output_key("master", _ffmpeg_version(runner.ffmpeg), recipe, files, out, project.root)


def _loudness_master(project: ProjectDir, plan: Plan, runner: Runner) -> None:
    assert plan.loudness is not None
    target = master_audio(project)
    mix, stats = project.work / audio.MIX_FILE, project.work / audio.STATS_FILE
    steps = 10 + audio.MAX_PASSES
    with atomic_path(mix) as tmp:
        _scaled(runner, 0, steps, 10).run(
            audio.master_track_args(project.root, plan, tmp, _fresh(stats)),
            expected_seconds=plan.duration_seconds,
        )
    measured = _measured(stats)
    _log(
        runner,
        f"loudness: the mix is {measured.integrated:.2f} LUFS, true peak "
        f"{measured.true_peak:.2f} dBTP, {measured.gated:.1f} s above the gates; "
        f"target {plan.loudness:g} LUFS",
    )
    _gain_passes(plan, plan.loudness, mix, stats, target, measured, runner, steps)
    mix.unlink(missing_ok=True)
    stats.unlink(missing_ok=True)


def _encode_aac(master: Path, aac: Path, runner: Runner) -> None:
    """`master` as the video's AAC track, written to `aac` whole or not at all."""
    quiet = dataclasses.replace(runner, on_progress=None)
    with atomic_path(aac) as tmp:
        quiet.run(audio.aac_args(master, tmp), expected_seconds=0)


def _gain_passes(
    plan: Plan,
    loudness: float,
    mix: Path,
    stats: Path,
    target: Path,
    measured: audio.Loudness,
    runner: Runner,
    steps: int,
) -> None:
    """Gain passes over the float mix, each measured as it writes the master: a limiter takes
    some loudness that only a measurement after it can see, so the gain is corrected until
    the master is on target (audio.next_gain), in at most MAX_PASSES. A master whose peaks
    come near the ceiling is then encoded to AAC and measured, and its peak mark lowered if
    the AAC passes the ceiling. Each pass and check is logged."""
    gain: audio.Gain | None = audio.gain_for(measured, loudness)
    # The mix itself is the first point of the secant: the limiter had nothing to do at 0 dB.
    before: tuple[audio.Gain, audio.Loudness] | None = (audio.Gain(0.0, False), measured)
    mark = audio.MARK
    aac = target.with_name(audio.MASTER_AAC_FILE)
    for n in range(1, audio.MAX_PASSES + 1):
        assert gain is not None
        aac.unlink(missing_ok=True)  # encoded from an earlier pass's master
        # Without the limiter the gain is linear and its result known: measured only after it.
        with atomic_path(target) as tmp:
            _scaled(runner, 9 + n, steps).run(
                audio.gain_args(
                    mix, tmp, gain, plan.sample_rate, _fresh(stats) if gain.limit else None
                ),
                expected_seconds=plan.duration_seconds,
            )
        if gain.limit:
            result, how = _measured(stats), f"limiter at {gain.ceiling:.2f} dBFS"
        else:
            result, how = audio.scaled(measured, gain.db), "linear, so as measured before it"
        _log(
            runner,
            f"loudness pass {n}: gain {gain.db:+.2f} dB ({how}): {result.integrated:.2f} "
            f"LUFS, true peak {result.true_peak:.2f} dBTP",
        )
        verdict = audio.next_gain(loudness, gain, result, before, mark)
        if verdict.gain is None and result.true_peak > audio.TRUE_PEAK_CEILING - audio.AAC_RISK:
            peak = _aac_peak(target, aac, stats, runner)
            _log(runner, f"loudness check {n}: the AAC's true peak is {peak:.2f} dBTP")
            if peak > audio.TRUE_PEAK_CEILING:
                mark -= peak - audio.TRUE_PEAK_CEILING + audio.AAC_STEP
                verdict = audio.next_gain(loudness, gain, result, before, mark)
        if verdict.gain is None:
            _log(runner, f"loudness: done after {n} pass{'es' if n > 1 else ''}: {verdict.reason}")
            return
        before, gain = (gain, result), verdict.gain
    _log(
        runner,
        f"loudness: kept pass {audio.MAX_PASSES}, the last allowed: "
        f"{loudness - result.integrated:+.2f} LU from the target",
    )


def _aac_peak(master: Path, aac: Path, stats: Path, runner: Runner) -> float:
    """The true peak of `master` encoded as the video's AAC track, into `aac`: kept as that
    track unless a pass after this one writes another master."""
    _encode_aac(master, aac, runner)
    quiet = dataclasses.replace(runner, on_progress=None)
    quiet.run(audio.measure_args(aac, _fresh(stats)), expected_seconds=0)
    return _measured(stats).true_peak


def _fresh(path: Path) -> Path:
    path.unlink(missing_ok=True)
    return path


def _measured(stats: Path) -> audio.Loudness:
    measured = audio.read_loudness(stats.read_text("utf-8") if stats.is_file() else "")
    if measured is None:
        raise PipelineError("the mix's loudness could not be measured (no ebur128 figures)")
    return measured


def _log(runner: Runner, line: str) -> None:
    if runner.log is not None:
        runner.log(line)


def prepare_stills(project: ProjectDir, plan: Plan, index: int, runner: Runner) -> list[Path]:
    """The first half of a scene's build: its images, fitted and scaled, as raw frames; the
    frames another chunk of the scene prepared already are used as they are."""
    stills = scene_stills(project, plan, index)
    if all(still.is_file() for still in stills):
        return stills
    with ExitStack() as renames:
        # Renamed into place only when every still is written, like any other work file.
        temps = [renames.enter_context(atomic_path(still)) for still in stills]
        dataclasses.replace(runner, on_progress=None).run(
            stills_args(project.root, plan, plan.scenes[index], temps),
            expected_seconds=0,
        )
    return stills


def build_scene(
    project: ProjectDir,
    plan: Plan,
    index: int,
    runner: Runner,
    *,
    chunk: int | None = None,
    cache: ClipCache | None = None,
    report: Callable[[ClipReport], None] | None = None,
) -> Path:
    """A scene's clip, work/scenes/scene_NNN.mp4, or (for a scene built in chunks) its chunk
    `chunk`, work/scenes/scene_NNN_partCCC.mp4 (`build_unit`)."""
    unit = scene_unit(index) if chunk is None else chunk_unit(index, chunk)
    return build_unit(project, plan, unit, runner, cache=cache, report=report)


def build_unit(
    project: ProjectDir,
    plan: Plan,
    unit: Unit,
    runner: Runner,
    *,
    cache: ClipCache | None = None,
    report: Callable[[ClipReport], None] | None = None,
) -> Path:
    """The clip of one segment of the plan (`pipeline.units`): video only, exactly its
    frames. A scene's unit for a scene built in chunks has all its chunks built here, one
    after another.

    With a `cache`, a clip stored under the unit's key is linked in instead (no FFmpeg), and
    a clip encoded here is stored. `report` is told which it was.
    """
    if unit not in segments(plan):
        if unit != scene_unit(unit.scene_index):
            raise ValueError(f"the plan has no such unit: {unit}")
        parts = segments_of(plan, unit.scene_index)
        built = [
            build_unit(project, plan, part, runner, cache=cache, report=report) for part in parts
        ]
        return built[-1]
    target = unit.clip(project)
    if cache is None:
        encode_unit(project, plan, unit, runner)
        if report is not None:
            report(ClipReport("encoded", target.stat().st_size))
        return target
    key = unit.key(plan, _ffmpeg_version(runner.ffmpeg))
    log = runner.log or (lambda _line: None)

    def encode() -> None:
        log(f"cache miss {key[:16]}: encoding {target.name}")
        encode_unit(project, plan, unit, runner)

    hit, size = cache.get_or_build(
        key, target, encode, log, should_cancel=runner.should_cancel, frames=unit.frames(plan)
    )
    if hit:
        log(f"cache hit {key[:16]}: linked {target.name} ({size} bytes), nothing encoded")
        # The last chunk of a scene may come from the cache after others were encoded.
        for drawn in unit.draws():
            _remove_stills(project, plan, drawn)
    if runner.on_progress is not None:
        runner.on_progress(1.0)
    if report is not None:
        report(ClipReport("cached" if hit else "encoded", size, key))
    return target


def _ffmpeg_version(ffmpeg: str) -> str:
    try:
        return inspect_ffmpeg(ffmpeg).version
    except UnfitFFmpeg as exc:
        raise PipelineError(str(exc)) from None


def encode_unit(project: ProjectDir, plan: Plan, unit: Unit, runner: Runner) -> Path:
    """Encode a unit's clip with FFmpeg: the stills of every scene it draws from prepared
    first (work/stills/, each removed once every clip drawn from it is built), then drawn
    (`Unit.args`: a scene's frames, or a transition from both its scenes) and encoded."""
    target = unit.clip(project)
    prepared = _prepared(project, plan, unit.draws(), runner)
    own = plan.scenes[unit.scene_index]  # the scene the runner (its errors) names
    doing = f"drawing and encoding {unit.describe()}"
    with _failing_as(own.id, doing), atomic_path(target) as tmp:
        args = unit.args(plan, prepared, tmp, project.work, project.root)
        try:
            runner.run(args, expected_seconds=unit.frames(plan) / plan.fps)
        except PipelineError as exc:
            # A video clip read in this command may be what failed: say which, and where.
            drawn = (plan.scenes[index] for index in unit.draws())
            found = (visual.damage(project.root) for scene in drawn for visual in scene.visuals)
            if (damage := next((d for d in found if d), None)) is not None:
                raise exc.with_context(message=damage) from exc
            raise
    for index in unit.draws():
        _remove_stills(project, plan, index)
    return target


def _prepared(
    project: ProjectDir, plan: Plan, indices: Sequence[int], runner: Runner
) -> dict[int, list[Path]]:
    """Each scene's stills prepared (and its layers' files written), by scene index."""
    prepared = {}
    for index in indices:
        scene = plan.scenes[index]
        names = ", ".join(repr(visual.name) for visual in scene.visuals)
        # Blame what failed: decoding the images, or drawing and encoding the clip (the
        # images are fine by then: subtitles, a filter or the encoder).
        with _failing_as(scene.id, f"preparing image(s) {names}"):
            prepared[index] = prepare_stills(project, plan, index, runner)
        for layer in scene.layers:
            layer.write(project.work, plan, scene)
    return prepared


@contextlib.contextmanager
def _failing_as(scene_id: str | None, doing: str) -> Iterator[None]:
    """A PipelineError inside names the scene and what was being done (a cancel, the scene)."""
    try:
        yield
    except Cancelled as exc:
        raise exc.with_context(scene_id=scene_id) from exc
    except PipelineError as exc:
        message = f"{doing} failed ({exc.message})"
        raise exc.with_context(message=message, scene_id=scene_id) from exc


def _remove_stills(project: ProjectDir, plan: Plan, index: int) -> None:
    """A scene's prepared stills (megabytes each), once every clip drawn from them is built."""
    if _drawn_from_built(project, plan, index):
        for still in scene_stills(project, plan, index):
            still.unlink(missing_ok=True)


def concat(
    project: ProjectDir, plan: Plan, runner: Runner, *, cache: ClipCache | None = None
) -> Path:
    """CONCAT: clips joined by stream copy (no second encode), muxed with the master's AAC
    (copied too).

    With a `cache`, a join of the same clips with the same sound made before is linked in.
    """
    listing = write_listing(project.work / CONCAT_LIST, segment_clips(project, plan))
    subtitles = None
    if plan.has_captions and plan.caption_language is not None:
        subtitles = project.work / CAPTIONS_SRT
        write_text_atomic(subtitles, captions.srt(timed_cues(plan), plan.fps))
    target = joined(project)
    language = captions.mp4_language(plan.caption_language or "und")
    with atomic_path(target) as tmp:
        args = mux.concat_args(listing, master_aac(project), tmp, subtitles, language)
        inputs: dict[Path, str] = {}
        if cache is not None:
            # The AAC by its own bytes (a few MB): the join reads it, not the master WAV.
            inputs = {
                listing: _digest_of(_clip_keys(plan, runner)),
                **{path: file_sha256(path) for path in (master_aac(project), subtitles) if path},
            }
        _run_cached(cache, runner, project, "join", args, tmp, inputs, plan.duration_seconds)
    return target


def segment_clips(project: ProjectDir, plan: Plan) -> list[Path]:
    """The clip files the video is joined from, in order (the plan's segments); a
    PipelineError names the first one missing."""
    clips: list[Path] = []
    for unit in segments(plan):
        clip = unit.clip(project)
        if not clip.is_file():
            scene = unit.part_of()
            scene_id = plan.scenes[scene].id if scene is not None else None
            raise PipelineError(f"clip {clip.name} is missing", scene=scene, scene_id=scene_id)
        clips.append(clip)
    return clips


def _clip_keys(plan: Plan, runner: Runner, index: int | None = None) -> list[str]:
    """The cache keys of every clip file of the video (or of scene `index`), in order."""
    version = _ffmpeg_version(runner.ffmpeg)
    units = segments(plan) if index is None else segments_of(plan, index)
    return [unit.key(plan, version) for unit in units]


def _clip_key_of(plan: Plan, index: int, runner: Runner) -> str:
    """The key of scene `index`'s clip: its one file's, or its chunks' together."""
    keys = _clip_keys(plan, runner, index)
    return keys[0] if len(keys) == 1 else _digest_of(keys)


def _digest_of(keys: Sequence[str]) -> str:
    return hashlib.sha256(",".join(keys).encode()).hexdigest()


def _digests(project: ProjectDir) -> dict[Path, str]:
    """The master audio's content digest, as output keys name it."""
    return {master_audio(project): master_digest(project)}


def master_digest(project: ProjectDir) -> str:
    """The master audio's sha256. Every scene's build keys its output on it, so it is read
    from the digest AUDIO_PREP wrote beside the track rather than hashed once per scene (a
    long video's master is hundreds of MB)."""
    sidecar = project.work / MASTER_DIGEST
    try:
        return sidecar.read_text("utf-8").strip()
    except FileNotFoundError:
        return _write_master_digest(project)


def _write_master_digest(project: ProjectDir) -> str:
    digest = file_sha256(master_audio(project))
    write_text_atomic(project.work / MASTER_DIGEST, digest + "\n")
    return digest


def _run_cached(
    cache: ClipCache | None,
    runner: Runner,
    project: ProjectDir,
    kind: str,
    args: list[str],
    out: Path,
    inputs: Mapping[Path, str],
    expected_seconds: float,
    scene: int | None = None,
) -> None:
    """Run an FFmpeg command that writes `out`, or link in what the same command made of the
    same content before (`inputs`: each input file's digest or clip key)."""
    key = None
    if cache is not None:
        version = _ffmpeg_version(runner.ffmpeg)
        key = output_key(kind, version, args, inputs, out, project.root)
    if cache is None or key is None:
        runner.run(args, expected_seconds=expected_seconds, scene=scene)
        return
    log = runner.log or (lambda _line: None)
    hit, _ = cache.get_or_build(
        key,
        out,
        lambda: runner.run(args, expected_seconds=expected_seconds, scene=scene),
        log,
        should_cancel=runner.should_cancel,
    )
    if hit:
        log(f"cache hit {key[:16]}: {kind} linked, FFmpeg not run")


def timed_cues(plan: Plan) -> list[captions.TimedCue]:
    """Every scene's cues on the video's timeline (frames), in order."""
    return [
        (scene.start_frame + cue.start, scene.start_frame + cue.end, cue.lines)
        for scene in plan.scenes
        for cue in scene.captions
    ]


def caption_names(output_name: str) -> tuple[str, str]:
    """The SRT and WebVTT files published beside `output_name`: video.mp4 → video.srt/.vtt."""
    stem = Path(output_name).stem
    return f"{stem}.srt", f"{stem}.vtt"


def check_output(path: Path, plan: Plan) -> None:
    """The joined video has exactly the planned frames, each at its frame number times the
    frame duration, both streams, and A/V in step."""
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
    if info.video is not None and (early := off_grid(path, plan.fps)):
        frame, pts, grid = early[0]
        problems.append(
            f"{len(early)} frames off the 1/{plan.fps} s grid, from frame {frame} "
            f"(pts {pts}, not {grid})"
        )
    if problems:
        raise PipelineError(f"{path.name} failed its check: {'; '.join(problems)}")


def _scaled(runner: Runner, done: int, total: int, share: int = 1) -> Runner:
    """`runner` reporting its 0..1 as steps done..done+share of `total`."""
    report = runner.on_progress
    if report is None:
        return runner
    return dataclasses.replace(runner, on_progress=lambda f: report((done + f * share) / total))


def _scene_video(project: ProjectDir, plan: Plan, index: int) -> Path:
    """What FFmpeg reads as the scene's video: its clip, or a listing of its chunks."""
    clips = scene_clips(project, plan, index)
    if len(clips) == 1:
        return clips[0]
    return write_listing(project.work / "scenes" / f"scene_{index:03d}.ffconcat", clips)


def write_listing(listing: Path, clips: Sequence[Path]) -> Path:
    """An ffconcat file joining `clips` in order, each named relative to the listing (the
    concat demuxer resolves them from the listing's folder)."""
    lines = ["ffconcat version 1.0"]
    lines += [f"file '{clip.relative_to(listing.parent)}'" for clip in clips]
    write_text_atomic(listing, "\n".join(lines) + "\n")
    return listing


def scene_output_files(project: ProjectDir, index: int) -> tuple[Path, Path]:
    """Where a scene's build leaves its output/scene_NN.mp4 and scene_NN.jpg for FINALIZE."""
    folder = project.work / "outputs"
    return folder / scene_output_name(index), folder / scene_poster_name(index)


def build_scene_outputs(
    project: ProjectDir,
    plan: Plan,
    index: int,
    runner: Runner,
    cache: ClipCache | None = None,
) -> tuple[Path, Path]:
    """A scene's published files, made where its clip is made (the master audio exists by
    then), so that they are muxed in parallel rather than one after another in FINALIZE: the
    clip with its cut of the master audio (stream copy, AAC) and its poster frame.

    With a cache, what the same clip and sound made before is linked in.
    """
    video, poster = scene_output_files(project, index)
    key = _clip_key_of(plan, index, runner) if cache is not None else None
    clip = _scene_video(project, plan, index)
    quiet = dataclasses.replace(runner, on_progress=None)
    with atomic_path(video) as tmp:
        _run_cached(
            cache,
            quiet,
            project,
            "scene output",
            mux.scene_output_args(plan, index, clip, master_audio(project), tmp),
            tmp,
            {clip: key, **_digests(project)} if key is not None else {},
            plan.scene_seconds(index),
            scene=index,
        )
    with atomic_path(poster) as tmp:
        frame = scene_poster_frame(plan.scenes[index])
        _poster(project, plan, index, frame, tmp, cache, key, quiet)
    return video, poster


@dataclass(frozen=True)
class Publication:
    """What FINALIZE made for `output/`: each work file and the name it is published under,
    all made visible together; and which names already there go once they are (the captions
    of an earlier render of this name when this one has none, and the scene files of scenes
    this video does not have).

    The stage publishes nothing itself: the task layer does, through its storage, and the
    command line into the folder (`publish_here`).
    """

    files: tuple[tuple[Path, str], ...]
    drop: tuple[str, ...] = ()
    # scene_NN files from this number on are stale; None (a draft or a part): untouched.
    scene_count: int | None = None

    def stale(self, name: str) -> bool:
        """Whether the file `name` already in output/ goes once this is published."""
        if name in self.drop:
            return True
        match = _SCENE_OUTPUT.fullmatch(name)
        return (
            match is not None and self.scene_count is not None and int(match[1]) >= self.scene_count
        )


def publish_here(output: Path, publication: Publication) -> None:
    """Publish into the local folder `output`: every file linked to a temp name beside its
    target, then all renamed into place; then the stale files removed."""
    publish_together([(source, output / name) for source, name in publication.files])
    for path in sorted(output.iterdir()):
        if publication.stale(path.name):
            path.unlink(missing_ok=True)


def finalize(
    project: ProjectDir,
    plan: Plan,
    output_name: str,
    runner: Runner,
    *,
    poster_time: float | None = None,
    cache: ClipCache | None = None,
) -> Publication:
    """FINALIZE: check work/joined.mp4, and make what is published with it: its poster
    <name>.jpg, its captions, and each scene's output/scene_NN.mp4 and scene_NN.jpg (a draft:
    the video and its poster only). What to publish is returned, not published here.

    Posters are frames decoded from the clips already encoded (`pipeline.poster`); the video's
    is at `poster_time` seconds, else the first scene's poster. The files are made under
    work/ (`work/final/` for the poster and captions), so a failure leaves the previous
    render's outputs intact.
    """
    check_safe_name(output_name)
    source = joined(project)
    check_output(source, plan)
    files: list[tuple[Path, str]] = []
    per_scene = () if plan.draft else plan.scenes
    for scene in per_scene:
        # Made by the scene's own build, in parallel with the others (a build from before
        # that change has left none: made here then).
        made = scene_output_files(project, scene.index)
        if not all(path.is_file() for path in made):
            build_scene_outputs(project, plan, scene.index, runner, cache)
        names = (scene_output_name(scene.index), scene_poster_name(scene.index))
        files += zip(made, names, strict=True)
    poster = poster_name(output_name)
    index, frame = poster_at(plan, poster_time)
    if not plan.draft and (index, frame) == (0, scene_poster_frame(plan.scenes[0])):
        files.append((scene_output_files(project, 0)[1], poster))
    else:
        key = _clip_key_of(plan, index, runner) if cache is not None else None
        with atomic_path(final_file(project, poster)) as tmp:
            _poster(project, plan, index, frame, tmp, cache, key, runner)
        files.append((final_file(project, poster), poster))
    files.append((source, output_name))
    for name, text in _caption_files(plan, output_name):
        write_text_atomic(final_file(project, name), text)
        files.append((final_file(project, name), name))
    # The last moment a cancel can stop the render: after this the outputs are published.
    if runner.should_cancel is not None and runner.should_cancel():
        raise Cancelled("cancelled before the output was written")
    if runner.on_progress is not None:
        runner.on_progress(1.0)
    return Publication(
        tuple(files),
        # An earlier render's captions would not match this video.
        drop=() if plan.has_captions else caption_names(output_name),
        scene_count=None if plan.draft else len(plan.scenes),
    )


def final_file(project: ProjectDir, name: str) -> Path:
    """Where FINALIZE makes a published file that no earlier stage made: work/final/<name>."""
    return project.work / FINAL_DIR / name


def _caption_files(plan: Plan, output_name: str) -> list[tuple[str, str]]:
    if not plan.has_captions:
        return []
    cues = timed_cues(plan)
    srt_name, vtt_name = caption_names(output_name)
    return [(srt_name, captions.srt(cues, plan.fps)), (vtt_name, captions.vtt(cues, plan.fps))]


def scene_poster_name(index: int) -> str:
    return f"scene_{index:02d}.jpg"


def _poster(
    project: ProjectDir,
    plan: Plan,
    index: int,
    frame: int,
    target: Path,
    cache: ClipCache | None = None,
    clip_key: str | None = None,
    runner: Runner | None = None,
) -> None:
    """Frame `frame` of scene `index`'s clip (whose cache key is `clip_key`) as a JPEG at
    `target`; with a cache, the same frame of the same clip decoded before is linked in."""
    clip, at = clip_at(project, plan, index, frame)
    key = poster_key(clip_key, frame) if cache is not None and clip_key else None
    if cache is None or key is None:
        _decode_poster(clip, at, target)
        return
    log = (runner.log if runner is not None else None) or (lambda _line: None)
    cache.get_or_build(key, target, lambda: _decode_poster(clip, at, target), log, suffix=".jpg")


def _decode_poster(clip: Path, frame: int, target: Path) -> None:
    try:
        write_frame_jpeg(clip, frame, target)
    except (OSError, ValueError, av.FFmpegError) as exc:
        raise PipelineError(f"no poster from frame {frame} of {clip.name}: {exc}") from None
