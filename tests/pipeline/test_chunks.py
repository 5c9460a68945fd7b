"""Chunks smaller than a scene (pipeline/chunks.py): where a scene is cut, what each chunk
draws, and that chunks joined by stream copy are the video an unchunked render makes, frame
for frame, with real FFmpeg."""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import pytest

from pipeline import stages
from pipeline.captions import Cue
from pipeline.chunks import Span, chunk_count, chunk_spans
from pipeline.encoder import Encoder
from pipeline.ffmpeg import Runner
from pipeline.fixtures import ImageFixture, SceneFixture, write_project
from pipeline.layers import BurntCaptions
from pipeline.layers.captions import fonts_dir
from pipeline.motion import STILL
from pipeline.options import RenderOptions
from pipeline.plan import Plan, make_plan, read_plan
from pipeline.probe import probe
from pipeline.project import ProjectDir
from pipeline.render import render
from pipeline.scene import Piece, pieces, scene_args, scene_graph
from pipeline.timeline import round_half_up
from tests import pipeline_fixtures as fx
from tests import plans
from tests.plans import scene_plan, shot, still
from tests.stage_runs import frame_hashes

ffmpeg_bin = fx.ffmpeg_bin

# --- where a scene is cut (pure: hand-built plans) ----------------------------------------


def _plan(shot_frames: tuple[int, ...], fade: int, chunk_frames: int) -> Plan:
    """One still scene of shots of `shot_frames`, each fading into the next over `fade`."""
    images = (still("a.jpg", 640, 480), still("b.png", 640, 480))
    last = len(shot_frames) - 1
    shots = tuple(
        shot(images[n % 2], frames, fade if n < last else 0, STILL)
        for n, frames in enumerate(shot_frames)
    )
    scene = scene_plan(id="s", visuals=images, shots=shots)
    encoder = Encoder(preset="veryfast", crf=20)
    return plans.plan(
        scene, width=320, height=180, encoder=encoder, xfade_frames=fade, chunk_frames=chunk_frames
    )


def _spans(shot_frames: tuple[int, ...], fade: int, chunk_frames: int) -> tuple[Span, ...]:
    plan = _plan(shot_frames, fade, chunk_frames)
    return chunk_spans(plan, plan.scenes[0])


def _fades(shot_frames: tuple[int, ...], fade: int) -> list[Span]:
    starts = itertools.accumulate(shot_frames[:-1])
    return [(start, start + fade) for start in starts]


THREE_SHOTS = (40, 40, 41)  # fades at [40, 49) and [80, 89) with 9-frame cross-fades


@pytest.mark.parametrize("chunk_frames", [0, 121, 100, 81, 500])
def test_chunking_off_or_a_short_scene_is_one_span(chunk_frames: int) -> None:
    # 0 is off; 121/100 and 121/81 round to one chunk; a chunk longer than the scene is one.
    plan = _plan(THREE_SHOTS, 9, chunk_frames)
    assert chunk_spans(plan, plan.scenes[0]) == ((0, 121),)
    assert chunk_count(plan, plan.scenes[0]) == 1


@pytest.mark.parametrize(
    ("frames", "chunk_frames", "count"),
    [(121, 80, 2), (121, 60, 2), (121, 48, 3), (121, 49, 2), (100, 40, 3), (99, 40, 2)],
)
def test_the_count_is_frames_over_chunk_frames_rounded(
    frames: int, chunk_frames: int, count: int
) -> None:
    # 121/80 = 1.51 → 2, 121/48 = 2.52 → 3, 121/49 = 2.47 → 2, 100/40 = 2.5 → 3 (half up).
    assert count == round_half_up(Fraction(frames, chunk_frames))
    plan = _plan((frames,), 0, chunk_frames)
    spans = chunk_spans(plan, plan.scenes[0])
    assert chunk_count(plan, plan.scenes[0]) == len(spans) == count
    # Without fades the chunks are even: no two differ by more than a frame.
    lengths = [end - first for first, end in spans]
    assert max(lengths) - min(lengths) <= 1


CASES = [
    (shots, fade, chunk_frames)
    for shots in (THREE_SHOTS, (36, 50), (50, 10), (30, 31, 29, 33, 30))
    for fade in (0, 9, 10)
    for chunk_frames in (1, 2, 4, 7, 9, 15, 24, 30, 45, 60)
    if fade <= min(shots)
]


