import array
import dataclasses
import itertools
import os
import shutil
import wave
from pathlib import Path

import pytest

from pipeline import audio, registry, stages
from pipeline.encoder import video_codec_args
from pipeline.errors import PipelineError
from pipeline.ffmpeg import Runner
from pipeline.plan import make_plan, write_plan
from pipeline.probe import audio_guard, probe
from pipeline.project import ProjectDir
from pipeline.registry import StageRun
from pipeline.render import render, run_here
from pipeline.units import chunk_unit
from tests import pipeline_fixtures as fx
from tests.pipeline_fixtures import SMALL, Rendered, decode_frames, difference, mean_rgb


def run_stage(name: str, project: ProjectDir, runner: Runner) -> None:
    """One stage as the orchestrators run it: its errors name the stage (and scene)."""
    run_here(registry.BY_NAME[name], StageRun(project, SMALL, "video.mp4", runner))


# Shared fixtures, made visible to pytest in this module.
ffmpeg_bin = fx.ffmpeg_bin
small_project = fx.small_project
small_render = fx.small_render


def test_output_format(small_render: Rendered) -> None:
    info = probe(small_render.output, count_frames=True)
    plan = small_render.plan
    assert info.video is not None and info.audio is not None
    assert (info.video.width, info.video.height) == (320, 180)
    assert info.video.codec == "h264" and info.video.profile == "High"
    assert info.video.pix_fmt == "yuv420p"
    assert info.video.fps == 30
    assert (info.video.color_range, info.video.colorspace) == ("tv", "bt709")
    assert (info.video.color_primaries, info.video.color_trc) == ("bt709", "bt709")
    assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == ("aac", 48000, 2)
    # Frame-exact: decoded frames equal the plan, which equals round(total seconds × fps).
    assert info.video.frames == plan.total_frames == 228
    assert abs(info.video.duration - info.audio.duration) <= 1 / plan.fps


def test_moov_atom_comes_first(small_render: Rendered) -> None:
    head = small_render.output.read_bytes()[:4096]
    assert 0 <= head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head


def test_every_clip_has_exactly_its_frames(small_render: Rendered) -> None:
    for scene in small_render.plan.scenes:
        clip = stages.scene_clip(small_render.project, scene.index)
        assert probe(clip, count_frames=True).video.frames == scene.frames  # type: ignore[union-attr]


def test_scenes_start_on_their_planned_frames(small_render: Rendered) -> None:
    frames = decode_frames(small_render.output)
    for scene in small_render.plan.scenes[1:]:
        cut = scene.start_frame
        jump = difference(frames[cut - 1], frames[cut])
        around = max(
            difference(frames[cut - 2], frames[cut - 1]), difference(frames[cut], frames[cut + 1])
        )
        assert jump > 30 and jump > 4 * around, (scene.id, jump, around)


def test_ken_burns_moves_within_a_shot(small_render: Rendered) -> None:
    scene = small_render.plan.scenes[0]
    frames = decode_frames(small_render.output)[scene.start_frame : scene.end_frame]
    steps = [difference(a, b) for a, b in itertools.pairwise(frames)]
    assert difference(frames[0], frames[-1]) > 10  # it travelled
    assert min(steps) > 0.3  # and moved on every frame, not in jumps
    assert max(steps) < 10


def test_motion_none_holds_the_picture(small_render: Rendered) -> None:
    scene = small_render.plan.scenes[3]
    frames = decode_frames(small_render.output)[scene.start_frame : scene.end_frame]
    assert difference(frames[0], frames[-1]) < 1


