"""The pure parts of tests/bench_scale.py: placement, wall times with chunk labels, the one-host
cost of chunking and its medians, the order of the pairs, and the report's text."""

from __future__ import annotations

import dataclasses

import pytest

from tests.bench_scale import (
    CHUNKED,
    UNCHUNKED,
    Run,
    cost,
    efficiency,
    goal_lines,
    job_wall,
    makespan,
    median_cost,
    mismatch,
    orders,
    report,
    scene_build_seconds,
    simulate,
    stage_seconds,
    summary,
)

SERIAL = [("VALIDATE", 1.0), ("AUDIO_PREP", 0.5), ("CONCAT", 0.5), ("FINALIZE", 1.0)]


def _scenes(*builds: tuple[str, float]) -> list[tuple[str, float]]:
    return [*SERIAL[:2], *builds, *SERIAL[2:]]


UNCHUNKED_STAGES = _scenes(
    ("SCENE_BUILD[0]", 4.0), ("SCENE_BUILD[1]", 4.0), ("SCENE_BUILD[2]", 2.0)
)
# The same scenes in chunks: scene 0 and 1 in two of 2 s, scene 2 one unit.
CHUNKED_STAGES = _scenes(
    ("SCENE_BUILD[0/0]", 2.0),
    ("SCENE_BUILD[0/1]", 2.5),
    ("SCENE_BUILD[1/0]", 2.0),
    ("SCENE_BUILD[1/1]", 2.0),
    ("SCENE_BUILD[2]", 2.0),
)


def _run(variant: str, stages: list[tuple[str, float]], wall: float, size: int) -> Run:
    return Run(variant, 2.5, stages, wall=wall, size=size, frames=300, duration=10.0)


def test_longest_first_placement() -> None:
    assert makespan([5, 4, 3, 3, 3], 2) == 10  # hosts take 5+3 and 4+3+3
    assert makespan([4, 4, 4, 4], 4) == 4
    assert makespan([9, 1, 1, 1], 8) == 9  # the longest unit decides
    assert makespan([1.5] * 6, 1) == pytest.approx(9.0)


def test_serial_stages_add_and_per_scene_steps_spread() -> None:
    assert simulate(UNCHUNKED_STAGES, 1) == pytest.approx(13.0)
    assert simulate(UNCHUNKED_STAGES, 2) == pytest.approx(3.0 + 6.0)
    assert simulate(UNCHUNKED_STAGES, 3) == pytest.approx(3.0 + 4.0)


def test_chunks_are_units_of_the_scene_step() -> None:
    # Five units of one step, not serial stages: 3 s serial + 10.5 s spread.
    assert simulate(CHUNKED_STAGES, 1) == pytest.approx(13.5)
    assert simulate(CHUNKED_STAGES, 2) == pytest.approx(3.0 + 6.0)  # LPT: 2.5+2 | 2+2+2
    assert simulate(CHUNKED_STAGES, 5) == pytest.approx(3.0 + 2.5)  # the longest chunk decides
    # Smaller units spread better than the 4 s scenes they came from.
    assert efficiency(CHUNKED_STAGES, 3) > efficiency(UNCHUNKED_STAGES, 3)


def test_speech_and_scene_build_are_separate_steps() -> None:
    stages = [("SPEECH[0]", 1.0), ("SPEECH[1]", 1.0), *CHUNKED_STAGES]
    # SPEECH's two units take 1 s on 2 hosts, then SCENE_BUILD's; neither waits on the other.
    assert simulate(stages, 2) == pytest.approx(simulate(CHUNKED_STAGES, 2) + 1.0)
    assert scene_build_seconds(stages) == pytest.approx(10.5)


def test_job_wall_spans_first_start_to_last_finish() -> None:
    job = {
        "stages": [
            {
                "name": "VALIDATE",
                "startedAt": "2024-05-01T10:00:01",
                "finishedAt": "2024-05-01T10:00:02",
            },
            {
                "name": "SCENE_BUILD[0/1]",
                "startedAt": "2024-05-01T10:00:02.5",
                "finishedAt": "2024-05-01T10:00:09",
            },
            {
                "name": "FINALIZE",
                "startedAt": "2024-05-01T10:00:09.5",
                "finishedAt": "2024-05-01T10:00:11.25",
            },
        ]
    }
    assert job_wall(job) == pytest.approx(10.25)
    assert stage_seconds(job) == [("VALIDATE", 1.0), ("SCENE_BUILD[0/1]", 6.5), ("FINALIZE", 1.75)]


