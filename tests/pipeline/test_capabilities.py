"""What a render needs from FFmpeg: listed once, checked against real (and fake) binaries."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from pipeline import audio, mux, scene
from pipeline.capabilities import NEEDS, UnfitFFmpeg, inspect_ffmpeg, require_ffmpeg
from pipeline.errors import PipelineError
from pipeline.fixtures import FixtureError, ImageFixture, VoiceFixture, make_image, make_tone
from pipeline.options import RenderOptions
from pipeline.plan import MusicPlan, SceneInputs, SceneVoice, build_plan, check_ffmpeg
from pipeline.spec import ProjectSpec
from pipeline.visuals import Clip
from tests import pipeline_fixtures as fx
from tests import plans
from tests.plans import still

ffmpeg_bin = fx.ffmpeg_bin


def test_the_bundled_ffmpeg_has_everything(ffmpeg_bin: str) -> None:
    report = require_ffmpeg(ffmpeg_bin)
    assert report.ok and report.missing == () and report.problem == ""
    assert report.binary == ffmpeg_bin
    assert report.version.startswith("ffmpeg version ")
    assert report.release and report.release in report.version


def test_a_build_listing_everything_the_way_51_does_passes(tmp_path: Path) -> None:
    report = require_ffmpeg(str(fx.fake_ffmpeg(tmp_path)))
    assert report.ok
    assert report.release == "5.1.6-0+deb12u1"


def test_a_build_without_xfade_is_refused_naming_it(tmp_path: Path) -> None:
    fake = fx.fake_ffmpeg(tmp_path, lacking={"xfade"})
    with pytest.raises(UnfitFFmpeg) as info:
        require_ffmpeg(str(fake))
    assert str(info.value) == (
        f"FFmpeg {fake} (version 5.1.6-0+deb12u1) lacks filter(s) xfade; "
        "set FFMPEG_BINARY to a full build, or leave it unset to use the bundled one"
    )


def test_everything_missing_is_named_at_once(tmp_path: Path) -> None:
    fake = fx.fake_ffmpeg(tmp_path, lacking={"libx264", "xfade", "setparams", "concat"})
    report = inspect_ffmpeg(str(fake))
    assert not report.ok
    # The concat filter and the concat demuxer share a name: both are missing here.
    assert report.missing == (
        ("encoder", ("libx264",)),
        ("filter", ("setparams", "xfade", "concat")),
        ("demuxer", ("concat",)),
    )
    assert "lacks encoder(s) libx264; filter(s) setparams, xfade, concat; demuxer(s) concat;" in (
        report.problem
    )


def test_a_binary_that_cannot_run_is_refused(tmp_path: Path) -> None:
    not_ffmpeg = tmp_path / "ffmpeg"
    not_ffmpeg.write_text("#!/bin/sh\necho 'segmentation fault' >&2\nexit 139\n")
    not_ffmpeg.chmod(0o755)
    with pytest.raises(UnfitFFmpeg, match=r"-version exited with status 139: segmentation fault"):
        require_ffmpeg(str(not_ffmpeg))
    not_executable = tmp_path / "plain"
    not_executable.write_text("")
    with pytest.raises(UnfitFFmpeg, match=f"FFmpeg {not_executable} cannot run: .*Permission"):
        require_ffmpeg(str(not_executable))
    with pytest.raises(UnfitFFmpeg, match="cannot run"):
        require_ffmpeg(str(tmp_path / "absent"))


def test_a_binary_is_asked_once_until_it_changes(tmp_path: Path) -> None:
    fake = fx.fake_ffmpeg(tmp_path)
    calls = tmp_path / "calls.log"
    # Log each invocation before the fake's own answer.
    fake.write_text(fake.read_text().replace("#!/bin/sh\n", f'#!/bin/sh\necho "$*" >> {calls}\n'))
    assert inspect_ffmpeg(str(fake)).ok
    assert inspect_ffmpeg(str(fake)).ok
    assert len(calls.read_text().splitlines()) == 5  # -version and the four listings, once
    fx.fake_ffmpeg(tmp_path, lacking={"zoompan"})  # replaced in place: asked again
    assert inspect_ffmpeg(str(fake)).missing == (("filter", ("zoompan",)),)


def test_validate_uses_the_same_check(tmp_path: Path) -> None:
    fake = fx.fake_ffmpeg(tmp_path, lacking={"xfade"})
    with pytest.raises(PipelineError) as info:
        check_ffmpeg(str(fake))
    located = info.value.located("VALIDATE", None)  # as the registry reports it
    assert str(located).startswith(f"VALIDATE: FFmpeg {fake} (version 5.1.6-0+deb12u1) lacks")
    assert "xfade" in str(info.value)


# --- NEEDS lists what the argument builders use ------------------------------------------


def _graph_filters(graph: str) -> set[str]:
    """Filter names of a filter graph's text: split at unquoted, unescaped ',' and ';', then
    each piece's name after its input labels."""
    pieces, piece, quoted, escaped = [], "", False, False
    for char in graph:
        if escaped:
            piece, escaped = piece + char, False
        elif char == "\\":
            piece, escaped = piece + char, True
        elif char in ",;" and not quoted:
            pieces.append(piece)
            piece = ""
        else:
            quoted ^= char == "'"
            piece += char
    pieces.append(piece)
    names = set()
    for text in pieces:
        match = re.match(r"\s*(?:\[[^\]]*\]\s*)*([A-Za-z0-9_]+)", text)
        if match:
            names.add(match.group(1))
    return names


