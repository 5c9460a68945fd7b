"""The audio mix (AUDIO_PREP): one master track for the whole video, in one graph.

Each scene's voice (its voiceover file, or the speech SPEECH made of its narration) is placed on
the frame where its picture starts, padded with silence or trimmed to exactly the scene's
frame-quantised length (48 kHz: 1600 samples a frame at 30 fps), silence where a scene has
none. Under it, the music bed: looped without a click (its tail cross-faded into its head, the
resulting tile repeated), trimmed to the video, faded in and out, and ducked under speech by an
envelope drawn from where the plan says the voice sounds. One track for the whole video keeps
AAC priming and padding away from the scene seams.

Loudness (renderOptions.loudness): the mix is written as float with its EBU R128 integrated
loudness and true peak measured on the way (`ebur128`, metadata printed to a file), then a
linear gain brings it to the target, with a limiter only when the gain would push the true
peak over its mark. A limiter takes loudness that nothing before it can see, so a limited pass
is measured as it writes the master and its gain corrected (`next_gain`) in a few more light
passes over the float mix; a master near the peak ceiling is checked as AAC. One-pass
`loudnorm` is dynamic: on gappy speech over a bed it missed the target and made the bed swing
(NOTES.md).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline import timeline
from pipeline.graph import Filter, Graph, Stream
from pipeline.plan import MusicPlan, Plan
from pipeline.probe import audio_guard

CHANNEL_LAYOUT = "stereo"
MASTER_FILE = "audio.wav"
# The master as the video's AAC track, encoded once by AUDIO_PREP (beside the scene builds on
# the command line) so that CONCAT, the last thing before the video exists, only copies it.
MASTER_AAC_FILE = "audio.m4a"
MIX_FILE = "mix.wav"  # the first loudness pass's float mix
STATS_FILE = "loudness.txt"
# The "fast" coder: twice as fast as the default "twoloop" here (a 4-minute narrated master:
# 5.4 s against 11.4 s), with the same loudness and no more error against the master at 192k.
AAC_ARGS = ["-c:a", "aac", "-aac_coder", "fast", "-b:a", "192k", "-ar", "48000", "-ac", "2"]

TRUE_PEAK_CEILING = -1.0  # dBTP, of the AAC in the finished video
# The master's true peak is held PEAK_MARGIN under the ceiling (its mark), for the AAC encoder,
# which can raise peaks; gains that would pass the mark get the limiter, which holds samples
# LIMIT_BELOW under the mark, leaving room for the peaks between samples.
PEAK_MARGIN = 0.5
LIMIT_BELOW = 0.5
LIMIT_DB = TRUE_PEAK_CEILING - PEAK_MARGIN - LIMIT_BELOW
# After the limiter, the loudness is measured and the gain corrected until it is this close to
# the target (LU), in at most MAX_PASSES gain passes.
TOLERANCE = 0.2
MAX_PASSES = 5
# A master whose true peak is within AAC_RISK of the ceiling is encoded to AAC as the video's
# will be and measured: the encoder raised a steady buzz's true peak by 0.6-0.9 dB here. If
# the AAC passes the ceiling, the mark comes down by the excess and AAC_STEP more.
AAC_RISK = 2.0
AAC_STEP = 0.2
# A mix of which fewer seconds than this pass the loudness gates is a short sound (in silence):
# it is never limited (gain_for).
SHORT_SOUND = 1.0
# Ducking: the bed starts down this long before speech and comes back up over this long after
# it; gaps in speech shorter than BRIDGE stay ducked (no pumping on pauses).
DUCK_ATTACK = 0.3
DUCK_RELEASE = 0.6
DUCK_BRIDGE = 1.0
# The crossfade where a looped bed's tail meets its head again.
LOOP_CROSSFADE = 0.5
# Gain is applied in frames this short (10 ms at 48 kHz), so a ramp moves in small steps.
_ENVELOPE_FRAME = 480


def _format(plan: Plan) -> tuple[Filter, ...]:
    return (
        Filter.of("aresample", plan.sample_rate),
        Filter.of(
            "aformat",
            sample_fmts="fltp",
            sample_rates=plan.sample_rate,
            channel_layouts=CHANNEL_LAYOUT,
        ),
    )


def _exactly(samples: int) -> tuple[Filter, ...]:
    # apad then atrim: exactly `samples` long whether the input is shorter or longer.
    return (
        Filter.of("apad", whole_len=samples),
        Filter.of("atrim", end_sample=samples),
        Filter.of("asetpts", "N/SR/TB"),
    )


def _segment(plan: Plan, index: int) -> tuple[Filter, ...]:
    """Any audio made into exactly scene `index`'s samples of 48 kHz stereo."""
    start, end = plan.sample_range(index)
    return (*_format(plan), *_exactly(end - start))


