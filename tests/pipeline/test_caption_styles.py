"""Caption styles (block, word, karaoke), positions and sizes: the ASS each writes, and a
burnt-in karaoke render on a voiceover aligned to its narration, probed frame by frame."""

from __future__ import annotations

import itertools
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from pipeline import captions, tts
from pipeline.captions import Cue
from pipeline.ffmpeg import Runner
from pipeline.fixtures import ImageFixture, SceneFixture, VoiceFixture, write_project
from pipeline.options import Captions, RenderOptions
from pipeline.plan import Plan, read_plan
from pipeline.project import ProjectDir
from pipeline.render import render
from tests import pipeline_fixtures as fx
from tests.spoken import SHORT, Spoken, speak

ffmpeg_bin = fx.ffmpeg_bin
FPS = 30
TEXT = (
    "Welcome to the harbour at dawn. Every morning the fishing boats leave before the sun is "
    "up, and the gulls follow them far beyond the breakwater."
)


def _cues() -> tuple[Cue, ...]:
    # Words 0.37 s apart, a pause after the first sentence: several cues of several words.
    words, at = [], 0.2
    for match in re.finditer(r"\S+", TEXT):
        words.append(tts.Word(at, at + 0.3, match.start(), len(match.group())))
        at += 1.2 if match.group().endswith(".") else 0.37
    return captions.scene_cues(TEXT, words, round((at + 1) * FPS), FPS)


def _events(text: str) -> list[tuple[int, int, str]]:
    """(start, end in centiseconds, text) of each Dialogue."""
    found = []
    for line in text.splitlines():
        if line.startswith("Dialogue:"):
            parts = line.split(",", 9)
            h, m, s = parts[1].split(":")
            start = round((int(h) * 3600 + int(m) * 60 + float(s)) * 100)
            h, m, s = parts[2].split(":")
            end = round((int(h) * 3600 + int(m) * 60 + float(s)) * 100)
            found.append((start, end, parts[9]))
    return found


def _style(text: str) -> list[str]:
    (line,) = [x for x in text.splitlines() if x.startswith("Style:")]
    return line.removeprefix("Style: ").split(",")


