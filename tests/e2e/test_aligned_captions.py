"""End to end: captions aligned to an uploaded voiceover and burnt in as karaoke, and a
voiceover the narration cannot be aligned to, which falls back with a job-log line; all through
HTTP, Redis and Celery."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.launch import Stack
from pipeline.ffmpeg import find_ffmpeg
from pipeline.fixtures import ImageFixture, SceneFixture, VoiceFixture
from tasks.storage import Storage
from tests.e2e import Api, running_stack
from tests.spoken import SHORT, speak

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("storage"), workers=1) as stack:
        yield stack


def _starts(srt: str) -> list[float]:
    found = []
    for h, m, s, ms in re.findall(r"^(\d+):(\d+):(\d+),(\d+) -->", srt, flags=re.M):
        found.append(int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000)
    return found


def test_captions_follow_an_uploaded_voiceover_and_fall_back_with_a_log_line(
    stack: Stack, tmp_path: Path
) -> None:
    api = Api(stack.base_url)
    scenes = [
        SceneFixture(
            (ImageFixture("a.jpg", 320, 180, "gradients"),),
            VoiceFixture("said.mp3", 1.0),  # replaced by the spoken narration below
            narration=SHORT,
            id="said",
        ),
        SceneFixture(
            (ImageFixture("b.jpg", 320, 180, "testsrc2"),),
            VoiceFixture("tone.mp3", 2.0, 400, bursts=((0.5, 1.8),)),
            narration="No word of this is in the tone.",
            id="tone",
        ),
    ]
    api.upload_project("aligned", scenes, tmp_path)
    spoken = speak(SHORT, tmp_path / "said.mp3", find_ffmpeg(), lead=0.6)
    with spoken.path.open("rb") as file:
        uploaded = api.http.post(
            "/v1/projects/aligned/assets",
            files=[("files", ("said.mp3", file))],
            data={"subdir": "voiceovers"},
        )
    assert uploaded.status_code == 201, uploaded.text
    job_id = api.render(
        "aligned",
        "aligned.mp4",
        captions={"burnIn": True, "style": "karaoke", "position": "top"},
        resolution="320x180",
        preset="veryfast",
        loudness=False,
    )
    job = api.wait(job_id, timeout=240)
    assert job["status"] == "SUCCEEDED", job
    # The whole log (the document shows its last 50 lines, VALIDATE's may be before them).
    logged = Storage(stack.settings.render_storage).log_path(job_id).read_text().splitlines()
    fallbacks = [line for line in logged if "could not be aligned" in line]
    assert len(fallbacks) == 1 and "scene tone" in fallbacks[0], logged
    srt = api.http.get("/v1/projects/aligned/outputs/video", params={"name": "aligned.srt"}).text
    starts = _starts(srt)
    # The aligned scene's one cue starts on its first word; the tone's on its sound (spread).
    assert abs(starts[0] - min(w.start for w in spoken.truth)) < 0.1, srt
    assert len(starts) == 2
