import dataclasses
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from pipeline import plan as plan_module
from pipeline import registry, stages
from pipeline.captions import Cue
from pipeline.encoder import Encoder
from pipeline.errors import PipelineError
from pipeline.ffmpeg import Runner
from pipeline.fixtures import (
    ImageFixture,
    SceneFixture,
    VoiceFixture,
    make_blank_png,
    make_image,
    write_project,
)
from pipeline.layers import BurntCaptions
from pipeline.limits import Limits
from pipeline.motion import STILL, Move
from pipeline.options import RenderOptions
from pipeline.plan import MusicPlan, Plan, make_plan, read_plan, write_plan
from pipeline.project import ProjectDir
from pipeline.registry import StageRun
from pipeline.visuals import still as still_module
from tests import pipeline_fixtures as fx
from tests import plans
from tests.pipeline_fixtures import SMALL

ffmpeg_bin = fx.ffmpeg_bin
small_project = fx.small_project


def test_plan_follows_the_timeline_rules(small_project: ProjectDir, ffmpeg_bin: str) -> None:
    plan = make_plan(small_project, SMALL, ffmpeg_bin)
    assert (plan.fps, plan.width, plan.height) == (30, 320, 180)
    intro, end = plan.scenes
    assert intro.id == "intro" and intro.voiceover == "input/voiceovers/a.wav"
    assert intro.voiceover_seconds == pytest.approx(1.0, abs=1e-3)
    assert (intro.start_frame, intro.frames) == (0, 30)
    assert (end.start_frame, end.frames, end.voiceover) == (30, 30, None)
    assert plan.total_frames == 60 and plan.duration_seconds == 2.0
    assert plan.xfade_frames == 9
    assert intro.visual(intro.shots[0]).path == "input/images/a.jpg"
    # Everything that decides the clips' bytes: the options' crf and preset, x264's defaults.
    assert plan.encoder == Encoder(preset="veryfast", crf=23, threads=0, lookahead=0)


def test_the_encoder_holds_x264s_threads_and_lookahead(
    small_project: ProjectDir, ffmpeg_bin: str
) -> None:
    plan = make_plan(small_project, SMALL, ffmpeg_bin, threads=2, lookahead=10)
    assert (plan.encoder.threads, plan.encoder.lookahead) == (2, 10)
    assert json.loads(plan.to_json())["encoder"]["lookahead"] == 10


def test_plan_round_trips_through_json(small_project: ProjectDir, ffmpeg_bin: str) -> None:
    plan = make_plan(small_project, SMALL, ffmpeg_bin, threads=2, lookahead=10)
    assert Plan.from_json(plan.to_json()) == plan
    write_plan(small_project, plan)
    assert read_plan(small_project) == plan
    json.loads((small_project.work / "plan.json").read_text())  # plain JSON on disk


def test_cycled_images_and_overrides(tmp_path: Path, ffmpeg_bin: str) -> None:
    project = write_project(
        tmp_path,
        [
            SceneFixture(
                (ImageFixture("a.jpg", 64, 48), ImageFixture("b.png", 48, 64)),
                duration=7.0,
                fit="contain",
                motion="none",
            )
        ],
        ffmpeg_bin,
    )
    options = RenderOptions(min_shot=1.0, max_shot=2.0, xfade=0.5, resolution="64x36")
    (scene,) = make_plan(project, options, ffmpeg_bin).scenes
    assert [scene.visual(shot).name for shot in scene.shots] == ["a.jpg", "b.png"] * 2
    assert len(scene.visuals) == 2  # each decoded once, however often it is shown
    assert [shot.overlap for shot in scene.shots] == [15, 15, 15, 0]
    assert sum(shot.frames for shot in scene.shots) == scene.frames == 210
    assert scene.fit == "contain" and scene.motion == "none"
    assert all(shot.move.still for shot in scene.shots)


def test_voiceover_longer_than_duration_wins(tmp_path: Path, ffmpeg_bin: str) -> None:
    project = write_project(
        tmp_path,
        [SceneFixture((ImageFixture("a.jpg", 64, 48),), VoiceFixture("v.mp3", 2.0), duration=1.0)],
        ffmpeg_bin,
    )
    (scene,) = make_plan(project, SMALL, ffmpeg_bin).scenes
    assert scene.frames == 60