def test_cost_is_chunked_over_unchunked() -> None:
    ratios = cost(
        _run(CHUNKED, CHUNKED_STAGES, 14.0, 1030), _run(UNCHUNKED, UNCHUNKED_STAGES, 13.0, 1000)
    )
    assert ratios == pytest.approx({"wall": 14 / 13, "SCENE_BUILD": 10.5 / 10.0, "size": 1.03})


def test_median_cost_takes_each_ratio_on_its_own() -> None:
    costs = [
        {"wall": 1.10, "SCENE_BUILD": 1.0, "size": 1.02},
        {"wall": 1.00, "SCENE_BUILD": 1.3, "size": 1.01},
        {"wall": 1.02, "SCENE_BUILD": 1.1, "size": 1.05},
    ]
    assert median_cost(costs) == {"wall": 1.02, "SCENE_BUILD": 1.1, "size": 1.02}
    assert median_cost(costs[:2])["wall"] == pytest.approx(1.05)


def test_pairs_alternate_their_order() -> None:
    assert orders(1) == [(UNCHUNKED, CHUNKED)]
    assert orders(3) == [(UNCHUNKED, CHUNKED), (CHUNKED, UNCHUNKED), (UNCHUNKED, CHUNKED)]


def test_mismatch_names_frames_then_duration() -> None:
    a = _run(UNCHUNKED, UNCHUNKED_STAGES, 13.0, 1000)
    assert mismatch(a, dataclasses.replace(a, variant=CHUNKED, size=2000)) is None
    fewer = dataclasses.replace(a, variant=CHUNKED, frames=299)
    assert mismatch(a, fewer) == "unchunked has 300 frames, chunked 299"
    longer = dataclasses.replace(a, variant=CHUNKED, duration=10.04)
    assert "lasts 10.0000 s, chunked 10.0400 s" in (mismatch(a, longer) or "")


def test_report_lists_chunk_units_per_step_and_the_hosts_table() -> None:
    text = report(CHUNKED_STAGES).splitlines()
    assert text[0] == "serial stages 3.0 s: VALIDATE 1.0, AUDIO_PREP 0.5, CONCAT 0.5, FINALIZE 1.0"
    assert text[1] == "SCENE_BUILD: 5 units (3 scenes) of 2.0–2.5 s, 10.5 s in all"
    rows = {int(line.split()[0]): line.split()[1:] for line in text[4:]}
    assert list(rows) == [1, 2, 4, 8, 12]
    assert rows[1] == ["13.5", "1.00", "1.00"]
    assert rows[8] == ["5.5", "2.45", "0.31"]  # 13.5 / (3 + 2.5)


def test_goal_lines_say_met_or_not() -> None:
    lines = goal_lines(0.81, {"wall": 1.06, "SCENE_BUILD": 1.2, "size": 1.03})
    assert lines[0].endswith("0.81, met")
    assert lines[1].endswith("1.060×, NOT met")
    assert lines[2].endswith("1.030×, met")


def test_summary_pairs_runs_by_variant_whatever_their_order() -> None:
    runs = [
        _run(UNCHUNKED, UNCHUNKED_STAGES, 13.0, 1000),
        _run(CHUNKED, CHUNKED_STAGES, 13.0, 1010),
        _run(CHUNKED, CHUNKED_STAGES, 15.0, 1010),  # the second pair ran chunked first
        _run(UNCHUNKED, UNCHUNKED_STAGES, 12.0, 1000),
    ]
    text = summary(runs)
    assert "median of 2 pairs" in text
    # Wall ratios 1.0 and 1.25: median 1.125.
    assert "last stage finish) 1.125" in text
    assert "video size                                            1.010" in text
    assert "chunked wall time ≤ 1.05× unchunked: 1.125×, NOT met" in text
