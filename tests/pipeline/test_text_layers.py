"""Text layers (pipeline/layers/text.py, pipeline/fonts.py): real renders, decoded and probed.

Scenes are black stills, so every light pixel of a frame is the text's ink. Clips are lossless
(crf 0), so equal frames decode to equal bytes.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import fontpkg_heebo
import fontpkg_noto_sans_arabic
import fontpkg_noto_sans_devanagari
import numpy as np
import pytest
import uharfbuzz as hb
from PIL import Image, ImageDraw, ImageFont, features

from pipeline import fonts, stages
from pipeline.cache import ClipCache, ClipReport, clip_key
from pipeline.captions import Cue
from pipeline.chunks import chunk_spans
from pipeline.errors import PipelineError
from pipeline.ffmpeg import Runner
from pipeline.fixtures import ImageFixture, SceneFixture, write_project
from pipeline.layers import BurntCaptions, TextLayers
from pipeline.layers import text as text_layers
from pipeline.options import RenderOptions
from pipeline.plan import Plan, make_plan
from pipeline.project import ProjectDir
from pipeline.spec import ProjectSpec
from tests import pipeline_fixtures as fx
from tests.pipeline_fixtures import decode_frames
from tests.stage_runs import frame_hashes

ffmpeg_bin = fx.ffmpeg_bin

LOSSLESS = RenderOptions(
    fps=30,
    min_shot=0.2,
    xfade=0.1,
    max_shot=3.0,
    crf=0,
    preset="veryfast",
    resolution="320x180",
    motion="none",
    chunk_seconds=0,
)
W, H = 320, 180
SAFE_BOX = (W * 0.05, H * 0.05, W * 0.95, H * 0.95)
LONG = " ".join(f"word{n:03d}" for n in range(60))  # 479 characters


def _black(name: str = "black.png", size: tuple[int, int] = (W, H)) -> ImageFixture:
    return ImageFixture(name, *size, "color:black")


def _project(
    root: Path, texts: list[list[dict[str, Any]]], seconds: float = 1.0, **fields: Any
) -> ProjectDir:
    """A project of black scenes `seconds` long, scene n with the text layers `texts[n]`."""
    project = write_project(
        root, [SceneFixture((_black(),), duration=seconds, **fields) for _ in texts]
    )
    spec = json.loads(project.spec_file.read_text())
    for scene, layers in zip(spec["scenes"], texts, strict=True):
        scene["text"] = layers
    project.spec_file.write_text(json.dumps(spec))
    return project


def _upload_font(project: ProjectDir, module: Any, name: str) -> None:
    folder = project.input / "fonts"
    folder.mkdir(exist_ok=True)
    shutil.copy(next((Path(module.__file__).parent / "files").glob("*.ttf")), folder / name)


def _ink(frame: Image.Image, threshold: int = 60) -> np.ndarray:
    return np.asarray(frame.convert("L")) > threshold


def _bbox(ink: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the ink, right and bottom exclusive; None: no ink."""
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _frames(project: ProjectDir, plan: Plan, index: int, ffmpeg: str) -> list[Image.Image]:
    return decode_frames(stages.build_scene(project, plan, index, Runner(ffmpeg)), size=None)


# --- placement, timing, shrinking -------------------------------------------------------------


@pytest.fixture(scope="module")
def placed(tmp_path_factory: pytest.TempPathFactory, ffmpeg_bin: str) -> tuple[ProjectDir, Plan]:
    project = _project(
        tmp_path_factory.mktemp("placed"),
        [
            # A title and layers asked for at the very edges and corners of the frame.
            [
                {"text": "A title at the top", "style": "title", "position": "top"},
                {"text": "Far right", "style": "caption", "position": {"x": 1, "y": 0.5}},
                {"text": "Corner", "style": "subtitle", "position": {"x": 0, "y": 1}},
                {"text": "Name\nRole", "style": "lowerThird"},
            ],
            # Shown from 0.3 s to 0.6 s: frames 9 to 17.
            [{"text": "Now you see me", "style": "subtitle", "start": 0.3, "end": 0.6}],
            # Far too long for a title's box at its size.
            [{"text": LONG, "style": "title", "size": 200}],
        ],
    )
    return project, make_plan(project, LOSSLESS, ffmpeg_bin)


