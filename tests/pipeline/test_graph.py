"""The filter graph builder: compiled text of small hand-built graphs, escaping, and the rules."""

import subprocess

import pytest

from pipeline.graph import Compiled, Filter, Graph, GraphError, chain_text
from tests import pipeline_fixtures as fx

ffmpeg_bin = fx.ffmpeg_bin


def test_a_chain_of_one_input_filters_is_joined_by_commas() -> None:
    graph = Graph()
    scaled = graph.chain(
        graph.input(0, "v"),
        (Filter.of("hflip"), Filter.of("scale", 320, 180, out_range="tv"), Filter.of("setsar", 1)),
    )
    graph.output(scaled)
    assert graph.compile() == Compiled(
        "[0:v]hflip,scale=320:180:out_range=tv,setsar=1[s0]", ("[s0]",)
    )


def test_split_labels_each_copy_and_outputs_map_in_declaration_order() -> None:
    graph = Graph()
    left, right = graph.split(graph.input(0, "v"), 2)
    small = graph.apply(Filter.of("scale", 40, 22), left)
    graph.output(graph.apply(Filter.of("overlay", "(W-w)/2", "(H-h)/2"), right, small))
    graph.output(graph.apply(Filter.of("null"), graph.input(1, "v")))
    assert graph.compile() == Compiled(
        "[0:v]split=2[s0][s1];[s0]scale=40:22[s2];[s1][s2]overlay=(W-w)/2:(H-h)/2[s3];"
        "[1:v]null[s4]",
        ("[s3]", "[s4]"),
    )


def test_sources_input_streams_and_a_multi_input_filter() -> None:
    graph = Graph()
    voice = graph.chain(graph.input(1, "a", 0), (Filter.of("atrim", end_sample=10),))
    silence = graph.apply(Filter.of("anullsrc", r=48000, cl="stereo"))
    graph.output(graph.apply(Filter.of("concat", n=2, v=0, a=1), voice, silence))
    assert graph.compile().text == (
        "[1:a:0]atrim=end_sample=10[s0];anullsrc=r=48000:cl=stereo[s1];[s0][s1]concat=n=2:v=0:a=1[s2]"
    )
    assert graph.input(2).file == "2" and graph.input(0, "v", 3).file == "0:v:3"


def test_a_graph_output_is_labelled_even_when_a_filter_could_follow_it() -> None:
    graph = Graph()
    first = graph.apply(Filter.of("null"), graph.input(0, "v"))
    graph.output(first)
    # Added after `first` but fed by another stream: a new chain, not `null,null`.
    graph.output(graph.apply(Filter.of("null"), graph.input(1, "v")))
    assert graph.compile().text == "[0:v]null[s0];[1:v]null[s1]"


def test_values_are_escaped_once_for_the_option_and_once_for_the_graph() -> None:
    text = Filter.of("drawtext", text="a:b,c;d[e]f'g\\h=i").text()
    # ':' '=' '\' "'" escaped for the option parser, then '\' "'" ',' ';' '[' ']' for the graph.
    assert text == r"drawtext=text=a\\:b\,c\;d\[e\]f\\\'g\\\\h\\=i"
    assert Filter.of("f", " padded ").text() == r"f=\\ padded\\\ "
    assert Filter.of("zoompan", z="(1+0.1*on)").text() == "zoompan=z=(1+0.1*on)"
    assert Filter.of("eq", brightness=-0.12, saturation=0.8).text() == (
        "eq=brightness=-0.12:saturation=0.8"
    )
    assert chain_text((Filter.of("atrim", start_sample=0), Filter.of("asetpts", "N"))) == (
        "atrim=start_sample=0,asetpts=N"
    )


@pytest.mark.parametrize("value", ["plain", "a:b,c;d[e]f'g\\h=i", " both ends ", "x\\"])
def test_ffmpeg_reads_back_exactly_the_value_given(ffmpeg_bin: str, value: str) -> None:
    graph = Graph()
    tagged = graph.chain(
        graph.input(0, "v"),
        (
            Filter.of("metadata", mode="add", key="probe", value=value),
            Filter.of("metadata", mode="print"),
        ),
    )
    graph.output(tagged)
    compiled = graph.compile()
    result = subprocess.run(
        [
            *(ffmpeg_bin, "-hide_banner", "-nostdin", "-loglevel", "info"),
            *("-f", "lavfi", "-i", "color=s=16x16:d=0.04"),
            *("-filter_complex", compiled.text, "-map", compiled.maps[0], "-f", "null", "-"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    printed = [
        line.split("] probe=", 1)[1] for line in result.stderr.splitlines() if "] probe=" in line
    ]
    assert printed == [value]


def test_a_stream_feeds_one_filter_unless_split() -> None:
    graph = Graph()
    source = graph.input(0, "v")
    graph.apply(Filter.of("null"), source)
    with pytest.raises(GraphError, match=r"\[0:v\] feeds filter 0 \(null\) already.*split it"):
        graph.apply(Filter.of("hflip"), source)
    # Nothing is taken from a filter that could not be added.
    fresh = graph.input(2, "v")
    with pytest.raises(GraphError, match=r"\[2:v\] feeds filter 1 \(overlay\) already"):
        graph.apply(Filter.of("overlay"), fresh, fresh)
    graph.output(graph.apply(Filter.of("null"), fresh))
    out = graph.apply(Filter.of("null"), graph.input(1, "v"))
    graph.output(out)
    with pytest.raises(GraphError, match=r"output 0 of filter 2 \(null\) feeds an output"):
        graph.output(out)


def test_every_filter_output_must_go_somewhere() -> None:
    graph = Graph()
    kept, _dropped = graph.split(graph.input(0, "v"), 2)
    graph.output(kept)
    with pytest.raises(GraphError, match=r"output 1 of filter 0 \(split\) is not connected"):
        graph.compile()
    with pytest.raises(GraphError, match="no outputs"):
        Graph().compile()


def test_streams_stay_in_their_graph_and_inputs_are_not_outputs() -> None:
    one, other = Graph(), Graph()
    with pytest.raises(GraphError, match="another graph"):
        other.apply(Filter.of("null"), one.input(0, "v"))
    with pytest.raises(GraphError, match="file's stream"):
        one.output(one.input(0, "v"))
    with pytest.raises(GraphError, match="media type"):
        one.input(0, None, 1)


def test_names_and_values_are_checked() -> None:
    with pytest.raises(ValueError, match="filter name"):
        Filter.of("scale,crop")
    with pytest.raises(ValueError, match="option name"):
        Filter("scale", options=(("w:h", 1),))
    with pytest.raises(TypeError, match="str, int or float"):
        Filter.of("loop", loop=True).text()
    with pytest.raises(ValueError, match="finite"):
        Filter.of("eq", gamma=float("nan")).text()
    with pytest.raises(GraphError, match="at least one filter"):
        chain_text(())