@pytest.mark.parametrize(("shots", "fade", "chunk_frames"), CASES)
def test_spans_cover_the_scene_in_order_and_never_cut_a_fade(
    shots: tuple[int, ...], fade: int, chunk_frames: int
) -> None:
    plan = _plan(shots, fade, chunk_frames)
    spans = chunk_spans(plan, plan.scenes[0])
    # From the scene's first frame to its last, each chunk starting where the one before ends.
    assert spans[0][0] == 0 and spans[-1][1] == sum(shots)
    assert all(first < end for first, end in spans)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    for _, boundary in spans[:-1]:
        assert not any(start < boundary < end for start, end in _fades(shots, fade)), boundary
    # The registry's units are these spans, however many of them survive (chunks shorter than
    # a fade: boundaries moved out of it meet).
    assert chunk_count(plan, plan.scenes[0]) == len(spans)
    if not fade or chunk_frames > fade:
        assert len(spans) == max(1, round_half_up(Fraction(sum(shots), chunk_frames)))


def test_a_boundary_inside_a_fade_moves_to_its_nearer_end() -> None:
    # 121 frames in 3: 40.3 → 40 (the first fade's start, left), 80.7 → 81, inside [80, 89):
    # one frame from its start, so moved back to it.
    assert _spans(THREE_SHOTS, 9, 40) == ((0, 40), (40, 80), (80, 121))
    # 86 frames in 2: 43, inside the fade [36, 46), nearer its end.
    assert _spans((36, 50), 10, 43) == ((0, 46), (46, 86))
    # 86 frames in 2 without a fade: cut where the count puts it.
    assert _spans((36, 50), 0, 43) == ((0, 43), (43, 86))


def test_the_first_and_last_chunks_keep_the_scenes_edges() -> None:
    # A last shot that is all fade ([50, 60)): the boundaries inside it move to its start or
    # onto the scene's end; the last chunk is that whole fade, never an empty span.
    spans = _spans((50, 10), 10, 4)
    assert spans[0] == (0, 4)
    assert spans[-1] == (50, 60)
    assert spans[-2][1] == 50
    # A chunk of one frame on either edge is still a chunk of its own.
    assert _spans((30,), 0, 1)[0] == (0, 1) and _spans((30,), 0, 1)[-1] == (29, 30)


# --- what a chunk draws (pure) -------------------------------------------------------------


def _pieces(span: Span | None) -> list[Piece]:
    plan = _plan(THREE_SHOTS, 9, 0)
    return pieces(plan, plan.scenes[0], span)


def test_a_chunk_clips_bodies_and_takes_fades_whole() -> None:
    # Inside one body: that body cut to the span (frames counted from the shot's start).
    assert _pieces((10, 30)) == [Piece("body", 0, 10, 30)]
    # A span ending on a fade's start has none of it; the next chunk has both its shots'
    # pieces, whole.
    assert _pieces((0, 40)) == [Piece("body", 0, 0, 40)]
    assert _pieces((40, 60)) == [
        Piece("tail", 0, 40, 49),
        Piece("head", 1, 0, 9),
        Piece("body", 1, 9, 20),
    ]
    assert _pieces((20, 100)) == [
        Piece("body", 0, 20, 40),
        Piece("tail", 0, 40, 49),
        Piece("head", 1, 0, 9),
        Piece("body", 1, 9, 40),
        Piece("tail", 1, 40, 49),
        Piece("head", 2, 0, 9),
        Piece("body", 2, 9, 20),
    ]
    assert _pieces((0, 121)) == _pieces(None)


@pytest.mark.parametrize("span", [(0, 45), (45, 121), (84, 100), (41, 48)])
def test_a_span_that_cuts_a_fade_is_refused(span: Span) -> None:
    with pytest.raises(ValueError, match="cut the cross-fade"):
        _pieces(span)


def _drawn(found: list[Piece]) -> int:
    """Frames a list of pieces puts out: a tail is drawn under the next shot's head."""
    return sum(piece.end - piece.first for piece in found if piece.kind != "tail")


