"""Kinds of visual (pipeline/visuals/): the registry, and a still's part of a clip's key,
its prepared file and its poster frame."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest

from pipeline import visuals
from pipeline.cache import clip_key
from pipeline.capabilities import NEEDS
from pipeline.fixtures import ImageFixture, SceneFixture, write_project
from pipeline.motion import STILL, Move
from pipeline.options import RenderOptions
from pipeline.plan import make_plan
from pipeline.poster import scene_poster_frame
from pipeline.scene import stills_args
from pipeline.visuals import KINDS, Still, VisualPlan
from tests.pipeline_fixtures import ffmpeg_bin  # noqa: F401 (a fixture)
from tests.plans import plan, scene_plan, shot, still

VERSION = "ffmpeg version test"


def test_every_kind_is_registered_and_readable_from_the_plan() -> None:
    assert list(KINDS) == ["still", "clip"]
    # The plan's union lists the same classes, each told apart by its own `kind`.
    (union, _) = typing.get_args(VisualPlan)
    assert set(typing.get_args(union) or (union,)) == set(KINDS.values())
    for name, kind in KINDS.items():
        assert kind.__dataclass_fields__["kind"].default == name
        # What it draws with is what the FFmpeg check asks every binary for.
        assert set(kind.filters) <= set(NEEDS["filter"])
    assert set(visuals.filters()) <= set(NEEDS["filter"])


def test_every_kind_with_a_spec_object_is_read_from_the_spec_by_it() -> None:
    # The spec's `images` entry lists a branch per kind with an object, tagged by its name,
    # and a plain file name names the PLAIN kind, which has none.
    (union, _) = typing.get_args(visuals.SpecEntry)
    branches = {typing.get_args(b)[1].tag: typing.get_args(b)[0] for b in typing.get_args(union)}
    assert branches == {"image": str, **visuals.ENTRIES}
    assert KINDS[visuals.PLAIN].entry is None
    for name, entry in visuals.ENTRIES.items():
        assert entry.kind == name
        _, field = visuals._file_field(entry)
        # Told apart by the field that names its file; what no kind's field names is read
        # as the first kind's, so its error names that field.
        assert visuals.entry_tag({field: "x"}) == name
    assert visuals.entry_tag({}) == visuals.entry_tag(7) == next(iter(visuals.ENTRIES))
    assert visuals.entry_tag("a.png") == "image"
    assert visuals.named_by("a.png") == ("still", "a.png")
    clip = visuals.ClipSpec.model_validate({"video": "v.mp4", "in": 1})
    assert visuals.named_by(clip) == ("clip", "v.mp4")
    assert visuals.entry_timed(clip) and not visuals.entry_timed("a.png")


def _scene(image: Still) -> tuple[object, object]:
    scene = scene_plan(visuals=(image,), shots=(shot(image, 30),))
    whole = plan(scene, width=320, height=180)
    return whole, whole.scenes[0]


def test_a_stills_identity_is_in_the_key_and_its_name_is_not() -> None:
    image = still("a.jpg", 640, 480, sha256="a" * 64)
    whole, scene = _scene(image)
    key = clip_key(whole, scene, VERSION)  # type: ignore[arg-type]
    assert image.identity() == {"width": 640, "height": 480, "orientation": 1, "sha256": "a" * 64}
    # Same bytes under another name: the same clip.
    renamed = dataclasses.replace(image, path="input/images/elsewhere.jpg")
    assert clip_key(*_scene(renamed), VERSION) == key  # type: ignore[arg-type]
    # Every field of its identity changes the key.
    for change in ({"sha256": "b" * 64}, {"orientation": 6}, {"width": 641}):
        other = dataclasses.replace(image, **change)  # type: ignore[arg-type]
        assert clip_key(*_scene(other), VERSION) != key, change  # type: ignore[arg-type]


def test_a_shot_names_its_visual_by_kind_and_digest() -> None:
    a, b = still("a.jpg"), still("b.jpg")
    scene = scene_plan(visuals=(a, b), shots=(shot(b, 10), shot(a, 10)))
    assert [scene.visual(s).name for s in scene.shots] == ["b.jpg", "a.jpg"]
    assert (scene.shots[0].kind, scene.shots[0].digest) == ("still", b.sha256)


def test_a_stills_prepared_file_is_named_for_what_it_is_made_from() -> None:
    image = still("a.jpg")
    whole, scene = _scene(image)
    name = image.prepared_name("scene_000_0", whole, scene)  # type: ignore[arg-type]
    assert name.startswith("scene_000_0_") and name.endswith(".yuv")
    turned = dataclasses.replace(image, orientation=6)
    assert turned.prepared_name("scene_000_0", whole, scene) != name  # type: ignore[arg-type]


def test_a_stills_poster_frame_shows_it_whole() -> None:
    image = still()
    zoom_out = scene_plan(visuals=(image,), shots=(shot(image, 40, 0, Move(1.12, 1.0)),))
    assert image.poster_frame(zoom_out.shots[0]) == 39 == scene_poster_frame(zoom_out)
    held = scene_plan(visuals=(image,), shots=(shot(image, 40, 0, STILL),))
    assert scene_poster_frame(held) == 0


# --- strips: cropped to what the frame shows before they are scaled ------------------------


def test_only_a_strips_identity_and_prepared_name_say_it_is_cropped_first() -> None:
    normal, strip = still("a.jpg", 1080, 1920), still("s.png", 16000, 200)
    assert not normal.thin and strip.thin and still("t.png", 200, 16000).thin
    assert "cropped_first" not in normal.identity()  # its cached clips still match
    assert strip.identity()["cropped_first"] is True
    whole, scene = _scene(strip)
    name = strip.prepared_name("scene_000_0", whole, scene)  # type: ignore[arg-type]
    assert name != dataclasses.replace(strip, width=800).prepared_name(
        "scene_000_0",
        whole,  # type: ignore[arg-type]
        scene,  # type: ignore[arg-type]
    )


def _prepare(root: Path, name: str, size: tuple[int, int], fit: str, ffmpeg: str) -> bytes:
    """Prepare the scene's one picture at 1080p (Ken Burns: 2880×1620) in an FFmpeg run of
    its own; its raw frame, and the peak RSS of the FFmpeg process in the `rss` file."""
    project = write_project(
        root / f"{name}-{fit}",
        [SceneFixture((ImageFixture(name, *size, "testsrc2"),), duration=1.0, fit=fit)],
        ffmpeg,
    )
    made = make_plan(project, RenderOptions(resolution="1920x1080", preset="veryfast"), ffmpeg)
    target = project.work / "still.yuv"
    target.parent.mkdir(parents=True, exist_ok=True)
    args = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y"]
    args += stills_args(project.root, made, made.scenes[0], [target])
    # A process of its own, whose only child is FFmpeg: its children's peak is FFmpeg's.
    measured = subprocess.run(
        [sys.executable, "-c", _PEAK, *args], capture_output=True, text=True, check=True
    )
    (root / f"{name}-{fit}.rss").write_text(measured.stdout)
    return target.read_bytes()


_PEAK = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


@pytest.mark.parametrize("size", [(16000, 200), (200, 16000)])
def test_a_strip_is_cropped_before_it_is_scaled(
    size: tuple[int, int],
    tmp_path: Path,
    ffmpeg_bin: str,  # noqa: F811
) -> None:
    # Scaled whole to cover the frame first, a 16000×200 strip became 129600×1620 (FFmpeg
    # peaked at about 400 MB) and a 200×16000 one 2880×230400 (about 1 GB).
    frame = _prepare(tmp_path, "strip.png", size, "cover", ffmpeg_bin)
    peak_mb = int((tmp_path / "strip.png-cover.rss").read_text()) / 1024
    assert peak_mb < 200, peak_mb
    # The same picture as scaling it whole and cropping shows: its middle, 2880×1620.
    reference = tmp_path / "whole.yuv"
    subprocess.run(
        [
            *(ffmpeg_bin, "-hide_banner", "-loglevel", "error", "-y"),
            *("-i", str(tmp_path / "strip.png-cover" / "input" / "images" / "strip.png")),
            "-vf",
            "scale=2880:1620:force_original_aspect_ratio=increase:out_color_matrix=bt709:"
            "out_range=tv,crop=2880:1620,format=yuv420p",
            *("-frames:v", "1", "-f", "rawvideo", str(reference)),
        ],
        check=True,
    )
    assert len(frame) == len(reference.read_bytes()) == 2880 * 1620 * 3 // 2
    assert psnr(frame, reference.read_bytes()) > 40


def psnr(a: bytes, b: bytes) -> float:
    first, second = np.frombuffer(a, np.uint8), np.frombuffer(b, np.uint8)
    error = float(np.mean((first.astype(np.float64) - second) ** 2))
    return math.inf if error == 0 else 10 * math.log10(255**2 / error)
