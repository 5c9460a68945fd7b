"""Video clips as scene visuals (pipeline/visuals/clip.py): real renders of clips our FFmpeg
makes, decoded and compared with their sources frame by frame."""

from __future__ import annotations

import dataclasses
import random
from fractions import Fraction
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.cache import clip_key
from pipeline.errors import PipelineError
from pipeline.plan import make_plan
from pipeline.probe import probe
from pipeline.spec import ProjectSpec
from pipeline.visuals import Clip
from tests import clips
from tests import pipeline_fixtures as fx
from tests.stage_runs import frame_hashes

ffmpeg_bin = fx.ffmpeg_bin
FPS = 30


def _shown(video: Path) -> list[int]:
    return [clips.frame_of(luma) for luma in clips.lumas(video)]


def _expected(source: Path, slots: range, start: float, fps: int = FPS) -> list[int]:
    times = clips.source_times(source)
    return [clips.shown_at(times, n, fps, Fraction(start)) for n in slots]


def test_a_trimmed_clip_lands_on_the_grid_and_holds_its_last_frame(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    source = clips.counting(ffmpeg_bin, tmp_path / "c.mp4", fps=25, seconds=4)
    entry = {"video": "c.mp4", "in": 1.0, "out": 2.5}
    project = clips.project_with(
        tmp_path / "p", [{"images": [entry], "duration": 3}], {"videos/c.mp4": source}
    )
    out = clips.render_here(project, ffmpeg_bin)
    shown = _shown(out)
    assert len(shown) == 90
    # Frames 0..44 are the clip from 1.0 s (25 fps onto 30: the documented rule), then its
    # last frame (source frame 62, at 2.48 s) is held to the scene's end.
    assert shown[:45] == _expected(source, range(45), 1.0)
    assert shown[0] == 25
    assert shown[45:] == [62 % clips.LEVELS] * 45


def test_a_looping_clip_plays_again_from_its_in(tmp_path: Path, ffmpeg_bin: str) -> None:
    source = clips.counting(ffmpeg_bin, tmp_path / "c.mp4", fps=30, seconds=3)
    entry = {"video": "c.mp4", "in": 0.5, "out": 1.5, "fill": "loop"}
    project = clips.project_with(
        tmp_path / "p", [{"images": [entry], "duration": 2.5}], {"videos/c.mp4": source}
    )
    shown = _shown(clips.render_here(project, ffmpeg_bin))
    one_round = _expected(source, range(30), 0.5)
    assert one_round == [(15 + n) % clips.LEVELS for n in range(30)]
    assert shown == (one_round * 3)[:75]


@pytest.mark.parametrize("kind", ["25fps", "vfr"])
def test_sources_of_any_rate_land_on_the_30fps_grid_without_drift_over_20s(
    tmp_path: Path, ffmpeg_bin: str, kind: str
) -> None:
    if kind == "vfr":
        source = clips.vfr(ffmpeg_bin, tmp_path / "c.mp4", seconds=21)
    else:
        source = clips.counting(ffmpeg_bin, tmp_path / "c.mp4", fps=25, seconds=21)
    project = clips.project_with(
        tmp_path / "p", [{"images": [{"video": "c.mp4"}], "duration": 20}], {"videos/c.mp4": source}
    )
    out = clips.render_here(project, ffmpeg_bin)
    shown = _shown(out)
    assert len(shown) == 600
    # Every frame, the last ones too: the source frame its time gives, none early or late.
    assert shown == _expected(source, range(600), 0.0)
    assert probe(out).video is not None and probe(out).video.fps == FPS


def test_the_clips_frames_are_in_the_output(tmp_path: Path, ffmpeg_bin: str) -> None:
    source = tmp_path / "s.mp4"
    clips.run(
        ffmpeg_bin,
        *("-f", "lavfi", "-i", "testsrc2=s=320x180:r=30:d=3"),
        *("-c:v", "libx264", "-crf", "10", "-preset", "ultrafast", str(source)),
    )
    entry = {"video": "s.mp4", "in": 1.0}
    project = clips.project_with(
        tmp_path / "p", [{"images": [entry], "duration": 1.5}], {"videos/s.mp4": source}
    )
    rendered = clips.gray_frames(clips.render_here(project, ffmpeg_bin, crf=12))
    original = clips.gray_frames(source)
    assert len(rendered) == 45
    # Output frame n is source frame 30 + n (same rate): the same picture.
    scores = [clips.psnr(rendered[n], original[30 + n]) for n in range(45)]
    assert min(scores) > 35, scores
    # ... and not merely any frame of it: one frame off scores far lower.
    assert clips.psnr(rendered[10], original[31 + 10]) < min(scores) - 5


def test_a_rotated_phone_clip_is_shown_upright(tmp_path: Path, ffmpeg_bin: str) -> None:
    upright = tmp_path / "upright.mp4"
    clips.run(
        ffmpeg_bin,
        *("-f", "lavfi", "-i", "testsrc2=s=180x320:r=30:d=1"),
        *("-c:v", "libx264", "-qp", "0", "-preset", "ultrafast", str(upright)),
    )
    # Stored sideways, with the display matrix a phone writes to turn it back.
    sideways = tmp_path / "sideways.mp4"
    clips.run(
        ffmpeg_bin,
        "-i",
        str(upright),
        "-vf",
        "transpose=clock",
        "-c:v",
        "libx264",
        "-qp",
        "0",
        "-preset",
        "ultrafast",
        str(tmp_path / "t.mp4"),
    )
    clips.run(
        ffmpeg_bin,
        "-display_rotation",
        "90",
        "-i",
        str(tmp_path / "t.mp4"),
        "-c",
        "copy",
        str(sideways),
    )
    project = clips.project_with(
        tmp_path / "p",
        [{"images": [{"video": "phone.mp4"}], "duration": 1}],
        {"videos/phone.mp4": sideways},
    )
    plan = make_plan(project, clips.small_options(resolution="180x320"), ffmpeg_bin)
    clip = plan.scenes[0].visuals[0]
    assert isinstance(clip, Clip) and (clip.width, clip.height, clip.rotation) == (180, 320, 90)
    out = clips.render_here(project, ffmpeg_bin, resolution="180x320")
    rendered, original = clips.gray_frames(out), clips.gray_frames(upright)
    assert rendered[0].shape == (320, 180)
    assert clips.psnr(rendered[5], original[5]) > 35
    # Turned the wrong way (or not at all) it would not match.
    assert clips.psnr(rendered[5][::-1, ::-1], original[5]) < 20


def test_a_clips_sound_is_muted_unless_asked_for(tmp_path: Path, ffmpeg_bin: str) -> None:
    source = clips.counting(ffmpeg_bin, tmp_path / "c.mp4", seconds=3, sound=True)
    muted = clips.project_with(
        tmp_path / "muted",
        [{"images": [{"video": "c.mp4"}], "duration": 2}],
        {"videos/c.mp4": source},
    )
    assert clips.peak_db(clips.render_here(muted, ffmpeg_bin)) < -60
    heard = clips.project_with(
        tmp_path / "heard",
        [{"images": [{"video": "c.mp4", "in": 1, "audio": {"volume": -6}}], "duration": 3}],
        {"videos/c.mp4": source},
    )
    out = clips.render_here(heard, ffmpeg_bin)
    # The tone (-18 dBFS from lavfi's sine) 6 dB down for the 2 s the clip plays, then quiet.
    assert -28 < clips.peak_db(out, 0.1, 1.9) < -20
    assert clips.peak_db(out, 2.2) < -60


def test_chunks_seek_into_the_clip_frame_exactly(tmp_path: Path, ffmpeg_bin: str) -> None:
    source = clips.counting(ffmpeg_bin, tmp_path / "c.mp4", fps=25, seconds=6, size="320x180")
    scenes = [
        {
            "images": [{"video": "c.mp4", "in": 0.3, "out": 2.1, "fill": "loop"}, "a.png"],
            "duration": 5,
        },
        {"images": [{"video": "c.mp4", "in": 1.7}], "duration": 3.4},
    ]
    image = tmp_path / "a.png"
    clips.run(ffmpeg_bin, "-f", "lavfi", "-i", "testsrc2=s=320x180", "-frames:v", "1", str(image))
    files = {"videos/c.mp4": source, "images/a.png": image}
    whole = clips.project_with(tmp_path / "whole", scenes, files)
    chunked = clips.project_with(tmp_path / "chunked", scenes, files)
    one = clips.render_here(whole, ffmpeg_bin, chunkSeconds=0, xfade=0.4)
    many = clips.render_here(chunked, ffmpeg_bin, chunkSeconds=0.7, xfade=0.4)
    parts = sorted((chunked.work / "scenes").glob("*_part*.mp4"))
    assert len(parts) >= 8  # chunks inside the clip, its loop's seam and the cross-fade
    assert frame_hashes(ffmpeg_bin, many) == frame_hashes(ffmpeg_bin, one)
    assert len(frame_hashes(ffmpeg_bin, one)) == 252


def test_a_transition_out_of_a_clip_into_a_clip_is_chunk_exact(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    # Clips and transitions together: a transition's halves read both scenes' clips (seeking
    # into each for the frames over the cut) as their own chunks do.
    source = clips.counting(ffmpeg_bin, tmp_path / "c.mp4", fps=25, seconds=6, size="320x180")
    scenes = [
        {
            "images": [{"video": "c.mp4", "in": 0.3, "out": 2.1, "fill": "loop"}],
            "duration": 3,
            "transition": {"type": "dissolve", "duration": 0.6},
        },
        {"images": [{"video": "c.mp4", "in": 1.7}], "duration": 2.4},
    ]
    files = {"videos/c.mp4": source}
    whole = clips.project_with(tmp_path / "whole", scenes, files)
    chunked = clips.project_with(tmp_path / "chunked", scenes, files)
    cut = clips.project_with(
        tmp_path / "cut", [{k: v for k, v in s.items() if k != "transition"} for s in scenes], files
    )
    one = clips.render_here(whole, ffmpeg_bin, chunkSeconds=0)
    many = clips.render_here(chunked, ffmpeg_bin, chunkSeconds=0.7)
    hard = clips.render_here(cut, ffmpeg_bin, chunkSeconds=0)
    assert sorted(p.name for p in (whole.work / "scenes").glob("transition_*.mp4"))
    assert len(sorted((chunked.work / "scenes").glob("*_part*.mp4"))) >= 4
    frames = frame_hashes(ffmpeg_bin, one)
    assert frame_hashes(ffmpeg_bin, many) == frames
    assert len(frames) == len(frame_hashes(ffmpeg_bin, hard)) == 162  # 5.4 s at 30 fps
    assert frames != frame_hashes(ffmpeg_bin, hard)  # the dissolve is drawn


def test_the_cache_key_follows_the_clips_content_and_trim(tmp_path: Path, ffmpeg_bin: str) -> None:
    source = clips.counting(ffmpeg_bin, tmp_path / "c.mp4", seconds=3)
    project = clips.project_with(
        tmp_path / "p",
        [{"images": [{"video": "c.mp4", "in": 0.5}], "duration": 1}],
        {"videos/c.mp4": source, "videos/renamed.mp4": source},
    )
    plan = make_plan(project, clips.small_options(), ffmpeg_bin)
    scene = plan.scenes[0]
    (clip,) = scene.visuals
    assert isinstance(clip, Clip)

    def key(**changed: object) -> str:
        other = dataclasses.replace(clip, **changed)  # type: ignore[arg-type]
        shots = tuple(dataclasses.replace(s, digest=other.sha256) for s in scene.shots)
        return clip_key(plan, dataclasses.replace(scene, visuals=(other,), shots=shots), "v")

    same = key()
    assert key(path="input/videos/renamed.mp4") == same  # its bytes, not its name
    assert key(trim_in=0.6) != same
    assert key(trim_out=2.0) != same
    assert key(file_sha256="0" * 64) != same
    assert key(fill="loop") != same


def test_bad_clip_entries_are_refused_naming_the_field() -> None:
    def problem(entry: object, **scene: object) -> str:
        with pytest.raises(ValidationError) as caught:
            ProjectSpec.model_validate({"scenes": [{"images": [entry], **scene}]})
        err = caught.value.errors()[0]
        return ".".join(str(p) for p in err["loc"]) + ": " + err["msg"]

    assert "out (1) must be after in (2)" in problem({"video": "a.mp4", "in": 2, "out": 1})
    assert "is an image" in problem({"video": "a.jpg", "in": 1})
    assert problem({"video": "a.mp4", "fill": "bounce"}).startswith("scenes.0.images.0")
    assert problem({"video": "a.mp4", "in": -1}).startswith("scenes.0.images.0")
    assert 'duration "clip" needs' in problem("a.jpg", duration="clip")
    spec = ProjectSpec.model_validate(
        {"scenes": [{"images": ["a.jpg", {"video": "b.mp4", "in": 1}], "duration": 2}]}
    )
    refs = [(r.field, r.kind.name, r.name) for r in spec.references()]
    assert refs == [
        ("scenes[0].images[0]", "images", "a.jpg"),
        ("scenes[0].images[1].video", "videos", "b.mp4"),
    ]


def test_a_trim_outside_the_clip_fails_validate_naming_it(tmp_path: Path, ffmpeg_bin: str) -> None:
    source = clips.counting(ffmpeg_bin, tmp_path / "c.mp4", seconds=2)
    for entry, wording in (
        ({"video": "c.mp4", "in": 2.5}, "in (2.5 s) is not inside the clip"),
        ({"video": "c.mp4", "out": 3}, "out (3 s) is past the clip's end"),
    ):
        project = clips.project_with(
            tmp_path / "p", [{"images": [entry], "duration": 1}], {"videos/c.mp4": source}
        )
        with pytest.raises(PipelineError) as caught:
            make_plan(project, clips.small_options(), ffmpeg_bin)
        assert "'c.mp4'" in str(caught.value) and wording in str(caught.value)


def test_duration_clip_lets_the_clip_set_the_scene_length(tmp_path: Path, ffmpeg_bin: str) -> None:
    source = clips.counting(ffmpeg_bin, tmp_path / "c.mp4", seconds=4)
    project = clips.project_with(
        tmp_path / "p",
        [
            {"images": [{"video": "c.mp4", "in": 0.5, "out": 2.9}], "duration": "clip"},
            {"images": [{"video": "c.mp4"}], "duration": 1},
        ],
        {"videos/c.mp4": source},
    )
    plan = make_plan(project, clips.small_options(minShot=0.5, maxShot=1.0), ffmpeg_bin)
    assert plan.scenes[0].frames == 72
    # One shot per visual: maxShot does not cut a clip up.
    assert [len(s.shots) for s in plan.scenes] == [1, 1]
    # A clip never lengthens a scene otherwise: the second lasts its duration.
    assert plan.scenes[1].frames == 30


def test_a_clip_that_fails_to_decode_mid_render_names_the_file_and_time(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    good = tmp_path / "good.mp4"
    clips.run(
        ffmpeg_bin,
        *("-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=6"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-movflags", "+faststart"),
        str(good),
    )
    data = bytearray(good.read_bytes())
    noise = random.Random(1)
    middle = len(data) // 2
    data[middle : middle + 4000] = bytes(noise.randrange(256) for _ in range(4000))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    project = clips.project_with(
        tmp_path / "p", [{"images": [{"video": "bad.mp4"}], "duration": 6}], {"videos/bad.mp4": bad}
    )
    with pytest.raises(PipelineError) as caught:
        clips.render_here(project, ffmpeg_bin)
    error = caught.value
    assert error.stage == "SCENE_BUILD"
    assert "video 'bad.mp4' could not be decoded at " in str(error)
    seconds = float(str(error).split("could not be decoded at ")[1].split(" s")[0])
    assert 1.0 < seconds < 5.0
    assert not (project.output / "video.mp4").exists()


def test_ken_burns_over_a_clip_only_when_asked_and_chunk_exact(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    source = tmp_path / "s.mp4"
    clips.run(
        ffmpeg_bin,
        *("-f", "lavfi", "-i", "testsrc2=s=320x180:r=30:d=3"),
        *("-c:v", "libx264", "-crf", "10", "-preset", "ultrafast", str(source)),
    )
    original = clips.gray_frames(source)
    made = {}
    for name, entry, chunk in (
        ("moving", {"video": "s.mp4", "motion": "kenburns"}, 0.5),
        ("moving_whole", {"video": "s.mp4", "motion": "kenburns"}, 0),
        ("plain", {"video": "s.mp4"}, 0),
    ):
        project = clips.project_with(
            tmp_path / name, [{"images": [entry], "duration": 2}], {"videos/s.mp4": source}
        )
        # The render option asks for Ken Burns: it moves images, not clips.
        made[name] = clips.render_here(project, ffmpeg_bin, chunkSeconds=chunk, motion="kenburns")
    moving, plain = clips.gray_frames(made["moving"]), clips.gray_frames(made["plain"])
    # Without `motion` on the clip, its frames are the source's throughout.
    assert min(clips.psnr(plain[n], original[n]) for n in (0, 30, 59)) > 35
    # With it, the first frame is the whole picture and the last is zoomed in.
    assert clips.psnr(moving[0], original[0]) > 35
    assert clips.psnr(moving[59], original[59]) < 25
    assert frame_hashes(ffmpeg_bin, made["moving"]) == frame_hashes(
        ffmpeg_bin, made["moving_whole"]
    )
