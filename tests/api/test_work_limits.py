"""POST /v1/projects/{id}/render refuses work over the limits (pipeline/limits.py) with a 422
naming the field and the setting, before any job row exists; GET /v1/jobs/{id} stays small for
a job of thousands of stage runs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import func, select

from pipeline import registry
from pipeline.ffmpeg import find_ffmpeg
from tasks import jobs
from tasks.db import session_scope
from tasks.models import Job, JobTask
from tests.conftest import AppFactory, error_of, jpeg_bytes, make_settings, wav_bytes
from tests.plans import still_plan

RENDER = "/v1/projects/p1/render"
# Renders small enough for every limit's default: a limit under test is set on the client.
SMALL = {"resolution": "320x180", "fps": 30, "minShot": 0.5, "maxShot": 8.0, "xfade": 0.2}


def _rows(storage: Path) -> tuple[int, int]:
    """Jobs and stage rows in the database."""
    with session_scope(make_settings(storage).db_url) as session:
        job_rows = session.exec(select(func.count()).select_from(Job)).one()
        task_rows = session.exec(select(func.count()).select_from(JobTask)).one()
        return int(job_rows), int(task_rows)


def _project(client: TestClient, scenes: list[dict[str, Any]], files: tuple[Any, ...] = ()) -> None:
    response = client.put("/v1/projects/p1/scenes", json={"scenes": scenes})
    assert response.status_code == 200, response.text
    uploads = [("files", ("a.jpg", jpeg_bytes(), "image/jpeg")), *files]
    response = client.post("/v1/projects/p1/assets", files=uploads)
    assert response.status_code == 201, response.text


def _render(client: TestClient, storage: Path, **options: Any) -> Any:
    return client.post(RENDER, json={"renderOptions": {**SMALL, **options}})


def _put(client: TestClient, scenes: list[dict[str, Any]]) -> None:
    response = client.put("/v1/projects/p1/scenes", json={"scenes": scenes})
    assert response.status_code == 200, response.text


def _refused(
    response: Any, storage: Path, field: str, setting: str, rows: tuple[int, int] = (0, 0)
) -> dict[str, Any]:
    """A 422 naming `field` and `setting`, and no job row more than `rows`."""
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "over_limit", error
    assert error["field"] == field, error
    assert setting in error["message"], error
    assert _rows(storage) == rows  # refused before any job row
    return error


def _scene(seconds: float, **extra: Any) -> dict[str, Any]:
    return {"images": ["a.jpg"], "duration": seconds, **extra}


# --- the reproductions of issue 22 ----------------------------------------------------------


def test_a_shot_of_a_millionth_of_a_second_is_refused(client: TestClient, storage: Path) -> None:
    _project(client, [_scene(3600)])
    response = _render(client, storage, minShot=1e-6, maxShot=1e-6, xfade=0)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["field"] == "renderOptions.maxShot"
    assert "at least one frame" in error["message"]
    assert _rows(storage) == (0, 0)


def test_a_shot_that_rounds_to_0_s_is_a_422_not_a_division_by_0(
    client: TestClient, storage: Path
) -> None:
    _project(client, [_scene(1)])
    response = _render(client, storage, minShot=1e-7, maxShot=1e-7, xfade=0)
    assert response.status_code == 422, response.text
    assert error_of(response)["field"] in {"renderOptions.minShot", "renderOptions.maxShot"}
    assert _rows(storage) == (0, 0)


def test_500_hours_of_4k60_in_half_second_chunks_is_refused(
    client: TestClient, storage: Path
) -> None:
    _project(client, [_scene(3600) for _ in range(500)])
    response = _render(
        client,
        storage,
        fps=60,
        resolution="3840x2160",
        preset="placebo",
        crf=0,
        chunkSeconds=0.5,
    )
    _refused(response, storage, "scenes", "MAX_JOB_FRAMES (432000)")


@pytest.mark.parametrize(
    ("resolution", "field", "setting"),
    [
        ("3840x2160", "renderOptions.resolution", "MAX_JOB_GIGAPIXELS (1000)"),
        # Within the pixels, but 12,000 chunks: the 12,014 stage rows.
        ("1280x720", "renderOptions.chunkSeconds", "MAX_JOB_UNITS (5000)"),
    ],
)
def test_ten_scenes_of_ten_minutes_at_60_fps_in_half_second_chunks_are_refused(
    client: TestClient, storage: Path, resolution: str, field: str, setting: str
) -> None:
    _project(client, [_scene(600) for _ in range(10)])
    response = _render(client, storage, fps=60, resolution=resolution, chunkSeconds=0.5)
    _refused(response, storage, field, setting)


def test_a_voiceover_of_two_hours_is_refused_by_its_header(
    client: TestClient, storage: Path, tmp_path: Path
) -> None:
    # 1 s of tone, then silence: a small FLAC that plays for 7200 s.
    flac = tmp_path / "long.flac"
    subprocess.run(
        [
            find_ffmpeg(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=8000:duration=1",
            "-af",
            "apad=whole_dur=7200",
            "-c:a",
            "flac",
            str(flac),
        ],
        check=True,
    )
    files = [("files", ("long.flac", flac.read_bytes(), "audio/flac"))]
    _project(client, [{"images": ["a.jpg"], "voiceover": "long.flac"}])
    upload = client.post("/v1/projects/p1/assets", files=files)
    assert upload.status_code == 422, upload.text
    assert error_of(upload)["code"] == "over_limit"
    assert "7200 s long, over MAX_SCENE_SECONDS (3600)" in error_of(upload)["message"]
    # Put in the folder by other means (or uploaded under a higher limit): refused at submit.
    shutil.copyfile(flac, storage / "projects" / "p1" / "input" / "voiceovers" / "long.flac")
    error = _refused(
        _render(client, storage), storage, "scenes[0].voiceover", "MAX_SCENE_SECONDS (3600)"
    )
    assert "7200 s" in error["message"]


def test_20000_characters_of_narration_are_refused_before_they_are_spoken(
    client: TestClient, storage: Path
) -> None:
    _project(client, [{"images": ["a.jpg"], "narration": "word " * 4000}])
    response = _render(client, storage, tts="espeak-ng")
    _refused(response, storage, "scenes[0].narration", "MAX_NARRATION_CHARS (5000)")


@pytest.mark.parametrize(
    ("scenes", "options"),
    [
        # An hour of 1080p30 in twelve scenes, with the options' own defaults.
        ([_scene(300)] * 12, {"resolution": "1920x1080", "fps": 30}),
        # Two hours of 1080p60 (MAX_JOB_FRAMES exactly), in chunks of 2.5 s.
        ([_scene(3600)] * 2, {"resolution": "1920x1080", "fps": 60, "chunkSeconds": 2.5}),
        # An hour of 4K30.
        ([_scene(3600)], {"resolution": "3840x2160", "fps": 30}),
    ],
)
def test_the_default_limits_allow_real_renders(
    client: TestClient, scenes: list[dict[str, Any]], options: dict[str, Any]
) -> None:
    _project(client, scenes)
    response = client.post(RENDER, json={"renderOptions": options})
    assert response.status_code == 202, response.text


# --- each limit, at it and one over --------------------------------------------------------


def test_total_frames_at_the_limit_and_one_over(make_client: AppFactory, storage: Path) -> None:
    client = make_client(max_job_frames=60)
    _project(client, [_scene(1.0), _scene(1.0)])  # 60 frames at 30 fps
    assert _render(client, storage).status_code == 202
    rows = _rows(storage)
    _put(client, [_scene(1.0), _scene(31 / 30)])
    error = _refused(_render(client, storage), storage, "scenes", "MAX_JOB_FRAMES (60)", rows)
    assert "61 frames" in error["message"]


def test_frames_count_a_scene_lengthened_for_its_shots(
    make_client: AppFactory, storage: Path
) -> None:
    # 1 s of one image with minShot 3: the scene is shown for 3 s, 90 frames.
    client = make_client(max_job_frames=89)
    _project(client, [_scene(1.0)])
    response = _render(client, storage, minShot=3.0, xfade=0.2)
    _refused(response, storage, "scenes", "MAX_JOB_FRAMES (89)")


def test_pixels_times_frames_at_the_limit_and_one_over(
    make_client: AppFactory, storage: Path
) -> None:
    client = make_client(max_job_gigapixels=320 * 180 * 30 / 1e9)
    _project(client, [_scene(1.0)])
    assert _render(client, storage).status_code == 202
    rows = _rows(storage)
    _put(client, [_scene(31 / 30)])
    refused = _render(client, storage)
    _refused(refused, storage, "renderOptions.resolution", "MAX_JOB_GIGAPIXELS", rows)


def test_a_preview_counts_its_own_smaller_picture(make_client: AppFactory, storage: Path) -> None:
    # 1920x1080 for 30 frames is over; the preview's 640x360 is within.
    client = make_client(max_job_gigapixels=640 * 360 * 30 / 1e9)
    _project(client, [_scene(1.0)])
    refused = _render(client, storage, resolution="1920x1080")
    _refused(refused, storage, "renderOptions.resolution", "MAX_JOB_GIGAPIXELS")
    assert _render(client, storage, resolution="1920x1080", preview=True).status_code == 202


def test_shots_at_the_limit_and_one_over(make_client: AppFactory, storage: Path) -> None:
    client = make_client(max_job_shots=4)
    _project(client, [_scene(4.0)])
    refused = _render(client, storage, minShot=0.5, maxShot=0.99)  # ceil(4 / 0.99) = 5 shots
    _refused(refused, storage, "renderOptions.maxShot", "MAX_JOB_SHOTS (4)")
    assert _render(client, storage, minShot=0.5, maxShot=1.0).status_code == 202


def test_units_at_the_limit_and_one_over(make_client: AppFactory, storage: Path) -> None:
    # One scene of 60 frames in chunks of 15, nothing spoken: VALIDATE, AUDIO_PREP, 4 builds,
    # CONCAT, FINALIZE = 8 units.
    client = make_client(max_job_units=7)
    _project(client, [_scene(2.0)])
    refused = _render(client, storage, chunkSeconds=0.5)
    _refused(refused, storage, "renderOptions.chunkSeconds", "MAX_JOB_UNITS (7)")
    assert (
        make_client(max_job_units=8)
        .post(RENDER, json={"renderOptions": {**SMALL, "chunkSeconds": 0.5}})
        .status_code
        == 202
    )


def test_scenes_at_the_limit_and_one_over(make_client: AppFactory, storage: Path) -> None:
    client = make_client(max_scenes=2)
    _project(client, [_scene(1.0)] * 3)
    _refused(_render(client, storage), storage, "scenes", "MAX_SCENES (2)")
    _put(client, [_scene(1.0)] * 2)
    assert _render(client, storage).status_code == 202


@pytest.mark.parametrize(("seconds", "accepted"), [(2.0, True), (2.01, False)])
def test_a_duration_at_max_scene_seconds_and_over(
    make_client: AppFactory, storage: Path, seconds: float, accepted: bool
) -> None:
    client = make_client(max_scene_seconds=2)
    _project(client, [_scene(1.0), _scene(seconds)])
    response = _render(client, storage)
    if accepted:
        assert response.status_code == 202, response.text
    else:
        _refused(response, storage, "scenes[1].duration", "MAX_SCENE_SECONDS (2)")


def test_a_voiceover_at_max_scene_seconds_and_over(make_client: AppFactory, storage: Path) -> None:
    voice = (("files", ("v.wav", wav_bytes(1.0), "audio/wav")),)
    # Uploaded under the default limit, rendered under a lower one.
    _project(make_client(), [{"images": ["a.jpg"], "voiceover": "v.wav"}], voice)
    client = make_client(max_scene_seconds=0.99)
    _refused(_render(client, storage), storage, "scenes[0].voiceover", "MAX_SCENE_SECONDS (0.99)")
    assert (
        make_client(max_scene_seconds=1.0).post(RENDER, json={"renderOptions": SMALL}).status_code
        == 202
    )


def test_narration_characters_at_the_limit_and_one_over(
    make_client: AppFactory, storage: Path
) -> None:
    client = make_client(max_narration_chars=10)
    _project(client, [{"images": ["a.jpg"], "narration": "  Eleven char  "}])  # 11 once stripped
    refused = _render(client, storage, tts="espeak-ng")
    _refused(refused, storage, "scenes[0].narration", "MAX_NARRATION_CHARS (10)")
    _put(client, [{"images": ["a.jpg"], "narration": "Ten chars."}])
    assert _render(client, storage, tts="espeak-ng").status_code == 202


def test_estimated_speech_at_max_scene_seconds_and_over(
    make_client: AppFactory, storage: Path
) -> None:
    # 10 words at 200 words a minute take 3 s; 11 words, 3.3 s.
    client = make_client(max_scene_seconds=3)
    _project(client, [{"images": ["a.jpg"], "narration": "word " * 11}])
    refused = _render(client, storage, tts={"engine": "espeak-ng", "rate": 200})
    _refused(refused, storage, "scenes[0].narration", "MAX_SCENE_SECONDS (3)")
    _put(client, [{"images": ["a.jpg"], "narration": "word " * 10}])
    assert _render(client, storage, tts={"engine": "espeak-ng", "rate": 200}).status_code == 202


@pytest.mark.parametrize(("shot", "accepted"), [(0.1, True), (0.099, False)])
def test_min_shot_seconds_at_the_floor_and_under(
    client: TestClient, storage: Path, shot: float, accepted: bool
) -> None:
    _project(client, [_scene(1.0)])
    response = _render(client, storage, minShot=shot, maxShot=1.0, xfade=0)
    if accepted:
        assert response.status_code == 202, response.text
    else:
        _refused(response, storage, "renderOptions.minShot", "MIN_SHOT_SECONDS (0.1)")


# --- numbers that are not finite -----------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ('{"posterTime": Infinity}', "renderOptions.posterTime"),
        ('{"xfade": NaN}', "renderOptions.xfade"),
        ('{"minShot": -Infinity}', "renderOptions.minShot"),
        ('{"music": {"file": "a.mp3", "volume": -Infinity}}', "renderOptions.music.volume"),
        ('{"range": {"from": 0, "to": Infinity}}', "renderOptions.range.to"),
        ('{"ducking": NaN}', "renderOptions.ducking"),
    ],
)
def test_render_options_that_are_not_finite_are_refused(
    client: TestClient, storage: Path, options: str, field: str
) -> None:
    _project(client, [_scene(1.0)])
    response = client.post(
        RENDER,
        content='{"renderOptions": ' + options + "}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert error_of(response)["field"].startswith(field)
    assert _rows(storage) == (0, 0)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_a_spec_with_a_number_that_is_not_finite_is_refused(
    client: TestClient, number: str
) -> None:
    response = client.put(
        "/v1/projects/p1/scenes",
        content='{"scenes": [{"images": ["a.jpg"], "duration": ' + number + "}]}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert error_of(response)["field"] == "scenes[0].duration"


# --- the job document of a huge job ---------------------------------------------------------


def test_a_huge_job_lists_its_stages_by_count_and_pages_them(
    make_client: AppFactory, storage: Path
) -> None:
    client = make_client(job_stages_inline=10)
    _project(client, [_scene(1.0), _scene(1.0)])
    job_id = _render(client, storage).json()["jobId"]
    plan = still_plan(10, 3000, chunk_frames=15)  # scene 0 in one piece, scene 1 in 200
    labels = registry.labels(registry.Outline(2), plan)
    db = make_settings(storage).db_url
    with session_scope(db) as session:
        jobs.lay_out(session, job_id, registry.weights(registry.Outline(2), plan))
        for label, status in (("SCENE_BUILD[1/7]", "RUNNING"), ("SCENE_BUILD[1/8]", "DONE")):
            row = session.get(JobTask, (job_id, label))
            assert row is not None
            row.status = status
            session.add(row)

    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["stagesTotal"] == len(labels) == 1 + 1 + 1 + 200 + 1 + 1  # nothing spoken
    assert [s["name"] for s in job["stages"]] == [
        "VALIDATE",
        "AUDIO_PREP",
        "SCENE_BUILD[1/7]",
        "CONCAT",
        "FINALIZE",
    ]
    counts = {c["name"]: c for c in job["stageCounts"]}
    assert counts["SCENE_BUILD"] == {
        "name": "SCENE_BUILD",
        "units": 201,
        "pending": 199,
        "running": 1,
        "done": 1,
        "failed": 0,
        "cancelled": 0,
    }
    assert sum(c["units"] for c in job["stageCounts"]) == len(labels)
    assert [s["index"] for s in job["scenes"]] == [0, 1]  # per scene, as for any job

    paged: list[str] = []
    offset = 0
    while True:
        page = client.get(f"/v1/jobs/{job_id}/stages", params={"offset": offset, "limit": 64})
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["total"] == len(labels)
        paged += [s["name"] for s in body["stages"]]
        if not body["stages"]:
            break
        offset += 64
    assert paged == labels


def test_a_job_within_job_stages_inline_lists_every_stage(
    make_client: AppFactory, storage: Path
) -> None:
    client = make_client(job_stages_inline=len(registry.labels(registry.Outline(2))))
    _project(client, [_scene(1.0), _scene(1.0)])
    job_id = _render(client, storage).json()["jobId"]
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert [s["name"] for s in job["stages"]] == registry.labels(registry.Outline(2))
    assert job["stagesTotal"] == len(registry.labels(registry.Outline(2)))
    assert client.get(f"/v1/jobs/{job_id}/stages", params={"limit": 1001}).status_code == 422
