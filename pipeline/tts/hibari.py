"""hibari, a small neural voice distilled from Kokoro (`pip install .[neural]`, Apache-2.0).

Only the voices inside the wheel are offered: hibari downloads its other voices on first use,
and a render must never reach for the network. It gives no word timings, so each sentence is
synthesised on its own (its span is then known) and its words are spread over the part of it
that holds sound, by length.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

import hibari
import numpy as np
from hibari import voices as hibari_voices

from pipeline.tts import Speech, Voice, Word

# hibari's `speed` 1.0 is its teacher's pace, about this many words a minute.
NATURAL_RATE = 170
_WORD = re.compile(r"\S+")
_QUIET = 0.01  # |sample| under this at a sentence's ends is the model's own silence


class Hibari:
    name = "hibari"
    default_voice = hibari_voices.DEFAULT
    rates = (NATURAL_RATE // 2, NATURAL_RATE * 2)  # speed 0.5 to 2.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, hibari.Hibari] = {}
        self.sample_rate = int(hibari.SAMPLE_RATE)

    def version(self) -> str:
        return str(hibari.__version__)

    def voices(self) -> Sequence[Voice]:
        return tuple(
            Voice(name, f"{v['language']} {v['gender']} ({v['accent']})")
            for name, v in hibari_voices.VOICES.items()
            if v.get("bundled")
        )

    def has_voice(self, voice: str) -> bool:
        return any(v.name == voice for v in self.voices())

    def _model(self, voice: str) -> hibari.Hibari:
        if voice not in self._models:
            if not self.has_voice(voice):
                raise ValueError(f"hibari has no voice {voice!r} in its package")
            self._models[voice] = hibari.Hibari(voice=voice, threads=1)
        return self._models[voice]

    def synthesise(self, text: str, voice: str, rate: int | None) -> Speech:
        speed = (rate or NATURAL_RATE) / NATURAL_RATE
        with self._lock:
            model = self._model(voice)
            parts: list[np.ndarray] = []
            words: list[Word] = []
            clock = 0
            cursor = 0
            for sentence in model.split_sentences(text):
                first = text.find(sentence, cursor)
                first = first if first >= 0 else cursor
                cursor = first + len(sentence)
                audio = model(sentence, speed, seed=0)
                words += _spread(sentence, first, audio, clock, self.sample_rate)
                parts.append(audio)
                clock += len(audio)
        samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        return Speech(pcm, self.sample_rate, tuple(words), False)


def _spread(sentence: str, offset: int, audio: np.ndarray, clock: int, rate: int) -> list[Word]:
    """The sentence's words laid over its sounding part, each as long as its characters."""
    tokens = list(_WORD.finditer(sentence))
    if not tokens or len(audio) == 0:
        return []
    loud = np.flatnonzero(np.abs(audio) > _QUIET)
    start, end = (int(loud[0]), int(loud[-1]) + 1) if loud.size else (0, len(audio))
    weights = [len(t.group()) + 1 for t in tokens]
    total = sum(weights)
    words, done = [], 0
    for token, weight in zip(tokens, weights, strict=True):
        a = start + (end - start) * done / total
        done += weight
        b = start + (end - start) * done / total
        words.append(
            Word((clock + a) / rate, (clock + b) / rate, offset + token.start(), len(token.group()))
        )
    return words


def load() -> Hibari:
    return Hibari()
