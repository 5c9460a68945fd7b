"""Captions: cue layout from word times, the SRT/WebVTT/ASS texts, the files beside the video,
the soft subtitle track, and captions burnt into the picture."""

from __future__ import annotations

import itertools
import re
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline import captions, tts
from pipeline.captions import Cue
from pipeline.errors import PipelineError
from pipeline.ffmpeg import Runner
from pipeline.fixtures import ImageFixture, SceneFixture, VoiceFixture, write_project
from pipeline.options import RenderOptions
from pipeline.plan import Plan, make_plan, read_plan
from pipeline.project import ProjectDir
from pipeline.render import render
from tests import pipeline_fixtures as fx

ffmpeg_bin = fx.ffmpeg_bin

LONG = (
    "Welcome to the harbour at dawn. Every morning the fishing boats leave before the sun is "
    "up, and the gulls follow them far beyond the breakwater and the old stone lighthouse. "
    "By noon the market is loud. Wow!"
)
FPS = 30


def _words_of(text: str) -> list[str]:
    return text.split()


def _check_layout(cues: tuple[Cue, ...], text: str, frames: int) -> None:
    assert cues
    for cue in cues:
        assert 1 <= len(cue.lines) <= 2
        assert all(len(line) <= captions.MAX_LINE for line in cue.lines), cue
        assert 0 <= cue.start < cue.end <= frames
    for before, after in itertools.pairwise(cues):
        assert before.end <= after.start
    # Every word once, in order.
    assert [w for cue in cues for line in cue.lines for w in line.split()] == _words_of(text)


def test_cues_from_engine_word_events_follow_the_words() -> None:
    speech = tts.engine("espeak-ng").synthesise(LONG, "en-us", None)
    frames = round(speech.seconds * FPS)
    cues = captions.scene_cues(LONG, speech.words, frames, FPS)
    _check_layout(cues, LONG, frames)
    # A cue starts on the frame its first word is spoken.
    first_words = iter(speech.words)
    spoken = {w.first: w for w in first_words}
    offset = 0
    for cue in cues:
        first = cue.lines[0].split()[0]
        offset = LONG.index(first, offset)
        assert cue.start == round(spoken[offset].start * FPS), cue
        offset += len(" ".join(cue.lines))
    # A sentence's end ends its cue: no cue runs on from one sentence into the next.
    for cue in cues:
        text = " ".join(cue.lines)
        assert not re.search(r"[.!?] \S", text), text


def test_words_spread_over_detected_speech_stay_inside_it() -> None:
    spans = [(0.5, 2.0), (3.0, 4.5)]
    words = captions.spread_words("one two three four five six", spans)
    assert len(words) == 6
    assert words[0].start == pytest.approx(0.5) and words[-1].end == pytest.approx(4.5)
    for word in words:
        assert any(a - 1e-9 <= word.start and word.end <= b + 1e-9 for a, b in spans) or (
            word.start < 2.0 + 1e-9 and word.end > 3.0 - 1e-9  # the word spanning the pause
        )
    cues = captions.scene_cues("one two three four five six", words, 150, FPS)
    assert cues[0].start == 15  # 0.5 s: nothing is shown before the voice begins


def test_cues_never_outlive_their_scene() -> None:
    # Words timed past the scene's end (a voiceover trimmed by the scene) are cut at the end.
    words = captions.spread_words(LONG, [(0.0, 20.0)])
    cues = captions.scene_cues(LONG, words, 90, FPS)
    assert cues[-1].end <= 90 and all(c.start < 90 for c in cues)


def test_srt_and_vtt_texts() -> None:
    cues = [(0, 45, ("Welcome to the harbour.",)), (45, 3723 * FPS + 15, ("Two", "lines"))]
    assert captions.srt(cues, FPS) == (
        "1\n00:00:00,000 --> 00:00:01,500\nWelcome to the harbour.\n\n"
        "2\n00:00:01,500 --> 01:02:03,500\nTwo\nlines\n"
    )
    assert captions.vtt(cues, FPS) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nWelcome to the harbour.\n\n"
        "00:00:01.500 --> 01:02:03.500\nTwo\nlines\n"
    )