def _broken(tmp_path: Path, ffmpeg_bin: str) -> ProjectDir:
    return write_project(
        tmp_path,
        [
            SceneFixture((ImageFixture("ok.jpg", 64, 48),), duration=1.0, id="fine"),
            SceneFixture((ImageFixture("a.jpg", 64, 48),), VoiceFixture("v.wav", 1.0), id="intro"),
        ],
        ffmpeg_bin,
    )


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (
            lambda p: p.asset("images", "a.jpg").write_bytes(b"\xff\xd8 not really a jpeg"),
            "VALIDATE scene 1 (id 'intro'): image 'a.jpg' could not be decoded",
        ),
        (
            lambda p: p.asset("images", "a.jpg").unlink(),
            "VALIDATE scene 1 (id 'intro'): image 'a.jpg' does not exist",
        ),
        (
            lambda p: p.asset("voiceovers", "v.wav").write_bytes(b"RIFF....WAVEjunk"),
            "VALIDATE scene 1 (id 'intro'): voiceover 'v.wav' is not a readable audio file",
        ),
        (
            lambda p: p.asset("voiceovers", "v.wav").unlink(),
            "VALIDATE scene 1 (id 'intro'): voiceover 'v.wav' does not exist",
        ),
    ],
)
def test_bad_inputs_name_stage_scene_and_file(
    tmp_path: Path, ffmpeg_bin: str, damage: object, expected: str
) -> None:
    project = _broken(tmp_path, ffmpeg_bin)
    damage(project)  # type: ignore[operator]
    validate = registry.BY_NAME["VALIDATE"]
    with pytest.raises(PipelineError) as info:
        registry.run_stage(validate, StageRun(project, SMALL, "v.mp4", Runner(ffmpeg_bin)))
    assert str(info.value).startswith(expected)
    assert info.value.stage == validate.name == "VALIDATE" and info.value.scene == 1


def test_an_image_that_is_really_audio_is_rejected(tmp_path: Path, ffmpeg_bin: str) -> None:
    project = _broken(tmp_path, ffmpeg_bin)
    project.asset("images", "a.jpg").write_bytes(project.asset("voiceovers", "v.wav").read_bytes())
    with pytest.raises(PipelineError, match=r"image 'a\.jpg' could not be decoded"):
        make_plan(project, SMALL, ffmpeg_bin)


def test_scene_with_neither_voiceover_nor_duration(tmp_path: Path, ffmpeg_bin: str) -> None:
    project = write_project(
        tmp_path, [SceneFixture((ImageFixture("a.jpg", 64, 48),), id="silent")], ffmpeg_bin
    )
    with pytest.raises(PipelineError, match="scene 0 \\(id 'silent'\\): has neither"):
        make_plan(project, SMALL, ffmpeg_bin)


def test_missing_or_invalid_spec(tmp_path: Path, ffmpeg_bin: str) -> None:
    project = ProjectDir(tmp_path)
    with pytest.raises(PipelineError, match=r"scenes\.json does not exist"):
        make_plan(project, SMALL, ffmpeg_bin)
    project.create()
    project.spec_file.write_text('{"scenes": []}')
    with pytest.raises(PipelineError, match=r"scenes\.json is not valid: scenes: "):
        make_plan(project, SMALL, ffmpeg_bin)


def test_ffmpeg_without_libx264_is_refused(small_project: ProjectDir, tmp_path: Path) -> None:
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho ' V..... mpeg4   MPEG-4 part 2'\n")
    fake.chmod(0o755)
    with pytest.raises(PipelineError, match=r"lacks encoder\(s\) libx264"):
        make_plan(small_project, SMALL, str(fake))


def _many(tmp_path: Path, ffmpeg_bin: str) -> ProjectDir:
    """A project of PARALLEL_FROM + 2 scenes (so VALIDATE inspects them on threads), each with
    its own picture and voiceover."""
    scenes = [
        SceneFixture(
            (ImageFixture(f"m{i}.jpg", 64 + 2 * i, 48, "testsrc2"),),
            VoiceFixture(f"m{i}.wav", 0.3 + 0.05 * i, 300 + 20 * i),
        )
        for i in range(plan_module.PARALLEL_FROM + 2)
    ]
    return write_project(tmp_path, scenes, ffmpeg_bin)


