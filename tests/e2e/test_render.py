"""End to end: HTTP → API → Celery on a real (embedded) Redis → worker → FFmpeg → probed MP4.

Nothing of ours is mocked. One stack serves the module; the crash test starts its own.
"""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.demo import JobProgress
from api.launch import Stack
from pipeline.fixtures import ImageFixture, SceneFixture, VoiceFixture, make_blank_png
from pipeline.probe import probe
from pipeline.registry import STAGES
from tests.e2e import Api, paused, running_stack

pytestmark = pytest.mark.e2e

FPS = 25


def small_scenes(seconds: tuple[float, ...] = (1.2, 1.6), tag: str = "") -> list[SceneFixture]:
    return [
        SceneFixture(
            (ImageFixture(f"i{tag}{i}.jpg", 480, 360, "testsrc2"),),
            VoiceFixture(f"v{tag}{i}.wav", length, 300 + 100 * i),
            id=f"s{i}",
        )
        for i, length in enumerate(seconds)
    ]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    storage = tmp_path_factory.mktemp("storage")
    # The x264 settings reach the worker's FFmpeg: checked in the output's x264 SEI below;
    # MAX_IMAGE_PIXELS its VALIDATE (under the default, so the default alone would not do).
    with running_stack(
        storage,
        workers=1,
        WATCHDOG_INTERVAL="1",
        X264_LOOKAHEAD="7",
        X264_THREADS="2",
        MAX_IMAGE_PIXELS="20000000",
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(stack: Stack) -> Api:
    return Api(stack.base_url)


def test_render_through_the_api_produces_a_probed_mp4(
    stack: Stack, api: Api, tmp_path: Path
) -> None:
    api.upload_project("ok", small_scenes(), tmp_path)
    job_id = api.render("ok", "out.mp4", fps=FPS, minShot=1.0, maxShot=4.0, xfade=0.2)
    log = io.StringIO()  # what `make demo` prints when its output is not a terminal
    shown = JobProgress(log)
    job = api.wait(job_id, on_poll=shown.show)
    shown.close()
    assert job["status"] == "SUCCEEDED", job
    assert "\r" not in log.getvalue()
    lines = [
        re.fullmatch(r"  (\w+) +\d+\.\d s +\d+\.\d% done", x) for x in log.getvalue().splitlines()
    ]
    # Nothing is spoken here: every stage but SPEECH, each once.
    assert all(lines) and [m[1] for m in lines if m] == [s.name for s in STAGES[1:]]
    assert STAGES[0].name == "SPEECH"
    assert job["progress"] == 1.0
    assert job["stage"] == "FINALIZE"
    # Voiceovers only, nothing for TTS to speak: exactly the seed's stages, no SPEECH.
    assert [s["name"] for s in job["stages"]] == [
        "VALIDATE",
        "AUDIO_PREP",
        "SCENE_BUILD[0]",
        "SCENE_BUILD[1]",
        "CONCAT",
        "FINALIZE",
    ]
    assert [s["status"] for s in job["scenes"]] == ["DONE", "DONE"]
    assert any("ffmpeg" in line for line in job["logs"])

    out = stack.settings.render_storage / "projects" / "ok" / "output" / "out.mp4"
    info = probe(out, count_frames=True)
    assert info.video is not None and info.audio is not None
    assert (info.video.width, info.video.height) == (320, 180)
    assert info.video.codec == "h264" and info.video.pix_fmt == "yuv420p"
    assert info.video.frames == round((1.2 + 1.6) * FPS)
    assert abs(info.audio.duration - info.video.duration) <= 1 / FPS
    assert b" rc_lookahead=7 " in out.read_bytes() and b" threads=2 " in out.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "out.jpg",
        "out.mp4",
        "scene_00.jpg",
        "scene_00.mp4",
        "scene_01.jpg",
        "scene_01.mp4",
    ]

    # The download endpoint serves the same bytes.
    response = api.http.get("/v1/projects/ok/outputs/video")
    assert response.status_code == 200
    assert hashlib.sha256(response.content).digest() == hashlib.sha256(out.read_bytes()).digest()


