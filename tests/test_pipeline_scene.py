"""The scene graph as data: checked without running FFmpeg."""

from pathlib import Path

from pipeline.motion import STILL, Move, kenburns, zoompan_filter
from pipeline.plan import ImageInfo, Plan, ScenePlan, ShotPlan
from pipeline.scene import scene_args, scene_graph


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


def test_each_image_is_one_input_decoded_once() -> None:
    plan = _plan("kenburns")
    args = scene_args(Path("/p"), plan, plan.scenes[0], Path("/out.mp4"), 0)
    assert [args[i + 1] for i, a in enumerate(args) if a == "-i"] == [
        "/p/input/images/a.jpg",
        "/p/input/images/b.png",
    ]
    assert "-loop" not in args
    assert args[args.index("-frames:v") + 1] == "121"
    graph = scene_graph(plan, plan.scenes[0])
    # The cycled image is split, not opened twice; it is scaled once, to 1.5× the output size.
    assert "[0:v]scale=480:270:force_original_aspect_ratio=increase" in graph
    assert "split=2[p0][p2]" in graph
    assert graph.count("zoompan=") == 3


def test_shots_render_their_overlap_and_fades_start_on_shot_boundaries() -> None:
    plan = _plan("kenburns")
    graph = scene_graph(plan, plan.scenes[0])
    assert ":d=49:" in graph and ":d=41:" in graph
    steps = graph.split(";")
    # Shots of 40, 40 and 41 frames with 9-frame fades: each shot's tail fades into the next
    # one's head, and only those frames go through xfade (which converts to 4:4:4).
    trims = {step.rsplit("[", 1)[1].rstrip("]"): step for step in steps if "trim=" in step}
    assert "trim=start_frame=0:end_frame=40," in trims["b0"]
    assert "trim=start_frame=40:end_frame=49," in trims["t0"]
    assert "trim=start_frame=0:end_frame=9," in trims["h1"]
    assert "trim=start_frame=9:end_frame=40," in trims["b1"]
    assert "trim=start_frame=40:end_frame=49," in trims["t1"]
    assert "trim=start_frame=9:end_frame=41," in trims["b2"]
    fades = [step for step in steps if "xfade=" in step]
    assert [f[: f.index("xfade")] for f in fades] == ["[t0][h1]", "[t1][h2]"]
    assert all("duration=0.300000:offset=0," in f for f in fades)
    assert "[b0][f1][b1][f2][b2]concat=n=5" in graph


def test_still_scenes_loop_the_fitted_frame() -> None:
    plan = _plan("none")
    graph = scene_graph(plan, plan.scenes[0])
    assert "zoompan" not in graph
    assert "loop=loop=48:size=1" in graph and "loop=loop=40:size=1" in graph
    assert "scale=320:180:force_original_aspect_ratio=increase" in graph


def test_exif_orientation_and_contain() -> None:
    plan = _plan("none", orientation=6, fit="contain")
    graph = scene_graph(plan, plan.scenes[0])
    assert graph.startswith("[0:v]transpose=clock,split=2[bgsrc][fgsrc]")
    assert "force_original_aspect_ratio=decrease" in graph and "gblur" in graph


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
