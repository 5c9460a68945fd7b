"""What the image must be able to do, checked when it is built (and by tests/e2e/test_deploy.py).

    python docker/smoke.py

- FFmpeg: the imageio-ffmpeg wheel's binary runs here and has every encoder, filter and
  muxer the renders use (`pipeline.capabilities.NEEDS`).
- Text to speech: the default engine's library (the espeakng-loader wheel's libespeak-ng,
  loaded through ctypes) starts with its bundled voice data and speaks a word, with no system
  espeak-ng. Skipped only when that wheel is not installed at all.

Exit status 1 with a message naming what is missing.
"""

from __future__ import annotations

import ctypes
import importlib.util
import sys

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_INITIALIZE_DONT_EXIT = 0x8000
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1


def check_ffmpeg() -> str:
    from pipeline.capabilities import require_ffmpeg
    from pipeline.ffmpeg import find_ffmpeg

    ffmpeg = require_ffmpeg(find_ffmpeg())
    return f"FFmpeg {ffmpeg.release} at {ffmpeg.binary}: every encoder and filter present"


def check_espeak() -> str:
    if importlib.util.find_spec("espeakng_loader") is None:
        return "espeakng-loader not installed: TTS check skipped"
    import espeakng_loader

    lib = ctypes.CDLL(str(espeakng_loader.get_library_path()))
    # espeak_Initialize takes the folder that *contains* espeak-ng-data.
    data_parent = str(espeakng_loader.get_data_path()).rsplit("/", 1)[0]
    rate = lib.espeak_Initialize(
        AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent.encode(), ESPEAK_INITIALIZE_DONT_EXIT
    )
    if rate <= 0:
        raise RuntimeError(f"espeak_Initialize failed ({rate}) with data in {data_parent}")
    samples = 0
    callback_type = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
    )

    def collect(_wav: object, count: int, _events: object) -> int:
        nonlocal samples
        samples += max(count, 0)
        return 0

    callback = callback_type(collect)
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(b"en-us") != 0:
        raise RuntimeError("espeak-ng has no voice en-us in its bundled data")
    text = b"Render check."
    lib.espeak_Synth(text, len(text) + 1, 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
    lib.espeak_Synchronize()
    if samples < rate // 10:
        raise RuntimeError(f"espeak-ng spoke only {samples} samples")
    return f"espeak-ng: {samples} samples at {rate} Hz"


def main() -> int:
    for check in (check_ffmpeg, check_espeak):
        try:
            print(check())
        except Exception as exc:
            print(f"error: {check.__name__}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