def test_a_failing_scene_fails_the_job_naming_stage_and_keeps_earlier_output(
    stack: Stack, api: Api, tmp_path: Path
) -> None:
    api.upload_project("broken", small_scenes(tag="b"), tmp_path)
    first = api.wait(api.render("broken", "good.mp4", fps=FPS))
    assert first["status"] == "SUCCEEDED", first
    project = stack.settings.render_storage / "projects" / "broken"
    good = (project / "output" / "good.mp4").read_bytes()

    # Corrupt the second scene's image on disk, behind the API's back.
    (project / "input" / "images" / "ib1.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    job = api.wait(api.render("broken", "bad.mp4", fps=FPS))
    assert job["status"] == "FAILED"
    assert job["stage"] == "VALIDATE"
    assert "scene 1" in job["error"] and "ib1.jpg" in job["error"]
    assert (project / "output" / "good.mp4").read_bytes() == good
    assert not (project / "output" / "bad.mp4").exists()


def test_an_image_over_max_image_pixels_put_behind_the_apis_back_fails_validate(
    stack: Stack, api: Api, tmp_path: Path
) -> None:
    api.upload_project("bomb", small_scenes(tag="x"), tmp_path)
    project = stack.settings.render_storage / "projects" / "bomb"
    # 25 MP: under the 40 MP default, over this stack's MAX_IMAGE_PIXELS.
    make_blank_png(project / "input" / "images" / "ix1.jpg", 5000, 5000)
    job = api.wait(api.render("bomb", "bomb.mp4", fps=FPS))
    assert job["status"] == "FAILED"
    assert job["stage"] == "VALIDATE"
    assert job["error"] == (
        "VALIDATE scene 1 (id 's1'): image 'ix1.jpg' is 5000×5000 pixels (25.0 MP), over the "
        "limit of 20000000 pixels (20 MP) (MAX_IMAGE_PIXELS)"
    )


def test_a_scene_failing_inside_the_group_fails_the_job_at_that_scene(
    stack: Stack, api: Api, tmp_path: Path
) -> None:
    api.upload_project("sceneerr", small_scenes(tag="e"), tmp_path)
    project = stack.settings.render_storage / "projects" / "sceneerr"
    # The worker is paused while the job is queued, so the job's own work folder can be
    # prepared before any of its tasks runs: a directory where scene 1's clip must go makes
    # that build fail, and scene 0's does not.
    with paused(stack.workers[0]):
        job_id = api.render("sceneerr", fps=FPS)
        blocker = project / "work" / job_id / "scenes" / "scene_001.mp4"
        blocker.mkdir(parents=True)
        (blocker / "keep").write_text("x")
    job = api.wait(job_id)
    assert job["status"] == "FAILED", job
    assert job["stage"] == "SCENE_BUILD[1]"
    assert job["error"].startswith("SCENE_BUILD[1]: file system error on ")
    assert "scene_001.mp4" in job["error"] and "internal error" not in job["error"]
    assert not (project / "output" / "video.mp4").exists()
    # A failed job keeps its work files for debugging.
    assert (project / "work" / job_id / "plan.json").is_file()


def test_two_jobs_of_one_project_at_once_do_not_mix_their_work(
    stack: Stack, api: Api, tmp_path: Path
) -> None:
    api.upload_project("twins", small_scenes(tag="t"), tmp_path)
    # Both jobs are queued before either starts, so their stages interleave on the worker.
    with paused(stack.workers[0]):
        wide = api.render("twins", "wide.mp4", fps=FPS, minShot=1.0, resolution="320x180")
        tall = api.render("twins", "tall.mp4", fps=FPS, minShot=1.0, resolution="180x320")
    jobs = [api.wait(job_id) for job_id in (wide, tall)]
    assert [j["status"] for j in jobs] == ["SUCCEEDED", "SUCCEEDED"], jobs
    output = stack.settings.render_storage / "projects" / "twins" / "output"
    for name, size in (("wide.mp4", (320, 180)), ("tall.mp4", (180, 320))):
        info = probe(output / name, count_frames=True)
        assert info.video is not None
        assert (info.video.width, info.video.height) == size
        assert info.video.frames == round((1.2 + 1.6) * FPS)
    # A succeeded job's work folder is gone: nothing is left to debug.
    assert not any((output.parent / "work").iterdir())


def test_cancel_stops_a_running_render_and_leaves_no_output(
    stack: Stack, api: Api, tmp_path: Path
) -> None:
    long = [
        SceneFixture((ImageFixture(f"l{i}.jpg", 1600, 1200, "testsrc2"),), duration=40.0)
        for i in range(2)
    ]
    api.upload_project("cancel", long, tmp_path)
    job_id = api.render("cancel", fps=FPS, preset="veryslow", resolution="640x360")
    api.wait(job_id, lambda j: str(j["stage"]).startswith("SCENE_BUILD") and j["progress"] > 0.1)
    response = api.http.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 202, response.text
    job = api.wait(job_id, timeout=10)
    assert job["status"] == "CANCELLED"
    assert job["progress"] < 1.0
    project = stack.settings.render_storage / "projects" / "cancel"
    assert not (project / "output" / "video.mp4").exists()
    assert not _ffmpeg_running_in(project)
    # A finished job cannot be cancelled again.
    assert api.http.post(f"/v1/jobs/{job_id}/cancel").status_code == 409


def test_five_concurrent_jobs_all_succeed(stack: Stack, api: Api, tmp_path: Path) -> None:
    ids = []
    for n in range(5):
        api.upload_project(f"many{n}", small_scenes((0.6, 0.8), tag=f"m{n}"), tmp_path)
    errors: list[BaseException] = []

    def submit(n: int) -> None:
        try:
            ids.append(api.render(f"many{n}", fps=FPS, minShot=0.5, xfade=0.1))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    finished = [api.wait(job_id, timeout=180) for job_id in ids]
    assert [j["status"] for j in finished] == ["SUCCEEDED"] * 5, finished
    process_logs = stack.settings.render_storage / "process-logs"
    for log in process_logs.iterdir():
        assert "database is locked" not in log.read_text(errors="replace"), log.name


def _ffmpeg_running_in(project: Path) -> bool:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return any("ffmpeg" in line and str(project) in line for line in out.splitlines())
