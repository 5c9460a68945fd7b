"""Names are matched whole (pipeline/names.py, tasks/storage.py's ids and every pattern a name
goes through): `$` alone also matches before a trailing newline, so "p1\\n" would be a second
project folder beside "p1" and "pic.jpg\\n" a second file beside "pic.jpg"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.errors import ApiError
from api.uploads import clean_name
from pipeline.names import check_safe_name
from pipeline.options import RenderOptions, parse_resolution
from tasks.storage import JOB_ID, InvalidId, check_project_id
from tests.conftest import SPEC, error_of, put_spec, tree, upload_all

TRAILERS = ["\n", "\r\n", "\r", "\x00", "\t", "\v"]


@pytest.mark.parametrize("trailer", TRAILERS)
def test_a_file_name_with_a_trailing_line_break_is_refused(trailer: str) -> None:
    assert check_safe_name("pic.jpg") == "pic.jpg"
    with pytest.raises(ValueError, match="may only use"):
        check_safe_name("pic.jpg" + trailer)
    with pytest.raises(ApiError) as refused:
        clean_name("pic.jpg" + trailer)
    assert refused.value.status == 422


@pytest.mark.parametrize("trailer", TRAILERS)
def test_ids_with_a_trailing_line_break_are_refused(trailer: str) -> None:
    assert check_project_id("p1") == "p1"
    with pytest.raises(InvalidId):
        check_project_id("p1" + trailer)
    assert JOB_ID.fullmatch("0cfc8d555d6844f7")
    assert not JOB_ID.fullmatch("0cfc8d555d6844f7" + trailer)


def test_option_values_are_matched_whole() -> None:
    assert parse_resolution("1280x720") == (1280, 720)
    with pytest.raises(ValueError):
        parse_resolution("1280x720\n")
    for bad in (
        {"resolution": "1280x720\n"},
        {"voiceDir": "voices\n"},
        {"music": "bed.mp3\n"},
        {"captions": {"language": "en\n"}},
    ):
        with pytest.raises(ValueError):
            RenderOptions.model_validate(bad)
    RenderOptions.model_validate({"captions": {"language": "pt-BR"}})


def test_a_project_id_with_a_trailing_newline_makes_no_folder(
    client: TestClient, storage: Path
) -> None:
    put_spec(client)
    before = tree(storage)
    for response in (
        client.put("/v1/projects/p1%0A/scenes", json=SPEC),
        client.get("/v1/projects/p1%0A"),
        client.post("/v1/projects/p1%0A/render", json={}),
        client.get("/v1/projects/p1%0A/outputs"),
    ):
        assert response.status_code == 422, response.text
        assert (error_of(response)["code"], error_of(response)["field"]) == ("invalid_id", "id")
    assert tree(storage) == before
    assert not (storage / "projects" / "p1\n").exists()


@pytest.mark.parametrize(
    ("scene", "field"),
    [
        ({"images": ["pic.jpg\n"]}, "scenes[0].images"),
        ({"images": ["a.jpg"], "voiceover": "one.wav\n"}, "scenes[0].voiceover"),
    ],
)
def test_spec_file_names_with_a_trailing_newline_are_refused(
    client: TestClient, storage: Path, scene: dict[str, Any], field: str
) -> None:
    before = tree(storage)
    response = client.put("/v1/projects/p1/scenes", json={"scenes": [scene]})
    assert response.status_code == 422, response.text
    assert error_of(response)["field"] == field
    assert tree(storage) == before


def test_output_names_with_a_trailing_newline_are_refused(client: TestClient) -> None:
    put_spec(client)
    upload_all(client)
    render = client.post("/v1/projects/p1/render", json={"outputName": "video.mp4\n"})
    assert render.status_code == 422, render.text
    assert error_of(render)["field"] == "outputName"
    for route in ("video", "poster"):
        response = client.get(f"/v1/projects/p1/outputs/{route}", params={"name": "video.mp4\n"})
        assert response.status_code == 422, response.text
        assert (error_of(response)["code"], error_of(response)["field"]) == ("invalid_name", "name")


def test_a_voice_with_a_trailing_newline_is_refused(client: TestClient) -> None:
    put_spec(client)
    upload_all(client)
    body = {"renderOptions": {"tts": {"engine": "espeak-ng", "voice": "en-us\n"}}}
    response = client.post("/v1/projects/p1/render", json=body)
    assert response.status_code == 422, response.text
    assert "voice" in error_of(response)["field"]
    good = {"renderOptions": {"tts": {"engine": "espeak-ng", "voice": "en-us"}}}
    assert client.post("/v1/projects/p1/render", json=good).status_code == 202


def test_a_job_id_with_a_trailing_newline_is_not_found(client: TestClient) -> None:
    put_spec(client)
    upload_all(client)
    job_id = client.post("/v1/projects/p1/render", json={}).json()["jobId"]
    assert client.get(f"/v1/jobs/{job_id}").status_code == 200
    for response in (
        client.get(f"/v1/jobs/{job_id}%0A"),
        client.post(f"/v1/jobs/{job_id}%0A/cancel"),
        client.post(f"/v1/jobs/{job_id}%0A/events-token"),
        client.get(f"/v1/jobs/{job_id}%0A/events"),
    ):
        assert response.status_code == 404, response.text
