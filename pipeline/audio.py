"""The audio mix (AUDIO_PREP): one master track for the whole video.

Today: each scene's voiceover placed on the frame where its picture starts, padded with silence
or trimmed to exactly the scene's frame-quantised length (48 kHz: 1600 samples a frame at 30 fps),
silence where a scene has none. Music, ducking, TTS and loudness belong here too (next round).
One track for the whole video keeps AAC priming and padding away from the scene seams.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.graph import Filter, Graph
from pipeline.plan import Plan

CHANNEL_LAYOUT = "stereo"
MASTER_FILE = "audio.wav"
AAC_ARGS = ["-c:a", "aac", "-b:a", "192k", "-ar", "48000", "-ac", "2"]


def _segment(plan: Plan, index: int) -> tuple[Filter, ...]:
    """Any audio made into exactly scene `index`'s samples of 48 kHz stereo."""
    start, end = plan.sample_range(index)
    samples = end - start
    return (
        Filter.of("aresample", plan.sample_rate),
        Filter.of(
            "aformat",
            sample_fmts="fltp",
            sample_rates=plan.sample_rate,
            channel_layouts=CHANNEL_LAYOUT,
        ),
        # apad then atrim: exactly `samples` long whether the voiceover is shorter or longer.
        Filter.of("apad", whole_len=samples),
        Filter.of("atrim", end_sample=samples),
        Filter.of("asetpts", "N/SR/TB"),
    )


def master_track_graph(plan: Plan) -> Graph:
    """Each scene's voiceover (the command's inputs, in scene order) or silence, end to end."""
    graph = Graph()
    segments = []
    inputs = 0
    for scene in plan.scenes:
        if scene.voiceover is not None:
            source = graph.input(inputs, "a", 0)
            inputs += 1
        else:
            source = graph.apply(Filter.of("anullsrc", r=plan.sample_rate, cl=CHANNEL_LAYOUT))
        segments.append(graph.chain(source, _segment(plan, scene.index)))
    graph.output(graph.apply(Filter.of("concat", n=len(segments), v=0, a=1), *segments))
    return graph


def master_track_args(project_root: Path, plan: Plan, out: Path) -> list[str]:
    """FFmpeg arguments writing the whole video's audio as 48 kHz stereo PCM to `out`."""
    args: list[str] = []
    for scene in plan.scenes:
        if scene.voiceover is not None:
            args += ["-i", str(project_root / scene.voiceover)]
    compiled = master_track_graph(plan).compile()
    (track,) = compiled.maps
    return [
        *args,
        "-filter_complex",
        compiled.text,
        "-map",
        track,
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


def scene_audio_filter(plan: Plan, index: int) -> tuple[Filter, ...]:
    """Cut one scene's samples out of the master track (for output/scene_NN.mp4)."""
    start, end = plan.sample_range(index)
    return (
        Filter.of("atrim", start_sample=start, end_sample=end),
        Filter.of("asetpts", "PTS-STARTPTS"),
    )
