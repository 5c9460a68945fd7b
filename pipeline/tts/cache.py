"""Synthesised speech on disk: `cache/speech/<key>.wav` and `<key>.json` in the project folder.

The key is a hash of (engine, engine version, voice, rate, text), so a re-render speaks nothing
again and a change of any of them speaks afresh. The SPEECH stage (one run per scene, before
VALIDATE) writes an entry; VALIDATE reads its length and word timings into the plan. The WAV is
written first and the JSON last, each atomically: an entry with its JSON is complete.
"""

from __future__ import annotations

import hashlib
import json
import wave
from dataclasses import dataclass
from pathlib import Path

from pipeline import tts
from pipeline.atomic import atomic_path, write_text_atomic
from pipeline.errors import PipelineError
from pipeline.options import RenderOptions
from pipeline.project import ProjectDir
from pipeline.spec import ProjectSpec, SceneSpec

CACHE_DIR = Path("cache") / "speech"


@dataclass(frozen=True)
class CachedSpeech:
    wav: Path
    seconds: float
    words: tuple[tts.Word, ...]
    exact: bool  # word times from the engine's own events


def spoken_text(scene: SceneSpec, options: RenderOptions) -> str | None:
    """What the engine says for `scene`: its narration, when it has no voiceover and TTS is on."""
    if options.tts is None or scene.voiceover is not None or scene.narration is None:
        return None
    return scene.narration.strip() or None


def key(resolved: tts.Resolved, text: str) -> str:
    identity = [resolved.engine, resolved.version, resolved.voice, resolved.rate, text]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:40]


def _paths(project: ProjectDir, name: str) -> tuple[Path, Path]:
    folder = project.root / CACHE_DIR
    return folder / f"{name}.wav", folder / f"{name}.json"


def _resolve(options: RenderOptions, index: int, scene: SceneSpec) -> tts.Resolved:
    assert options.tts is not None
    try:
        return tts.resolve(options.tts)
    except tts.TtsError as exc:
        raise PipelineError(f"tts.{exc.field}: {exc}", scene=index, scene_id=scene.id) from None


def lookup(
    project: ProjectDir, options: RenderOptions, index: int, scene: SceneSpec
) -> CachedSpeech | None:
    """The cached speech of the scene's narration, or None when it has none to speak."""
    text = spoken_text(scene, options)
    if text is None:
        return None
    wav, meta = _paths(project, key(_resolve(options, index, scene), text))
    try:
        data = json.loads(meta.read_text("utf-8"))
    except (OSError, ValueError):
        raise PipelineError(
            "the narration's speech was not synthesised (the SPEECH stage did not run)",
            scene=index,
            scene_id=scene.id,
        ) from None
    words = tuple(tts.Word(*w) for w in data["words"])
    return CachedSpeech(wav, float(data["seconds"]), words, bool(data["exact"]))


def speak_scene(
    project: ProjectDir, options: RenderOptions, spec: ProjectSpec, index: int
) -> Path | None:
    """SPEECH for one scene: synthesise its narration into the cache unless it is there."""
    if index >= len(spec.scenes):
        return None  # the spec lost scenes since the job was queued: VALIDATE plans what is there
    scene = spec.scenes[index]
    text = spoken_text(scene, options)
    if not text:
        return None  # nothing to say: VALIDATE reports an empty narration where it matters
    resolved = _resolve(options, index, scene)
    wav, meta = _paths(project, key(resolved, text))
    if meta.is_file() and wav.is_file():
        return wav
    try:
        speech = tts.engine(resolved.engine).synthesise(text, resolved.voice, resolved.rate)
    except Exception as exc:  # an engine's own failure: say which scene and engine
        raise PipelineError(
            f"{resolved.engine} could not speak the narration: {exc}",
            scene=index,
            scene_id=scene.id,
        ) from None
    if not speech.pcm:
        raise PipelineError(
            f"{resolved.engine} made no sound of the narration", scene=index, scene_id=scene.id
        )
    wav.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(wav) as tmp, wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(speech.sample_rate)
        out.writeframes(speech.pcm)
    entry = {
        "engine": resolved.engine,
        "version": resolved.version,
        "voice": resolved.voice,
        "rate": resolved.rate,
        "text": text,
        "seconds": speech.seconds,
        "sampleRate": speech.sample_rate,
        "exact": speech.exact,
        "words": [[w.start, w.end, w.first, w.length] for w in speech.words],
    }
    write_text_atomic(meta, json.dumps(entry, indent=1))
    return wav
