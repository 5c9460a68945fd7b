"""The scene commands as data: their compiled graphs, checked without running FFmpeg."""

import dataclasses
from pathlib import Path

import pytest

from pipeline.encoder import Encoder, video_codec_args
from pipeline.graph import Filter
from pipeline.motion import STILL, Move, kenburns, zoompan_filter
from pipeline.plan import Plan
from pipeline.scene import (
    Piece,
    pieces,
    scene_args,
    scene_graph,
    stills_args,
    stills_graph,
)
from tests import plans
from tests.plans import scene_plan, shot, still

TAGS = "setsar=1,setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709"
STILLS = [Path("/w/stills/a.yuv"), Path("/w/stills/b.yuv")]


def _plan(motion: str, orientation: int = 1, fit: str = "cover") -> Plan:
    images = (still("a.jpg", 4000, 3000, orientation), still("b.png", 600, 800))
    moves = [kenburns("a|b", i) if motion == "kenburns" else STILL for i in range(3)]
    shots = (
        shot(images[0], 40, 9, moves[0]),
        shot(images[1], 40, 9, moves[1]),
        shot(images[0], 41, 0, moves[2]),
    )
    scene = scene_plan(id="s", visuals=images, shots=shots, fit=fit, motion=motion)
    return plans.plan(
        scene, width=320, height=180, encoder=Encoder(preset="veryfast", crf=20), xfade_frames=9
    )


def _chains(graph_text: str) -> list[str]:
    return graph_text.split(";")


def _zoom(plan: Plan, shot: int, first: int, count: int) -> str:
    """The zoompan of a piece of a shot, as the scene graph must draw it."""
    s = plan.scenes[0].shots[shot]
    return zoompan_filter(s.move, s.frames + s.overlap, 320, 180, 30, first, count).text()


def test_each_image_is_decoded_once_into_a_raw_still() -> None:
    plan = _plan("kenburns")
    prep = stills_args(Path("/p"), plan, plan.scenes[0], STILLS)
    cover = (
        "scale=480:270:force_original_aspect_ratio=increase:out_color_matrix=bt709:out_range=tv,"
        "crop=480:270,format=yuv420p"
    )
    # Scaled once, to 1.5× the output size (the scene moves), one raw yuv420p frame per image.
    assert prep == [
        # Only the file itself may be opened (untrusted media: docs/clips.md).
        *("-noautorotate", "-protocol_whitelist", "file,pipe", "-i", "/p/input/images/a.jpg"),
        *("-noautorotate", "-protocol_whitelist", "file,pipe", "-i", "/p/input/images/b.png"),
        *("-filter_complex", f"[0:v]{cover}[s0];[1:v]{cover}[s1]"),
        *("-map", "[s0]", "-frames:v", "1", "-pix_fmt", "yuv420p", "-f", "rawvideo"),
        "/w/stills/a.yuv",
        *("-map", "[s1]", "-frames:v", "1", "-pix_fmt", "yuv420p", "-f", "rawvideo"),
        "/w/stills/b.yuv",
    ]


def test_exif_orientation_and_contain() -> None:
    plan = _plan("none", orientation=6, fit="contain")
    compiled = stills_graph(plan, plan.scenes[0]).compile()

    def contained(src: str, first: int) -> list[str]:
        bg, fg, bg_out, fg_out, out = (f"[s{first + i}]" for i in range(5))
        return [
            f"{src}split=2{bg}{fg}",
            f"{bg}scale=40:22:force_original_aspect_ratio=increase:out_color_matrix=bt709:"
            "out_range=tv,crop=40:22,gblur=sigma=1.00,eq=brightness=-0.12:saturation=0.8,"
            f"scale=320:180,format=yuv420p{bg_out}",
            f"{fg}scale=320:180:force_original_aspect_ratio=decrease:out_color_matrix=bt709:"
            f"out_range=tv,format=yuv420p{fg_out}",
            f"{bg_out}{fg_out}overlay=(W-w)/2:(H-h)/2:format=yuv420,format=yuv420p{out}",
        ]

    # Image a carries EXIF 6 (turned clockwise first), image b none; not moving: output size.
    assert _chains(compiled.text) == [
        *contained("[0:v]transpose=clock,", 0),
        *contained("[1:v]", 5),
    ]
    assert compiled.maps == ("[s4]", "[s9]")


