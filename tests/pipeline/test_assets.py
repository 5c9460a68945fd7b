"""pipeline/assets.py: the asset-kind registry and what is derived from it."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from api.routes.assets import UPLOAD_FORM
from api.schemas import ProjectAssets, Subdir
from api.uploads import check_subdir
from pipeline import assets
from pipeline.errors import InputError, PipelineError
from pipeline.options import RenderOptions
from pipeline.project import ProjectDir
from tests.conftest import jpeg_bytes, wav_bytes

# What the upload route, the project view and the project folders held before the registry,
# and fonts (docs/text.md) and videos (docs/clips.md) since.
BEFORE = ("images", "voiceovers", "music", "fonts", "videos")


def test_the_kinds_are_those_of_before_in_their_order() -> None:
    assert assets.NAMES == BEFORE
    assert assets.FOLDERS == BEFORE


def test_the_upload_subdirs_and_their_enum_derive_from_the_registry() -> None:
    schema = UPLOAD_FORM["requestBody"]["content"]["multipart/form-data"]["schema"]
    subdir = schema["properties"]["subdir"]
    assert subdir["enum"] == list(BEFORE)
    assert subdir["description"].startswith("images, voiceovers, music, fonts or videos;")
    assert get_args(Subdir) == BEFORE
    assert [check_subdir(name) for name in BEFORE] == list(BEFORE)


def test_the_project_view_lists_every_kind() -> None:
    assert list(ProjectAssets.model_fields) == list(BEFORE)
    assert ProjectAssets().model_dump() == {name: [] for name in BEFORE}


def test_a_project_is_created_with_a_folder_per_kind(tmp_path: Path) -> None:
    project = ProjectDir(tmp_path / "p")
    project.create()
    assert sorted(p.name for p in project.input.iterdir()) == sorted(BEFORE)


def test_uploads_infer_images_and_voiceovers_never_music() -> None:
    assert assets.inferred_kind(assets.IMAGE) is assets.IMAGES
    assert assets.inferred_kind(assets.AUDIO) is assets.VOICEOVERS
    assert not assets.MUSIC.inferred


def test_the_voiceovers_folder_follows_voice_dir() -> None:
    options = RenderOptions.model_validate({"voiceDir": "narration"})
    assert assets.VOICEOVERS.folder_for(options) == "narration"
    assert assets.VOICEOVERS.folder_for(None) == "voiceovers"
    assert assets.IMAGES.folder_for(options) == "images"


def test_sniff_tells_the_media_by_its_bytes(tmp_path: Path) -> None:
    image, audio, text = tmp_path / "a.wav", tmp_path / "b.jpg", tmp_path / "c.jpg"
    image.write_bytes(jpeg_bytes())
    audio.write_bytes(wav_bytes())
    text.write_text("not a picture")
    assert assets.sniff(image, 40_000_000) is assets.IMAGE
    assert assets.sniff(audio, 40_000_000) is assets.AUDIO
    assert assets.sniff(text, 40_000_000) is None


def test_missing_lists_each_absent_file_once_in_order() -> None:
    refs = [
        assets.Reference("scenes[0].images[0]", assets.IMAGES, "a.jpg"),
        assets.Reference("scenes[1].images[0]", assets.IMAGES, "a.jpg"),
        assets.Reference("scenes[1].voiceover", assets.VOICEOVERS, "v.wav"),
        assets.Reference("renderOptions.music", assets.MUSIC, "bed.mp3"),
    ]
    present = {("voiceovers", "v.wav")}
    found = assets.missing(refs, lambda folder, name: (folder, name) in present, None)
    assert [(path, ref.field) for path, ref in found] == [
        ("images/a.jpg", "scenes[0].images[0]"),
        ("music/bed.mp3", "renderOptions.music"),
    ]


def test_a_path_out_of_the_inputs_is_a_pipeline_error(tmp_path: Path) -> None:
    project = ProjectDir(tmp_path / "p")
    project.create()
    (project.input / "images" / "out.jpg").symlink_to(tmp_path / "elsewhere.jpg")
    with pytest.raises(PipelineError, match=r"images/out\.jpg escapes the project directory"):
        project.asset("images", "out.jpg")
    # Still a ValueError for the callers that check names and catch that.
    with pytest.raises(ValueError, match="hidden"):
        project.asset("images", ".x.jpg")
    with pytest.raises(InputError, match="input folder"):
        project.asset("..", "a.jpg")
