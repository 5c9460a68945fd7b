"""Fonts through the API: uploads checked by content and capped, text layers and burnt-in
captions refused at render submit when their font is unknown or lacks a glyph, the packaged
fonts listed by /readyz, and bad text layers refused when the spec is stored."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import fontpkg_heebo
from fastapi.testclient import TestClient
from fontTools.ttLib import TTFont

from pipeline import fonts
from tests.conftest import AppFactory, error_of, jpeg_bytes, tree

URL = "/v1/projects/p1/assets"
RENDER = "/v1/projects/p1/render"
MIB = 1024 * 1024


def _heebo() -> bytes:
    return next((Path(fontpkg_heebo.__file__).parent / "files").glob("*.ttf")).read_bytes()


def _woff2(data: bytes) -> bytes:
    font = TTFont(io.BytesIO(data))
    font.flavor = "woff2"
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


def _upload_font(client: TestClient, name: str, data: bytes) -> Any:
    return client.post(URL, data={"subdir": "fonts"}, files={"files": (name, data, "font/ttf")})


def _spec(client: TestClient, text: list[dict[str, Any]], **scene: Any) -> Any:
    body = {"scenes": [{"images": ["a.jpg"], "duration": 2.0, "text": text, **scene}]}
    return client.put("/v1/projects/p1/scenes", json=body)


def _with_image(client: TestClient) -> None:
    response = client.post(URL, files={"files": ("a.jpg", jpeg_bytes(), "image/jpeg")})
    assert response.status_code == 201, response.text


def test_a_font_upload_is_stored_and_listed(client: TestClient, storage: Path) -> None:
    heebo = _heebo()
    response = _upload_font(client, "heebo.ttf", heebo)
    assert response.status_code == 201, response.text
    assert response.json()[0]["subdir"] == "fonts"
    # WOFF2 too, and inferred by its bytes without a subdir.
    response = client.post(URL, files={"files": ("heebo.woff2", _woff2(heebo), "font/woff2")})
    assert response.status_code == 201, response.text
    assert response.json()[0]["subdir"] == "fonts"
    assert (storage / "projects" / "p1" / "input" / "fonts" / "heebo.ttf").read_bytes() == heebo
    view = client.get("/v1/projects/p1").json()
    assert view["assets"]["fonts"] == ["heebo.ttf", "heebo.woff2"]


def test_a_file_that_is_not_a_font_is_refused_naming_the_field(
    client: TestClient, storage: Path
) -> None:
    for name, data in (
        ("fake.ttf", b"\x00\x01\x00\x00" + b"garbage" * 100),
        ("photo.ttf", jpeg_bytes()),
        ("notes.otf", b"just some text"),
    ):
        response = _upload_font(client, name, data)
        assert response.status_code == 422, response.text
        error = error_of(response)
        assert error["field"] == "files" and name in error["message"]
        assert "not a font" in error["message"]
    assert not (storage / "projects" / "p1").exists()  # nothing written


def test_a_40_mb_font_is_refused_413(make_client: AppFactory, storage: Path) -> None:
    client = make_client(max_upload_mb=64)
    big = _heebo() + b"\x00" * (40 * MIB)
    response = _upload_font(client, "huge.ttf", big)
    assert response.status_code == 413, response.text
    error = error_of(response)
    assert error["field"] == "files" and "huge.ttf" in error["message"]
    assert "32 MiB" in error["message"] and "fonts/" in error["message"]
    assert not (storage / "projects" / "p1").exists()
    assert not [p for p in tree(storage) if ".upload-" in p]  # no temp file left either


def test_bad_text_layers_are_refused_when_the_spec_is_stored(
    client: TestClient, storage: Path
) -> None:
    cases = [
        ({"text": "Hi", "style": "banner"}, "scenes[0].text[0].style"),
        ({"text": "Hi", "position": "middle"}, "scenes[0].text[0].position"),
        ({"text": "Hi", "start": 1.0, "end": 0.5}, "scenes[0].text[0].end"),
        ({"text": "x" * 501}, "scenes[0].text[0].text"),
    ]
    for layer, field in cases:
        response = _spec(client, [layer])
        assert response.status_code == 422, response.text
        assert error_of(response)["field"].startswith(field), (layer, response.text)
    assert not (storage / "projects" / "p1").exists()


def test_a_text_whose_font_lacks_a_glyph_is_refused_at_submit(client: TestClient) -> None:
    _with_image(client)
    assert _spec(client, [{"text": "Shalom שלום"}]).status_code == 200
    response = client.post(RENDER, json={})
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["field"] == "scenes[0].text[0].text"
    assert "U+05E9" in error["message"] and "Noto Sans" in error["message"]
    # With a font that has them, uploaded and named by family, it is taken.
    assert _upload_font(client, "heebo.ttf", _heebo()).status_code == 201
    assert _spec(client, [{"text": "Shalom שלום", "font": "Heebo"}]).status_code == 200
    response = client.post(RENDER, json={})
    assert response.status_code == 202, response.text


def test_an_unknown_font_or_a_layer_after_its_scene_is_refused_at_submit(
    client: TestClient,
) -> None:
    _with_image(client)
    assert _spec(client, [{"text": "Hi", "font": "Papyrus"}]).status_code == 200
    response = client.post(RENDER, json={})
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["field"] == "scenes[0].text[0].font"
    assert "'Papyrus'" in error["message"] and "Noto Sans" in error["message"]
    assert _spec(client, [{"text": "Hi", "start": 2.5}]).status_code == 200
    response = client.post(RENDER, json={})
    assert response.status_code == 422, response.text
    assert error_of(response)["field"] == "scenes[0].text[0].start"


def test_burnt_in_captions_whose_font_lacks_a_glyph_are_refused_at_submit(
    client: TestClient,
) -> None:
    _with_image(client)
    assert _spec(client, [], narration="Hello שלום").status_code == 200
    body = {"renderOptions": {"captions": {"enabled": True, "burnIn": True}}}
    response = client.post(RENDER, json=body)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["field"] == "scenes[0].narration" and "U+05E9" in error["message"]


def test_readyz_lists_the_packaged_fonts(client: TestClient) -> None:
    # The broker is down here (503), and the fonts are said all the same.
    body = client.get("/readyz").json()
    assert body["fonts"] == [fonts.DEFAULT_FAMILY]
    assert body["checks"]["fonts"] == "ok"