@pytest.mark.parametrize("chunk_frames", [1, 5, 20, 30, 40, 60])
def test_the_chunks_pieces_add_up_to_the_scene(chunk_frames: int) -> None:
    plan = _plan(THREE_SHOTS, 9, chunk_frames)
    scene = plan.scenes[0]
    spans = chunk_spans(plan, scene)
    for span in spans:
        assert _drawn(pieces(plan, scene, span)) == span[1] - span[0]
    assert sum(_drawn(pieces(plan, scene, span)) for span in spans) == scene.frames
    # Every fade is drawn by exactly one chunk.
    heads = [p for span in spans for p in pieces(plan, scene, span) if p.kind == "head"]
    assert [(p.shot, p.first, p.end) for p in heads] == [(1, 0, 9), (2, 0, 9)]


def test_a_chunks_command_encodes_its_frames_and_times_burnt_in_captions_by_scene_frame() -> None:
    plan = _plan(THREE_SHOTS, 9, 40)
    scene = plan.scenes[0]
    stills = [Path("/w/a.yuv"), Path("/w/b.yuv")]
    args = scene_args(plan, scene, stills, Path("/out.mp4"), span=(40, 80))
    assert args[args.index("-frames:v") + 1] == "40"
    work = Path("/w")
    plain = scene
    scene = dataclasses.replace(scene, captions=(Cue(0, 10, ("Hi",)),), layers=(BurntCaptions(),))
    ass = work / "captions" / "scene_000.ass"
    fonts = f":fontsdir={fonts_dir()}" if fonts_dir() is not None else ""

    def clock(first: int) -> str:
        return f"settb=AVTB,setpts=floor((N+{first})*1000/30)*1000+500"

    # libass sees a chunk's frames at their time in the scene (the whole scene's from 0),
    # the encoder frame n at n/fps from 0, like every clip.
    burn = f"subtitles=filename={ass}{fonts},settb=1/30,setpts=N"
    assert f"{clock(40)},{burn}" in scene_graph(plan, scene, (40, 80), work).compile().text
    assert f"{clock(0)},{burn}" in scene_graph(plan, scene, (0, 40), work).compile().text
    assert f"{clock(0)},{burn}" in scene_graph(plan, scene, None, work).compile().text
    assert "settb" not in scene_graph(plan, plain, (40, 80), work).compile().text


# --- chunks against whole clips, with real FFmpeg ------------------------------------------

# Lossless (crf 0: High 4:4:4 Predictive), so equal frames decode to equal bytes.
LOSSLESS = RenderOptions(
    fps=30,
    min_shot=0.5,
    max_shot=1.2,
    xfade=0.3,
    crf=0,
    preset="veryfast",
    resolution="320x180",
    chunk_seconds=0.8,
)


def _scenes() -> list[SceneFixture]:
    return [
        # 99 frames, three Ken Burns shots of two images (33 each, 9-frame fades at 33 and
        # 66), four chunks of 24 frames: 25, 50, and 74 (in the second fade) moved to 75.
        SceneFixture(
            (
                ImageFixture("texture.jpg", 480, 360, "testsrc2"),
                ImageFixture("fractal.png", 400, 300, "mandelbrot"),
            ),
            duration=3.3,
            id="moving",
        ),
        # 60 frames, two still shots fading at 30: chunks at 20 and 40, the fade inside one.
        SceneFixture(
            (
                ImageFixture("red.png", 320, 180, "color:red"),
                ImageFixture("blue.png", 320, 180, "color:blue"),
            ),
            duration=2.0,
            id="still",
            motion="none",
        ),
        # 24 frames: one chunk, the scene's one clip.
        SceneFixture((ImageFixture("bars.jpg", 320, 180, "smptehdbars"),), duration=0.8, id="one"),
    ]


@pytest.fixture(scope="module")
def chunked(tmp_path_factory: pytest.TempPathFactory, ffmpeg_bin: str) -> tuple[ProjectDir, Plan]:
    project = write_project(tmp_path_factory.mktemp("chunked"), _scenes(), ffmpeg_bin)
    return project, make_plan(project, LOSSLESS, ffmpeg_bin)


def test_the_fixture_is_cut_as_its_comments_say(chunked: tuple[ProjectDir, Plan]) -> None:
    _, plan = chunked
    spans = [chunk_spans(plan, scene) for scene in plan.scenes]
    assert spans == [
        ((0, 25), (25, 50), (50, 75), (75, 99)),
        ((0, 20), (20, 40), (40, 60)),
        ((0, 24),),
    ]
    assert plan.encoder.profile == "high444"


