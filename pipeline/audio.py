"""The audio mix (AUDIO_PREP): one master track for the whole video.

Today: each scene's voiceover placed on the frame where its picture starts, padded with silence
or trimmed to exactly the scene's frame-quantised length (48 kHz: 1600 samples a frame at 30 fps),
silence where a scene has none. Music, ducking, TTS and loudness belong here too (next round).
One track for the whole video keeps AAC priming and padding away from the scene seams.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.plan import Plan

CHANNEL_LAYOUT = "stereo"
MASTER_FILE = "audio.wav"
AAC_ARGS = ["-c:a", "aac", "-b:a", "192k", "-ar", "48000", "-ac", "2"]


def _segment(plan: Plan, index: int, source: str) -> str:
    start, end = plan.sample_range(index)
    samples = end - start
    fmt = (
        f"aformat=sample_fmts=fltp:sample_rates={plan.sample_rate}:channel_layouts={CHANNEL_LAYOUT}"
    )
    # apad then atrim: exactly `samples` long whether the voiceover is shorter or longer.
    return (
        f"{source}aresample={plan.sample_rate},{fmt},"
        f"apad=whole_len={samples},atrim=end_sample={samples},asetpts=N/SR/TB"
    )


def master_track_args(project_root: Path, plan: Plan, out: Path) -> list[str]:
    """FFmpeg arguments writing the whole video's audio as 48 kHz stereo PCM to `out`."""
    args: list[str] = []
    parts: list[str] = []
    inputs = 0
    for scene in plan.scenes:
        if scene.voiceover is not None:
            args += ["-i", str(project_root / scene.voiceover)]
            source = f"[{inputs}:a:0]"
            inputs += 1
        else:
            source = f"anullsrc=r={plan.sample_rate}:cl={CHANNEL_LAYOUT},"
        parts.append(f"{_segment(plan, scene.index, source)}[a{scene.index}]")
    labels = "".join(f"[a{scene.index}]" for scene in plan.scenes)
    parts.append(f"{labels}concat=n={len(plan.scenes)}:v=0:a=1[a]")
    return [
        *args,
        "-filter_complex",
        ";".join(parts),
        "-map",
        "[a]",
        "-c:a",
        "pcm_s16le",
        "-ar",
        str(plan.sample_rate),
        "-ac",
        "2",
        "-f",
        "wav",
        str(out),
    ]


def scene_audio_filter(plan: Plan, index: int) -> str:
    """Cut one scene's samples out of the master track (for output/scene_NN.mp4)."""
    start, end = plan.sample_range(index)
    return f"atrim=start_sample={start}:end_sample={end},asetpts=PTS-STARTPTS"
