"""Text to speech: one small interface over the engines (`Engine`), and the engines we know.

An engine turns text into 16-bit mono PCM plus word timings when it has them, and lists its
voices. `engine(name)` loads one (once per process); `check(tts)` says what is wrong with a
`tts` option, naming its field, before anything is synthesised. Engines are imported only when
asked for, so an optional one (hibari, `pip install .[neural]`) costs nothing when unused.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pipeline.options import Tts


@dataclass(frozen=True)
class Word:
    """A spoken word: seconds from the start of the speech, and where it is in the text."""

    start: float
    end: float
    first: int  # character offset in the text, from 0
    length: int


@dataclass(frozen=True)
class Speech:
    pcm: bytes  # 16-bit little-endian mono samples
    sample_rate: int
    # Word timings in spoken order. `exact`: from the engine's own events; otherwise spread
    # over its sentences by length (still never outside the sentence that holds the word).
    words: tuple[Word, ...]
    exact: bool

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate


@dataclass(frozen=True)
class Voice:
    name: str  # what `tts.voice` takes
    description: str


class Engine(Protocol):
    name: str
    default_voice: str
    rates: tuple[int, int]  # the words-per-minute range it can speak at

    def version(self) -> str: ...

    def voices(self) -> Sequence[Voice]: ...

    def has_voice(self, voice: str) -> bool: ...

    def synthesise(self, text: str, voice: str, rate: int | None) -> Speech: ...


class TtsError(ValueError):
    """A `tts` option that cannot be spoken; `field` is the part at fault (engine, voice...)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class EngineNotInstalled(TtsError):
    """A known engine whose package is not installed; the message says how to install it."""


@dataclass(frozen=True)
class _Known:
    module: str  # ours, holding `load() -> Engine`
    package: str  # the import its library comes from
    install: str


KNOWN: dict[str, _Known] = {
    "espeak-ng": _Known("pipeline.tts.espeak", "espeakng_loader", "pip install espeakng-loader"),
    "hibari": _Known("pipeline.tts.hibari", "hibari", 'pip install "render-api[neural]"'),
}
_LOADED: dict[str, Engine] = {}
_LOCK = threading.Lock()


def installed(name: str) -> bool:
    known = KNOWN.get(name)
    return known is not None and importlib.util.find_spec(known.package) is not None


def engine(name: str) -> Engine:
    """The engine called `name`, loaded once per process; TtsError when it cannot be had."""
    known = KNOWN.get(name)
    if known is None:
        raise TtsError(
            f"unknown text-to-speech engine {name!r}; known: {', '.join(KNOWN)}", "engine"
        )
    if not installed(name):
        raise EngineNotInstalled(
            f"text-to-speech engine {name!r} is not installed; install it with `{known.install}`",
            "engine",
        )
    with _LOCK:
        if name not in _LOADED:
            _LOADED[name] = importlib.import_module(known.module).load()
        return _LOADED[name]


@dataclass(frozen=True)
class Resolved:
    """A `tts` option with the engine's defaults filled in: what a synthesis is keyed by."""

    engine: str
    version: str
    voice: str
    rate: int | None


def resolve(tts: Tts) -> Resolved:
    """Check `tts` against the engine (installed, voice known, rate in range) and fill its
    defaults; TtsError naming the field otherwise."""
    found = engine(tts.engine)
    voice = tts.voice or found.default_voice
    if not found.has_voice(voice):
        listed = ", ".join(v.name for v in list(found.voices())[:12])
        raise TtsError(f"{tts.engine} has no voice {voice!r}; some it has: {listed}", "voice")
    low, high = found.rates
    if tts.rate is not None and not low <= tts.rate <= high:
        raise TtsError(
            f"{tts.engine} speaks at {low} to {high} words per minute, not {tts.rate}", "rate"
        )
    return Resolved(tts.engine, found.version(), voice, tts.rate)
