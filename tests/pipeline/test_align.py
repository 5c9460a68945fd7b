"""Forced alignment (pipeline/align.py): a narration placed on its voiceover, word by word.

The voiceover is espeak-ng speech encoded as MP3, so the truth is the engine's own word
events (tests/spoken.py). Captions aligned to it must start with their words; today's spreading
over the detected speech must not pass the same bound, or the bound says nothing.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from pipeline import align, captions
from pipeline.cache import ClipCache, clip_key
from pipeline.fixtures import (
    ImageFixture,
    SceneFixture,
    VoiceFixture,
    make_tone,
    write_project,
)
from pipeline.layers import BurntCaptions
from pipeline.options import RenderOptions
from pipeline.plan import Plan, make_plan
from pipeline.probe import scan_audio
from pipeline.project import ProjectDir
from tests import pipeline_fixtures as fx
from tests.spoken import NARRATION, SHORT, Spoken, onset_errors, speak, truth_onsets
from tests.stage_runs import render_stages

ffmpeg_bin = fx.ffmpeg_bin
FPS = 30
# Bounds on the measured figures (tests/bench_captions.py: about 16 ms mean, 50 ms p95, every
# cue within 100 ms); spreading over the detected speech measured 140 ms mean, 60% of cues.
MEAN_BOUND = 0.060
P95_BOUND = 0.150
CUES_WITHIN_100MS = 0.9


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> Spoken:
    ffmpeg = fx.find_ffmpeg()
    return speak(NARRATION, tmp_path_factory.mktemp("speech") / "narration.mp3", ffmpeg, lead=0.7)


def _frames(spoken: Spoken) -> int:
    return round(spoken.seconds * FPS) + FPS


def test_aligned_captions_start_with_their_words(spoken: Spoken, tmp_path: Path) -> None:
    words = align.align_voiceover(tmp_path, fx.find_ffmpeg(), spoken.path, spoken.text)
    cues = captions.scene_cues(spoken.text, words, _frames(spoken), FPS)
    errors = onset_errors(spoken, words, cues, FPS)
    # Every word with a true onset is timed but "9", which has no letters (espeak-ng gives
    # "In the" one event, so "the" has no truth of its own).
    assert len(errors.words) == len(truth_onsets(spoken)) - 1
    assert errors.mean < MEAN_BOUND, errors
    assert errors.p95 < P95_BOUND, errors
    assert errors.cues_within_100ms >= CUES_WITHIN_100MS, errors


def test_spreading_over_the_detected_speech_fails_the_same_bound(spoken: Spoken) -> None:
    # The bound above is one today's timing cannot meet: it measures what alignment adds.
    words = captions.spread_words(spoken.text, scan_audio(spoken.path).speech)
    cues = captions.scene_cues(spoken.text, words, _frames(spoken), FPS)
    errors = onset_errors(spoken, words, cues, FPS)
    assert errors.mean > MEAN_BOUND, errors
    assert errors.cues_within_100ms < CUES_WITHIN_100MS, errors


def test_a_word_missing_from_the_dictionary_is_guessed_and_one_without_letters_is_interpolated(
    spoken: Spoken, tmp_path: Path
) -> None:
    words = align.align_voiceover(tmp_path, fx.find_ffmpeg(), spoken.path, spoken.text)
    by_offset = {w.first: w for w in words}
    name = spoken.text.index("Qwillerby")
    assert name in by_offset  # placed on its own, from its guessed pronunciation
    truth = {w.first: w.start for w in spoken.truth}
    # Less precise than a dictionary word (measured 0.17 s late): the guess is only close.
    assert abs(by_offset[name].start - truth[name]) < 0.25
    nine = spoken.text.index(" 9 ") + 1
    assert nine not in by_offset
    # Its cue gives it the time between "for" and "dollars".
    tokens = captions._timed_tokens(spoken.text, words, spoken.seconds)
    index = spoken.text.split().index("9")
    before, it, after = tokens[index - 1 : index + 2]
    assert before.end <= it.start <= it.end <= after.start


def test_guessed_pronunciations_use_the_models_phones() -> None:
    assert align.guess_pronunciation("Qwillerby") == "K W IH L EH R B IY"
    assert align.guess_pronunciation("shake") == "SH AE K"
    assert align.guess_pronunciation("x") == "K S"


def test_alignment_is_deterministic_and_cached_by_audio_and_text(
    spoken: Spoken, tmp_path: Path
) -> None:
    ffmpeg = fx.find_ffmpeg()
    first = align.align_voiceover(tmp_path, ffmpeg, spoken.path, spoken.text)
    (entry,) = (tmp_path / align.CACHE_DIR).iterdir()
    assert align.align(spoken.text, align.decode_pcm(ffmpeg, spoken.path)) == first
    # A second call reads the entry: shown by an entry changed by hand coming back.
    data = json.loads(entry.read_text())
    data["words"][0][0] = 0.123
    entry.write_text(json.dumps(data))
    again = align.align_voiceover(tmp_path, ffmpeg, spoken.path, spoken.text)
    assert again[0].start == 0.123 and again[1:] == first[1:]
    # Another text is another key (the same words in capitals: the same times).
    assert align.align_voiceover(tmp_path, ffmpeg, spoken.path, spoken.text.upper()) == first
    assert len(list((tmp_path / align.CACHE_DIR).iterdir())) == 2


def test_silence_is_an_alignment_failure() -> None:
    with pytest.raises(align.AlignmentFailed, match="narration"):
        align.align(SHORT, bytes(align.SAMPLE_RATE * 2 * 3))


def test_a_playlist_is_not_decoded(tmp_path: Path) -> None:
    playlist = tmp_path / "voice.m3u8"
    tone = tmp_path / "tone.wav"
    make_tone(tone, VoiceFixture("tone.wav", 1.0), fx.find_ffmpeg())
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{tone}\n#EXT-X-ENDLIST\n")
    with pytest.raises(align.AlignmentFailed, match="whitelist"):
        align.decode_pcm(fx.find_ffmpeg(), playlist)


# --- in the plan ----------------------------------------------------------------------------


def _project(root: Path, voice: Path | None, narration: str) -> ProjectDir:
    # A tone stands in until the real voiceover (if any) is copied over it.
    project = write_project(
        root,
        [
            SceneFixture(
                (ImageFixture("a.png", 320, 180, "color:navy"),),
                VoiceFixture("v.mp3", 4.0, 300, bursts=((0.5, 3.5),)),
                narration=narration,
                motion="none",
                id="told",
            )
        ],
    )
    if voice is not None:
        shutil.copyfile(voice, project.asset("voiceovers", "v.mp3"))
    return project


OPTIONS = {"resolution": "320x180", "loudness": False, "fps": FPS}


def _plan(project: ProjectDir, ffmpeg: str, log: list[str], **captions_option: object) -> Plan:
    options = RenderOptions.model_validate({**OPTIONS, **captions_option})
    return make_plan(project, options, ffmpeg, log=log.append)


def test_validate_aligns_an_uploaded_voiceover_and_its_clip_key_follows(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    short = speak(SHORT, tmp_path / "short.mp3", ffmpeg_bin, lead=0.4)
    project = _project(tmp_path / "p", short.path, SHORT)
    log: list[str] = []
    plan = _plan(project, ffmpeg_bin, log, captions={"burnIn": True})
    assert log == []
    (scene,) = plan.scenes
    (cue,) = scene.captions
    truth = min(w.start for w in short.truth)
    assert abs(cue.start / FPS - truth) < 0.1
    assert len(cue.words) == len(SHORT.split())
    assert list((project.root / align.CACHE_DIR).iterdir())
    # The aligned times are in the clip's key: the same scene timed by spreading keys apart.
    spread = captions.scene_cues(
        SHORT, captions.spread_words(SHORT, ((0.0, scene.frames / FPS),)), scene.frames, FPS
    )
    assert spread[0].start != cue.start
    assert clip_key(plan, scene, "v") != clip_key(
        plan, dataclasses.replace(scene, captions=spread), "v"
    )
    # Karaoke draws by each word's frame: moving one word (same cue times) changes the key.
    karaoke = dataclasses.replace(scene, layers=(BurntCaptions(style="karaoke"),))
    moved = dataclasses.replace(cue, words=(*cue.words[:-1], cue.words[-1] + 1))
    assert clip_key(plan, karaoke, "v") != clip_key(
        plan, dataclasses.replace(karaoke, captions=(moved,)), "v"
    )
    # ...while a block caption's key ignores word frames it does not draw.
    assert clip_key(plan, scene, "v") == clip_key(
        plan, dataclasses.replace(scene, captions=(moved,)), "v"
    )


def test_a_voiceover_that_is_not_the_narration_falls_back_with_a_log_line(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    project = _project(tmp_path / "p", None, SHORT)  # the tone: no word in it
    log: list[str] = []
    plan = _plan(project, ffmpeg_bin, log, captions=True)
    (line,) = log
    assert line.startswith("captions: scene told: the narration could not be aligned to v.mp3")
    assert "spread over the detected speech" in line
    # Today's timing: the words spread over the tone's 0.5–3.5 s.
    (cue,) = plan.scenes[0].captions
    assert cue.start == pytest.approx(0.5 * FPS, abs=2)
    assert not (project.root / align.CACHE_DIR).exists()


def test_no_alignment_without_captions(tmp_path: Path, ffmpeg_bin: str) -> None:
    project = _project(tmp_path / "p", None, SHORT)
    log: list[str] = []
    _plan(project, ffmpeg_bin, log, captions=False)
    assert log == []


# --- through the stages, as the workers run them ----------------------------------------------


def _stage_options(**captions_option: object) -> RenderOptions:
    return RenderOptions.model_validate(
        {**fx.SMALL.model_dump(by_alias=True), "loudness": False, "chunkSeconds": 0}
        | captions_option
    )


def test_the_stages_align_once_and_a_rerender_takes_the_clip_from_the_cache(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    short = speak(SHORT, tmp_path / "short.mp3", ffmpeg_bin, lead=0.4)
    project = _project(tmp_path / "p", short.path, SHORT)
    cache = ClipCache(tmp_path / "clips")
    options = _stage_options(captions={"burnIn": True, "style": "karaoke"})
    first = render_stages(project, ffmpeg_bin, cache, options)
    assert first.outcomes == ["encoded"]
    assert not any(line.startswith("captions:") for line in first.log)
    (entry,) = (project.root / align.CACHE_DIR).iterdir()
    aligned = entry.stat().st_mtime_ns
    second = render_stages(project, ffmpeg_bin, cache, options)
    assert second.outcomes == ["cached"] and second.encodes == 0
    assert entry.stat().st_mtime_ns == aligned  # read, not aligned again
    # Block style is another picture: its clip is encoded.
    block = render_stages(project, ffmpeg_bin, cache, _stage_options(captions={"burnIn": True}))
    assert block.outcomes == ["encoded"]


def test_a_failed_alignment_is_a_job_log_line_not_a_failed_render(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    project = _project(tmp_path / "p", None, SHORT)  # the tone
    built = render_stages(project, ffmpeg_bin, None, _stage_options(captions={"burnIn": True}))
    assert built.outcomes == ["encoded"]
    assert [line for line in built.log if line.startswith("captions:")] == [
        "captions: scene told: the narration could not be aligned to v.mp3 (no word of the "
        "narration was found in the audio); its words are spread over the detected speech"
    ]
    assert (project.output / "video.mp4").is_file() and (project.output / "video.srt").is_file()
