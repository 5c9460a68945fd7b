"""Text to speech: the engines behind one interface, the speech cache, the SPEECH stage, and
speech setting a scene's length and starting on its first frame."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from pipeline import registry, tts
from pipeline.errors import PipelineError
from pipeline.ffmpeg import Runner
from pipeline.fixtures import ImageFixture, SceneFixture, VoiceFixture, write_project
from pipeline.options import RenderOptions, Tts
from pipeline.plan import make_plan
from pipeline.project import ProjectDir
from pipeline.registry import StageRun
from pipeline.render import render
from pipeline.units import scene_unit
from tests import pipeline_fixtures as fx
from tests.sound import decode, first_sound

ffmpeg_bin = fx.ffmpeg_bin

TEXT = "The harbour wakes early. Boats leave at five, and the gulls follow them out."
QUIET = RenderOptions.model_validate(
    {**fx.SMALL.model_dump(by_alias=True), "loudness": False, "resolution": "160x90"}
)


def _options(**sound: object) -> RenderOptions:
    return RenderOptions.model_validate({**QUIET.model_dump(by_alias=True), **sound})


@pytest.mark.parametrize("name", ["espeak-ng", "hibari"])
def test_each_engine_speaks_text_with_word_timings(name: str) -> None:
    engine = tts.engine(name)
    speech = engine.synthesise(TEXT, engine.default_voice, None)
    samples = np.frombuffer(speech.pcm, "<i2")
    assert speech.sample_rate == {"espeak-ng": 22050, "hibari": 24000}[name]
    assert 2.0 < speech.seconds < 10.0 and np.abs(samples).max() > 3000
    words = speech.words
    assert [TEXT[w.first : w.first + w.length] for w in words][:3] == ["The", "harbour", "wakes"]
    assert len(words) == len(TEXT.split())
    starts = [w.start for w in words]
    assert starts == sorted(starts) and all(w.end > w.start for w in words)
    assert words[-1].end <= speech.seconds + 1e-6
    assert speech.exact is (name == "espeak-ng")  # hibari's are spread over its sentences
    assert engine.version()
    assert engine.has_voice(engine.default_voice)


def test_the_rate_changes_the_pace() -> None:
    engine = tts.engine("espeak-ng")
    slow = engine.synthesise(TEXT, "en-us", 110).seconds
    fast = engine.synthesise(TEXT, "en-us", 300).seconds
    assert slow > 2 * fast


def test_voices_are_listed_and_only_packaged_ones_are_offered() -> None:
    espeak = [v.name for v in tts.engine("espeak-ng").voices()]
    assert {"en-us", "en-gb", "de", "es"} <= set(espeak)
    # hibari fetches its other voices from the network on first use: never offered here.
    assert [v.name for v in tts.engine("hibari").voices()] == ["heart"]
    assert not tts.engine("hibari").has_voice("emma")


@pytest.mark.parametrize(
    ("option", "field", "words"),
    [
        (Tts(engine="festival"), "engine", "unknown text-to-speech engine 'festival'"),
        (Tts(engine="espeak-ng", voice="xx-nowhere"), "voice", "has no voice 'xx-nowhere'"),
        (Tts(engine="hibari", voice="emma"), "voice", "has no voice 'emma'"),
        (Tts(engine="hibari", rate=400), "rate", "85 to 340 words per minute, not 400"),
    ],
)
def test_a_tts_option_that_cannot_be_spoken_names_its_field(
    option: Tts, field: str, words: str
) -> None:
    with pytest.raises(tts.TtsError) as info:
        tts.resolve(option)
    assert info.value.field == field and words in str(info.value)


def test_an_engine_not_installed_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = tts.importlib.util.find_spec
    monkeypatch.setattr(
        tts.importlib.util, "find_spec", lambda name: None if name == "hibari" else real(name)
    )
    monkeypatch.setattr(tts, "_LOADED", {})
    with pytest.raises(tts.EngineNotInstalled) as info:
        tts.resolve(Tts(engine="hibari"))
    assert info.value.field == "engine"
    assert 'pip install "render-api[neural]"' in str(info.value)


def test_threads_take_turns_with_the_process_global_espeak_api() -> None:
    # One voice, one callback, one synthesis at a time per process: without the engine's lock,
    # threads' audio and word events would land in each other's speech.
    engine = tts.engine("espeak-ng")
    texts = [" ".join(["word"] * (3 + 4 * n)) + "." for n in range(6)]
    alone = [engine.synthesise(t, "en-us", None).seconds for t in texts]
    together: dict[int, tts.Speech] = {}

    def speak(n: int) -> None:
        together[n] = engine.synthesise(texts[n], "en-us", None)

    threads = [threading.Thread(target=speak, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, text in enumerate(texts):
        assert len(together[n].words) == len(text.split())
        assert together[n].seconds == pytest.approx(alone[n], rel=0.05)


# --- the cache and the SPEECH stage -------------------------------------------------------


def _narrated(tmp_path: Path) -> ProjectDir:
    return write_project(
        tmp_path,
        [
            SceneFixture((ImageFixture("a.png", 64, 36, "color:teal"),), narration=TEXT, id="say"),
            SceneFixture(
                (ImageFixture("b.png", 64, 36, "color:navy"),),
                VoiceFixture("b.wav", 1.0),
                narration="A file speaks here.",
                id="file",
            ),
            SceneFixture((ImageFixture("c.png", 64, 36, "color:gray"),), duration=1.0, id="mute"),
        ],
    )


def _speak_all(project: ProjectDir, options: RenderOptions, ffmpeg: str) -> None:
    """Run SPEECH for each of the project's three scenes, as the canvas does."""
    speech = registry.BY_NAME["SPEECH"]
    for index in range(3):
        registry.run_stage(
            speech, StageRun(project, options, "v.mp4", Runner(ffmpeg), scene_unit(index))
        )


