"""Forced alignment: a scene's narration placed on its uploaded voiceover, word by word.

pocketsphinx (its US English model and dictionary ship in the wheel; nothing is downloaded) is
given the words and the voiceover decoded by our FFmpeg to 16 kHz mono 16-bit PCM, and says
where each word is spoken. Measured here on espeak-ng speech encoded as MP3: about 15 ms mean
word-onset error at a real-time factor of about 0.015 (tests/bench_captions.py).

Words missing from its dictionary: a word of letters (a name, "Qwzxplk") is added with a
pronunciation guessed from its letters, so it keeps its own place in the audio; a part with no
letters ("9.99", "$") is left out of the alignment, and the captions give it the times between
its neighbours (`pipeline.captions`).

Alignment is deterministic (the same audio and text give the same times) and cached in the
project folder as `cache/align/<key>.json`, keyed by the voiceover's bytes, the text and the
aligner's version, so a re-render aligns nothing again. Every word must be placed: when no
beams place them all (silence, a voiceover that is not the narration, very fast speech)
`AlignmentFailed` says why, and the caller falls back to spreading the words over the
detected speech.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

from pipeline.atomic import file_sha256, write_text_atomic
from pipeline.tts import Word

CACHE_DIR = Path("cache") / "align"
SAMPLE_RATE = 16000
# Bumped when the way words are picked, guessed or placed changes: cached alignments then miss.
VERSION = 1
# Longest voiceover aligned in one piece (the measured range was clips up to ~30 s; longer ones
# are still aligned, this only bounds the PCM held in memory: 10 min is 19 MB).
MAX_SECONDS = 600.0
# Input options for a file we did not make: local files only, and only the demuxers of the
# voiceover formats we accept (WAV, MP3, MP4/M4A, OGG/Opus, FLAC, ADTS AAC, Matroska/WebM),
# so no playlist or concat script inside it can make FFmpeg read another file or the network.
_INPUT = (
    *("-protocol_whitelist", "file"),
    *("-format_whitelist", "wav,mp3,mov,ogg,flac,aac,matroska"),
)
# The search beams tried in turn until every word is placed: pocketsphinx's defaults, then
# wider ones. With the defaults, whole narrations of plain prose at 175 words a minute found no
# path to their last word; the widest alone placed fewer words on other ones.
_BEAMS: tuple[dict[str, float], ...] = (
    {"beam": 1e-48, "wbeam": 7e-29, "pbeam": 1e-48},
    {"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80},
    {"beam": 1e-120, "wbeam": 1e-100, "pbeam": 1e-120},
)
_LETTERS = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")


class AlignmentFailed(Exception):
    """The words could not be placed on the audio; the message says why."""


def decode_pcm(ffmpeg: str, path: Path, timeout: float = 120.0) -> bytes:
    """The file's first audio stream as 16 kHz mono 16-bit little-endian PCM."""
    args = [
        *(ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"),
        *(*_INPUT, "-i", str(path)),
        *("-map", "0:a:0", "-vn", "-t", str(MAX_SECONDS)),
        *("-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le", "-f", "s16le", "pipe:1"),
    ]
    try:
        done = subprocess.run(args, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AlignmentFailed(f"could not decode {path.name}: {exc}") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[:1] or ["?"]
        raise AlignmentFailed(f"could not decode {path.name}: {reason[0]}")
    return done.stdout


def _spoken_words(text: str) -> list[tuple[str, int, int]]:
    """The words to align: runs of letters (with inner apostrophes), lower case, each with its
    character offset and length in `text`. Digits and symbols are left out."""
    return [(m.group().lower(), m.start(), len(m.group())) for m in _LETTERS.finditer(text)]


# A pronunciation from letters, for words the dictionary lacks: crude, but it gives the
# aligner a word of about the right length and sounds to place between its neighbours.
_DIGRAPHS = {
    "ch": "CH", "sh": "SH", "th": "TH", "ph": "F", "ng": "NG", "ck": "K", "qu": "K W",
    "wh": "W", "ee": "IY", "ea": "IY", "oo": "UW", "ou": "AW", "ai": "EY", "ay": "EY",
    "oa": "OW", "oi": "OY", "au": "AO", "aw": "AO",
}  # fmt: skip
_LETTER = {
    "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH",
    "i": "IH", "j": "JH", "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P",
    "q": "K", "r": "R", "s": "S", "t": "T", "u": "AH", "v": "V", "w": "W", "x": "K S",
    "y": "IY", "z": "Z",
}  # fmt: skip


def guess_pronunciation(word: str) -> str:
    """Phones (the CMU set the model uses) for a word of letters, read letter by letter."""
    letters = word.lower().replace("'", "")
    phones: list[str] = []
    i = 0
    while i < len(letters):
        pair = letters[i : i + 2]
        if pair in _DIGRAPHS:
            phones += _DIGRAPHS[pair].split()
            i += 2
            continue
        if i > 0 and letters[i] == letters[i - 1] and letters[i] not in "aeiou":
            i += 1  # a doubled consonant is one sound
            continue
        if letters[i] == "e" and i == len(letters) - 1 and i > 0:
            i += 1  # a final e is silent
            continue
        phones += _LETTER[letters[i]].split()
        i += 1
    return " ".join(phones) or "AH"


class _Aligner:
    """One pocketsphinx decoder a process, loaded on first use (about 0.4 s), used by one
    thread at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decoder: Any = None
        self._beams: dict[str, float] | None = None

    def align(self, text: str, pcm: bytes) -> tuple[Word, ...]:
        wanted = _spoken_words(text)
        if not wanted:
            raise AlignmentFailed("the narration has no words to align")
        if len(pcm) < SAMPLE_RATE // 5:
            raise AlignmentFailed("the audio is shorter than a tenth of a second")
        placed = 0
        with self._lock:
            for beams in _BEAMS:
                found = self._search(wanted, pcm, beams)
                words = _placed(wanted, found)
                if len(words) == len(wanted):
                    return words
                placed = max(placed, len(words))
        if not placed:
            raise AlignmentFailed("no word of the narration was found in the audio")
        raise AlignmentFailed(
            f"only the first {placed} of the narration's {len(wanted)} words were found in "
            "the audio"
        )

    def _search(
        self, wanted: list[tuple[str, int, int]], pcm: bytes, beams: dict[str, float]
    ) -> list[tuple[str, float, float]]:
        decoder = self._load(beams)
        for word, _, _ in wanted:
            if decoder.lookup_word(word) is None:
                decoder.add_word(word, guess_pronunciation(word), True)
        decoder.set_align_text(" ".join(word for word, _, _ in wanted))
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        frate = int(decoder.config["frate"])
        return [
            (s.word, s.start_frame / frate, (s.end_frame + 1) / frate)
            for s in (decoder.seg() or ())
        ]

    def _load(self, beams: dict[str, float]) -> Any:
        if self._decoder is None:
            from pocketsphinx import Decoder  # a 29 MB wheel: loaded only when aligning

            self._decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", **beams)
        elif self._beams != beams:
            # Reloads the model (about 0.4 s idle): only after an alignment that needed wider
            # beams, which are rare. The result depends on the beams alone, not on history.
            for name, value in beams.items():
                self._decoder.config[name] = value
            self._decoder.reinit()
        self._beams = beams
        return self._decoder


def _placed(
    wanted: list[tuple[str, int, int]], found: list[tuple[str, float, float]]
) -> tuple[Word, ...]:
    """The aligner's segments matched to the wanted words in order (its fillers and silences
    skipped; "word(2)" is an alternative pronunciation of "word"). A search that did not reach
    the last word returns the path it had: the first words, the last of them stretched over
    the rest."""
    words: list[Word] = []
    at = 0
    for name, start, end in found:
        base = name.split("(", 1)[0]
        if base.startswith(("<", "[")):
            continue
        for n in range(at, len(wanted)):
            if wanted[n][0] == base:
                words.append(Word(start, end, wanted[n][1], wanted[n][2]))
                at = n + 1
                break
    return tuple(words)


_ALIGNER = _Aligner()


def align(text: str, pcm: bytes) -> tuple[Word, ...]:
    """`text`'s words placed on `pcm` (16 kHz mono 16-bit), seconds from its start, each with
    its character offset in `text`; AlignmentFailed when they cannot be."""
    return _ALIGNER.align(text, pcm)


def version() -> str:
    try:
        found = metadata.version("pocketsphinx")
    except metadata.PackageNotFoundError:
        found = "absent"
    return f"pocketsphinx {found}, align {VERSION}"


def key(audio_digest: str, text: str) -> str:
    identity = [version(), audio_digest, text]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:40]


def align_voiceover(root: Path, ffmpeg: str, path: Path, text: str) -> tuple[Word, ...]:
    """`text` aligned to the voiceover at `path`, from the project's cache (`root`/cache/align)
    or aligned now and cached; AlignmentFailed when it cannot be (failures are not cached:
    an aligner fixed later may do better)."""
    entry = root / CACHE_DIR / f"{key(file_sha256(path), text)}.json"
    try:
        data = json.loads(entry.read_text("utf-8"))
        return tuple(Word(*w) for w in data["words"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    words = align(text, decode_pcm(ffmpeg, path))
    entry.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "aligner": version(),
        "text": text,
        "words": [[w.start, w.end, w.first, w.length] for w in words],
    }
    write_text_atomic(entry, json.dumps(document, indent=1))
    return words
