"""tasks/workspace.py: a stage's declared files fetched and published through the storage."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline import registry, stages
from pipeline.errors import PipelineError
from pipeline.ffmpeg import Runner, find_ffmpeg
from pipeline.fixtures import ImageFixture, SceneFixture, VoiceFixture, write_project
from pipeline.options import Captions, RenderOptions, Tts
from pipeline.probe import probe
from pipeline.project import ProjectDir
from pipeline.registry import StageRun
from pipeline.render import run_in_order
from pipeline.units import scene_unit
from tasks import workspace
from tasks.storage import Storage
from tests.blobstores import RemoteBlobStore
from tests.pipeline_fixtures import SMALL

SCENES = registry.BY_NAME["SCENE_BUILD"]


def _render_through(store: RemoteBlobStore, project: ProjectDir, options: RenderOptions) -> None:
    """Every unit of the registry in order, each through `workspace.run_unit` and `store`."""
    base = StageRun(project, options, "v.mp4", Runner(find_ffmpeg()))
    run_in_order(base, lambda stage, run: workspace.run_unit(store, stage, run))


def test_the_stages_declare_every_work_file_they_read_and_write(tmp_path: Path) -> None:
    # A storage that is not the work folder: each stage runs in a scratch folder of its own
    # holding only what it declares it reads, and only what it declares it writes is kept.
    # A whole render succeeding through it proves the declarations complete: spoken and
    # voiced scenes, a scene in chunks, captions, a poster away from the first scene.
    store = RemoteBlobStore(tmp_path / "remote")
    project = ProjectDir(store.root / "projects" / "p1").for_run("j1")
    write_project(
        project.root,
        [
            SceneFixture(
                (ImageFixture("a.jpg", 160, 120, "testsrc2"),), VoiceFixture("one.wav", 1.0, 440)
            ),
            SceneFixture((ImageFixture("b.jpg", 160, 120, "gradients"),), narration="Hello there."),
            SceneFixture((ImageFixture("c.png", 160, 120, "color:red"),), duration=2.5),
        ],
    )
    options = SMALL.model_copy(
        update={
            "tts": Tts(engine="espeak-ng"),
            "captions": Captions(enabled=True),
            "chunk_seconds": 1.0,
            "poster_time": 2.0,
        }
    )
    _render_through(store, project, options)

    output = store.list("projects/p1/output/")
    assert [blob.name for blob in output] == [
        "scene_00.jpg", "scene_00.mp4", "scene_01.jpg", "scene_01.mp4", "scene_02.jpg",
        "scene_02.mp4", "v.jpg", "v.mp4", "v.srt", "v.vtt",
    ]  # fmt: skip
    assert probe(store.root / "projects/p1/output/v.mp4").video is not None
    # The work files kept are the declared writes: no stills, listings or temp files.
    work = {
        blob.key.removeprefix("projects/p1/work/j1/") for blob in store.list("projects/p1/work/j1/")
    }
    assert {"plan.json", "audio.wav", "joined.mp4", "final/v.jpg", "final/v.srt"} <= work
    assert not any(name.startswith(("stills/", "captions/", "concat")) for name in work)
    assert any(name.startswith("scenes/scene_002_part") for name in work)  # built in chunks

    # One declaration short and the stage cannot run: the check has teeth.
    concat = registry.BY_NAME["CONCAT"]
    short = dataclasses.replace(concat, reads=tuple(r for r in concat.reads if "audio" not in r))
    with pytest.raises(PipelineError):
        workspace.run_unit(store, short, StageRun(project, options, "v.mp4", Runner(find_ffmpeg())))


def test_on_the_local_storage_stages_run_in_the_work_folder_itself(tmp_path: Path) -> None:
    store = Storage(tmp_path).blobs
    project = Storage(tmp_path).project("p1").for_run("j1")
    seen: list[ProjectDir] = []

    def body(run: StageRun) -> None:
        seen.append(run.project)
        (run.project.work / "scenes").mkdir(parents=True)

    workspace.run_unit(
        store,
        dataclasses.replace(SCENES, body=body),
        StageRun(project, SMALL, "v.mp4", Runner("ffmpeg"), unit=scene_unit(0)),
    )
    assert seen == [project] and (project.work / "scenes").is_dir()


def test_publishing_outputs_removes_what_the_new_render_makes_stale(tmp_path: Path) -> None:
    store = RemoteBlobStore(tmp_path / "remote")
    made = tmp_path / "made"
    made.mkdir()
    for name in ("v.mp4", "scene_00.mp4"):
        (made / name).write_bytes(name.encode())
    for name in ("scene_00.mp4", "scene_03.jpg", "v.srt", "other.mp4", "old/scene_07.mp4"):
        store.save(f"projects/p1/output/{name}", made / "v.mp4")
    publication = stages.Publication(
        ((made / "scene_00.mp4", "scene_00.mp4"), (made / "v.mp4", "v.mp4")),
        drop=("v.srt", "v.vtt"),
        scene_count=1,
    )
    workspace.publish_outputs(store, "projects/p1", publication)
    names = [blob.key.removeprefix("projects/p1/output/") for blob in store.list("projects/p1/")]
    assert names == ["old/scene_07.mp4", "other.mp4", "scene_00.mp4", "v.mp4"]
    with store.open("projects/p1/output/scene_00.mp4") as fh:
        assert fh.read() == b"scene_00.mp4"
