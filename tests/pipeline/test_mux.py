"""The mux commands of CONCAT and FINALIZE as argument lists."""

from pathlib import Path

from pipeline.mux import concat_args, scene_output_args
from pipeline.plan import Plan
from tests import plans
from tests.plans import scene_plan, still

AAC = ["-c:a", "aac", "-aac_coder", "fast", "-b:a", "192k", "-ar", "48000", "-ac", "2"]
WORK = Path("/p/work")


def _plan() -> Plan:
    image = still("a.jpg", 64, 48)
    scenes = (scene_plan(visuals=(image,), frames=n) for n in (30, 45))
    return plans.plan(*scenes, width=320, height=180)


def test_concat_copies_the_clips_video_and_the_masters_aac_encoding_nothing() -> None:
    args = concat_args(WORK / "concat.txt", WORK / "audio.m4a", WORK / "joined.mp4")
    assert args == [
        *("-f", "concat", "-safe", "0", "-i", "/p/work/concat.txt", "-i", "/p/work/audio.m4a"),
        *("-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "copy"),
        *("-movflags", "+faststart", "-f", "mp4", "/p/work/joined.mp4"),
    ]


def test_a_scene_output_cuts_its_own_samples_from_the_master_track() -> None:
    out = Path("/p/output/.scene_01.tmp.mp4")
    args = scene_output_args(_plan(), 1, WORK / "scenes/scene_001.mp4", WORK / "audio.wav", out)
    # Scene 1 is frames 30..75 at 30 fps: samples 48000..120000 at 48 kHz.
    assert args == [
        *("-i", "/p/work/scenes/scene_001.mp4", "-i", "/p/work/audio.wav"),
        *("-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy"),
        *("-af", "atrim=start_sample=48000:end_sample=120000,asetpts=PTS-STARTPTS", *AAC),
        *("-movflags", "+faststart", "-f", "mp4", str(out)),
    ]


def test_concat_with_captions_adds_a_soft_subtitle_track_tagged_and_off() -> None:
    args = concat_args(
        WORK / "concat.txt", WORK / "audio.m4a", WORK / "joined.mp4", WORK / "c.srt", "eng"
    )
    assert args == [
        *("-f", "concat", "-safe", "0", "-i", "/p/work/concat.txt", "-i", "/p/work/audio.m4a"),
        *("-f", "srt", "-i", "/p/work/c.srt"),
        *("-map", "0:v:0", "-map", "1:a:0", "-map", "2:s:0", "-c:s", "mov_text"),
        *("-metadata:s:s:0", "language=eng", "-disposition:s:0", "0"),
        *("-c:v", "copy", "-c:a", "copy", "-movflags", "+faststart"),
        *("-f", "mp4", "/p/work/joined.mp4"),
    ]