@dataclass(frozen=True)
class _Inputs:
    """The command's input files in order, with any input options of each."""

    files: list[tuple[tuple[str, ...], str]]

    def add(self, path: str, *options: str) -> int:
        self.files.append((options, path))
        return len(self.files) - 1


def _voice_track(graph: Graph, plan: Plan, inputs: _Inputs, root: Path) -> Stream:
    segments = []
    for scene in plan.scenes:
        if scene.voiceover is not None:
            source = graph.input(inputs.add(str(root / scene.voiceover), *audio_guard()), "a", 0)
        else:
            source = graph.apply(Filter.of("anullsrc", r=plan.sample_rate, cl=CHANNEL_LAYOUT))
        segments.append(graph.chain(source, _segment(plan, scene.index)))
    if len(segments) == 1:
        return segments[0]
    return graph.apply(Filter.of("concat", n=len(segments), v=0, a=1), *segments)


def _clip_sound(graph: Graph, plan: Plan, inputs: _Inputs, root: Path) -> Stream | None:
    """The visuals' own sounds (clips' asked for with `audio`), each from where its shot
    starts for as long as it plays or the shot lasts, exactly the video's length; None when no
    shot has one."""
    placed = []
    for scene in plan.scenes:
        first = scene.start_frame
        for shot in scene.shots:
            sound = scene.visual(shot).sound()
            if sound is not None:
                at = timeline.sample_at(first, plan.fps, plan.sample_rate)
                end = timeline.sample_at(first + shot.frames, plan.fps, plan.sample_rate)
                length = min(end - at, _samples(sound.seconds, plan))
                source = graph.input(
                    inputs.add(str(root / sound.path), *sound.input_options), "a", 0
                )
                placed.append(
                    graph.chain(
                        source,
                        (
                            *_format(plan),
                            Filter.of("atrim", start=f"{sound.start:.6f}"),
                            Filter.of("asetpts", "N/SR/TB"),
                            Filter.of("atrim", end_sample=length),
                            Filter.of("volume", f"{sound.volume}dB"),
                            Filter.of("adelay", delays=f"{at}S", all=1),
                        ),
                    )
                )
            first += shot.frames
    if not placed:
        return None
    mixed = (
        placed[0]
        if len(placed) == 1
        else graph.apply(
            Filter.of("amix", inputs=len(placed), duration="longest", normalize=0), *placed
        )
    )
    return graph.chain(mixed, _exactly(plan.total_samples))


def _samples(seconds: float, plan: Plan) -> int:
    return max(1, round(seconds * plan.sample_rate))