def _needed(args: list[str]) -> dict[str, set[str]]:
    """Encoders, filters, demuxers and muxers one FFmpeg command line uses."""
    used: dict[str, set[str]] = {kind: set() for kind in NEEDS}
    for i, arg in enumerate(args[:-1]):
        value = args[i + 1]
        if arg in {"-filter_complex", "-af", "-vf"}:
            used["filter"] |= _graph_filters(value)
        elif arg in {"-c:v", "-c:a", "-c:s", "-codec:v", "-codec:a"} and value != "copy":
            used["encoder"].add(value)
        elif arg == "-f":
            # An input's format comes before its -i; an output's after the -map choosing it.
            rest = args[i + 2 :]
            to_input = rest.index("-i") if "-i" in rest else len(rest)
            to_output = rest.index("-map") if "-map" in rest else len(rest)
            used["demuxer" if to_input < to_output else "muxer"].add(value)
    if "rawvideo" in used["muxer"] and "-c:v" not in args:
        used["encoder"].add("rawvideo")  # the raw muxer's own codec, never named
    return used


_CLIP_ENTRY = {"video": "c.mp4", "in": 0.5, "out": 1.5, "fill": "loop", "audio": {"volume": -12}}
_CLIP = Clip(
    path="input/videos/c.mp4",
    file_sha256="c" * 64,
    demuxer="mov",
    width=320,
    height=180,
    rotation=0,
    start=0.0,
    seconds=3.0,
    has_audio=True,
    trim_in=0.5,
    trim_out=1.5,
    fill="loop",
    volume=-12.0,
    sha256="d" * 64,
)
_MKV = Clip(
    path="input/videos/m.mkv",
    file_sha256="e" * 64,
    demuxer="matroska",
    width=180,
    height=320,
    rotation=90,
    start=0.0,
    seconds=3.0,
    has_audio=False,
    sha256="f" * 64,
)


