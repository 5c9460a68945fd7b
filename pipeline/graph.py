"""FFmpeg filter graphs as data: filters and the streams between them, compiled to text once.

A `Graph` holds filters (`Filter`: a name and its argument values) and the streams that link
them (`Stream`: a stream of an input file, or one output of a filter). Streams are Python objects,
never label strings: labels (`[s0]`, `[s1]`...) are handed out by `compile()`, which also escapes
every argument value, joins one-input filters into chains, and returns the `-filter_complex` text
with the `-map` targets of the graph's outputs.

Two rules FFmpeg enforces at run time are checked while the graph is built or compiled: a
stream feeds one filter only (`split` it to use it twice), and every output of a filter goes
somewhere (another filter or a graph output) — FFmpeg would map a dangling output to the file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Value = str | int | float

_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
# An option value is read up to the next ':' (and '=' splits a key from its value); the whole
# argument text of a filter is read up to the next '[', ']', ',' or ';'. Backslash and quote
# are special at both levels.
_VALUE_SPECIALS = "\\':="
_GRAPH_SPECIALS = "\\'[],;"


class GraphError(ValueError):
    """A graph FFmpeg would refuse, or run differently from what was meant."""


def _escape(text: str, specials: str) -> str:
    """Backslash before each special character, and before whitespace at either end (which
    FFmpeg's tokeniser would otherwise strip)."""
    out = [f"\\{c}" if c in specials else c for c in text]
    for i in (0, len(out) - 1) if out else ():
        if out[i].isspace():
            out[i] = f"\\{out[i]}"
    return "".join(out)


def _value(value: Value) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"a filter argument must be a str, int or float, not {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"a filter argument must be finite, not {value!r}")
    # Floats as Python's shortest round trip (0.8, not 0.8000000000000000444): FFmpeg reads the
    # same double back. Where a filter's precision matters, pass the formatted string.
    return _escape(value if isinstance(value, str) else repr(value), _VALUE_SPECIALS)


@dataclass(frozen=True)
class Filter:
    """One FFmpeg filter: `name=arg:arg:key=value:...` once compiled, values unescaped here."""

    name: str
    args: tuple[Value, ...] = ()
    options: tuple[tuple[str, Value], ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"{self.name!r} is not a filter name")
        for key, _ in self.options:
            if not _KEY.fullmatch(key):
                raise ValueError(f"{key!r} is not an option name (filter {self.name})")

    @classmethod
    def of(cls, name: str, /, *args: Value, **options: Value) -> Filter:
        """`Filter.of("scale", 320, 180, out_range="tv")`: positional values, then options."""
        return cls(name, args, tuple(options.items()))

    def text(self) -> str:
        """The filter as FFmpeg reads it inside a graph: each value escaped, then the whole."""
        values = [_value(a) for a in self.args]
        values += [f"{key}={_value(value)}" for key, value in self.options]
        if not values:
            return self.name
        return f"{self.name}={_escape(':'.join(values), _GRAPH_SPECIALS)}"


def chain_text(filters: Iterable[Filter]) -> str:
    """A simple filter graph (`-af`, `-vf`): one chain of one-input filters, no labels."""
    text = ",".join(f.text() for f in filters)
    if not text:
        raise GraphError("a filter chain needs at least one filter")
    return text


@dataclass(eq=False, frozen=True)
class Stream:
    """A link of a graph: a stream of an input file (`file` stream specifier, e.g. "0:v") or
    output `pad` of a filter. Streams compare by identity, like the links they stand for."""

    graph: Graph = field(repr=False)
    file: str | None = None
    node: _Node | None = field(default=None, repr=False)
    pad: int = 0

    def describe(self) -> str:
        if self.file is not None:
            return f"[{self.file}]"
        assert self.node is not None
        return f"output {self.pad} of {self.node.describe()}"


@dataclass(eq=False)
class _Node:
    filter: Filter
    number: int  # its place in the graph, for messages
    inputs: tuple[Stream, ...]
    outputs: tuple[Stream, ...] = ()

    def describe(self) -> str:
        return f"filter {self.number} ({self.filter.name})"


@dataclass(frozen=True)
class Compiled:
    """What FFmpeg is given: `-filter_complex text`, and the `-map` targets in `output()` order."""

    text: str
    maps: tuple[str, ...]


class Graph:
    """A filter graph under construction; `compile()` turns it into FFmpeg's text."""

    def __init__(self) -> None:
        self._nodes: list[_Node] = []
        self._used: dict[Stream, str] = {}  # stream → what consumes it
        self._outputs: list[Stream] = []

    def input(self, file: int, media: str | None = None, index: int | None = None) -> Stream:
        """Stream `[file:media:index]` of the command's input files, e.g. `input(1, "a", 0)`."""
        if file < 0 or (index is not None and index < 0):
            raise GraphError(f"no input stream {file}:{media}:{index}")
        if index is not None and media is None:
            raise GraphError("an input stream index needs its media type (v, a, ...)")
        spec = ":".join(str(part) for part in (file, media, index) if part is not None)
        return Stream(self, file=spec)

    def apply(self, filter: Filter, *inputs: Stream) -> Stream:
        """`filter` fed by `inputs` in order (none for a source such as anullsrc): its output."""
        (output,) = self.apply_n(filter, *inputs, outputs=1)
        return output

    def apply_n(self, filter: Filter, *inputs: Stream, outputs: int) -> tuple[Stream, ...]:
        """A filter with several outputs (split, asplit...): its output streams in pad order."""
        if outputs < 1:
            raise GraphError(f"{filter.name} needs at least one output")
        node = _Node(filter, len(self._nodes), inputs)
        for n, stream in enumerate(inputs):  # all checked before any is taken: no half-added node
            self._check_unused(stream, node.describe(), inputs[:n])
        for stream in inputs:
            self._used[stream] = node.describe()
        node.outputs = tuple(Stream(self, node=node, pad=pad) for pad in range(outputs))
        self._nodes.append(node)
        return node.outputs

    def chain(self, stream: Stream, filters: Iterable[Filter]) -> Stream:
        """`stream` through each of `filters` in turn (no filters: `stream` itself)."""
        for f in filters:
            stream = self.apply(f, stream)
        return stream

    def split(self, stream: Stream, count: int) -> tuple[Stream, ...]:
        """`count` copies of a video stream, each of which may feed one filter."""
        return self.apply_n(Filter.of("split", count), stream, outputs=count)

    def output(self, stream: Stream) -> None:
        """Make `stream` an output of the graph, a `-map` target of the command."""
        if stream.file is not None:
            raise GraphError(f"{stream.describe()} is a file's stream: map it without the graph")
        self._check_unused(stream, "an output of the graph")
        self._used[stream] = "an output of the graph"
        self._outputs.append(stream)

    def _check_unused(self, stream: Stream, consumer: str, taken: Sequence[Stream] = ()) -> None:
        if stream.graph is not self:
            raise GraphError(f"{stream.describe()} belongs to another graph")
        user = consumer if stream in taken else self._used.get(stream)
        if user is not None:
            raise GraphError(
                f"{stream.describe()} feeds {user} already and cannot also feed {consumer}: "
                "split it"
            )

    def compile(self) -> Compiled:
        """Labels, chains and escaping: the `-filter_complex` text, in the order filters were
        added (FFmpeg negotiates formats in graph order, so the order is kept, not re-sorted)."""
        if not self._outputs:
            raise GraphError("the graph has no outputs")
        for node in self._nodes:
            for stream in node.outputs:
                if stream not in self._used:
                    raise GraphError(f"{stream.describe()} is not connected")
        labels: dict[Stream, str] = {}

        def label(stream: Stream) -> str:
            if stream.file is not None:
                return f"[{stream.file}]"
            if stream not in labels:
                labels[stream] = f"[s{len(labels)}]"
            return labels[stream]

        chains: list[str] = []
        text = ""
        for previous, node in zip([None, *self._nodes], self._nodes, strict=False):
            if previous is not None and _chained(previous, node, self._outputs):
                text += f",{node.filter.text()}"
                continue
            if previous is not None:
                chains.append(text + "".join(label(s) for s in previous.outputs))
            text = "".join(label(s) for s in node.inputs) + node.filter.text()
        chains.append(text + "".join(label(s) for s in self._nodes[-1].outputs))
        return Compiled(";".join(chains), tuple(label(s) for s in self._outputs))


def _chained(previous: _Node, node: _Node, outputs: Sequence[Stream]) -> bool:
    """`node` follows `previous` after a comma: it reads previous's only output, unlabelled."""
    return (
        len(previous.outputs) == 1
        and node.inputs == previous.outputs
        and previous.outputs[0] not in outputs
    )
