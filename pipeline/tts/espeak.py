"""eSpeak NG through ctypes, from the `espeakng-loader` wheel (the library and its data).

No Python binding works with that wheel (one runs a command-line program it does not ship, the
other does not build), so the C API is called directly. That API is process-global (one voice,
one callback, one synthesis at a time), hence the lock: threads of one process take turns.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import espeakng_loader

from pipeline.tts import Speech, Voice, Word

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE = 1
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_SENTENCE, _EVENT_END = 0, 1, 2, 5
DEFAULT_RATE = 175


class _Event(ctypes.Structure):
    # espeak_EVENT of speak_lib.h: type, unique_identifier, text_position (1-based), length,
    # audio_position (ms), sample, user_data, and an 8-byte union (number, name or string).
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


class _VoiceInfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class EspeakNg:
    name = "espeak-ng"
    default_voice = "en-us"
    rates = (80, 450)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_VoiceInfo))
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        # The folder that *contains* espeak-ng-data.
        data = str(Path(espeakng_loader.get_data_path()).parent).encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise RuntimeError(f"espeak-ng did not initialise (status {rate})")
        self._lib = lib
        self.sample_rate = rate
        self._pcm = bytearray()
        self._events: list[tuple[int, int, int, int]] = []
        # Kept on the instance: ctypes must not collect a callback C still holds.
        self._callback = _CALLBACK(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: Any, count: int, events: Any) -> int:
        if wav and count > 0:
            self._pcm += ctypes.string_at(wav, count * 2)
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            self._events.append((e.type, e.text_position, e.length, e.sample))
            i += 1
        return 0

    def version(self) -> str:
        return (self._lib.espeak_Info(None) or b"").decode()

    @cached_property
    def _voices(self) -> tuple[Voice, ...]:
        found: dict[str, Voice] = {}
        table = self._lib.espeak_ListVoices(None)
        i = 0
        while table[i]:
            info = table[i].contents
            # `languages`: a priority byte, then a NUL-terminated name; the first is the voice's.
            raw = ctypes.string_at(info.languages, 64) if info.languages else b""
            language = raw[1:].split(b"\0", 1)[0].decode(errors="replace")
            if language and language not in found:
                found[language] = Voice(language, (info.name or b"").decode(errors="replace"))
            i += 1
        return tuple(sorted(found.values(), key=lambda v: v.name))

    def voices(self) -> Sequence[Voice]:
        return self._voices

    def has_voice(self, voice: str) -> bool:
        return any(v.name == voice for v in self._voices)

    def synthesise(self, text: str, voice: str, rate: int | None) -> Speech:
        encoded = text.encode("utf-8")
        with self._lock:
            # By language (what `voices()` lists): voice files are named otherwise ("gmw/en"
            # speaks en-gb).
            wanted = _VoiceInfo(languages=voice.encode())
            if self._lib.espeak_SetVoiceByProperties(ctypes.byref(wanted)) != 0:
                raise ValueError(f"espeak-ng has no voice {voice!r}")
            self._lib.espeak_SetParameter(_RATE, rate or DEFAULT_RATE, 0)
            self._pcm, self._events = bytearray(), []
            status = self._lib.espeak_Synth(
                encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            pcm, events = bytes(self._pcm), self._events
            self._pcm, self._events = bytearray(), []
        if status != 0:
            raise RuntimeError(f"espeak-ng could not speak the text (status {status})")
        return Speech(pcm, self.sample_rate, _words(events, len(pcm) // 2, self.sample_rate), True)


def _words(events: list[tuple[int, int, int, int]], total: int, rate: int) -> tuple[Word, ...]:
    """Word events → words; each ends where the next word or sentence end begins."""
    marks = [
        (kind, pos, length, sample)
        for kind, pos, length, sample in events
        if kind in (_EVENT_WORD, _EVENT_END, _EVENT_SENTENCE)
    ]
    words = []
    for n, (kind, pos, length, sample) in enumerate(marks):
        if kind != _EVENT_WORD or length <= 0:
            continue
        later = [
            s for k, _, _, s in marks[n + 1 :] if k in (_EVENT_WORD, _EVENT_END) and s > sample
        ]
        end = later[0] if later else total
        words.append(Word(sample / rate, end / rate, pos - 1, length))
    return tuple(words)


def load() -> EspeakNg:
    return EspeakNg()
