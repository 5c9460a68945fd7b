"""api/service.py's render submission, step by step: every check runs and collects its
problems (the first is the answer), and several jobs are created in one transaction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from api import service
from api.errors import ApiError, Problems
from api.schemas import RenderRequest
from pipeline import layers
from pipeline.problems import Problem
from tasks.db import session_scope
from tasks.models import Job, JobTask
from tasks.settings import Settings
from tasks.storage import Storage
from tests.conftest import jpeg_bytes, make_settings

SPEC: dict[str, Any] = {
    "scenes": [
        {"images": ["a.jpg"], "duration": 2.0},
        {"images": ["b.jpg"], "narration": "Said by nobody."},
    ]
}


@pytest.fixture
def settings(storage: Path) -> Settings:
    return make_settings(storage)


def _project(
    storage: Path, spec: dict[str, Any] | None = SPEC, images: tuple[str, ...] = ()
) -> None:
    project = Storage(storage).project("p1")
    project.create()
    if spec is not None:
        project.spec_file.write_text(json.dumps(spec))
    for name in images:
        project.asset("images", name).write_bytes(jpeg_bytes())


def _check(settings: Settings, body: dict[str, Any]) -> tuple[Problems, service.RenderOrder | None]:
    problems = Problems()
    request = RenderRequest.model_validate(body)
    order = service.check_render(
        settings, Storage(settings.render_storage), "p1", request, problems
    )
    return problems, order


def _found(problems: Problems) -> list[tuple[int, str, str | None]]:
    return [(p.status, p.code, p.field) for p in problems.found]


def test_every_check_runs_and_the_first_problem_is_the_answer(
    settings: Settings, storage: Path
) -> None:
    _project(storage)
    problems, order = _check(
        settings,
        {
            "renderOptions": {"music": "bed.mp3", "scenes": [0, 7]},
            "callbackUrl": "https://example.com/hook",
        },
    )
    assert order is None
    assert _found(problems) == [
        (422, "missing_assets", "assets"),
        (422, "no_voice", "renderOptions.tts"),
        (422, "validation_error", "renderOptions.scenes"),
        (422, "webhooks_disabled", "callbackUrl"),
    ]
    with pytest.raises(ApiError) as first:
        problems.raise_first()
    assert first.value is problems.found[0]
    assert first.value.message == (
        "3 referenced file(s) not uploaded: images/a.jpg, images/b.jpg, music/bed.mp3"
    )


def test_the_music_bed_alone_missing_names_its_field_and_subdir(
    settings: Settings, storage: Path
) -> None:
    _project(storage, images=("a.jpg", "b.jpg"))
    problems, _ = _check(settings, {"renderOptions": {"music": "bed.mp3", "tts": None}})
    [missing, *_] = problems.found
    assert (missing.code, missing.field) == ("missing_assets", "renderOptions.music")
    assert missing.message.endswith("music/bed.mp3 (upload it with subdir=music)")


def test_bad_options_and_no_spec_are_both_found_and_the_options_answer(
    settings: Settings, storage: Path
) -> None:
    _project(storage, spec=None)
    problems, order = _check(settings, {"renderOptions": {"crf": 99}})
    assert order is None
    assert _found(problems) == [
        (422, "validation_error", "renderOptions.crf"),
        (409, "no_scenes", None),
    ]


def test_the_work_is_counted_only_once_everything_else_passed(
    settings: Settings, storage: Path
) -> None:
    _project(storage)  # images missing: counting would read files that are not there
    over = make_settings(storage, max_scenes=1)
    problems, _ = _check(over, {})
    assert [p.code for p in problems.found] == ["missing_assets", "no_voice"]


class _Refusing:
    """A new kind of layer's source, refusing every scene it is asked about."""

    def problem(self, scene: layers.SceneContext) -> Problem | None:
        return Problem("validation_error", "refused", f"{scene.where}.badge")

    def layer(self, scene: layers.SceneContext, frames: int) -> None:
        return None


def test_a_new_kind_of_layer_is_checked_at_submit_through_the_registry(
    settings: Settings, storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(storage, spec={"scenes": SPEC["scenes"][:1]}, images=("a.jpg",))
    monkeypatch.setattr(layers, "SOURCES", (*layers.SOURCES, _Refusing()))
    problems, order = _check(settings, {})
    assert order is None
    assert [(p.status, p.code, p.field, p.message) for p in problems.found] == [
        (422, "validation_error", "scenes[0].badge", "refused")
    ]


def test_a_passing_request_is_an_order(settings: Settings, storage: Path) -> None:
    _project(storage, spec={"scenes": SPEC["scenes"][:1]}, images=("a.jpg",))
    problems, order = _check(settings, {"renderOptions": {"preview": True}})
    assert not problems
    assert order is not None
    assert (order.output_name, order.outline.scenes, order.callback) == ("preview.mp4", 1, None)


def test_several_jobs_are_created_in_one_transaction(settings: Settings, storage: Path) -> None:
    _project(storage, spec={"scenes": SPEC["scenes"][:1]}, images=("a.jpg",))
    orders = []
    for name in ("small.mp4", "large.mp4"):
        problems, order = _check(settings, {"outputName": name})
        assert not problems and order is not None
        orders.append(order)
    with session_scope(settings.db_url) as session:
        service.create_jobs(session, orders)
        session.rollback()  # nothing was committed by create_jobs itself
    with session_scope(settings.db_url) as session:
        assert session.exec(select(Job)).all() == []
        created = service.create_jobs(session, orders)
    with session_scope(settings.db_url) as session:
        jobs = {job.id: job.output_name for job in session.exec(select(Job)).all()}
        assert jobs == {job.id: job.output_name for job in created}
        assert sorted(jobs.values()) == ["large.mp4", "small.mp4"]
        rows = session.exec(select(JobTask)).all()
        assert {row.job_id for row in rows} == set(jobs)
