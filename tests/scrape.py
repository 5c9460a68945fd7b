"""Reading what the service streams and exposes, for the tests: Server-Sent Events frames and
Prometheus scrapes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def parse_lines(lines: Iterable[str], until: Any = None) -> list[dict[str, str]]:
    """SSE frames, each a dict of its fields ('comment' for comments), until `until(frame)`
    holds or the lines end (a live stream's `iter_lines()` ends when the server closes it)."""
    frames: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if fields:
                frames.append(fields)
                if until is not None and until(fields):
                    return frames
            fields = {}
        elif line.startswith(":"):
            fields["comment"] = line[1:].strip()
        else:
            name, _, value = line.partition(": ")
            fields[name] = value
    if fields:
        frames.append(fields)
    return frames


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) → value, via prometheus-client."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out