def test_every_layer_is_drawn_inside_the_safe_area(
    placed: tuple[ProjectDir, Plan], ffmpeg_bin: str
) -> None:
    project, plan = placed
    frame = _frames(project, plan, 0, ffmpeg_bin)[15]
    ink = _ink(frame)
    box = _bbox(ink)
    assert box is not None
    left, top, right, bottom = box
    assert left >= SAFE_BOX[0] and top >= SAFE_BOX[1], box
    assert right <= SAFE_BOX[2] and bottom <= SAFE_BOX[3], box
    # Each layer is there: ink near the top (the title), at the right edge of the safe area,
    # at the bottom left (the corner and the lower third).
    assert ink[int(SAFE_BOX[1]) : H // 4].any()
    assert ink[:, int(W * 0.85) : int(SAFE_BOX[2])].any()
    assert ink[int(H * 0.75) :, : W // 3].any()


def test_a_layer_is_shown_only_between_its_start_and_end(
    placed: tuple[ProjectDir, Plan], ffmpeg_bin: str
) -> None:
    project, plan = placed
    frames = _frames(project, plan, 1, ffmpeg_bin)
    shown = [bool(_ink(frame).any()) for frame in frames]
    assert len(shown) == 30
    assert shown == [9 <= n < 18 for n in range(30)]


def test_a_long_text_is_shrunk_and_wrapped_not_cut(
    placed: tuple[ProjectDir, Plan], ffmpeg_bin: str
) -> None:
    project, plan = placed
    (layer,) = plan.scenes[2].layers
    assert isinstance(layer, TextLayers)
    (item,) = layer.items
    shape = text_layers.layout(item, fonts.default_font(), W, H)
    # Every word is there, in order, and the size came down from the 33 px asked for.
    assert " ".join(shape.lines).split() == LONG.split()
    assert len(shape.lines) > 1 and shape.size < round(200 * H / 1080)
    ink = _ink(_frames(project, plan, 2, ffmpeg_bin)[0])
    box = _bbox(ink)
    assert box is not None
    assert box[0] >= SAFE_BOX[0] and box[1] >= SAFE_BOX[1], box
    assert box[2] <= SAFE_BOX[2] and box[3] <= SAFE_BOX[3], box
    # Drawn over as many rows of text as laid out: ink bands separated by blank rows.
    rows = ink.any(axis=1).astype(int)
    bands = int(rows[0]) + int((np.diff(rows) == 1).sum())
    assert bands == len(shape.lines)


def test_text_layers_survive_the_plans_json_and_key_their_clip_by_font_bytes(
    placed: tuple[ProjectDir, Plan],
) -> None:
    _, plan = placed
    assert Plan.from_json(plan.to_json()) == plan
    scene = plan.scenes[0]
    (layer,) = scene.layers
    assert isinstance(layer, TextLayers)
    other_font = dataclasses.replace(layer.items[0], font_sha256="0" * 64, font_file="fonts/x.ttf")
    changed = dataclasses.replace(scene, layers=(TextLayers((other_font, *layer.items[1:])),))
    assert clip_key(plan, changed, "v") != clip_key(plan, scene, "v")
    # Where the font file lies is not part of the key; its bytes are.
    moved = dataclasses.replace(other_font, font_file="fonts/y.ttf")
    assert clip_key(
        plan, dataclasses.replace(changed, layers=(TextLayers((moved, *layer.items[1:])),)), "v"
    ) == clip_key(plan, changed, "v")


def test_text_without_spaces_is_wrapped_between_characters() -> None:
    text = "東京の港は夜明け前に目を覚まし最初の船が防波堤の向こうへ出ていく" * 3
    item = text_layers.item(text_layers.TextSpec(text=text), fonts.default_font(), 30, 30)
    shape = text_layers.layout(item, fonts.default_font(), 1920, 1080)
    assert len(shape.lines) > 1 and "".join(shape.lines) == text
    assert shape.size == 96  # wrapped, not shrunk


def test_the_layout_is_computed_from_the_font_and_fits_any_frame() -> None:
    spec = text_layers.TextSpec(text=LONG, style="bullet", size=400)
    for width, height in ((320, 180), (1920, 1080), (1080, 1920)):
        item = text_layers.item(spec, fonts.default_font(), 30, 30)
        shape = text_layers.layout(item, fonts.default_font(), width, height)
        assert shape.left >= width * 0.05 - 1e-6 and shape.top >= height * 0.05 - 1e-6
        assert shape.left + shape.width <= width * 0.95 + 1e-6
        assert shape.top + shape.height <= height * 0.95 + 1e-6
        assert all(line.startswith("• ") for line in shape.lines[:1])


# --- fonts ------------------------------------------------------------------------------------

_EMPTY_FONTCONFIG = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig></fontconfig>
"""


def test_a_host_without_system_fonts_draws_the_same_pixels(
    tmp_path: Path, ffmpeg_bin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [[{"text": "Fonts that travel", "style": "title", "animation": {"in": "fade"}}]]
    frames = []
    for name, config in (("system", None), ("bare", tmp_path / "empty.conf")):
        project = _project(tmp_path / name, texts)
        plan = make_plan(project, LOSSLESS, ffmpeg_bin)
        # Burnt-in captions too: they no longer depend on the host's fonts either.
        scene = dataclasses.replace(
            plan.scenes[0],
            captions=(Cue(0, 30, ("and captions too",)),),
            layers=(*plan.scenes[0].layers, BurntCaptions()),
        )
        plan = dataclasses.replace(plan, scenes=(scene,))
        if config is not None:
            config.write_text(_EMPTY_FONTCONFIG)
            monkeypatch.setenv("FONTCONFIG_FILE", str(config))
            # The empty configuration does hide the host's fonts from fontconfig.
            if shutil.which("fc-list"):
                listed = subprocess.run(["fc-list"], capture_output=True, text=True).stdout
                assert listed.strip() == ""
        frames.append(
            frame_hashes(ffmpeg_bin, stages.build_scene(project, plan, 0, Runner(ffmpeg_bin)))
        )
        monkeypatch.delenv("FONTCONFIG_FILE", raising=False)
    assert frames[0] == frames[1]
    blank = _project(tmp_path / "blank", [[]])
    plain = frame_hashes(
        ffmpeg_bin,
        stages.build_scene(blank, make_plan(blank, LOSSLESS, ffmpeg_bin), 0, Runner(ffmpeg_bin)),
    )
    assert all(a != b for a, b in zip(frames[0], plain, strict=True))  # something was drawn


def test_a_text_whose_font_lacks_a_glyph_or_is_unknown_is_refused_before_rendering(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    project = _project(tmp_path / "hebrew", [[{"text": "Hi שלום", "style": "title"}]])
    with pytest.raises(PipelineError) as caught:
        make_plan(project, LOSSLESS, ffmpeg_bin)
    assert "scenes[0].text[0].text" in caught.value.message
    assert "U+05E9" in caught.value.message and "Noto Sans" in caught.value.message
    project = _project(tmp_path / "unknown", [[{"text": "Hi", "font": "Comic Sans MS"}]])
    with pytest.raises(PipelineError) as caught:
        make_plan(project, LOSSLESS, ffmpeg_bin)
    assert "scenes[0].text[0].font" in caught.value.message
    assert "Comic Sans MS" in caught.value.message
    project = _project(tmp_path / "late", [[{"text": "Hi", "start": 1.5}]])
    with pytest.raises(PipelineError) as caught:
        make_plan(project, LOSSLESS, ffmpeg_bin)
    assert "scenes[0].text[0].start" in caught.value.message
    # Burnt-in captions are drawn with the packaged font too: their narration is checked.
    project = _project(tmp_path / "captioned", [[]], narration="Shalom שלום")
    burnt = RenderOptions.model_validate(
        {**LOSSLESS.model_dump(by_alias=True), "captions": {"enabled": True, "burnIn": True}}
    )
    with pytest.raises(PipelineError) as caught:
        make_plan(project, burnt, ffmpeg_bin)
    assert "scenes[0].narration" in caught.value.message and "U+05E9" in caught.value.message


def test_the_spec_refuses_bad_text_layers_naming_the_field() -> None:
    def errors(layer: dict[str, Any]) -> list[str]:
        try:
            ProjectSpec.model_validate({"scenes": [{"images": ["a.png"], "text": [layer]}]})
        except ValueError as exc:
            return [".".join(map(str, e["loc"])) for e in exc.errors()]  # type: ignore[attr-defined]
        return []

    assert errors({"text": "Hi", "style": "banner"}) == ["scenes.0.text.0.style"]
    assert errors({"text": "Hi", "position": "left"}) == ["scenes.0.text.0.position.preset"]
    assert errors({"text": "Hi", "position": {"x": 1.2, "y": 0}}) == [
        "scenes.0.text.0.position.point.x"
    ]
    assert errors({"text": "Hi", "start": 2, "end": 2}) == ["scenes.0.text.0.end"]
    assert errors({"text": "x" * 501}) == ["scenes.0.text.0.text"]
    assert errors({"text": "Hi", "animation": {"in": "spin"}}) == ["scenes.0.text.0.animation.in"]
    assert errors({"text": "Hi", "start": 0.5, "end": 1, "animation": {"in": "fade"}}) == []


# --- scripts beyond Latin, against a shaper that is not libass ---------------------------------

SCRIPTS = [
    ("مرحبا بالعالم", fontpkg_noto_sans_arabic, "Noto Sans Arabic"),
    ("שלום עולם", fontpkg_heebo, "Heebo"),
    ("क्षत्रिय विद्या", fontpkg_noto_sans_devanagari, "Noto Sans Devanagari"),
    # Mixed direction: the Hebrew run right to left inside a left-to-right line.
    ("Hello שלום world 42", fontpkg_heebo, "Heebo"),
]
# And a Latin line in the uploaded Heebo, which the packaged Noto Sans could draw too.
LAYERS = [*SCRIPTS, ("Uploaded fonts travel", fontpkg_heebo, "Heebo")]


def _columns(ink: np.ndarray) -> np.ndarray:
    """Which columns of the ink's span hold ink."""
    cols = ink.any(axis=0)
    found = np.flatnonzero(cols)
    return cols[found[0] : found[-1] + 1]


def _gaps(columns: np.ndarray) -> list[int]:
    """Where each gap in the ink (two or more blank columns: between words, between letters
    that do not join) starts."""
    starts, blank = [], 0
    for n, inked in enumerate([*columns, True]):
        if not inked:
            blank += 1
            continue
        if blank >= 2:
            starts.append(n - blank)
        blank = 0
    return starts


def _matching(a: np.ndarray, b: np.ndarray, tolerance: int = 2) -> float:
    """The share of gaps of either that the other has too, within `tolerance` columns (the
    lesser of the two shares): 1 when the two runs have their gaps in the same places."""
    ga, gb = _gaps(a), _gaps(b)
    if not ga and not gb:
        return 1.0

    def found(xs: list[int], ys: list[int]) -> float:
        return sum(any(abs(x - y) <= tolerance for y in ys) for x in xs) / max(len(xs), 1)

    return min(found(ga, gb), found(gb, ga))


@pytest.fixture(scope="module")
def scripts(
    tmp_path_factory: pytest.TempPathFactory, ffmpeg_bin: str
) -> tuple[ProjectDir, Plan, np.ndarray]:
    root = tmp_path_factory.mktemp("scripts")
    project = write_project(
        root, [SceneFixture((_black("black.png", (640, 360)),), duration=0.2, motion="none")]
    )
    for module in (fontpkg_noto_sans_arabic, fontpkg_heebo, fontpkg_noto_sans_devanagari):
        _upload_font(project, module, f"{module.__name__}.ttf")
    spec = json.loads(project.spec_file.read_text())
    spec["scenes"][0]["text"] = [
        {
            "text": text,
            "font": family,
            "style": "subtitle",
            "weight": "normal",
            "background": "none",
            "size": 100,
            "position": {"x": 0.5, "y": 0.1 + 0.18 * n},
        }
        for n, (text, _, family) in enumerate(LAYERS)
    ]
    project.spec_file.write_text(json.dumps(spec))
    options = LOSSLESS.model_copy(update={"resolution": "640x360"})
    plan = make_plan(project, options, ffmpeg_bin)
    frame = _frames(project, plan, 0, ffmpeg_bin)[0]
    return project, plan, _ink(frame, 100)


def _reference(font: fonts.Font, size: int, text: str, engine: ImageFont.Layout) -> np.ndarray:
    """The text drawn by Pillow (Raqm: HarfBuzz and FriBidi; or its basic layout, which
    neither shapes nor reorders) at the em size libass draws ASS size `size` at."""
    face = hb.Face(font.path.read_bytes())
    em = size * face.upem / fonts._metrics(font.path, font.sha256).scale_units
    image = Image.new("L", (900, 200))
    pil_font = ImageFont.truetype(str(font.path), size=em, layout_engine=engine)
    ImageDraw.Draw(image).text((20, 40), text, font=pil_font, fill=255)
    return np.asarray(image) > 100


def _harfbuzz_width(font: fonts.Font, size: int, text: str) -> float:
    """The ink width HarfBuzz's own shaping of `text` gives, in pixels."""
    face = hb.Face(font.path.read_bytes())
    shaper = hb.Font(face)
    buffer = hb.Buffer()
    buffer.add_str(text)
    buffer.guess_segment_properties()
    hb.shape(shaper, buffer, {})
    pen, left, right = 0, float("inf"), float("-inf")
    for info, pos in zip(buffer.glyph_infos, buffer.glyph_positions, strict=True):
        extents = shaper.get_glyph_extents(info.codepoint)
        if extents is not None and extents.width:
            x = pen + pos.x_offset + extents.x_bearing
            left, right = min(left, x), max(right, x + extents.width)
        pen += pos.x_advance
    return (right - left) * size / fonts._metrics(font.path, font.sha256).scale_units


@pytest.mark.parametrize("n", range(len(SCRIPTS)))
def test_complex_scripts_are_shaped_as_harfbuzz_and_raqm_shape_them(
    scripts: tuple[ProjectDir, Plan, np.ndarray], n: int
) -> None:
    assert features.check("raqm")
    project, plan, ink = scripts
    (layer,) = plan.scenes[0].layers
    assert isinstance(layer, TextLayers)
    item, font = layer.items[n], layer.fonts(project.root)[n]
    assert font.family == SCRIPTS[n][2] and not font.packaged
    shape = text_layers.layout(item, font, 640, 360)
    band = ink[int(shape.top) : int(shape.top + shape.height) + 1]
    drawn = _columns(band)
    shaped = _columns(_reference(font, shape.size, item.text, ImageFont.Layout.RAQM))
    unshaped = _columns(_reference(font, shape.size, item.text, ImageFont.Layout.BASIC))
    # The width of the run as HarfBuzz shapes it, within 3 px (hinting moves edges by one).
    assert abs(len(drawn) - _harfbuzz_width(font, shape.size, item.text)) <= 3
    # Letters joined and ordered as the reference shaper has them: gaps (between words,
    # between letters that do not join) in the same columns; letters unshaped (Arabic in
    # isolated forms, Devanagari without conjuncts) or in the stored order (Hebrew drawn left
    # to right) put them elsewhere.
    assert _matching(drawn, shaped) >= 0.8
    assert _matching(drawn, unshaped) < _matching(drawn, shaped) - 0.15


def test_an_uploaded_font_is_the_one_drawn(scripts: tuple[ProjectDir, Plan, np.ndarray]) -> None:
    project, plan, ink = scripts
    (layer,) = plan.scenes[0].layers
    assert isinstance(layer, TextLayers)
    # The scene's fonts folder holds exactly the fonts its layers name.
    folder = layer.fonts_folder(project.work, plan.scenes[0])
    staged = sorted(path.read_bytes() for path in folder.iterdir())
    assert staged == sorted({font.path.read_bytes() for font in layer.fonts(project.root)})
    # The Latin line is drawn in Heebo, not in the default Noto Sans.
    item, heebo = layer.items[-1], layer.fonts(project.root)[-1]
    assert heebo.family == "Heebo"
    shape = text_layers.layout(item, heebo, 640, 360)
    drawn = _columns(ink[int(shape.top) : int(shape.top + shape.height) + 1])
    as_heebo = _columns(_reference(heebo, shape.size, item.text, ImageFont.Layout.RAQM))
    noto = _columns(_reference(fonts.default_font(), shape.size, item.text, ImageFont.Layout.RAQM))
    assert abs(len(drawn) - len(as_heebo)) <= 3 and abs(len(drawn) - len(noto)) > 6
    assert _matching(drawn, as_heebo) >= 0.8
    assert _matching(drawn, noto) < _matching(drawn, as_heebo) - 0.15


# --- chunks and the cache ---------------------------------------------------------------------


def _join(ffmpeg: str, clips: list[Path], out: Path) -> Path:
    """Clips joined by the concat demuxer with stream copy, as CONCAT joins them."""
    listing = out.with_suffix(".ffconcat")
    listing.write_text("ffconcat version 1.0\n" + "".join(f"file '{c}'\n" for c in clips))
    args = ["-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0"]
    subprocess.run(
        [ffmpeg, *args, "-i", str(listing), "-c", "copy", str(out)], check=True, timeout=60
    )
    return out


def test_animated_text_across_chunk_boundaries_is_drawn_as_in_the_whole_clip(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    # 60 frames in three chunks (cuts at 20 and 40): a fade in (frames 0–30) and a typewriter
    # (15–30) over the first cut, a slide out (33–45) over the second.
    project = _project(
        tmp_path / "chunked",
        [
            [
                {"text": "Fading in", "style": "title", "animation": {"in": "fade", "seconds": 1}},
                {
                    "text": "Typed out, letter by letter",
                    "style": "caption",
                    "start": 0.5,
                    "animation": {"in": "typewriter", "out": "fade", "seconds": 0.5},
                },
                {
                    "text": "Jane Doe\nSliding",
                    "style": "lowerThird",
                    "end": 1.5,
                    "animation": {"in": "slideUp", "out": "slideUp", "seconds": 0.4},
                },
            ]
        ],
        seconds=2.0,
    )
    options = LOSSLESS.model_copy(update={"chunk_seconds": 0.8})
    plan = make_plan(project, options, ffmpeg_bin)
    scene = plan.scenes[0]
    assert chunk_spans(plan, scene) == ((0, 20), (20, 40), (40, 60))
    runner = Runner(ffmpeg_bin)
    whole = stages.build_scene(project, dataclasses.replace(plan, chunk_frames=0), 0, runner)
    chunks = [stages.build_scene(project, plan, 0, runner, chunk=c) for c in range(3)]
    expected = frame_hashes(ffmpeg_bin, whole)
    assert frame_hashes(ffmpeg_bin, _join(ffmpeg_bin, chunks, tmp_path / "joined.mp4")) == expected
    # The animations are there: frames change while the text fades, types and slides.
    assert len(set(expected[:30])) > 20 and len(set(expected)) > 40


def test_changing_one_scenes_title_encodes_that_scene_alone(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    cache = ClipCache(tmp_path / "cache")
    titles = [[{"text": "First scene"}], [{"text": "Second scene"}]]
    outcomes = []
    for n, second in enumerate(("Second scene", "Second scene, retitled")):
        titles[1] = [{"text": second}]
        project = _project(tmp_path / f"p{n}", titles)
        plan = make_plan(project, LOSSLESS, ffmpeg_bin)
        reports: list[ClipReport] = []
        for index in range(2):
            stages.build_scene(
                project, plan, index, Runner(ffmpeg_bin), cache=cache, report=reports.append
            )
        outcomes.append([r.outcome for r in reports])
    assert outcomes == [["encoded", "encoded"], ["cached", "encoded"]]
