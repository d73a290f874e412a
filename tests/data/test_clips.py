"""Spans, training clips, evaluation windows, stitching and phases against hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest

from lib.data.clips import (
    WindowPlan,
    clip_spans,
    covering_windows,
    eval_windows,
    interleave,
    phase_split,
    resample_indices,
    sequence_spans,
    speed_up_clip,
    stitch,
    stitch_weights,
    subsample_indices,
    subsampled_spans,
    train_clips,
)

# ---------------------------------------------------------------------------------------------- spans


def test_sequence_spans_hand_worked() -> None:
    source = ["a", "a", "a", "b", "b", "c", "a", "a"]
    # "a" reappearing after "c" is a new sequence: its frames are not contiguous with the first run.
    assert sequence_spans(source) == [(0, 3), (3, 5), (5, 6), (6, 8)]
    assert sequence_spans(np.array([7, 7, 7])) == [(0, 3)]
    assert sequence_spans([]) == []


def test_sequence_spans_match_itertools_groupby() -> None:
    import itertools

    rng = np.random.default_rng(0)
    source = np.repeat(rng.integers(0, 3, size=40), rng.integers(1, 6, size=40))
    expected, pos = [], 0
    for _, group in itertools.groupby(source.tolist()):
        n = len(list(group))
        expected.append((pos, pos + n))
        pos += n
    assert sequence_spans(source) == expected


# ------------------------------------------------------------------------------------- subsampling


def test_subsample_restarts_at_each_sequence() -> None:
    spans = [(0, 5), (5, 8), (8, 9)]
    # Global [::2] would keep 0, 2, 4, 6, 8 and put frame 6 (second sequence, second frame) first-phase.
    assert subsample_indices(spans, 2).tolist() == [0, 2, 4, 5, 7, 8]
    assert subsample_indices(spans, 2, phase=1).tolist() == [1, 3, 6]
    assert subsample_indices(spans, 1).tolist() == list(range(9))
    assert subsampled_spans(spans, 2) == [(0, 3), (3, 5), (5, 6)]
    # The 1-frame sequence has nothing at phase 1 and disappears.
    assert subsampled_spans(spans, 2, phase=1) == [(0, 2), (2, 3)]
    with pytest.raises(ValueError):
        subsample_indices(spans, 2, phase=2)


def test_subsampled_spans_agree_with_spans_of_subsampled_source() -> None:
    source = np.array(["x"] * 7 + ["y"] * 4 + ["z"] * 9)
    spans = sequence_spans(source)
    for stride in (1, 2, 3):
        for phase in range(stride):
            rows = subsample_indices(spans, stride, phase)
            assert subsampled_spans(spans, stride, phase) == sequence_spans(source[rows])


# ---------------------------------------------------------------------------------- training clips


def test_train_clips_hand_worked_with_tail() -> None:
    # One sequence of 11 frames, clip 4, stride 3: starts 0, 3, 6 reach frame 9; the tail frame 10
    # gets one extra window aligned to the end (7..10).
    clips = train_clips([(0, 11)], clip_len=4, stride=3)
    assert clips.dtype == np.int64
    assert clips.tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9], [7, 8, 9, 10]]
    # No extra window when the stride lands on the end.
    assert train_clips([(0, 10)], clip_len=4, stride=3).tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]


def test_train_clips_never_cross_a_sequence_and_cover_every_frame() -> None:
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 60, size=25)
    source = np.repeat(np.arange(len(lengths)), lengths)
    spans = sequence_spans(source)
    for clip_len, stride in ((16, 8), (16, 16), (5, 2), (1, 1)):
        clips = train_clips(spans, clip_len, stride)
        assert clips.shape[1] == clip_len
        # Each clip lies in one sequence.
        assert np.all(source[clips] == source[clips[:, :1]])
        # Every frame is in some clip (tails covered, short sequences kept).
        assert np.array_equal(np.unique(clips), np.arange(len(source)))
        # Full-length sequences give consecutive rows.
        full = (source[clips[:, 0]] == source[clips[:, -1]]) & (lengths[source[clips[:, 0]]] >= clip_len)
        assert np.all(np.diff(clips[full], axis=1) == 1)


def test_short_sequence_resampled_deterministically() -> None:
    # 5 frames to 8: round(linspace(0, 4, 8)) = round([0, .571, 1.143, 1.714, 2.286, 2.857, 3.429, 4]).
    assert resample_indices(5, 8).tolist() == [0, 1, 1, 2, 2, 3, 3, 4]
    clips = train_clips([(0, 20), (20, 25)], clip_len=8, stride=8)
    assert clips[-1].tolist() == [20, 21, 21, 22, 22, 23, 23, 24]
    assert np.array_equal(clips, train_clips([(0, 20), (20, 25)], clip_len=8, stride=8))
    # Every frame of a short sequence is used, in order.
    for length in range(1, 16):
        idx = resample_indices(length, 16)
        assert np.array_equal(np.unique(idx), np.arange(length)) and np.all(np.diff(idx) >= 0)


def test_train_clips_empty() -> None:
    assert train_clips([], 16, 8).shape == (0, 16)


# --------------------------------------------------------------------------------- eval windows


def test_eval_windows_hand_worked() -> None:
    assert eval_windows(20, 8) == [(0, 8), (4, 12), (8, 16), (12, 20)]
    assert eval_windows(21, 8) == [(0, 8), (4, 12), (8, 16), (12, 20), (13, 21)]
    assert eval_windows(21, 8, overlap=0) == [(0, 8), (8, 16), (13, 21)]
    assert eval_windows(5, 8) == [(0, 5)]  # short: one window of its own length
    assert eval_windows(8, 8) == [(0, 8)]
    with pytest.raises(ValueError):
        eval_windows(20, 8, overlap=8)


@pytest.mark.parametrize("length", [1, 7, 16, 17, 31, 100])
@pytest.mark.parametrize("overlap", [0, 3, 8, 15])
def test_eval_windows_cover_every_frame(length: int, overlap: int) -> None:
    windows = eval_windows(length, 16, overlap)
    count = np.zeros(length, dtype=int)
    for start, end in windows:
        assert end - start == min(16, length)
        count[start:end] += 1
    assert count.min() >= 1
    assert windows[0][0] == 0 and windows[-1][1] == length


# ------------------------------------------------------------------------------------- stitching


def test_stitch_weights_trapezoid() -> None:
    # Window 8, ramp 3: min(1, (i+1)/4, (8-i)/4).
    expected = [0.25, 0.5, 0.75, 1.0, 1.0, 0.75, 0.5, 0.25]
    assert np.allclose(stitch_weights(8, 3), expected)
    assert np.all(stitch_weights(1) > 0) and np.all(stitch_weights(16) > 0)
    assert np.allclose(stitch_weights(5, 0), 1.0)


def test_stitch_weights_partition_of_unity_with_regular_overlap() -> None:
    clip_len, overlap = 16, 8
    total = np.zeros(64)
    for start, end in eval_windows(64, clip_len, overlap):
        total[start:end] += stitch_weights(end - start, overlap)
    # Away from the two sequence ends every frame's weights sum to exactly 1.
    assert np.allclose(total[overlap:-overlap], 1.0)
    assert np.all(total > 0)


@pytest.mark.parametrize("length,overlap", [(1, None), (9, None), (16, 8), (45, 8), (45, 5), (100, 0)])
def test_stitch_signal_is_exact_and_constant_stays_constant(length: int, overlap: int | None) -> None:
    rng = np.random.default_rng(length)
    signal = rng.normal(size=(length, 24, 3, 3))
    windows = eval_windows(length, 16, overlap)
    values = [signal[s:e] for s, e in windows]
    assert np.allclose(stitch(values, windows, length, overlap), signal, atol=1e-12, rtol=0)
    const = [np.full((e - s, 3), 2.5, dtype=np.float32) for s, e in windows]
    out = stitch(const, windows, length, overlap)
    assert out.dtype == np.float32 and np.allclose(out, 2.5, atol=1e-6)


def test_stitch_blends_with_hand_worked_weights() -> None:
    # Two windows of 4 over 6 frames, overlap 2: ramp 2 weights = [1/3, 2/3, 2/3, 1/3].
    windows = [(0, 4), (2, 6)]
    values = [np.zeros(4), np.ones(4)]
    out = stitch(values, windows, 6, overlap=2)
    # Frame 2: (2/3 * 0 + 1/3 * 1) / 1 = 1/3; frame 3: (1/3 * 0 + 2/3 * 1) / 1 = 2/3.
    assert np.allclose(out, [0, 0, 1 / 3, 2 / 3, 1, 1])


def test_stitch_rejects_uncovered_frames_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match="covered by no window"):
        stitch([np.zeros(3)], [(0, 3)], 5)
    with pytest.raises(ValueError, match="shape"):
        stitch([np.zeros(2)], [(0, 3)], 3)


# ----------------------------------------------------------------------------------------- phases


@pytest.mark.parametrize("length,stride", [(10, 2), (11, 2), (11, 3), (2, 3), (1, 1), (17, 4)])
def test_phase_split_interleave_identity(length: int, stride: int) -> None:
    signal = np.arange(length * 2, dtype=np.float64).reshape(length, 2) * 1.5
    phases = phase_split(length, stride)
    assert len(phases) == min(stride, length)
    for p, pos in enumerate(phases):
        assert pos.tolist() == list(range(p, length, stride))
    assert np.array_equal(interleave([signal[p] for p in phases], phases), signal)


def test_interleave_rejects_incomplete_cover() -> None:
    with pytest.raises(ValueError, match="exactly once"):
        interleave([np.zeros(2), np.zeros(2)], [np.array([0, 2]), np.array([0, 2])])


# -------------------------------------------------------------------------------------- window plan


def test_window_plan_short_and_strided() -> None:
    plan = WindowPlan(5, 4, sample_stride=2)
    assert [p.tolist() for p in plan.phases] == [[0, 2, 4], [1, 3]]
    assert sorted((w.phase, w.start, w.end) for w in plan.windows) == [(0, 0, 3), (1, 0, 2)]
    assert [plan.positions(w).tolist() for w in plan.windows] == [[0, 2, 4], [1, 3]]  # longest first


def test_window_plan_groups_equal_lengths_and_stitches_back_every_frame() -> None:
    frames, clip = 23, 4
    plan = WindowPlan(frames, clip, sample_stride=2, overlap=2)
    groups = plan.groups(3)
    assert [w for g in groups for w in g] == plan.windows
    assert all(len(g) <= 3 and len({w.length for w in g}) == 1 for g in groups)
    signal = np.sin(np.arange(frames, dtype=np.float64))[:, None] * np.array([1.0, -2.0])  # (F, 2)
    outputs = [signal[plan.positions(w)] for w in plan.windows]  # each window returns its frames' values
    np.testing.assert_allclose(plan.stitch(outputs), signal, atol=1e-12)
    with pytest.raises(ValueError, match="clip x: 1 window outputs"):
        plan.stitch(outputs[:1], what="clip x")
    with pytest.raises(ValueError, match="frames must be an integer >= 1"):
        WindowPlan(0, clip)


def test_covering_windows_are_the_eval_windows_holding_the_position() -> None:
    for clip_len in (1, 2, 5, 8, 16):
        for overlap in sorted({0, clip_len // 2, clip_len - 1}):
            for length in range(1, 3 * clip_len + 4):
                windows = eval_windows(length, clip_len, overlap)
                for position in range(length):
                    assert covering_windows(position, length, clip_len, overlap) == \
                        [w for w in windows if w[0] <= position < w[1]], (clip_len, overlap, length, position)
    with pytest.raises(ValueError, match="position"):
        covering_windows(5, 5, 4)


# ------------------------------------------------------------------------------------- speed-up


def test_clip_spans_name_the_span_of_each_clip() -> None:
    spans = [(0, 20), (20, 23), (23, 60)]
    clips = train_clips(spans, clip_len=8, stride=8)
    held = clip_spans(spans, clips)
    for clip, (start, end) in zip(clips, held):
        assert start <= clip.min() and clip.max() < end
    assert {tuple(h) for h in held} == set(spans)


def test_speed_up_clip_hand_worked() -> None:
    clip = np.arange(10, 14)  # 4 rows of the span [5, 40)
    np.testing.assert_array_equal(speed_up_clip(clip, (5, 40), 3), [10, 13, 16, 19])
    np.testing.assert_array_equal(speed_up_clip(clip, (5, 40), 1), clip)
    # runs past the end: slides back to end - 1 - step * (T - 1) = 39 - 27 = 12 ... 39
    np.testing.assert_array_equal(speed_up_clip(np.arange(30, 34), (5, 40), 9), [12, 21, 30, 39])
    # the span is too short for step 9: the largest step that fits, (end - start - 1) // (T - 1) = 2
    np.testing.assert_array_equal(speed_up_clip(np.arange(0, 4), (0, 8), 9), [0, 2, 4, 6])
    # a resampled short span (repeats) is left alone
    short = np.array([0, 0, 1, 1])
    np.testing.assert_array_equal(speed_up_clip(short, (0, 2), 3), short)


@pytest.mark.parametrize("step", [1, 2, 3, 5])
def test_speed_up_clip_stays_in_its_span_evenly_spaced(step: int) -> None:
    spans = [(0, 17), (17, 30), (30, 100)]
    clips = train_clips(spans, clip_len=8, stride=3)
    for clip, span in zip(clips, clip_spans(spans, clips)):
        rows = speed_up_clip(clip, span, step)
        assert rows.shape == clip.shape and span[0] <= rows.min() and rows.max() < span[1]
        gaps = np.diff(rows)
        assert np.all(gaps == gaps[0]) and 1 <= gaps[0] <= step
        if span[1] - span[0] - 1 >= step * 7:
            assert gaps[0] == step  # the full step whenever the span holds it