def test_many_scenes_are_inspected_in_parallel_with_the_serial_result(
    tmp_path: Path, ffmpeg_bin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _many(tmp_path, ffmpeg_bin)
    count = plan_module.PARALLEL_FROM + 2
    scanned_on: set[int] = set()
    scan = plan_module.scan_audio

    def watched(path: Path) -> Any:
        scanned_on.add(threading.get_ident())
        return scan(path)

    monkeypatch.setattr(plan_module, "scan_audio", watched)
    threads = make_plan(project, SMALL, ffmpeg_bin)
    assert threading.get_ident() not in scanned_on  # not on the caller's thread
    monkeypatch.setattr(plan_module, "PARALLEL_FROM", 10**6)
    assert make_plan(project, SMALL, ffmpeg_bin) == threads
    assert threading.get_ident() in scanned_on  # below PARALLEL_FROM: on the caller's
    assert [s.voiceover for s in threads.scenes] == [
        f"input/voiceovers/m{i}.wav" for i in range(count)
    ]


def test_with_many_scenes_the_first_bad_scene_is_the_one_reported(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    project = _many(tmp_path, ffmpeg_bin)
    last = plan_module.PARALLEL_FROM + 1
    project.asset("voiceovers", f"m{last}.wav").unlink()  # the last scene: inspected first, maybe
    project.asset("images", "m3.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(PipelineError) as info:
        make_plan(project, SMALL, ffmpeg_bin)
    assert info.value.scene == 3 and "image 'm3.jpg' could not be decoded" in str(info.value)


# --- the image pixel cap (decompression bombs) ---------------------------------------------


def test_an_image_at_the_pixel_cap_passes_and_one_over_is_refused(
    small_project: ProjectDir, ffmpeg_bin: str
) -> None:
    # Both of the project's images are 320×240 (76800 pixels).
    plan = make_plan(small_project, SMALL, ffmpeg_bin, bounds=Limits(max_image_pixels=76800))
    assert plan.max_pixels == 76800
    assert Plan.from_json(plan.to_json()) == plan
    still_module._DECODED.clear()  # not even bytes decoded before escape the cap
    with pytest.raises(PipelineError) as info:
        make_plan(small_project, SMALL, ffmpeg_bin, bounds=Limits(max_image_pixels=76799))
    assert str(info.value) == (
        "scene 0 (id 'intro'): image 'a.jpg' is 320×240 pixels (0.1 MP), over the limit of "
        "76799 pixels (0.076799 MP) (MAX_IMAGE_PIXELS)"
    )
    # Bytes decoded before (under a larger cap) are refused all the same.
    make_plan(small_project, SMALL, ffmpeg_bin)
    with pytest.raises(PipelineError, match=r"'a\.jpg' is 320×240 pixels"):
        make_plan(small_project, SMALL, ffmpeg_bin, bounds=Limits(max_image_pixels=76799))


def test_validate_refuses_a_bomb_put_straight_in_the_folder_without_decoding_it(
    small_project: ProjectDir, ffmpeg_bin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 12000×12000 PNG of 17 KB, copied into input/images/ past the API's upload check:
    VALIDATE reads its header, names the scene and the file, and never decodes it."""
    make_blank_png(small_project.asset("images", "b.png"), 12000, 12000)
    decoded: list[Path] = []
    real_image_size = still_module.image_size

    def spy(path: Path, max_pixels: int | None = None) -> tuple[int, int]:
        decoded.append(path)
        return real_image_size(path, max_pixels)

    monkeypatch.setattr(still_module, "image_size", spy)
    validate = registry.BY_NAME["VALIDATE"]
    bounds = Limits(max_image_pixels=40_000_000)
    run = StageRun(small_project, SMALL, "v.mp4", Runner(ffmpeg_bin), limits=bounds)
    with pytest.raises(PipelineError) as info:
        registry.run_stage(validate, run)
    assert str(info.value) == (
        "VALIDATE scene 1 (id 'end'): image 'b.png' is 12000×12000 pixels (144.0 MP), over the "
        "limit of 40000000 pixels (40 MP) (MAX_IMAGE_PIXELS)"
    )
    assert small_project.asset("images", "b.png") not in decoded


def test_a_header_pillow_will_not_read_is_still_a_refusal_naming_the_file(
    small_project: ProjectDir, ffmpeg_bin: str
) -> None:
    # Over twice Pillow's own bomb limit, Pillow refuses before its header can be looked at.
    make_blank_png(small_project.asset("images", "b.png"), 20000, 20000)
    with pytest.raises(PipelineError) as info:
        make_plan(small_project, SMALL, ffmpeg_bin)
    assert str(info.value) == (
        "scene 1 (id 'end'): image 'b.png' has 400000000 pixels (400.0 MP), over the limit of "
        "40000000 pixels (40 MP) (MAX_IMAGE_PIXELS)"
    )


def test_ffmpeg_refuses_an_image_over_the_plans_cap_when_it_prepares_stills(
    small_project: ProjectDir, ffmpeg_bin: str
) -> None:
    """The file changed after VALIDATE checked it: FFmpeg's decoder has a cap of its own."""
    plan = make_plan(small_project, SMALL, ffmpeg_bin, bounds=Limits(max_image_pixels=76800))
    # Over the decoder's cap (twice the plan's: FFmpeg pads rows when it counts).
    make_image(small_project.asset("images", "a.jpg"), ImageFixture("a.jpg", 400, 400))
    with pytest.raises(PipelineError, match="exceeds specified max pixel count 153600"):
        stages.prepare_stills(small_project, plan, 0, Runner(ffmpeg_bin))
    assert not any(stages.scene_stills(small_project, plan, 0)[0].parent.glob("*.yuv"))
    # The same file under the default cap is prepared.
    wide = dataclasses.replace(plan, max_pixels=40_000_000)
    assert all(
        p.is_file() for p in stages.prepare_stills(small_project, wide, 0, Runner(ffmpeg_bin))
    )


def test_a_plan_with_every_kind_of_field_round_trips_through_json() -> None:
    """Read back from its JSON, a plan is equal to the one written: visuals and layers by
    their kinds, nested dataclasses, tuples, optional parts."""
    a, b = plans.still("a.jpg", 800, 600, 6), plans.still("b.png", 600, 800)
    moving = Move(1.0, 1.12, 0.25, 0.75, 0.5, 1 / 3)
    scene = plans.scene_plan(
        id="intro",
        visuals=(a, b),
        shots=(plans.shot(a, 40, 9, moving), plans.shot(b, 41, 0, STILL)),
        voiceover="input/voiceovers/v.wav",
        voiceover_seconds=2.7,
        fit="contain",
        motion="kenburns",
        speech=((0.0, 1.25), (1.5, 2.7)),
        captions=(Cue(0, 30, ("Two lines", "of words"), (0, 5, 12, 20)), Cue(30, 81, ("and one",))),
        layers=(BurntCaptions(style="karaoke", position="top", size="large"),),
    )
    plan = plans.plan(
        scene,
        plans.scene_plan(frames=45),
        xfade_frames=9,
        part=(0, 2),
        music=MusicPlan("input/music/bed.mp3", 12.5, -18.0, 1.0, 2.0, True),
        ducking_db=-12.0,
        loudness=-16.0,
        caption_language="en",
        chunk_frames=75,
        max_pixels=40_000_000,
    )
    text = plan.to_json()
    assert Plan.from_json(text) == plan
    stored = json.loads(text)["scenes"][0]
    assert [v["kind"] for v in stored["visuals"]] == ["still", "still"]
    assert stored["layers"] == [
        {"kind": "captions", "style": "karaoke", "position": "top", "size": "large"}
    ]
    assert stored["shots"][0]["digest"] == a.sha256


def test_a_plan_written_before_visuals_and_layers_had_kinds_is_read_as_today() -> None:
    """A job VALIDATEd by the previous release keeps its plan.json: images, shots naming
    them by path, `burn_in`."""
    encoder = {"preset": "veryfast", "crf": 23, "threads": 0, "lookahead": 0}
    move = {"zoom_start": 1.0, "zoom_end": 1.12, "x_start": 0.5, "x_end": 0.7}
    old = {
        **{"fps": 30, "width": 320, "height": 180, "encoder": encoder, "xfade_frames": 9},
        "sample_rate": 48000,
        "caption_language": "en",
        "scenes": [
            {
                **{"index": 0, "id": "intro", "start_frame": 0, "frames": 60},
                "images": [
                    {"path": "input/images/a.jpg", "width": 800, "height": 600, "sha256": "a" * 64},
                    {"path": "input/images/b.png", "width": 600, "height": 800, "orientation": 6},
                ],
                "shots": [
                    {"image": "input/images/a.jpg", "frames": 30, "overlap": 9, "move": move},
                    {"image": "input/images/b.png", "frames": 30, "overlap": 0, "move": {}},
                ],
                **{"voiceover": None, "voiceover_seconds": None, "fit": "cover"},
                **{"motion": "kenburns", "lengthened": False, "speech": [[0.0, 1.5]]},
                "captions": [{"start": 0, "end": 30, "lines": ["Hello"]}],
                "burn_in": True,
            }
        ],
    }
    plan = Plan.from_json(json.dumps(old))
    a = plans.still("a.jpg", 800, 600, sha256="a" * 64)
    # A still hashed before digests were kept goes by its path, as the cache key did.
    b = plans.still("b.png", 600, 800, 6, sha256="input/images/b.png")
    (scene,) = plan.scenes
    assert scene.visuals == (a, b)
    assert scene.shots == (plans.shot(a, 30, 9, Move(**move)), plans.shot(b, 30))
    assert scene.layers == (BurntCaptions(),) and scene.burn_in
    assert scene.captions == (Cue(0, 30, ("Hello",)),) and scene.speech == ((0.0, 1.5),)
    assert Plan.from_json(plan.to_json()) == plan