def _join(ffmpeg: str, clips: list[Path], out: Path) -> Path:
    """Clips joined by the concat demuxer with stream copy, as CONCAT joins them."""
    listing = out.with_suffix(".ffconcat")
    listing.write_text("ffconcat version 1.0\n" + "".join(f"file '{c}'\n" for c in clips))
    args = ["-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0"]
    subprocess.run(
        [ffmpeg, *args, "-i", str(listing), "-c", "copy", str(out)], check=True, timeout=60
    )
    return out


def _frame_times(clip: Path) -> list[float]:
    """Each decoded frame's presentation time, seconds, rounded to the microsecond."""
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        return [
            round(float(frame.pts * stream.time_base), 6)
            for frame in container.decode(stream)
            if frame.pts is not None
        ]


def _opens_on_a_keyframe(clip: Path) -> bool:
    with av.open(str(clip)) as container:
        packet = next(container.demux(video=0))
        return bool(packet.is_keyframe)


def _whole_and_chunks(
    project: ProjectDir, plan: Plan, index: int, ffmpeg: str
) -> tuple[Path, list[Path]]:
    """Scene `index` built in one piece, and in its chunks (one run each)."""
    runner = Runner(ffmpeg)
    whole = stages.build_scene(project, dataclasses.replace(plan, chunk_frames=0), index, runner)
    count = len(chunk_spans(plan, plan.scenes[index]))
    chunks = [stages.build_scene(project, plan, index, runner, chunk=c) for c in range(count)]
    return whole, chunks


def test_chunks_joined_by_stream_copy_are_the_whole_clip(
    chunked: tuple[ProjectDir, Plan], ffmpeg_bin: str, tmp_path: Path
) -> None:
    project, plan = chunked
    for scene in plan.scenes[:2]:
        whole, chunks = _whole_and_chunks(project, plan, scene.index, ffmpeg_bin)
        assert chunks == stages.scene_clips(project, plan, scene.index) and len(chunks) > 1
        spans = chunk_spans(plan, scene)
        for clip, (first, end) in zip(chunks, spans, strict=True):
            info = probe(clip, count_frames=True)
            assert info.video is not None and info.video.frames == end - first
            assert info.video.profile == "High 4:4:4 Predictive"
            assert _opens_on_a_keyframe(clip), clip.name
        joined = _join(ffmpeg_bin, chunks, tmp_path / f"joined{scene.index}.mp4")
        expected = frame_hashes(ffmpeg_bin, whole)
        assert len(expected) == scene.frames
        assert frame_hashes(ffmpeg_bin, joined) == expected, scene.id


def test_burnt_in_captions_across_a_chunk_boundary_are_timed_as_in_the_whole_clip(
    chunked: tuple[ProjectDir, Plan], ffmpeg_bin: str, tmp_path: Path
) -> None:
    source, plan = chunked
    project = ProjectDir(tmp_path / "captioned")
    shutil.copytree(source.input, project.input)
    # Cues over the first and second chunk boundaries (25 and 50), one from the last (75),
    # and starts and ends on whole centiseconds (45: 1.50 s), where a time a microsecond
    # short shows a cue a frame late.
    cues = (
        Cue(10, 40, ("Over the first cut",)),
        Cue(45, 75, ("and the next",)),
        Cue(75, 96, ("from a cut",)),
    )
    moving = dataclasses.replace(plan.scenes[0], captions=cues, layers=(BurntCaptions(),))
    captioned = dataclasses.replace(plan, scenes=(moving, *plan.scenes[1:]))
    whole, chunks = _whole_and_chunks(project, captioned, 0, ffmpeg_bin)
    joined = _join(ffmpeg_bin, chunks, tmp_path / "joined.mp4")
    expected = frame_hashes(ffmpeg_bin, whole)
    assert frame_hashes(ffmpeg_bin, joined) == expected
    # Every frame lasts 1/fps, as in a clip without captions: no millisecond clock left.
    for clip in (whole, joined):
        assert _frame_times(clip) == [round(n / plan.fps, 6) for n in range(moving.frames)]
    # The captions are there: the frames under a cue differ from the same scene without any.
    plain = ProjectDir(tmp_path / "plain")
    shutil.copytree(source.input, plain.input)
    bare, _ = _whole_and_chunks(plain, plan, 0, ffmpeg_bin)
    drawn = [a != b for a, b in zip(expected, frame_hashes(ffmpeg_bin, bare), strict=True)]
    assert not any(drawn[:10]) and all(drawn[10:40]) and not any(drawn[40:45])
    assert all(drawn[45:96]) and not any(drawn[96:])


