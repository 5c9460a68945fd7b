"""api/demo.py: its client uploads a project's files kind by kind, as the registry lists them,
and its progress reads well on a terminal and in a log."""

from __future__ import annotations

import io
import re
from pathlib import Path

from fastapi.testclient import TestClient

from api.demo import ApiClient, JobProgress, finished_stages
from pipeline.fixtures import ImageFixture, MusicFixture, SceneFixture, VoiceFixture


def test_upload_project_sends_every_kind_to_its_subdir(client: TestClient, tmp_path: Path) -> None:
    api = ApiClient("http://testserver", "unused")
    api.http = client  # the app in process: a TestClient is an httpx.Client
    scenes = [
        SceneFixture((ImageFixture("a.jpg", 64, 48),), voiceover=VoiceFixture("one.wav", 0.3)),
        SceneFixture((ImageFixture("b.png", 32, 32),), duration=1.0),
    ]
    api.upload_project("p1", scenes, tmp_path, music=[MusicFixture("bed.mp3", 0.5)])
    project = client.get("/v1/projects/p1").json()
    assert project["assets"] == {
        "images": ["a.jpg", "b.png"],
        "voiceovers": ["one.wav"],
        "music": ["bed.mp3"],
        "fonts": [],
        "videos": [],
    }
    assert project["missingAssets"] == []


def _row(name: str, status: str, start: str | None, end: str | None) -> dict[str, object]:
    at = "2026-12-03T15:00:{:02d}+00:00".format
    return {
        "name": name,
        "status": status,
        "startedAt": at(int(start)) if start else None,
        "finishedAt": at(int(end)) if end else None,
    }


def _state(progress: float, stage: str, rows: list[dict[str, object]]) -> dict[str, object]:
    return {"status": "RUNNING", "progress": progress, "stage": stage, "stages": rows}


def test_a_stage_is_finished_once_all_its_runs_are_done_and_spans_them_all() -> None:
    rows = [
        _row("SPEECH[0]", "DONE", "0", "2"),
        _row("SPEECH[1]", "DONE", "1", "4"),
        _row("VALIDATE", "DONE", "4", "5"),
        _row("SCENE_BUILD[0/0]", "DONE", "5", "9"),
        _row("SCENE_BUILD[0/1]", "RUNNING", "5", None),
    ]
    assert finished_stages(rows) == [("SPEECH", 4.0), ("VALIDATE", 1.0)]


def test_in_a_log_the_demo_prints_each_stage_once_when_it_ends() -> None:
    log = io.StringIO()
    shown = JobProgress(log)
    speech = [_row("SPEECH[0]", "DONE", "0", "3"), _row("SPEECH[1]", "RUNNING", "1", None)]
    shown.show(_state(0.0, "SPEECH[1]", speech))
    speech[1] = _row("SPEECH[1]", "DONE", "1", "4")
    validate = _row("VALIDATE", "DONE", "4", "6")
    for _ in range(3):  # polled again and again: still one line a stage
        shown.show(_state(0.3, "VALIDATE", [*speech, validate]))
    shown.close()
    assert "\r" not in log.getvalue()
    assert log.getvalue().splitlines() == [
        "  SPEECH           4.0 s   30.0% done",
        "  VALIDATE         2.0 s   30.0% done",
    ]


def test_on_a_terminal_the_demo_redraws_its_bar() -> None:
    tty = io.StringIO()
    shown = JobProgress(tty, bar=True)
    shown.show(_state(0.5, "SCENE_BUILD[1]", [_row("VALIDATE", "DONE", "0", "1")]))
    shown.close()
    assert re.fullmatch(r"\r  \[#{15}-{15}\]  50\.0% RUNNING +SCENE_BUILD\[1\] +\n", tty.getvalue())
