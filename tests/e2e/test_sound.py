"""End to end with sound: narration spoken by the worker's SPEECH tasks, a ducked music bed,
-16 LUFS, captions beside the video and in it; all through HTTP, Redis and Celery."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from api.launch import Stack
from pipeline.fixtures import ImageFixture, MusicFixture, SceneFixture, VoiceFixture
from tests.e2e import Api, running_stack
from tests.sound import r128

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("storage"), workers=1) as stack:
        yield stack


def test_a_narrated_render_with_a_ducked_bed_and_captions(stack: Stack, tmp_path: Path) -> None:
    api = Api(stack.base_url)
    # Scene 1 alone is spoken by TTS: scenes 0 and 2 narrate over voiceovers of their own.
    scenes = [
        SceneFixture(
            (ImageFixture("p0.jpg", 480, 270, "gradients"),),
            VoiceFixture("start.wav", 1.2, 400),
            narration="The harbour at dawn.",
            id="s0",
        ),
        SceneFixture(
            (ImageFixture("p1.jpg", 480, 270, "gradients"),),
            narration="Boats leave early, and the gulls follow them out.",
            id="s1",
        ),
        SceneFixture(
            (ImageFixture("p2.jpg", 480, 270, "testsrc2"),),
            VoiceFixture("end.mp3", 1.5, 500),
            narration="A voiceover of its own.",
            id="s2",
        ),
    ]
    api.upload_project("sound", scenes, tmp_path, music=[MusicFixture("bed.mp3", 3.0)])
    job_id = api.render(
        "sound",
        "narrated.mp4",
        tts="espeak-ng",
        music={"file": "bed.mp3", "volume": -16},
        ducking=True,
        captions={"language": "en"},
        minShot=1.0,
        xfade=0.2,
    )
    job = api.wait(job_id, timeout=240)
    assert job["status"] == "SUCCEEDED", job
    # SPEECH for the spoken scene only, under its own scene number, before VALIDATE.
    names = [s["name"] for s in job["stages"]]
    assert [name for name in names if name.startswith("SPEECH")] == ["SPEECH[1]"]
    assert names[:2] == ["SPEECH[1]", "VALIDATE"]
    assert {s["name"]: s["status"] for s in job["stages"]}["SPEECH[1]"] == "DONE"
    assert len(job["scenes"]) == 3

    listed = {f["name"] for f in api.http.get("/v1/projects/sound/outputs").json()}
    assert {"narrated.mp4", "narrated.srt", "narrated.vtt"} <= listed
    srt = api.http.get("/v1/projects/sound/outputs/video", params={"name": "narrated.srt"})
    assert srt.status_code == 200 and "The harbour at dawn." in srt.text

    out = api.download_video("sound", tmp_path / "narrated.mp4")
    loudness = r128(out)
    assert loudness.integrated == pytest.approx(-16, abs=1.0)
    assert loudness.true_peak <= -1.0
    with av.open(str(out)) as container:
        (track,) = container.streams.subtitles
        assert track.metadata.get("language") == "eng"
    # The speech was cached under the project: a second render speaks nothing again.
    cache = stack.settings.render_storage / "projects" / "sound" / "cache" / "speech"
    made = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert len([name for name in made if name.endswith(".wav")]) == 1
    again = api.wait(api.render("sound", "again.mp4", tts="espeak-ng", minShot=1.0), timeout=240)
    assert again["status"] == "SUCCEEDED", again
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == made
