"""The scene graph as data: checked without running FFmpeg."""

import dataclasses
from pathlib import Path

from pipeline.motion import STILL, Move, kenburns, zoompan_filter
from pipeline.plan import ImageInfo, Plan, ScenePlan, ShotPlan
from pipeline.scene import scene_args, scene_graph, stills_args, video_codec_args


def _plan(motion: str, orientation: int = 1, fit: str = "cover") -> Plan:
    images = (
        ImageInfo("input/images/a.jpg", 4000, 3000, orientation),
        ImageInfo("input/images/b.png", 600, 800),
    )
    moves = [kenburns(0, i, i) if motion == "kenburns" else STILL for i in range(3)]
    shots = (
        ShotPlan(images[0].path, 40, 9, moves[0]),
        ShotPlan(images[1].path, 40, 9, moves[1]),
        ShotPlan(images[0].path, 41, 0, moves[2]),
    )
    scene = ScenePlan(0, "s", 0, 121, images, shots, None, None, fit, motion, False)  # type: ignore[arg-type]
    return Plan(30, 320, 180, 20, "veryfast", 9, 48000, (scene,))


STILLS = [Path("/w/stills/a.yuv"), Path("/w/stills/b.yuv")]


def test_each_image_is_decoded_once_into_a_raw_still() -> None:
    plan = _plan("kenburns")
    prep = stills_args(Path("/p"), plan, plan.scenes[0], STILLS)
    assert [prep[i + 1] for i, a in enumerate(prep) if a == "-i"] == [
        "/p/input/images/a.jpg",
        "/p/input/images/b.png",
    ]
    assert "-loop" not in prep
    # Scaled once, to 1.5× the output size, one raw yuv420p frame per image.
    graph = prep[prep.index("-filter_complex") + 1]
    assert graph.startswith("[0:v]scale=480:270:force_original_aspect_ratio=increase")
    assert prep[-1] == "/w/stills/b.yuv" and prep.count("rawvideo") == 2
    assert prep.count("-frames:v") == 2 and prep.count("yuv420p") == 2


def test_the_clip_reads_the_stills_and_splits_single_frames_only() -> None:
    plan = _plan("kenburns")
    args = scene_args(plan, plan.scenes[0], STILLS, Path("/out.mp4"))
    assert [args[i + 1] for i, a in enumerate(args) if a == "-i"] == [str(p) for p in STILLS]
    assert args.count("480x270") == 2
    assert args[args.index("-frames:v") + 1] == "121"
    graph = scene_graph(plan, plan.scenes[0])
    assert "scale=" not in graph
    # Image a (shots 0 and 2) feeds 4 pieces, image b (shot 1) three; every piece draws its
    # frames itself, so no stream of frames is split or trimmed.
    assert graph.startswith("[0:v]split=4[pb0][pt0][ph2][pb2];[1:v]split=3[ph1][pb1][pt1];")
    assert "trim" not in graph
    assert graph.count("zoompan=") == 7


def test_shots_render_their_overlap_and_fades_start_on_shot_boundaries() -> None:
    plan = _plan("kenburns")
    steps = scene_graph(plan, plan.scenes[0]).split(";")
    # Shots of 40, 40 and 41 frames with 9-frame fades: each shot's tail fades into the next
    # one's head, and only those frames go through xfade (which converts to 4:4:4).
    pieces = {step.rsplit("[", 1)[1].rstrip("]"): step for step in steps if "zoompan" in step}
    assert ":d=40:" in pieces["b0"] and "(on/48)" in pieces["b0"]
    assert ":d=9:" in pieces["t0"] and "((on+40)/48)" in pieces["t0"]
    assert ":d=9:" in pieces["h1"] and "(on/48)" in pieces["h1"]
    assert ":d=31:" in pieces["b1"] and "((on+9)/48)" in pieces["b1"]
    assert ":d=9:" in pieces["t1"] and "((on+40)/48)" in pieces["t1"]
    assert ":d=9:" in pieces["h2"] and "(on/40)" in pieces["h2"]
    assert ":d=32:" in pieces["b2"] and "((on+9)/40)" in pieces["b2"]
    fades = [step for step in steps if "xfade=" in step]
    assert [f[: f.index("xfade")] for f in fades] == ["[t0][h1]", "[t1][h2]"]
    assert all("duration=0.300000:offset=0," in f for f in fades)
    assert "[b0][f1][b1][f2][b2]concat=n=5" in steps[-1]


def test_without_fades_the_shots_are_concatenated_whole() -> None:
    plan = _plan("none")
    plan = dataclasses.replace(
        plan,
        xfade_frames=0,
        scenes=(
            dataclasses.replace(
                plan.scenes[0],
                shots=tuple(
                    dataclasses.replace(s, frames=f, overlap=0)
                    for s, f in zip(plan.scenes[0].shots, (40, 40, 41), strict=True)
                ),
            ),
        ),
    )
    graph = scene_graph(plan, plan.scenes[0])
    assert "xfade" not in graph
    assert "[b0][b1][b2]concat=n=3" in graph
    assert "loop=loop=39:size=1" in graph and "loop=loop=40:size=1" in graph


def test_still_scenes_loop_the_fitted_frame() -> None:
    plan = _plan("none")
    graph = scene_graph(plan, plan.scenes[0])
    assert "zoompan" not in graph
    # body of shot 0: 40 frames; its tail and the next head: 9 each.
    assert "loop=loop=39:size=1" in graph and "loop=loop=8:size=1" in graph
    prep = stills_args(Path("/p"), plan, plan.scenes[0], STILLS)
    assert "scale=320:180:force_original_aspect_ratio=increase" in " ".join(prep)


def test_exif_orientation_and_contain() -> None:
    plan = _plan("none", orientation=6, fit="contain")
    prep = stills_args(Path("/p"), plan, plan.scenes[0], STILLS)
    graph = prep[prep.index("-filter_complex") + 1]
    assert graph.startswith("[0:v]transpose=clock,split=2[bgsrc0][fgsrc0]")
    assert "[1:v]split=2[bgsrc1][fgsrc1]" in graph
    assert "force_original_aspect_ratio=decrease" in graph and "gblur" in graph


def test_lookahead_is_the_presets_unless_capped() -> None:
    plan = _plan("kenburns")
    assert "-rc-lookahead" not in video_codec_args(plan)
    capped = video_codec_args(plan, threads=2, lookahead=10)
    assert capped[capped.index("-rc-lookahead") + 1] == "10"
    assert capped[capped.index("-threads") + 1] == "2"


def test_output_is_tagged_bt709_tv() -> None:
    plan = _plan("kenburns")
    graph = scene_graph(plan, plan.scenes[0])
    assert graph.endswith(
        "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709[v]"
    )


def test_kenburns_alternates_and_is_deterministic() -> None:
    first, second = kenburns(0, 0, 0), kenburns(0, 1, 1)
    assert first.zoom_end > first.zoom_start and second.zoom_end < second.zoom_start
    assert kenburns(3, 1, 7) == kenburns(3, 1, 7)
    assert not first.still and STILL.still


def test_zoompan_interpolates_over_the_shot() -> None:
    text = zoompan_filter(Move(1.0, 1.12, 0.5, 0.3, 0.5, 0.5), 50, 1920, 1080, 30)
    assert "z='(1.000000+(0.120000)*(on/49))'" in text
    assert "d=50:s=1920x1080:fps=30" in text