def test_speech_is_made_once_per_narration_and_sets_the_scene_length(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    project = _narrated(tmp_path)
    options = _options(tts="espeak-ng")
    _speak_all(project, options, ffmpeg_bin)
    cached = sorted((project.root / "cache" / "speech").iterdir())
    # Only the narration without a voiceover is spoken: one WAV and its JSON.
    assert [p.suffix for p in cached] == [".json", ".wav"]
    entry = json.loads(cached[0].read_text())
    assert (entry["engine"], entry["voice"], entry["text"]) == ("espeak-ng", "en-us", TEXT)
    assert entry["version"] == tts.engine("espeak-ng").version()
    plan = make_plan(project, options, ffmpeg_bin)
    say = plan.scenes[0]
    assert say.voiceover == str(cached[1].relative_to(project.root))
    assert say.voiceover_seconds == pytest.approx(entry["seconds"])
    # The speech's length sets the scene's, by the voiceover rule (whole frames).
    assert say.frames == round(entry["seconds"] * plan.fps)
    assert plan.scenes[1].voiceover == "input/voiceovers/b.wav"  # a file wins over TTS
    # A second SPEECH run speaks nothing: the cached files are left as they were.
    stamps = [p.stat().st_mtime_ns for p in cached]
    _speak_all(project, options, ffmpeg_bin)
    assert [p.stat().st_mtime_ns for p in cached] == stamps


def test_a_change_of_engine_voice_rate_or_text_speaks_afresh(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    project = _narrated(tmp_path)
    for tts_option in (
        "espeak-ng",
        {"engine": "espeak-ng", "voice": "en-gb"},
        {"engine": "espeak-ng", "rate": 220},
        "hibari",
    ):
        _speak_all(project, _options(tts=tts_option), ffmpeg_bin)
    assert len(list((project.root / "cache" / "speech").glob("*.wav"))) == 4


def test_validate_without_speech_says_speech_did_not_run(tmp_path: Path, ffmpeg_bin: str) -> None:
    project = _narrated(tmp_path)
    with pytest.raises(PipelineError, match=r"scene 0 .*SPEECH stage did not run"):
        make_plan(project, _options(tts="espeak-ng"), ffmpeg_bin)


def test_a_narration_without_tts_leaves_a_scene_without_length(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    project = _narrated(tmp_path)
    with pytest.raises(PipelineError, match=r"scene 0 .*renderOptions\.tts would speak"):
        make_plan(project, QUIET, ffmpeg_bin)


@pytest.mark.parametrize("engine", ["espeak-ng", "hibari"])
def test_speech_starts_on_its_scenes_first_frame(
    tmp_path: Path, ffmpeg_bin: str, engine: str
) -> None:
    project = write_project(
        tmp_path,
        [
            SceneFixture((ImageFixture("a.png", 64, 36, "color:gray"),), duration=1.0),
            SceneFixture((ImageFixture("b.png", 64, 36, "color:teal"),), narration=TEXT),
        ],
    )
    output = render(project, _options(tts=engine), "v.mp4", Runner(ffmpeg_bin))
    plan = make_plan(project, _options(tts=engine), ffmpeg_bin)
    samples, rate = decode(output)
    start = plan.scenes[1].start_frame / plan.fps
    assert np.abs(samples[: round(start * rate) - 1024]).max() == 0  # the first scene is mute
    # The engine's own leading silence is all there is before the voice: well inside a frame
    # for espeak-ng; hibari's model starts with a breath of silence of its own.
    onset = first_sound(samples, rate, start)
    assert onset < {"espeak-ng": 1 / plan.fps, "hibari": 0.4}[engine], onset
