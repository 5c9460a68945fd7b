"""Speech whose word timing is known: espeak-ng speaks a text, its word events are the truth,
and the speech is encoded as MP3 (a voiceover as users upload them) for the aligner to find
the words in. Used by the alignment and caption-style tests and by tests/bench_captions.py.
"""

from __future__ import annotations

import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

from pipeline import tts
from pipeline.captions import Cue

# Prose with a name the dictionary lacks (guessed from its letters) and a price (no letters:
# left to the neighbours' times), as narrations have them.
NARRATION = (
    "The harbour wakes before the sun, and the first boats slip out past the breakwater. "
    "Gulls follow them, calling over the grey water. "
    "By noon the market in Qwillerby is loud with voices, and fish sell for 9 dollars a box. "
    "In the evening the lights come on one by one along the quay."
)
SHORT = "The first boats slip out past the breakwater before the sun is up."


@dataclass(frozen=True)
class Spoken:
    path: Path  # the MP3
    text: str
    truth: tuple[tts.Word, ...]  # espeak-ng's word events: where each word starts
    seconds: float


def speak(text: str, path: Path, ffmpeg: str, *, lead: float = 0.0, rate: int = 175) -> Spoken:
    """`text` spoken by espeak-ng into the MP3 at `path`, after `lead` seconds of silence; its
    truth is the engine's word events moved by the lead."""
    speech = tts.engine("espeak-ng").synthesise(text, "en-us", rate)
    wav = path.with_suffix(".wav")
    silence = b"\0\0" * round(lead * speech.sample_rate)
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(speech.sample_rate)
        out.writeframes(silence + speech.pcm)
    subprocess.run(
        [
            *(ffmpeg, "-nostdin", "-y", "-loglevel", "error", "-i", str(wav)),
            *("-c:a", "libmp3lame", "-b:a", "64k", str(path)),
        ],
        check=True,
    )
    wav.unlink()
    truth = tuple(tts.Word(w.start + lead, w.end + lead, w.first, w.length) for w in speech.words)
    return Spoken(path, text, truth, lead + speech.seconds)


def truth_onsets(spoken: Spoken) -> dict[int, float]:
    """The time each whitespace word of the text starts (its first spoken word), by its
    character offset."""
    onsets: dict[int, float] = {}
    at = 0
    for token in spoken.text.split():
        first = spoken.text.index(token, at)
        at = first + len(token)
        inside = [w.start for w in spoken.truth if first <= w.first < at]
        if inside:
            onsets[first] = min(inside)
    return onsets


@dataclass(frozen=True)
class OnsetErrors:
    """How far captions start from the words they show, seconds."""

    words: tuple[float, ...]  # |timed onset − true onset| per word
    cues: tuple[float, ...]  # |cue start − its first word's true onset| per cue

    @property
    def mean(self) -> float:
        return sum(self.words) / len(self.words)

    @property
    def p95(self) -> float:
        ordered = sorted(self.words)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    @property
    def cues_within_100ms(self) -> float:
        return sum(e <= 0.1 for e in self.cues) / len(self.cues)


def onset_errors(
    spoken: Spoken, words: tuple[tts.Word, ...], cues: tuple[Cue, ...], fps: int
) -> OnsetErrors:
    """Word onsets of `words` (aligned or spread) and cue starts against the truth. A word is
    judged by the first timed word inside its whitespace token."""
    truth = truth_onsets(spoken)
    timed: dict[int, float] = {}
    at = 0
    for token in spoken.text.split():
        first = spoken.text.index(token, at)
        at = first + len(token)
        inside = [w.start for w in words if first <= w.first < at]
        if inside:
            timed[first] = min(inside)
    word_errors = tuple(abs(timed[k] - truth[k]) for k in truth if k in timed)
    starts = sorted(truth.values())
    firsts = []
    ordered = sorted(truth.items())
    n = 0
    for cue in cues:
        # A cue's first word is the n-th word of the text: cues hold the words in order.
        firsts.append(abs(cue.start / fps - ordered[n][1]))
        n += sum(len(line.split()) for line in cue.lines)
    del starts
    return OnsetErrors(word_errors, tuple(firsts))