def test_cross_fade_frames_are_blends(small_render: Rendered) -> None:
    plan = small_render.plan
    scene = plan.scenes[1]  # red then blue, no motion
    frames = decode_frames(small_render.output)
    fade_start = scene.start_frame + scene.shots[0].frames
    box = (60, 30, 100, 60)
    reds = [
        mean_rgb(frames[i], box)[0]
        for i in range(fade_start - 1, fade_start + plan.xfade_frames + 1)
    ]
    blues = [
        mean_rgb(frames[i], box)[2]
        for i in range(fade_start - 1, fade_start + plan.xfade_frames + 1)
    ]
    assert reds[0] > 240 and blues[0] < 10  # red before the fade
    assert reds[-1] < 10 and blues[-1] > 240  # blue after it
    middle = reds[1 + plan.xfade_frames // 2]
    assert 80 < middle < 170  # a blend half way
    steps = [a - b for a, b in itertools.pairwise(reds[1:])]
    # A linear ramp: no step more than twice the average (no jump at either end).
    assert max(steps) < 2 * (250 / plan.xfade_frames)
    # The fade does not change the scene length.
    assert scene.frames == sum(shot.frames for shot in scene.shots)


def test_exif_rotation_is_honoured(small_render: Rendered) -> None:
    scene = small_render.plan.scenes[3]
    frame = decode_frames(small_render.output, size=None)[scene.start_frame + 2]
    left = mean_rgb(frame, (120, 80, 130, 100))
    right = mean_rgb(frame, (190, 80, 200, 100))
    assert left[2] > 200 and left[0] < 40  # blue on the left
    assert right[0] > 200 and right[2] < 40  # red on the right


def test_portrait_and_huge_images_are_contained(small_render: Rendered) -> None:
    scene = small_render.plan.scenes[2]
    frame = decode_frames(small_render.output, size=None)[scene.start_frame + 2]
    # Portrait contained: the sides show the darkened, blurred background, not black bars.
    edge = mean_rgb(frame, (0, 40, 20, 140))
    centre = mean_rgb(frame, (140, 40, 180, 140))
    assert sum(edge) > 15
    assert sum(edge) < sum(centre)
    clip = probe(stages.scene_clip(small_render.project, 2), count_frames=True)
    assert clip.video is not None and clip.video.frames == scene.frames


def _master_samples(project: ProjectDir) -> array.array:
    with wave.open(str(stages.master_audio(project))) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (48000, 2, 2)
        data = array.array("h", wav.readframes(wav.getnframes()))
    return data[::2]  # left channel


def test_master_track_graph(small_project: ProjectDir, ffmpeg_bin: str) -> None:
    plan = make_plan(small_project, SMALL, ffmpeg_bin)
    out = small_project.work / "audio.wav"
    args = audio.master_track_args(small_project.root, plan, out)
    # Scene 0's voiceover (the only input) and scene 1's silence, each exactly 1 s of samples.
    fit = (
        "aresample=48000,aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo,"
        "apad=whole_len=48000,atrim=end_sample=48000,asetpts=N/SR/TB"
    )
    assert args == [
        # Only the file itself may be opened, by an audio demuxer (docs/clips.md).
        *audio_guard(),
        *("-i", str(small_project.root / "input/voiceovers/a.wav")),
        "-filter_complex",
        f"[0:a:0]{fit}[s0];anullsrc=r=48000:cl=stereo,{fit}[s1];[s0][s1]concat=n=2:v=0:a=1[s2]",
        *("-map", "[s2]", "-c:a", "pcm_s16le", "-ar", "48000", "-ac", "2", "-f", "wav", str(out)),
    ]


def test_master_audio_places_voiceovers_on_scene_starts(small_render: Rendered) -> None:
    plan = small_render.plan
    left = _master_samples(small_render.project)
    assert len(left) == plan.total_samples
    # Scene 1 is silent; scene 2's voiceover (an MP3) starts on scene 2's first frame.
    start, _ = plan.sample_range(2)
    first_sound = next(i for i in range(plan.sample_range(1)[0], len(left)) if abs(left[i]) > 200)
    assert abs(first_sound - start) <= 48  # within 1 ms
    silent_start, silent_end = plan.sample_range(1)
    assert max(abs(s) for s in left[silent_start:silent_end]) == 0
    # Scene 4: a 0.4 s voiceover in a 1.2 s scene, padded with silence to the scene's end.
    s4, e4 = plan.sample_range(4)
    assert max(abs(s) for s in left[s4 : s4 + 9600]) > 1000
    assert max(abs(s) for s in left[s4 + 24000 : e4]) == 0


def test_scene_outputs_are_playable_with_their_audio(small_render: Rendered) -> None:
    plan = small_render.plan
    for scene in plan.scenes:
        path = small_render.project.output / stages.scene_output_name(scene.index)
        info = probe(path)
        assert info.video is not None and info.audio is not None
        assert info.video.frames == scene.frames
        assert abs(info.video.duration - info.audio.duration) <= 1 / plan.fps


def test_progress_is_monotonic_and_complete(small_render: Rendered) -> None:
    progress = small_render.progress
    assert progress == tuple(sorted(progress))
    assert progress[-1] == pytest.approx(1.0)
    assert len(progress) > 5


def test_only_work_and_output_are_written(small_render: Rendered) -> None:
    root = small_render.project.root
    assert sorted(p.name for p in root.iterdir()) == ["input", "output", "work"]
    leftovers = [p for p in (root / "work").rglob(".*") if p.is_file()]
    leftovers += [p for p in (root / "output").glob(".*")]
    assert leftovers == []
    # The prepared stills (raw frames, megabytes each) are gone once their clips are built.
    assert list((root / "work" / "stills").iterdir()) == []


def test_build_scene_rerun_is_idempotent(small_project: ProjectDir, ffmpeg_bin: str) -> None:
    plan = make_plan(small_project, SMALL, ffmpeg_bin)
    runner = Runner(ffmpeg_bin)
    first = stages.build_scene(small_project, plan, 0, runner)
    first_bytes = first.read_bytes()
    first.write_bytes(b"half a file from a killed run")
    again = stages.build_scene(small_project, plan, 0, runner)
    assert again == first
    assert again.read_bytes() == first_bytes  # same pixels, same bytes
    assert [p.name for p in again.parent.iterdir()] == [again.name]


def test_a_scene_failure_blames_its_images_only_when_they_failed(
    small_project: ProjectDir, ffmpeg_bin: str
) -> None:
    plan = make_plan(small_project, SMALL, ffmpeg_bin)
    runner = Runner(ffmpeg_bin)
    # The images are fine, the encoder is not: the clip's encoding is blamed.
    broken = dataclasses.replace(plan, encoder=dataclasses.replace(plan.encoder, preset="nope"))
    with pytest.raises(PipelineError, match=r"^drawing and encoding the clip failed") as info:
        stages.build_scene(small_project, broken, 0, runner)
    assert info.value.scene_id == plan.scenes[0].id
    # An image that no longer decodes: the images are blamed, by name.
    image = small_project.input / "images" / plan.scenes[0].visuals[0].name
    image.write_bytes(b"not an image any more")
    shutil.rmtree(small_project.work / "stills", ignore_errors=True)
    with pytest.raises(PipelineError, match=r"^preparing image\(s\) '") as info:
        stages.build_scene(small_project, plan, 0, runner)
    assert info.value.scene_id == plan.scenes[0].id


def test_scene_outputs_are_made_by_the_scene_build_and_published_by_finalize(
    small_project: ProjectDir, ffmpeg_bin: str
) -> None:
    # Muxed where each clip is made, so they run in parallel; FINALIZE only links them.
    logged: list[str] = []
    render(small_project, SMALL, "video.mp4", Runner(ffmpeg_bin, log=logged.append))
    finalize_at = next(i for i, line in enumerate(logged) if line.startswith("stage FINALIZE"))
    assert not any("scene_0" in line and "-af" in line for line in logged[finalize_at:])
    for index in (0, 1):
        video, poster = stages.scene_output_files(small_project, index)
        published = small_project.output / stages.scene_output_name(index)
        assert published.read_bytes() == video.read_bytes()
        assert (small_project.output / poster.name).read_bytes() == poster.read_bytes()
        info = probe(published, count_frames=True)
        assert info.video is not None and info.audio is not None
        assert info.video.frames == make_plan(small_project, SMALL, ffmpeg_bin).scenes[index].frames


def test_failed_finalize_keeps_earlier_outputs(small_project: ProjectDir, ffmpeg_bin: str) -> None:
    runner = Runner(ffmpeg_bin)
    render(small_project, SMALL, "video.mp4", runner)
    before = {p.name: p.read_bytes() for p in small_project.output.iterdir()}
    assert set(before) == {"video.mp4", "scene_00.mp4", "scene_01.mp4"} | {
        "video.jpg",
        "scene_00.jpg",
        "scene_01.jpg",
    }
    write_plan(small_project, make_plan(small_project, SMALL, ffmpeg_bin))
    # The second scene's clip and the outputs its build left are gone: FINALIZE makes them
    # again, and that fails after the first scene's were staged.
    stages.scene_clip(small_project, 1).unlink()
    for made in stages.scene_output_files(small_project, 1):
        made.unlink()
    with pytest.raises(PipelineError) as info:
        run_stage("FINALIZE", small_project, runner)
    assert info.value.stage == "FINALIZE" and info.value.scene == 1
    after = {p.name: p.read_bytes() for p in small_project.output.iterdir()}
    assert after == before


def test_finalize_rejects_a_short_video(small_project: ProjectDir, ffmpeg_bin: str) -> None:
    runner = Runner(ffmpeg_bin)
    plan = make_plan(small_project, SMALL, ffmpeg_bin)
    write_plan(small_project, plan)
    stages.prepare_audio(small_project, plan, runner)
    for scene in plan.scenes:
        stages.build_scene(small_project, plan, scene.index, runner)
    # Pretend scene 1 lost its last frames: the join is now shorter than the plan.
    clip = stages.scene_clip(small_project, 1)
    shutil.copyfile(clip, clip.with_suffix(".orig.mp4"))
    runner.run(
        [
            *("-i", str(clip.with_suffix(".orig.mp4")), "-frames:v", "20"),
            *video_codec_args(plan.encoder),
            str(clip),
        ],
        expected_seconds=1,
    )
    stages.concat(small_project, plan, runner)
    with pytest.raises(PipelineError, match=r"FINALIZE: joined\.mp4 failed its check") as info:
        run_stage("FINALIZE", small_project, runner)
    assert f"{plan.total_frames - 10} frames instead of {plan.total_frames}" in str(info.value)
    assert not (small_project.output / "video.mp4").exists()


def test_concat_names_a_missing_clip(small_project: ProjectDir, ffmpeg_bin: str) -> None:
    write_plan(small_project, make_plan(small_project, SMALL, ffmpeg_bin))
    with pytest.raises(PipelineError, match=r"CONCAT scene 0 \(id 'intro'\): clip scene_000.mp4"):
        run_stage("CONCAT", small_project, Runner(ffmpeg_bin))


def test_jobs_do_not_change_the_result(
    small_project: ProjectDir, ffmpeg_bin: str, tmp_path: Path
) -> None:
    serial = render(small_project, SMALL, "a.mp4", Runner(ffmpeg_bin), jobs=1)
    copy = ProjectDir(tmp_path / "copy")
    shutil.copytree(small_project.input, copy.input)
    parallel = render(copy, SMALL, "a.mp4", Runner(ffmpeg_bin), jobs=2)
    assert os.path.getsize(serial) > 0
    assert probe(serial).video == probe(parallel).video


def test_moving_shots_without_cross_fades_are_cut_frame_exact(
    small_render: Rendered, ffmpeg_bin: str, tmp_path: Path
) -> None:
    # zoompan's output aspect drifts with its crop, and concat (used when xfade is 0) refuses
    # shots whose aspects differ: this render failed before every shot was set to 1:1.
    copy = ProjectDir(tmp_path / "nofade")
    shutil.copytree(small_render.project.input, copy.input)
    options = SMALL.model_copy(update={"xfade": 0.0})
    output = render(copy, options, "cut.mp4", Runner(ffmpeg_bin))
    plan = make_plan(copy, options, ffmpeg_bin)
    assert plan.xfade_frames == 0
    assert any(len(scene.shots) > 1 and scene.motion == "kenburns" for scene in plan.scenes)
    info = probe(output, count_frames=True)
    assert info.video is not None and info.video.frames == plan.total_frames


def test_a_chunked_scenes_outputs_are_made_by_the_build_that_completes_its_clip(
    small_project: ProjectDir, ffmpeg_bin: str
) -> None:
    # Two scenes of 30 frames (one image each), in chunks of 15.
    options = SMALL.model_copy(update={"chunk_seconds": 0.5})
    logged: list[str] = []
    base = StageRun(small_project, options, "video.mp4", Runner(ffmpeg_bin, log=logged.append))
    plan = registry.run_stage(registry.BY_NAME["VALIDATE"], base)
    assert plan is not None
    registry.run_stage(registry.BY_NAME["AUDIO_PREP"], base)
    build = registry.BY_NAME["SCENE_BUILD"]
    assert build.units(registry.Outline(2), plan) == [
        chunk_unit(0, 0),
        chunk_unit(0, 1),
        chunk_unit(1, 0),
        chunk_unit(1, 1),
    ]
    video, poster = stages.scene_output_files(small_project, 0)
    # The later chunk first, as another worker may finish it: the scene is not complete yet.
    registry.run_stage(build, dataclasses.replace(base, unit=chunk_unit(0, 1)))
    assert not stages.scene_complete(small_project, plan, 0) and not video.exists()
    registry.run_stage(build, dataclasses.replace(base, unit=chunk_unit(0, 0)))
    assert stages.scene_complete(small_project, plan, 0) and poster.is_file()
    # The scene's image was prepared once, for both chunks.
    assert sum("-noautorotate" in line for line in logged) == 1
    info = probe(video, count_frames=True)
    assert info.video is not None and info.audio is not None and info.video.frames == 30
    assert stages.clip_at(small_project, plan, 0, 20) == (stages.chunk_clip(small_project, 0, 1), 5)
    assert not stages.scene_clip(small_project, 0).exists()
    # Without a chunk, a chunked scene's build builds every chunk of it.
    last = stages.build_scene(small_project, plan, 1, Runner(ffmpeg_bin))
    assert last == stages.chunk_clip(small_project, 1, 1)
    assert stages.scene_clips(small_project, plan, 1) == [
        stages.chunk_clip(small_project, 1, 0),
        last,
    ]
    assert stages.scene_complete(small_project, plan, 1)
    run_stage("CONCAT", small_project, Runner(ffmpeg_bin))
    listed = (small_project.work / stages.CONCAT_LIST).read_text().split("\n")
    assert [line for line in listed if line.startswith("file")] == [
        f"file 'scenes/scene_00{i}_part00{c}.mp4'" for i in (0, 1) for c in (0, 1)
    ]
    joined = probe(stages.joined(small_project), count_frames=True)
    assert joined.video is not None and joined.video.frames == plan.total_frames == 60
    assert list((small_project.work / "stills").iterdir()) == []