@pytest.mark.parametrize(
    ("orientation", "filters"),
    [(2, "hflip,"), (3, "hflip,vflip,"), (5, "transpose=cclock_flip,"), (8, "transpose=cclock,")],
)
def test_every_exif_orientation_is_turned_upright(orientation: int, filters: str) -> None:
    plan = _plan("none", orientation=orientation)
    text = stills_graph(plan, plan.scenes[0]).compile().text
    assert text.startswith(f"[0:v]{filters}scale=320:180:")


def test_pieces_are_data_head_body_tail() -> None:
    plan = _plan("kenburns")
    # Shots of 40, 40 and 41 frames with 9-frame fades: each shot's tail fades into the next
    # one's head.
    assert pieces(plan, plan.scenes[0]) == [
        Piece("body", 0, 0, 40),
        Piece("tail", 0, 40, 49),
        Piece("head", 1, 0, 9),
        Piece("body", 1, 9, 40),
        Piece("tail", 1, 40, 49),
        Piece("head", 2, 0, 9),
        Piece("body", 2, 9, 41),
    ]


def test_the_moving_scene_graph() -> None:
    plan = _plan("kenburns")
    compiled = scene_graph(plan, plan.scenes[0]).compile()
    fade = "xfade=transition=fade:duration=0.300000:offset=0,format=yuv420p"
    # Image a (shots 0 and 2) feeds 4 pieces, image b (shot 1) three; every piece draws its
    # frames itself, so no stream of frames is split or trimmed, and only the overlapping frames
    # go through xfade (which converts to 4:4:4).
    assert _chains(compiled.text) == [
        "[0:v]split=4[s0][s1][s2][s3]",
        "[1:v]split=3[s4][s5][s6]",
        f"[s0]{_zoom(plan, 0, 0, 40)},setsar=1[s7]",
        f"[s1]{_zoom(plan, 0, 40, 9)},setsar=1[s8]",
        f"[s4]{_zoom(plan, 1, 0, 9)},setsar=1[s9]",
        f"[s5]{_zoom(plan, 1, 9, 31)},setsar=1[s10]",
        f"[s6]{_zoom(plan, 1, 40, 9)},setsar=1[s11]",
        f"[s2]{_zoom(plan, 2, 0, 9)},setsar=1[s12]",
        f"[s3]{_zoom(plan, 2, 9, 32)},setsar=1[s13]",
        f"[s8][s9]{fade}[s14]",
        f"[s11][s12]{fade}[s15]",
        f"[s7][s14][s10][s15][s13]concat=n=5:v=1:a=0,{TAGS}[s16]",
    ]
    assert compiled.maps == ("[s16]",)


def test_still_scenes_loop_the_fitted_frame() -> None:
    plan = _plan("none")
    text = scene_graph(plan, plan.scenes[0]).compile().text
    fade = "xfade=transition=fade:duration=0.300000:offset=0,format=yuv420p"
    assert _chains(text) == [
        "[0:v]split=4[s0][s1][s2][s3]",
        "[1:v]split=3[s4][s5][s6]",
        "[s0]loop=loop=39:size=1,setpts=N,setsar=1[s7]",
        "[s1]loop=loop=8:size=1,setpts=N,setsar=1[s8]",
        "[s4]loop=loop=8:size=1,setpts=N,setsar=1[s9]",
        "[s5]loop=loop=30:size=1,setpts=N,setsar=1[s10]",
        "[s6]loop=loop=8:size=1,setpts=N,setsar=1[s11]",
        "[s2]loop=loop=8:size=1,setpts=N,setsar=1[s12]",
        "[s3]loop=loop=31:size=1,setpts=N,setsar=1[s13]",
        f"[s8][s9]{fade}[s14]",
        f"[s11][s12]{fade}[s15]",
        f"[s7][s14][s10][s15][s13]concat=n=5:v=1:a=0,{TAGS}[s16]",
    ]
    prep = stills_args(Path("/p"), plan, plan.scenes[0], STILLS)
    assert "scale=320:180:force_original_aspect_ratio=increase" in " ".join(prep)


def _without_fades(plan: Plan) -> Plan:
    scene = plan.scenes[0]
    shots = tuple(dataclasses.replace(s, overlap=0) for s in scene.shots)
    return dataclasses.replace(
        plan, xfade_frames=0, scenes=(dataclasses.replace(scene, shots=shots),)
    )


def test_without_fades_the_shots_are_concatenated_whole() -> None:
    plan = _without_fades(_plan("none"))
    text = scene_graph(plan, plan.scenes[0]).compile().text
    assert _chains(text) == [
        "[0:v]split=2[s0][s1]",
        "[1:v]split=1[s2]",
        "[s0]loop=loop=39:size=1,setpts=N,setsar=1[s3]",
        "[s2]loop=loop=39:size=1,setpts=N,setsar=1[s4]",
        "[s1]loop=loop=40:size=1,setpts=N,setsar=1[s5]",
        f"[s3][s4][s5]concat=n=3:v=1:a=0,{TAGS}[s6]",
    ]