# --- the whole render, chunked and not -----------------------------------------------------


def _render(source: ProjectDir, folder: Path, options: RenderOptions, ffmpeg: str) -> ProjectDir:
    project = ProjectDir(folder)
    shutil.copytree(source.input, project.input)
    render(project, options, "video.mp4", Runner(ffmpeg), jobs=2)
    return project


def _outputs(project: ProjectDir) -> list[str]:
    return sorted(path.name for path in project.output.iterdir())


def test_a_chunked_render_is_frame_identical_to_an_unchunked_one(
    chunked: tuple[ProjectDir, Plan], ffmpeg_bin: str, tmp_path: Path
) -> None:
    source, _ = chunked
    # The video's poster from the middle of a chunk of the first scene (frame 60: chunk 2).
    options = LOSSLESS.model_copy(update={"poster_time": 2.0})
    on = _render(source, tmp_path / "on", options, ffmpeg_bin)
    off = _render(
        source, tmp_path / "off", options.model_copy(update={"chunk_seconds": 0}), ffmpeg_bin
    )
    plan = read_plan(on)
    assert [len(chunk_spans(plan, s)) for s in plan.scenes] == [4, 3, 1]
    assert read_plan(off).chunk_frames == 0 and read_plan(off).scenes == plan.scenes
    assert list((on.work / "scenes").glob("scene_000_part*.mp4"))
    assert _outputs(on) == _outputs(off)
    frames = {"video.mp4": plan.total_frames}
    frames |= {stages.scene_output_name(s.index): s.frames for s in plan.scenes}
    for name, planned in frames.items():
        hashes = frame_hashes(ffmpeg_bin, on.output / name)
        assert hashes == frame_hashes(ffmpeg_bin, off.output / name), name
        info = probe(on.output / name)
        assert info.video is not None and info.audio is not None
        assert len(hashes) == info.video.frames == planned, name
        assert info.video.duration == pytest.approx(planned / plan.fps, abs=1e-3), name
        assert abs(info.audio.duration - info.video.duration) <= 1 / plan.fps, name
    for poster in [name for name in _outputs(on) if name.endswith(".jpg")]:
        assert (on.output / poster).read_bytes() == (off.output / poster).read_bytes(), poster
    # The raw stills the chunks shared are gone once every chunk of their scene is built.
    assert list((on.work / "stills").iterdir()) == []


def test_a_lossy_chunked_render_has_the_same_length_and_about_the_same_size(
    ffmpeg_bin: str, tmp_path: Path
) -> None:
    # The default options (crf 18, preset medium, 2.5 s chunks) on scenes of 6 s and 4 s
    # (two chunks each) and 0.8 s (one).
    longer = [
        dataclasses.replace(s, duration=d) for s, d in zip(_scenes(), (6.0, 4.0, 0.8), strict=True)
    ]
    source = write_project(tmp_path / "source", longer, ffmpeg_bin)
    lossy = RenderOptions(resolution="320x180")
    on = _render(source, tmp_path / "on", lossy, ffmpeg_bin)
    off = _render(
        source, tmp_path / "off", lossy.model_copy(update={"chunk_seconds": 0}), ffmpeg_bin
    )
    plan = read_plan(on)
    assert [len(chunk_spans(plan, s)) for s in plan.scenes] == [2, 2, 1]
    a, b = probe(on.output / "video.mp4", count_frames=True), probe(off.output / "video.mp4")
    assert a.video is not None and b.video is not None
    assert a.video.frames == b.video.frames == plan.total_frames
    assert a.video.duration == pytest.approx(b.video.duration, abs=1e-3)
    # Each chunk opens on a keyframe of its own: a little more than one clip per scene
    # (measured: +0.7%; with 1 s chunks of scenes of 3.3 s and 2 s, +4%).
    size_on = (on.output / "video.mp4").stat().st_size
    size_off = (off.output / "video.mp4").stat().st_size
    assert abs(size_on / size_off - 1) < 0.03, (size_on, size_off)