HOSTILE = "00:00:00.000 --> 99:00:00.000 <b>b</b> &amp; {\\an8}\\N x"
Z = "\u200b"


def test_srt_and_vtt_escape_markup_and_cue_separators() -> None:
    cues = [
        (0, 30, ("00:00:00,000 --> 99:00:00,000", "<b>b</b> R&D")),
        (30, 60, ("{\\an8}up\\Nhere ---> a\u2028b",)),
        (60, 90, ("\n \u3000",)),  # nothing to show: no cue at all, not a blank line
        (90, 120, ("last",)),
    ]
    assert captions.srt(cues, FPS) == (
        f"1\n00:00:00,000 --> 00:00:01,000\n00:00:00,000 --{Z}> 99:00:00,000\n"
        f"<{Z}b>b<{Z}/b> R&{Z}D\n\n"
        f"2\n00:00:01,000 --> 00:00:02,000\n(\\{Z}an8)up\\{Z}Nhere ---{Z}> a b\n\n"
        "3\n00:00:03,000 --> 00:00:04,000\nlast\n"
    )
    assert captions.vtt(cues, FPS) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n00:00:00,000 --&gt; 99:00:00,000\n"
        "&lt;b&gt;b&lt;/b&gt; R&amp;D\n\n"
        "00:00:01.000 --> 00:00:02.000\n{\\an8}up\\Nhere ---&gt; a b\n\n"
        "00:00:03.000 --> 00:00:04.000\nlast\n"
    )


