"""What a render's sound and caption options ask of its spec, checked before it is queued.

The API answers a problem here with 422 naming the field, before any file is written; VALIDATE
would find the same problems later, with less to say about the field.
"""

from __future__ import annotations

from pipeline import asr, tts
from pipeline.options import RenderOptions
from pipeline.problems import Problem
from pipeline.spec import ProjectSpec

__all__ = ["Problem", "captions_without_narration", "check"]


def _said(text: str | None) -> bool:
    return bool(text and text.strip())


def check(spec: ProjectSpec, options: RenderOptions) -> Problem | None:
    """The first thing that stops these options from rendering this spec's sound, or None."""
    if options.captions.enabled and options.captions.transcribe and not asr.installed():
        return Problem(
            "asr_not_installed", str(asr.AsrNotInstalled()), "renderOptions.captions.transcribe"
        )
    if options.tts is not None:
        try:
            tts.resolve(options.tts)
        except tts.EngineNotInstalled as exc:
            return Problem("tts_not_installed", str(exc), f"renderOptions.tts.{exc.field}")
        except tts.TtsError as exc:
            return Problem("invalid_tts", str(exc), f"renderOptions.tts.{exc.field}")
    for index, scene in enumerate(spec.scenes):
        if scene.voiceover is not None or scene.duration is not None:
            continue
        if options.tts is None:
            if _said(scene.narration):
                return Problem(
                    "no_voice",
                    f"scene {index} has a narration but no voiceover or duration: set "
                    'renderOptions.tts (e.g. "espeak-ng") to speak it',
                    "renderOptions.tts",
                )
            continue  # neither: the spec's own problem, which VALIDATE words
        if not _said(scene.narration):
            return Problem(
                "empty_narration",
                f"scene {index} has no voiceover or duration, so its narration is spoken, but "
                "the narration is empty",
                f"scenes[{index}].narration",
            )
    return captions_without_narration(spec, options)


def captions_without_narration(spec: ProjectSpec, options: RenderOptions) -> Problem | None:
    """Captions asked for, and no scene has a narration to make them from (nor, with
    `transcribe`, a voiceover to recognise them in)."""
    heard = options.captions.transcribe and any(s.voiceover is not None for s in spec.scenes)
    if options.captions.enabled and not heard and not any(_said(s.narration) for s in spec.scenes):
        return Problem(
            "no_narration",
            "captions are made from the scenes' narration, and no scene has one",
            "renderOptions.captions",
        )
    return None
