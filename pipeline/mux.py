"""Muxing finished streams into MP4s without re-encoding the video (CONCAT, and each scene's
build for its `scene_NN.mp4`).

Both commands read the video as input 0 and the master track as input 1 and copy the video, with
the index (moov) first so players can start before the download ends. The join copies the
master's AAC (AUDIO_PREP encoded it once); a scene's file encodes its own cut of the master.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.audio import AAC_ARGS, scene_audio_filter
from pipeline.graph import chain_text
from pipeline.plan import Plan


def _video_with_audio(out: Path, audio: Sequence[str], subtitles: Sequence[str] = ()) -> list[str]:
    """The output half: input 0's video copied, input 1's audio as `audio` says, and any
    `subtitles` maps and options, into `out`."""
    return [
        *("-map", "0:v:0", "-map", "1:a:0", *subtitles, "-c:v", "copy"),
        *audio,
        *("-movflags", "+faststart", "-f", "mp4", str(out)),
    ]


def concat_args(
    listing: Path,
    master_aac: Path,
    out: Path,
    subtitles: Path | None = None,
    language: str = "und",
) -> list[str]:
    """The scene clips of an ffconcat `listing` joined by stream copy, under the whole track
    (`master_aac`, copied too: the encodes are AUDIO_PREP's and the scene builds'); with
    `subtitles` (an SRT file) a soft `mov_text` track too, tagged with its ISO 639-2
    `language` and off until the viewer turns it on."""
    captions: list[str] = []
    if subtitles is not None:
        captions = [
            *("-map", "2:s:0", "-c:s", "mov_text"),
            *("-metadata:s:s:0", f"language={language}", "-disposition:s:0", "0"),
        ]
    return [
        *("-f", "concat", "-safe", "0", "-i", str(listing)),
        *("-i", str(master_aac)),
        *(("-f", "srt", "-i", str(subtitles)) if subtitles is not None else ()),
        *_video_with_audio(out, ("-c:a", "copy"), subtitles=captions),
    ]


def scene_output_args(
    plan: Plan, index: int, clip: Path, master_audio: Path, out: Path
) -> list[str]:
    """One scene's clip (a file, or an .ffconcat listing of its chunks) with its own samples
    cut from the master track (output/scene_NN.mp4)."""
    listed = ("-f", "concat", "-safe", "0") if clip.suffix == ".ffconcat" else ()
    return [
        *(*listed, "-i", str(clip), "-i", str(master_audio)),
        *_video_with_audio(out, ("-af", chain_text(scene_audio_filter(plan, index)), *AAC_ARGS)),
    ]