def _ffmpeg_cues(path: Path, scratch: Path) -> list[tuple[str, str, str]]:
    """How FFmpeg reads a subtitle file: (start, end, ASS text) of each event."""
    out = scratch / f"{path.name}.ass"
    subprocess.run(
        [fx.find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-i", str(path), str(out)],
        check=True,
    )
    return [
        tuple(line.split(",", 9)[i] for i in (1, 2, 9))  # type: ignore[misc]
        for line in out.read_text(encoding="utf-8").splitlines()
        if line.startswith("Dialogue:")
    ]


def test_ffmpeg_reads_a_hostile_narration_as_one_plain_cue(tmp_path: Path) -> None:
    cues = [(0, 45, (HOSTILE,)), (45, 60, ("next",))]
    for name, text in (("c.srt", captions.srt(cues, FPS)), ("c.vtt", captions.vtt(cues, FPS))):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        read = _ffmpeg_cues(path, tmp_path)
        assert [(a, b) for a, b, _ in read] == [
            ("0:00:00.00", "0:00:01.50"),
            ("0:00:01.50", "0:00:02.00"),
        ], (name, read)
        shown = read[0][2].replace(Z, "")
        # No tag became ASS bold or alignment: the words are there as they were typed.
        assert "{\\b1}" not in shown and "{\\an8}" not in shown, shown
        assert "99:00:00.000" in shown and "b</b>" in shown, shown
        assert read[1][2] == "next"


def test_ass_is_sized_to_the_frame_and_keeps_braces_as_text() -> None:
    text = captions.ass([Cue(3, 60, ("a {b}", "c"))], 1920, 1080, FPS)
    assert "PlayResX: 1920\nPlayResY: 1080" in text
    style = next(line for line in text.splitlines() if line.startswith("Style:"))
    assert style.split(",")[2] == "56"  # about 5% of the height
    assert "Dialogue: 0,0:00:00.10,0:00:02.00,Caption,,0,0,0,,a (b)\\Nc" in text
    small = captions.ass([Cue(0, 3, ("x",))], 320, 180, FPS)
    assert ",9," in next(line for line in small.splitlines() if line.startswith("Style:"))


@pytest.mark.parametrize(
    ("code", "mp4"), [("en", "eng"), ("en-US", "eng"), ("de", "ger"), ("fra", "fra"), ("xx", "und")]
)
def test_mp4_language_codes(code: str, mp4: str) -> None:
    assert captions.mp4_language(code) == mp4


# --- rendered ---------------------------------------------------------------------------

OPTIONS = {
    **fx.SMALL.model_dump(by_alias=True),
    "resolution": "320x180",
    "loudness": False,
    "tts": "espeak-ng",
}


def _project(root: Path) -> ProjectDir:
    return write_project(
        root,
        [
            SceneFixture(
                (ImageFixture("a.png", 320, 180, "color:navy"),),
                narration="Welcome to the harbour. The boats go out before dawn.",
                motion="none",
                id="tts",
            ),
            SceneFixture(
                (ImageFixture("b.png", 320, 180, "color:darkgreen"),),
                VoiceFixture("b.wav", 3.0, 300, bursts=((0.5, 1.4), (2.0, 2.9))),
                narration="A voiceover file, spoken in two parts.",
                motion="none",
                id="file",
            ),
            SceneFixture(
                (ImageFixture("c.png", 320, 180, "color:maroon"),), duration=1.0, motion="none"
            ),
        ],
    )


def _render(project: ProjectDir, **captions_option: object) -> tuple[Plan, Path]:
    options = RenderOptions.model_validate({**OPTIONS, **captions_option})
    output = render(project, options, "movie.mp4", Runner(fx.find_ffmpeg()))
    return read_plan(project), output


def _srt_cues(text: str) -> list[tuple[float, float, str]]:
    found = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        a, b = (
            sum(float(x) * f for x, f in zip(re.split("[:,]", t)[:3], (3600, 60, 1), strict=True))
            + int(t[-3:]) / 1000
            for t in lines[1].split(" --> ")
        )
        found.append((a, b, " ".join(lines[2:])))
    return found


@pytest.fixture(scope="module")
def soft(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProjectDir, Plan, Path]:
    project = _project(tmp_path_factory.mktemp("soft"))
    plan, output = _render(project, captions=True)
    return project, plan, output


def test_srt_and_vtt_are_written_beside_the_video(soft: tuple[ProjectDir, Plan, Path]) -> None:
    project, plan, _ = soft
    srt = (project.output / "movie.srt").read_text()
    vtt = (project.output / "movie.vtt").read_text()
    assert vtt.startswith("WEBVTT\n\n")
    cues = _srt_cues(srt)
    assert [c[2] for c in cues] == [
        "Welcome to the harbour.",
        "The boats go out before dawn.",
        "A voiceover file, spoken in two parts.",
    ]
    assert vtt.count(" --> ") == len(cues)
    # No cue spans a cut: each lies inside its scene.
    scene_of = [plan.scenes[0], plan.scenes[0], plan.scenes[1]]
    for (a, b, _), scene in zip(cues, scene_of, strict=True):
        assert scene.start_frame / FPS - 1e-3 <= a < b <= scene.end_frame / FPS + 1e-3
    # TTS cues start with the speech; the voiceover's waits for its detected speech (0.5 s).
    assert cues[0][0] == 0.0
    file_start = plan.scenes[1].start_frame / FPS
    assert cues[2][0] == pytest.approx(file_start + 0.5, abs=1 / FPS + 0.02)


def test_the_video_has_a_soft_subtitle_track_tagged_with_its_language(
    soft: tuple[ProjectDir, Plan, Path],
) -> None:
    _, _, output = soft
    with av.open(str(output)) as container:
        (track,) = container.streams.subtitles
        assert track.codec_context.name == "mov_text"
        assert track.metadata.get("language") == "eng"
        texts = [
            sub.dialogue.decode() if hasattr(sub, "dialogue") else str(sub)
            for packet in container.demux(track)
            for sub in (packet.decode() or [])
            for sub in getattr(sub, "rects", [sub])
        ]
    assert any("harbour" in text for text in texts), texts


def _bright_pixels(path: Path, times: list[float]) -> list[int]:
    """Light pixels in the frame's bottom fifth (where captions sit), at each time."""
    frames = fx.decode_frames(path, size=None)
    counts = []
    for t in times:
        image = frames[round(t * FPS)].convert("L")
        bottom = image.crop((0, int(image.height * 0.8), image.width, image.height))
        # Light rather than white: at 9 px few pixels of Noto Sans's thin strokes are white.
        counts.append(int((np.asarray(bottom) > 120).sum()))
    return counts


def test_burnt_in_captions_are_drawn_and_belong_to_their_scenes_plan(
    tmp_path: Path, soft: tuple[ProjectDir, Plan, Path]
) -> None:
    _, soft_plan, soft_output = soft
    project = _project(tmp_path / "burn")
    plan, output = _render(project, captions={"burnIn": True})
    assert [s.burn_in for s in plan.scenes] == [True, True, True]
    # The same cues (each project speaks its narration afresh: espeak-ng's word times vary by
    # a few ms between syntheses in one process, so a word's frame may differ by one).
    assert [(c.start, c.end, c.lines) for c in plan.scenes[0].captions] == [
        (c.start, c.end, c.lines) for c in soft_plan.scenes[0].captions
    ]
    assert not soft_plan.scenes[0].burn_in
    # While a cue is up, white text brightens the bottom of the frame; where no cue is (the
    # last scene), the pictures are the same.
    times = [0.7, (plan.scenes[1].start_frame + 40) / FPS, plan.scenes[2].start_frame / FPS + 0.5]
    burnt, plain = _bright_pixels(output, times), _bright_pixels(soft_output, times)
    assert plain == [0, 0, 0]  # navy, green and maroon pictures
    assert burnt[0] > 20 and burnt[1] > 20, burnt
    assert burnt[2] == 0


def test_a_narration_with_cue_syntax_renders_as_plain_text(tmp_path: Path) -> None:
    """Unescaped, FFmpeg read the narration's line `00:00:00,000 --> 99:00:00,000 <b>b</b>` as
    the times of a 99-hour cue, `<b>` as bold and `{\\an8}` as a move to the top."""
    project = write_project(
        tmp_path / "project",
        [
            SceneFixture(
                (ImageFixture("a.png", 320, 180, "color:navy"),),
                narration="Look. 00:00:00,000 --> 99:00:00,000 <b>b</b>. {\\an8}Up",
                motion="none",
            )
        ],
    )
    plan, output = _render(project, captions=True)
    cues = {
        name: _ffmpeg_cues(project.output / name, tmp_path) for name in ("movie.srt", "movie.vtt")
    }
    assert [c[:2] for c in cues["movie.srt"]] == [c[:2] for c in cues["movie.vtt"]]
    texts = [text.replace(Z, "") for _, _, text in cues["movie.srt"]]
    assert texts == ["Look.", "00:00:00,000 --> 99:00:00,000 <b>b</b>.", "(\\an8)Up"]
    assert [text for _, _, text in cues["movie.vtt"]][1] == texts[1]
    assert cues["movie.srt"][-1][1] <= f"0:00:{plan.duration_seconds:05.2f}"
    with av.open(str(output)) as container:
        (track,) = container.streams.subtitles
        shown = [
            sub.dialogue.decode().replace(Z, "")
            for packet in container.demux(track)
            for sub in (packet.decode() or [])
            for sub in getattr(sub, "rects", [sub])
        ]
    assert any("99:00:00,000 <b>b</b>." in text for text in shown), shown
    assert not any("{" in text for text in shown), shown


def test_captions_off_remove_an_earlier_renders_files(soft: tuple[ProjectDir, Plan, Path]) -> None:
    project, _, _ = soft
    options = RenderOptions.model_validate({**OPTIONS, "captions": False})
    render(project, options, "movie.mp4", Runner(fx.find_ffmpeg()))
    assert not (project.output / "movie.srt").exists()
    assert not (project.output / "movie.vtt").exists()
    with av.open(str(project.output / "movie.mp4")) as container:
        assert not container.streams.subtitles


def test_captions_without_any_narration_fail_validate(tmp_path: Path, ffmpeg_bin: str) -> None:
    project = write_project(
        tmp_path, [SceneFixture((ImageFixture("a.png", 64, 36, "color:gray"),), duration=1.0)]
    )
    options = RenderOptions.model_validate({**OPTIONS, "captions": True})
    with pytest.raises(PipelineError, match=r"renderOptions\.captions: .*and no scene has one"):
        make_plan(project, options, ffmpeg_bin)
