"""The scale-out simulation of tests/bench_scale.py: placement and wall times."""

from __future__ import annotations

import pytest

from tests.bench_scale import makespan, simulate


def test_longest_first_placement() -> None:
    assert makespan([5, 4, 3, 3, 3], 2) == 10  # hosts take 5+3 and 4+3+3
    assert makespan([4, 4, 4, 4], 4) == 4
    assert makespan([9, 1, 1, 1], 8) == 9  # the longest unit decides
    assert makespan([1.5] * 6, 1) == pytest.approx(9.0)


def test_serial_stages_add_and_per_scene_steps_spread() -> None:
    stages = [
        ("VALIDATE", 1.0),
        ("AUDIO_PREP", 0.5),
        ("SCENE_BUILD[0]", 4.0),
        ("SCENE_BUILD[1]", 4.0),
        ("SCENE_BUILD[2]", 2.0),
        ("CONCAT", 0.5),
        ("FINALIZE", 1.0),
    ]
    assert simulate(stages, 1) == pytest.approx(13.0)
    assert simulate(stages, 2) == pytest.approx(3.0 + 6.0)
    assert simulate(stages, 3) == pytest.approx(3.0 + 4.0)