def test_a_single_shot_is_tagged_without_concat() -> None:
    plan = _plan("kenburns")
    scene = plan.scenes[0]
    one = dataclasses.replace(
        scene, frames=40, shots=(dataclasses.replace(scene.shots[0], overlap=0),)
    )
    plan = dataclasses.replace(plan, scenes=(one,))
    # Image b is an input of the command but no shot shows it: the graph does not read it.
    assert scene_graph(plan, one).compile().text == (
        f"[0:v]split=1,{_zoom(plan, 0, 0, 40)},setsar=1,{TAGS}[s0]"
    )


def test_a_head_needs_the_tail_of_the_shot_before() -> None:
    plan = _plan("none")
    scene = plan.scenes[0]
    broken = dataclasses.replace(
        scene, shots=(dataclasses.replace(scene.shots[0], overlap=0), *scene.shots[1:])
    )
    with pytest.raises(ValueError, match="shot 1 fades in but the shot before it has no tail"):
        scene_graph(plan, broken)


def test_the_clip_command_reads_the_stills_and_encodes_with_the_plans_encoder() -> None:
    plan = _plan("kenburns")
    args = scene_args(plan, plan.scenes[0], STILLS, Path("/out.mp4"))
    raw = ("-f", "rawvideo", "-pix_fmt", "yuv420p", "-video_size", "480x270", "-framerate", "30")
    graph = scene_graph(plan, plan.scenes[0]).compile()
    assert args == [
        *raw,
        *("-i", "/w/stills/a.yuv"),
        *raw,
        *("-i", "/w/stills/b.yuv"),
        *("-filter_complex", graph.text, "-map", "[s16]", "-an"),
        *video_codec_args(plan.encoder),
        *("-frames:v", "121"),
        # The clip's MP4 timed in frames (1/30), its edit list too: exact lengths.
        *("-video_track_timescale", "30", "-movie_timescale", "30"),
        *("-f", "mp4", "/out.mp4"),
    ]


def test_codec_arguments_come_from_the_encoder_alone() -> None:
    assert video_codec_args(Encoder(preset="veryfast", crf=20)) == [
        *("-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-profile:v", "high"),
        *("-pix_fmt", "yuv420p", "-color_range", "tv", "-colorspace", "bt709"),
        *("-color_primaries", "bt709", "-color_trc", "bt709", "-threads", "0"),
    ]
    capped = video_codec_args(Encoder(threads=2, lookahead=10))
    assert capped[-4:] == ["-threads", "2", "-rc-lookahead", "10"]


def test_kenburns_alternates_and_is_deterministic() -> None:
    moves = [kenburns("some digest", shot) for shot in range(4)]
    # In and out alternately; a scene opens on its first picture whole (its poster frame).
    assert [m.zoom_end > m.zoom_start for m in moves] == [True, False] * 2
    assert moves[0].zoom_start == 1.0
    assert kenburns("d", 1) == kenburns("d", 1)
    assert not moves[0].still and STILL.still


def test_kenburns_follows_the_content_not_the_position() -> None:
    # The move of a shot is named by the scene's content (its images' digests) and the shot
    # number only: different content, different moves; same content, same move.
    seeds = [f"digest{n}" for n in range(12)]
    assert len({kenburns(seed, 0) for seed in seeds}) > 2
    assert {kenburns(seed, 2) for seed in seeds[:1] * 3} == {kenburns(seeds[0], 2)}


def test_zoompan_interpolates_over_the_shot() -> None:
    assert zoompan_filter(Move(1.0, 1.12, 0.5, 0.3, 0.5, 0.5), 50, 1920, 1080, 30) == Filter.of(
        "zoompan",
        z="(1.000000+(0.120000)*(on/49))",
        x="(iw-iw/zoom)*(0.500000+(-0.200000)*(on/49))",
        y="(ih-ih/zoom)*0.500000",
        d=50,
        s="1920x1080",
        fps=30,
    )
    # A later piece of the same move: the same curve, counted from its first frame.
    later = zoompan_filter(Move(1.0, 1.12), 50, 1920, 1080, 30, first=40, count=10)
    assert dict(later.options)["z"] == "(1.000000+(0.120000)*((on+40)/49))"
    assert dict(later.options)["d"] == 10
