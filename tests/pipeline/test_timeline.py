import math
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import timeline


def test_scene_seconds_takes_the_longer_of_voiceover_and_duration() -> None:
    assert timeline.scene_seconds(4.2, None) == 4.2
    assert timeline.scene_seconds(None, 3.0) == 3.0
    assert timeline.scene_seconds(4.2, 6.0) == 6.0
    assert timeline.scene_seconds(7.5, 6.0) == 7.5
    assert timeline.scene_seconds(None, None) is None


def test_shot_count_covers_every_image_and_caps_shot_length() -> None:
    assert timeline.shot_count(5.0, 3, 8.0) == 3
    assert timeline.shot_count(17.0, 1, 8.0) == 3
    assert timeline.shot_count(16.0, 1, 8.0) == 2  # exactly 2 × maxShot


def test_split_frames_adds_up_and_differs_by_at_most_one() -> None:
    assert timeline.split_frames(10, 3) == (3, 4, 3)
    assert sum(timeline.split_frames(1001, 7)) == 1001


def test_short_scene_is_lengthened_to_k_min_shots() -> None:
    # 3 images in 4 s with minShot 2.5: k = 3, shots 1.33 s < 2.5 → 7.5 s = 225 frames.
    (scene,) = timeline.layout([4.0], [3], fps=30, min_shot=2.5, max_shot=8.0)
    assert scene.lengthened
    assert scene.frames == 225
    assert scene.shot_frames == (75, 75, 75)


def test_boundaries_round_cumulatively() -> None:
    # 3 × 1.01 s at 30 fps: 30.3 frames each; per-scene rounding would give 90, not round(90.9).
    scenes = timeline.layout([1.01] * 3, [1] * 3, fps=30, min_shot=0.5, max_shot=8.0)
    assert [s.start_frame for s in scenes] == [0, 30, 61]
    assert scenes[-1].end_frame == 91


def test_long_scene_gets_extra_shots_cycling_images() -> None:
    (scene,) = timeline.layout([20.0], [2], fps=25, min_shot=2.5, max_shot=8.0)
    assert len(scene.shot_frames) == 3
    assert sum(scene.shot_frames) == 500


def test_overlap_and_sample_positions() -> None:
    assert timeline.overlap_frames(0.5, 30) == 15
    assert timeline.sample_at(30, 30) == 48_000
    assert timeline.sample_at(1, 30) == 1600
    assert timeline.sample_at(1, 25) == 1920


def test_exact_reads_floats_as_decimals() -> None:
    assert timeline.exact(0.1) == Fraction(1, 10)
    assert timeline.min_shot_frames(0.1, 30) == 3  # not 4 from 0.1's binary excess


durations = st.lists(
    st.floats(min_value=0.05, max_value=120.0, allow_nan=False), min_size=1, max_size=25
)


@settings(max_examples=300, deadline=None)
@given(
    durations=durations,
    images=st.data(),
    fps=st.sampled_from([1, 12, 24, 25, 30, 50, 60]),
    min_shot=st.floats(min_value=0.1, max_value=10.0),
    extra=st.floats(min_value=0.0, max_value=20.0),
)
def test_layout_properties(
    durations: list[float],
    images: st.DataObject,
    fps: int,
    min_shot: float,
    extra: float,
) -> None:
    max_shot = min_shot + extra
    counts = images.draw(
        st.lists(st.integers(1, 3), min_size=len(durations), max_size=len(durations))
    )
    scenes = timeline.layout(durations, counts, fps=fps, min_shot=min_shot, max_shot=max_shot)
    min_frames = math.ceil(timeline.exact(min_shot) * fps)

    # Contiguous, and every scene's shots add up to the scene.
    start = 0
    total_seconds = Fraction(0)
    for scene, seconds, count in zip(scenes, durations, counts, strict=True):
        assert scene.start_frame == start
        assert sum(scene.shot_frames) == scene.frames
        assert len(scene.shot_frames) >= count
        # No shot shorter than minShot, in whole frames.
        assert min(scene.shot_frames) >= min_frames
        if not scene.lengthened:
            # A scene keeps its length (to the frame) unless it had to be lengthened.
            assert abs(scene.frames - float(seconds) * fps) <= 1
            total_seconds += timeline.exact(seconds)
        else:
            assert scene.frames == len(scene.shot_frames) * min_frames
            total_seconds = Fraction(scene.end_frame, fps)
        start = scene.end_frame
    # Frames add up to round(total × fps) over the (possibly lengthened) scene lengths.
    assert scenes[-1].end_frame == timeline.round_half_up(total_seconds * fps)


def test_merge_spans_bridges_short_gaps_only() -> None:
    spans = [(0.0, 1.0), (0.5, 0.8), (1.25, 2.0), (2.31, 3.0)]
    assert timeline.merge_spans(spans, 0.3) == [(0.0, 2.0), (2.31, 3.0)]
    assert timeline.merge_spans(spans, 0.0) == [(0.0, 1.0), (1.25, 2.0), (2.31, 3.0)]
    assert timeline.merge_spans([], 1.0) == []