def _bed(graph: Graph, plan: Plan, music: MusicPlan, inputs: _Inputs, root: Path) -> Stream:
    """The bed, exactly the video's length: looped or padded, at its volume, faded."""
    total = plan.total_samples
    path = str(root / music.path)
    bed = _samples(music.seconds, plan)
    if music.loop and bed < total:
        # A tile whose end runs on into its start: the bed's last `fade` samples cross-faded
        # over its first ones, then the bed up to where that tail began. Repeated, it has no
        # seam. The tail is cut from a second decode of the file (to the sample: a seek into
        # compressed audio is not), so nothing waits queued for the crossfade.
        fade = max(1, min(_samples(LOOP_CROSSFADE, plan), bed // 4))
        head = graph.chain(
            graph.input(inputs.add(path, *audio_guard()), "a", 0),
            (*_format(plan), Filter.of("atrim", end_sample=bed - fade)),
        )
        tail = graph.chain(
            graph.input(inputs.add(path, *audio_guard()), "a", 0),
            (
                *_format(plan),
                Filter.of("atrim", start_sample=bed - fade, end_sample=bed),
                Filter.of("asetpts", "N/SR/TB"),
            ),
        )
        tile = graph.apply(Filter.of("acrossfade", ns=fade, c1="qsin", c2="qsin"), tail, head)
        source = graph.chain(tile, (Filter.of("aloop", loop=-1, size=bed - fade),))
        heard = plan.duration_seconds
    else:
        source = graph.chain(graph.input(inputs.add(path, *audio_guard()), "a", 0), _format(plan))
        heard = min(music.seconds, plan.duration_seconds)
    filters = [*_exactly(total), Filter.of("volume", f"{music.volume}dB")]
    if music.fade_in > 0:
        filters.append(Filter.of("afade", t="in", st=0, d=min(music.fade_in, heard)))
    if music.fade_out > 0:
        length = min(music.fade_out, heard)
        filters.append(Filter.of("afade", t="out", st=f"{heard - length:.6f}", d=length))
    return graph.chain(source, filters)


def speech_spans(plan: Plan) -> list[tuple[float, float]]:
    """Where any voice sounds, seconds of the video; pauses under DUCK_BRIDGE are bridged."""
    voiced = []
    for scene in plan.scenes:
        offset = scene.start_frame / plan.fps
        limit = scene.frames / plan.fps
        for a, b in scene.speech:
            a, b = offset + min(a, limit), offset + min(b, limit)
            if b > a:
                voiced.append((a, b))
    return timeline.merge_spans(voiced, DUCK_BRIDGE)


def ducking_expression(spans: list[tuple[float, float]], amount: float) -> str:
    """The bed's gain over time t, as a `volume` expression: 1 in gaps, -amount dB under
    speech, with smooth (smoothstep) ramps of DUCK_ATTACK before and DUCK_RELEASE after."""
    if not spans:
        return "1"
    terms = []
    for a, b in spans:
        rise = f"clip((t-{a - DUCK_ATTACK:.4f})/{DUCK_ATTACK},0,1)"
        fall = f"clip(({b + DUCK_RELEASE:.4f}-t)/{DUCK_RELEASE},0,1)"
        terms.append(f"st(0,min({rise},{fall}));ld(0)*ld(0)*(3-2*ld(0))")
    # Spans are DUCK_BRIDGE apart at least, more than a ramp each side: they never overlap,
    # so the sum is at most 1.
    depth = "+".join(f"({term})" for term in terms)
    return f"pow(10,-{amount:g}*({depth})/20)"


def mix_graph(plan: Plan, root: Path, stats: Path | None = None) -> tuple[Graph, _Inputs]:
    """The whole mix: voice, and the (ducked) bed under it; `stats` measures its loudness."""
    graph = Graph()
    inputs = _Inputs([])
    mixed = _voice_track(graph, plan, inputs, root)
    under = [_bed(graph, plan, plan.music, inputs, root)] if plan.music is not None else []
    if (sounds := _clip_sound(graph, plan, inputs, root)) is not None:
        under.append(sounds)
    if under:
        bed = under[0]
        if len(under) > 1:
            both = Filter.of("amix", inputs=2, duration="first", normalize=0)
            bed = graph.apply(both, *under)
        if plan.ducking_db > 0:
            gain = ducking_expression(speech_spans(plan), plan.ducking_db)
            bed = graph.chain(
                bed,
                (
                    Filter.of("asetnsamples", n=_ENVELOPE_FRAME, p=0),
                    Filter.of("volume", volume=gain, eval="frame"),
                ),
            )
        mixed = graph.apply(Filter.of("amix", inputs=2, duration="first", normalize=0), mixed, bed)
    if stats is not None:
        mixed = graph.chain(
            mixed,
            (
                Filter.of("ebur128", peak="true", metadata=1),
                Filter.of("ametadata", mode="print", file=str(stats)),
            ),
        )
    graph.output(mixed)
    return graph, inputs


def mix_inputs(plan: Plan, root: Path) -> list[Path]:
    """The files the mix reads (voices, the bed, clips' sound), in its command's order."""
    return [Path(path) for _, path in mix_graph(plan, root)[1].files]


def master_track_args(
    project_root: Path, plan: Plan, out: Path, stats: Path | None = None
) -> list[str]:
    """FFmpeg arguments writing the whole video's mixed audio, 48 kHz stereo, to `out`: 16-bit
    PCM, or float when `stats` asks for its loudness too (a gain is still to come)."""
    graph, inputs = mix_graph(plan, project_root, stats)
    args: list[str] = []
    for options, path in inputs.files:
        args += [*options, "-i", path]
    compiled = graph.compile()
    (track,) = compiled.maps
    codec = "pcm_f32le" if stats is not None else "pcm_s16le"
    return [
        *args,
        *("-filter_complex", compiled.text, "-map", track),
        *("-c:a", codec, "-ar", str(plan.sample_rate), "-ac", "2", "-f", "wav", str(out)),
    ]


@dataclass(frozen=True)
class Loudness:
    integrated: float  # LUFS
    true_peak: float  # dBTP
    # About how many seconds of the mix count toward `integrated`: its 400 ms blocks (one
    # every 100 ms) that pass both EBU R128 gates (-70 LUFS, and 10 LU under the loudness).
    gated: float = math.inf


def scaled(measured: Loudness, db: float) -> Loudness:
    """What a linear gain of `db` makes of a measured mix."""
    return Loudness(measured.integrated + db, measured.true_peak + db, measured.gated)


_META = re.compile(r"^lavfi\.r128\.(M|I|true_peak)=(-?[\d.]+|-?inf|nan)$", re.MULTILINE)
_BLOCK_STEP = 0.1  # seconds between two of `ebur128`'s momentary (400 ms) figures
_ABSOLUTE_GATE = -70.0  # LUFS
_RELATIVE_GATE = 10.0  # LU


def read_loudness(text: str) -> Loudness | None:
    """The last integrated loudness and true peak `ebur128`'s metadata printed, and how much
    of the mix passed the gates (None if it printed none)."""
    found: dict[str, float] = {}
    momentary: list[float] = []
    for key, value in _META.findall(text):
        found[key] = float(value)
        if key == "M":
            momentary.append(float(value))
    if "I" not in found or "true_peak" not in found:
        return None
    peak = found["true_peak"]
    gate = max(_ABSOLUTE_GATE, found["I"] - _RELATIVE_GATE)
    gated = _BLOCK_STEP * sum(1 for level in momentary if level >= gate)
    return Loudness(found["I"], 20 * math.log10(peak) if peak > 0 else -math.inf, gated)


@dataclass(frozen=True)
class Gain:
    db: float
    limit: bool  # the gain alone would bring the true peak over its mark
    ceiling: float = LIMIT_DB  # dBFS the limiter holds samples to


def _silent(measured: Loudness) -> bool:
    return not math.isfinite(measured.integrated) or measured.integrated <= _ABSOLUTE_GATE


MARK = TRUE_PEAK_CEILING - PEAK_MARGIN  # dBTP, the master's until an AAC check lowers it


def gain_for(measured: Loudness, target: float) -> Gain:
    """The first pass's gain: the linear gain to the target, with the limiter when that would
    bring the true peak over the MARK.

    Silence (nothing above the gate) is left alone. A mix of which less than SHORT_SOUND
    seconds pass the gates (silence and a short sound) is not limited: its gain stops where its
    true peak reaches the ceiling less the margin, short of the target if need be. Its
    integrated loudness is mostly the 400 ms blocks around the sound; crushing a lone click to
    raise that figure would change how it sounds and hardly how loud it is.
    """
    if _silent(measured):
        return Gain(0.0, False)
    db = target - measured.integrated
    room = MARK - measured.true_peak
    if db <= room:
        return Gain(db, False)
    if measured.gated < SHORT_SOUND:
        return Gain(room, False)
    return Gain(db, True)


@dataclass(frozen=True)
class Verdict:
    """What a gain pass's measurement means: the gain for one more pass, or why none."""

    gain: Gain | None
    reason: str


def next_gain(
    target: float,
    gain: Gain,
    result: Loudness,
    before: tuple[Gain, Loudness] | None = None,
    mark: float = MARK,
) -> Verdict:
    """What follows a gain pass (`gain`) that measured `result` after its limiter; `before`
    is the pass before it (or the mix itself at 0 dB), if any; `mark` is the master's
    true-peak mark (dBTP).

    A linear gain lands where it was aimed: nothing follows unless its true peak is over the
    mark (lowered by an AAC check), which calls for the limiter, LIMIT_BELOW under the mark.
    The limiter takes some loudness, more the harder it works: the next gain adds the miss,
    divided by how much of the last change of gain reached the loudness (the secant, within
    0.5..1, so a step at most doubles the miss; 1 with nothing before). A true peak over the
    mark lowers the limiter's ceiling by as much. Passes stop on target (within TOLERANCE)
    or when the limiter took more than half of the last change: a mix that peaky would be
    squashed, not made louder.
    """
    over = result.true_peak - mark
    if not gain.limit:
        if over <= 0:
            return Verdict(None, "a linear gain")
        return Verdict(Gain(gain.db, True, min(gain.ceiling, mark - LIMIT_BELOW)), "")
    miss = target - result.integrated
    if abs(miss) <= TOLERANCE and over <= 0:
        return Verdict(None, "on target")
    slope = 1.0
    if before is not None and before[0].db != gain.db:
        change = gain.db - before[0].db
        slope = (result.integrated - before[1].integrated) / change
        if slope < 0.5 and miss * change > 0 and over <= 0:
            return Verdict(
                None,
                f"the limiter took more than half of the last {change:+.2f} dB: "
                f"{miss:+.2f} LU from the target, kept as it is",
            )
        slope = min(1.0, max(0.5, slope))
    return Verdict(Gain(gain.db + miss / slope, True, gain.ceiling - max(0.0, over)), "")


def gain_args(
    mix: Path,
    out: Path,
    gain: Gain,
    sample_rate: int = timeline.SAMPLE_RATE,
    stats: Path | None = None,
) -> list[str]:
    """A gain pass: the float mix with its gain (and limiter) applied, as 16-bit PCM; `stats`
    measures the result as it is written."""
    filters = [Filter.of("volume", f"{gain.db:.3f}dB")]
    if gain.limit:
        # latency=1: the lookahead's delay is compensated, so the voice stays on its frames;
        # level=0: no automatic make-up gain after limiting.
        filters.append(
            Filter.of(
                "alimiter",
                limit=f"{10 ** (gain.ceiling / 20):.4f}",
                attack=5,
                release=50,
                level=0,
                latency=1,
            )
        )
    if stats is not None:
        filters += [
            Filter.of("ebur128", peak="true", metadata=1),
            Filter.of("ametadata", mode="print", file=str(stats)),
        ]
    graph = Graph()
    graph.output(graph.chain(graph.input(0, "a", 0), filters))
    compiled = graph.compile()
    (track,) = compiled.maps
    return [
        *("-i", str(mix), "-filter_complex", compiled.text, "-map", track),
        *("-c:a", "pcm_s16le", "-ar", str(sample_rate), "-ac", "2", "-f", "wav", str(out)),
    ]


def aac_args(master: Path, out: Path) -> list[str]:
    """The master encoded to AAC: the video's track (and what its peaks are measured on)."""
    return ["-i", str(master), "-map", "0:a:0", *AAC_ARGS, "-f", "mp4", str(out)]


def measure_args(path: Path, stats: Path) -> list[str]:
    """`path`'s audio measured (EBU R128, true peak on), nothing written but `stats`."""
    graph = Graph()
    graph.output(
        graph.chain(
            graph.input(0, "a", 0),
            (
                Filter.of("ebur128", peak="true", metadata=1),
                Filter.of("ametadata", mode="print", file=str(stats)),
            ),
        )
    )
    compiled = graph.compile()
    (track,) = compiled.maps
    return ["-i", str(path), "-filter_complex", compiled.text, "-map", track, "-f", "null", "-"]


def scene_audio_filter(plan: Plan, index: int) -> tuple[Filter, ...]:
    """Cut one scene's samples out of the master track (for output/scene_NN.mp4)."""
    start, end = plan.sample_range(index)
    return (
        Filter.of("atrim", start_sample=start, end_sample=end),
        Filter.of("asetpts", "PTS-STARTPTS"),
    )