def test_karaoke_k_tags_add_up_to_each_lines_duration_and_follow_the_words() -> None:
    cues = _cues()
    assert len(cues) >= 2 and all(len(c.words) == len(" ".join(c.lines).split()) for c in cues)
    events = _events(captions.ass(cues, 320, 180, FPS, style="karaoke"))
    assert len(events) == len(cues)
    for (start, end, text), cue in zip(events, cues, strict=True):
        ks = [int(k) for k in re.findall(r"\{\\k(\d+)\}", text)]
        assert sum(ks) == end - start, text
        # One tag a word (no lead: each cue starts on its first word), each lasting from its
        # word's frame to the next word's.
        words = " ".join(cue.lines).split()
        assert len(ks) == len(words)
        frames = [*cue.words, cue.end]
        assert ks == [frames[n + 1] * 100 // FPS - frames[n] * 100 // FPS for n in range(len(ks))]
        assert re.sub(r"\{\\k\d+\}", "", text).replace("\\N", " ") == " ".join(words)
    # Unspoken words white (secondary), spoken ones yellow (primary).
    style = _style(captions.ass(cues, 320, 180, FPS, style="karaoke"))
    assert (style[3], style[4]) == (captions.YELLOW, captions.WHITE)


def test_karaoke_on_a_plan_without_word_frames_shares_the_cue_out() -> None:
    # A plan written before cues kept their words' frames still renders, evenly.
    cue = Cue(10, 70, ("three words here",))
    ((start, end, text),) = _events(captions.ass([cue], 320, 180, FPS, style="karaoke"))
    ks = [int(k) for k in re.findall(r"\{\\k(\d+)\}", text)]
    assert len(ks) == 3 and sum(ks) == end - start
    assert max(ks) - min(ks) <= 1


def test_word_style_shows_one_word_per_cue_from_when_it_is_spoken() -> None:
    cues = _cues()
    events = _events(captions.ass(cues, 320, 180, FPS, style="word"))
    assert [text for _, _, text in events] == TEXT.split()
    frames = [(f, c.end) for c in cues for f in c.words]
    starts = [f * 100 // FPS for f, _ in frames]
    assert [start for start, _, _ in events] == starts
    # Each word stays up until the next one in its cue, the last until the cue ends.
    for n, (start, end, _) in enumerate(events):
        last_of_cue = n + 1 == len(events) or frames[n + 1][1] != frames[n][1]
        expected = frames[n][1] * 100 // FPS if last_of_cue else starts[n + 1]
        assert start < end == expected


def test_block_style_ignores_word_frames() -> None:
    (cue, *_) = _cues()
    moved = Cue(cue.start, cue.end, cue.lines, tuple(f + 1 for f in cue.words))
    assert captions.ass([cue], 320, 180, FPS) == captions.ass([moved], 320, 180, FPS)


@pytest.mark.parametrize(("position", "alignment"), [("bottom", "2"), ("top", "8")])
def test_position_presets(position: str, alignment: str) -> None:
    style = _style(captions.ass(_cues(), 1920, 1080, FPS, position=position))  # type: ignore[arg-type]
    assert style[18] == alignment
    assert style[21] == str(round(1080 * 0.06))  # inside the title-safe margin either way


def test_size_presets_scale_the_text_and_medium_is_todays() -> None:
    sizes = {
        size: int(_style(captions.ass(_cues(), 1920, 1080, FPS, size=size))[2])  # type: ignore[arg-type]
        for size in ("small", "medium", "large")
    }
    assert sizes == {"small": 43, "medium": 56, "large": 73}
    assert _style(captions.ass(_cues(), 1920, 1080, FPS))[2] == "56"


def test_the_options_model_takes_the_presets_and_names_an_unknown_one() -> None:
    looks = Captions.model_validate({"style": "karaoke", "position": "top", "size": "large"})
    assert looks.enabled and looks.model_dump() == {
        "burnIn": False,
        "language": "en",
        "style": "karaoke",
        "position": "top",
        "size": "large",
    }
    assert Captions.model_validate({"burnIn": True}).model_dump() == {
        "burnIn": True,
        "language": "en",
    }
    for field, value in (("style", "bouncy"), ("position", "left"), ("size", "huge")):
        with pytest.raises(ValidationError) as raised:
            RenderOptions.model_validate({"captions": {field: value}})
        (error,) = raised.value.errors()
        assert error["loc"] == ("captions", field)


# --- burnt in ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> Spoken:
    return speak(SHORT, tmp_path_factory.mktemp("voice") / "v.mp3", fx.find_ffmpeg(), lead=0.3)


def _render(root: Path, spoken: Spoken, looks: dict[str, str]) -> tuple[Plan, Path]:
    project: ProjectDir = write_project(
        root,
        [
            SceneFixture(
                (ImageFixture("a.png", 320, 180, "color:navy"),),
                VoiceFixture("v.mp3", 1.0),
                narration=SHORT,
                motion="none",
            )
        ],
    )
    shutil.copyfile(spoken.path, project.asset("voiceovers", "v.mp3"))
    options = RenderOptions.model_validate(
        {
            **fx.SMALL.model_dump(by_alias=True),
            "loudness": False,
            "chunkSeconds": 0,
            "captions": {"burnIn": True, **looks},
        }
    )
    output = render(project, options, "movie.mp4", Runner(fx.find_ffmpeg()))
    return read_plan(project), output


def _counts(frame: np.ndarray, rows: slice) -> tuple[int, int]:
    """(yellow, white) pixels in those rows of an RGB frame. Small text is thin: its strokes
    are blended with the outline and the navy picture, so the bounds are loose (a yellow pixel
    has little blue, a white one about as much blue as red)."""
    band = frame[rows].astype(int)
    r, g, b = band[..., 0], band[..., 1], band[..., 2]
    bright = (r > 110) & (g > 110)
    yellow = bright & (b < r * 0.6)
    white = bright & (b > r * 0.85)
    return int(yellow.sum()), int(white.sum())


def test_burnt_in_karaoke_lights_each_word_as_it_is_spoken(tmp_path: Path, spoken: Spoken) -> None:
    plan, output = _render(tmp_path / "k", spoken, {"style": "karaoke", "size": "large"})
    (cue,) = plan.scenes[0].captions
    assert [layer.style for layer in plan.scenes[0].layers] == ["karaoke"]  # type: ignore[attr-defined]
    frames = [np.asarray(f.convert("RGB")) for f in fx.decode_frames(output, size=None)]
    bottom = slice(int(180 * 0.55), 180)
    # Just after the first word starts, just after the middle word, and at the last word.
    middle = len(cue.words) // 2
    at = [cue.words[0] + 1, cue.words[middle] + 1, min(cue.words[-1] + 2, cue.end - 1)]
    counts = [_counts(frames[n], bottom) for n in at]
    (y0, w0), (y1, w1), (y2, w2) = counts
    assert y0 < y1 < y2, counts
    assert w0 > w1 > w2, counts
    assert w2 < (y2 + w2) * 0.25, counts  # by the last word, the line is (nearly) all lit
    # Before the cue, nothing is drawn.
    assert _counts(frames[max(cue.start - 3, 0)], bottom) == (0, 0)


def test_burnt_in_word_style_at_the_top(tmp_path: Path, spoken: Spoken) -> None:
    looks = {"style": "word", "position": "top", "size": "large"}
    plan, output = _render(tmp_path / "w", spoken, looks)
    (cue,) = plan.scenes[0].captions
    frames = [np.asarray(f.convert("RGB")) for f in fx.decode_frames(output, size=None)]
    top, bottom = slice(0, 60), slice(120, 180)
    shown = [frames[f + 1] for f in cue.words[:4]]
    counts = [(_counts(frame, top), _counts(frame, bottom)) for frame in shown]
    for (_, white), below in counts:
        assert white > 10 and below == (0, 0), counts
    # One word at a time: each word's frame differs from the next one's.
    for a, b in itertools.pairwise(shown):
        assert np.abs(a[top].astype(int) - b[top].astype(int)).sum() > 0