def test_needs_lists_every_filter_codec_and_format_a_render_uses() -> None:
    spec = ProjectSpec.model_validate(
        {
            "scenes": [
                {
                    "images": ["a.jpg", "b.png"],
                    "voiceover": "v.wav",
                    "motion": "kenburns",
                    "narration": "Words to caption and burn in.",
                },
                {
                    "images": ["c.jpg", "d.jpg"],
                    "duration": 4,
                    "fit": "contain",
                    "motion": "none",
                    "transition": {"type": "circleopen", "duration": 0.5},
                },
                {"images": ["e.jpg"], "duration": 2},
                # Video clips: looped with their sound (MP4), turned upright (Matroska).
                {"images": [_CLIP_ENTRY], "duration": 2.5},
                {"images": [{"video": "m.mkv"}], "duration": 1, "fit": "contain"},
            ]
        }
    )
    images = [
        (still("a.jpg", 800, 600, 6), still("b.png", 600, 800)),
        (still("c.jpg", 800, 600, 2), still("d.jpg", 640, 480, 4)),
        (still("e.jpg", 640, 480, 3),),
    ]
    inputs = [
        plans.inputs(images[0], 5.0, "input/voiceovers/v.wav"),
        plans.inputs(images[1], 4.0),
        plans.inputs(images[2], 2.0),
        SceneInputs((_CLIP,), None, None, 2.5),
        SceneInputs((_MKV,), None, None, 1.0),
    ]
    # Every sound feature: a looped bed, ducking, loudness (both passes), captions burnt in.
    options = RenderOptions.model_validate(
        {
            **fx.SMALL.model_dump(by_alias=True),
            "music": "bed.mp3",
            "ducking": True,
            "captions": {"burnIn": True},
        }
    )
    voices = [SceneVoice("input/voiceovers/v.wav", 5.0, ((0.0, 2.0), (3.5, 5.0))), None, None]
    voices += [None, None]
    bed = MusicPlan("input/music/bed.mp3", 2.0, -18.0, 1.0, 2.0, True)
    plan = build_plan(spec, options, inputs, voices=voices, music=bed)
    root, work = Path("/p"), Path("/p/work")
    commands = [
        audio.master_track_args(root, plan, work / "mix.wav", work / "stats.txt"),
        audio.gain_args(
            work / "mix.wav", work / "audio.wav", audio.Gain(3.0, True), stats=work / "s.txt"
        ),
        audio.aac_args(work / "audio.wav", work / "audio.m4a"),
        audio.measure_args(work / "audio.m4a", work / "s.txt"),
    ]
    for s in plan.scenes:
        stills = [work / f"{s.index}-{n}.yuv" for n, v in enumerate(s.visuals) if v.prepares]
        if stills:  # a scene of clips prepares nothing
            commands.append(scene.stills_args(root, plan, s, stills))
        commands.append(
            scene.scene_args(plan, s, stills, work / f"{s.index}.mp4", work=work, root=root)
        )
        commands.append(
            mux.scene_output_args(plan, s.index, work / "c.mp4", work / "a.wav", work / "o.mp4")
        )
    # A span cutting a cross-fade (a transition's edge may), and a transition's half.
    stills = [work / f"1-{n}.yuv" for n in range(2)]
    commands.append(
        scene.scene_args(plan, plan.scenes[1], stills, work / "1.mp4", span=(62, 99), work=work)
    )
    prepared = {1: stills, 2: [work / "2-0.yuv"]}
    commands.append(scene.transition_args(plan, 1, (0, 7), prepared, work / "t.mp4", work))
    commands.append(
        mux.concat_args(work / "concat.txt", work / "audio.m4a", work / "j.mp4", work / "c.srt")
    )
    used: dict[str, set[str]] = {kind: set() for kind in NEEDS}
    for args in commands:
        for kind, names in _needed(args).items():
            used[kind] |= names
    for kind, names in used.items():
        assert names, f"no {kind} found: is the parsing in this test out of date?"
        assert names <= set(NEEDS[kind]), f"{kind}(s) used but not in NEEDS"
    # And nothing listed that no render uses (the check would refuse builds for nothing).
    assert {kind: set(names) for kind, names in NEEDS.items()} == used


# --- the sample generator with another FFmpeg ----------------------------------------------


def test_pillow_drawn_samples_need_no_ffmpeg(tmp_path: Path) -> None:
    # "gradients" was lavfi's source, which Debian 12's FFmpeg 5.1 could not make: the demo's
    # sample project died there. Now drawn with Pillow, it works with any binary at all.
    unusable = fx.fake_ffmpeg(tmp_path / "bin")
    made = make_image(
        tmp_path / "field.jpg", ImageFixture("field.jpg", 320, 180, "gradients"), str(unusable)
    )
    with Image.open(made) as img:
        assert img.size == (320, 180)
        left, right = img.getpixel((2, 90)), img.getpixel((317, 90))
        assert isinstance(left, tuple) and isinstance(right, tuple)
        assert left[0] > 200 and right[0] < 50  # red fades from the left edge


def test_a_sample_ffmpeg_cannot_make_is_a_clear_error(tmp_path: Path) -> None:
    fake = fx.fake_ffmpeg(tmp_path / "bin")
    with pytest.raises(FixtureError, match=f"FFmpeg {fake} could not make bars.png: fake ffmpeg"):
        make_image(
            tmp_path / "bars.png", ImageFixture("bars.png", 64, 36, "smptehdbars"), str(fake)
        )
    with pytest.raises(FixtureError, match=r"could not make v\.mp3"):
        make_tone(tmp_path / "v.mp3", VoiceFixture("v.mp3", 0.5), str(fake))


def test_the_sample_sources_exist_in_the_selected_ffmpeg(tmp_path: Path) -> None:
    made = [
        make_image(tmp_path / f"{source}.jpg", ImageFixture(f"{source}.jpg", 64, 36, source))
        for source in ("testsrc2", "mandelbrot", "smptehdbars", "color:teal", "gradients")
    ]
    assert all(path.stat().st_size > 0 for path in made)
