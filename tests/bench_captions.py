"""`make bench`'s captions section: how close captions start to the spoken word.

Narrations are spoken by espeak-ng (its word events are the truth), with a lead of silence,
encoded as MP3 as users upload voiceovers, then timed two ways in the same run:
- aligned: the narration forced-aligned to the MP3 (pipeline/align.py), as VALIDATE does now;
- spread: the baseline, the words spread by length over the speech detected in the MP3 (what
  VALIDATE did before, and still does when alignment fails).
For each: word-onset error (mean, 95th percentile) and the share of cues starting within
100 ms of their first word; for alignment, its wall time against the audio's length.

    python -m tests.bench_captions [--rates 140,175,220] [--fps 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pipeline import align, captions
from pipeline.ffmpeg import find_ffmpeg
from pipeline.probe import scan_audio
from tests.spoken import NARRATION, SHORT, OnsetErrors, onset_errors, speak

TEXTS = (
    NARRATION,
    SHORT,
    "Every morning the fishing boats leave before the sun is up, and the gulls follow them "
    "far beyond the breakwater and the old stone lighthouse. By noon the market is loud.",
    "Render API turns a project's scenes into a narrated video. You upload a spec and assets, "
    "the workers render the scenes in parallel, and you download the finished file.",
)


def _pooled(found: list[OnsetErrors]) -> OnsetErrors:
    return OnsetErrors(
        tuple(e for f in found for e in f.words), tuple(e for f in found for e in f.cues)
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench_captions")
    parser.add_argument("--rates", default="140,175,220", help="espeak-ng words per minute")
    parser.add_argument("--fps", type=int, default=30)
    args = parser.parse_args()
    ffmpeg = find_ffmpeg()
    aligned: list[OnsetErrors] = []
    spread: list[OnsetErrors] = []
    failures: list[str] = []
    only_aligned: list[OnsetErrors] = []
    audio_seconds = align_seconds = decode_seconds = 0.0
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for rate in (int(r) for r in args.rates.split(",")):
            for n, text in enumerate(TEXTS):
                spoken = speak(text, root / f"v{rate}-{n}.mp3", ffmpeg, lead=0.5, rate=rate)
                frames = round(spoken.seconds * args.fps) + args.fps
                started = time.perf_counter()
                pcm = align.decode_pcm(ffmpeg, spoken.path)
                decoded = time.perf_counter()
                spread_words = captions.spread_words(text, scan_audio(spoken.path).speech)
                try:
                    words = align.align(text, pcm)
                except align.AlignmentFailed as exc:
                    # What VALIDATE does then: today's spreading, and a log line.
                    failures.append(f"{rate} wpm, narration {n}: {exc}")
                    words = spread_words
                decode_seconds += decoded - started
                align_seconds += time.perf_counter() - decoded
                audio_seconds += spoken.seconds
                cues = captions.scene_cues(text, words, frames, args.fps)
                aligned.append(onset_errors(spoken, words, cues, args.fps))
                if words is not spread_words:
                    only_aligned.append(aligned[-1])
                spread_cues = captions.scene_cues(text, spread_words, frames, args.fps)
                spread.append(onset_errors(spoken, spread_words, spread_cues, args.fps))
    a, s, o = _pooled(aligned), _pooled(spread), _pooled(only_aligned)
    print(
        f"\ncaptions: {len(TEXTS)} narrations at {args.rates} wpm, {len(a.words)} words, "
        f"{len(a.cues)} cues, {audio_seconds:.1f} s of MP3 speech (espeak-ng word events as "
        f"truth), {args.fps} fps\n"
    )
    header = f"{'timing':<26} {'mean ms':>8} {'p95 ms':>7} {'cues ≤100 ms':>13} {'/ spread':>9}"
    print(header)
    print("-" * len(header))
    rows = (("spread over speech (was)", s), ("aligned, else spread", a), ("those aligned", o))
    for name, e in rows:
        print(
            f"{name:<26} {e.mean * 1000:8.1f} {e.p95 * 1000:7.1f} "
            f"{e.cues_within_100ms * 100:12.1f}% {e.mean / s.mean:9.2f}"
        )
    print(
        f"\nalignment: {align_seconds:.2f} s wall for {audio_seconds:.1f} s of audio (real-time "
        f"factor {align_seconds / audio_seconds:.3f}, the model's load included), FFmpeg's "
        f"decode to 16 kHz {decode_seconds:.2f} s; "
        f"median per-narration mean error {statistics.median(e.mean for e in aligned) * 1e3:.1f} ms"
    )
    print(
        f"alignments that failed (spread instead): {len(failures)} of {len(aligned)}"
        + "".join(f"\n  {line}" for line in failures)
    )
    print(
        "targets: aligned mean < 60 ms and ≥ 90% of cues within 100 ms "
        "(tests/pipeline/test_align.py)"
    )


if __name__ == "__main__":
    main()
