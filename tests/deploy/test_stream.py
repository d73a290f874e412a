"""Online refinement (lib/deploy/stream.py): each frame leaves K frames later with exactly the offline
result of the frames seen so far; with K >= a window, the offline result of the whole sequence."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lib.deploy.stream import StreamRefiner, refine_stream
from lib.windowed import refine_sequence, torch_window_fn, with_flip

CLIP = 8


def _window_signature_fn(calls: list[tuple[int, int]] | None = None):
    """A window function whose every output depends on the window: its first frame, its length and the
    position inside it (so a wrong window, position or blend weight changes the result), plus the frame's
    own input. Frame ids travel in theta[..., 3]. Records (first frame id, length) of each window."""

    def run(pose2d, theta, betas):
        batch, length = theta.shape[:2]
        first = theta[:, :1, 3]  # (B, 1) frame id of each window's first frame
        position = np.arange(length)[None, :]  # (1, T)
        if calls is not None:
            calls.extend((int(f), length) for f in first[:, 0])
        angle = 0.05 * position + 0.01 * first + 0.003 * length + theta[..., 0]  # (B, T) rad
        rot = np.broadcast_to(np.eye(3), (batch, length, 24, 3, 3)).copy()
        rot[:, :, 0] = Rotation.from_rotvec(np.stack([0 * angle, 0 * angle, angle], -1).reshape(-1, 3)
                                            ).as_matrix().reshape(batch, length, 3, 3)
        shape = betas + (position + 0.1 * first + 0.01 * length + pose2d[..., 0].mean(-1))[..., None]  # (B, T, 10)
        return rot, shape

    return run


def _inputs(frames: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    theta = 0.2 * rng.normal(size=(frames, 72))
    theta[:, :3] += np.array([np.pi, 0.0, 0.0])
    theta[:, 3] = np.arange(frames)  # frame id, read back by the signature function
    pose2d = np.concatenate([rng.uniform(-1, 1, (frames, 17, 2)), rng.uniform(0.5, 1, (frames, 17, 1))], -1)
    return pose2d, theta, rng.normal(size=(frames, 10))


def _offline_of_seen_frames(fn, inputs, frame: int, lookahead: int, **plan):
    """Frame ``frame`` of the offline result of frames 0 .. frame + lookahead (the whole sequence at most)."""
    seen = min(len(inputs[1]), frame + lookahead + 1)
    rot, shape = refine_sequence(fn, *(a[:seen] for a in inputs), **plan)
    return rot[frame], shape[frame]


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("lookahead", [0, 3, 11])
def test_every_frame_is_the_offline_result_of_the_frames_seen_so_far(stride: int, lookahead: int) -> None:
    inputs = _inputs(30)
    fn = _window_signature_fn()
    rot, shape = refine_stream(fn, *inputs, clip_len=CLIP, lookahead=lookahead, sample_stride=stride)
    for f in range(30):
        want_rot, want_shape = _offline_of_seen_frames(fn, inputs, f, lookahead, clip_len=CLIP, sample_stride=stride)
        np.testing.assert_allclose(rot[f], want_rot, atol=1e-9, err_msg=f"frame {f}")
        np.testing.assert_allclose(shape[f], want_shape, atol=1e-9, err_msg=f"frame {f}")


@pytest.mark.parametrize("frames", [1, 2, 5, 8, 9, 37, 50])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("overlap", [None, 0, 6])
def test_with_a_window_of_lookahead_the_stream_is_the_offline_result(frames: int, stride: int, overlap) -> None:
    inputs = _inputs(frames, seed=frames)
    fn = _window_signature_fn()
    plan = dict(clip_len=CLIP, sample_stride=stride, overlap=overlap)
    offline = refine_sequence(fn, *inputs, **plan)
    online = refine_stream(fn, *inputs, lookahead=CLIP * stride, **plan)
    for a, b in zip(online, offline):
        np.testing.assert_allclose(a, b, atol=1e-9)


def test_the_real_model_with_flip_streams_the_offline_result_to_1e5(tiny_setup) -> None:
    inputs = _inputs(45, seed=7)
    fn = with_flip(torch_window_fn(tiny_setup.model))
    plan = dict(clip_len=16, sample_stride=2)
    offline = refine_sequence(fn, *inputs, **plan)
    online = refine_stream(fn, *inputs, lookahead=32, **plan)
    np.testing.assert_allclose(online[0], offline[0], atol=1e-5)
    np.testing.assert_allclose(online[1], offline[1], atol=1e-5)
    causal = refine_stream(fn, *inputs, lookahead=0, **plan)
    for f in (0, 9, 30, 44):  # causal: each frame as the offline path refines the frames up to it
        want_rot, want_shape = _offline_of_seen_frames(fn, inputs, f, 0, **plan)
        np.testing.assert_allclose(causal[0][f], want_rot, atol=1e-5)
        np.testing.assert_allclose(causal[1][f], want_shape, atol=1e-5)
    assert np.abs(causal[0] - online[0]).max() > 1e-3  # the model does see the future frames
    np.testing.assert_allclose(np.linalg.det(causal[0]), 1.0, atol=1e-9)


@pytest.mark.parametrize("lookahead", [0, 2, 5, 20])
def test_each_frame_leaves_k_frames_later_one_window_per_frame_and_bounded_state(lookahead: int) -> None:
    frames, step = 60, CLIP // 2
    pose2d, theta, betas = _inputs(frames)
    calls: list[tuple[int, int]] = []
    stream = StreamRefiner(_window_signature_fn(calls), clip_len=CLIP, lookahead=lookahead)
    for n in range(1, frames + 1):
        before = len(calls)
        out = stream.push(pose2d[n - 1], theta[n - 1], betas[n - 1])
        assert [r.index for r in out] == ([n - 1 - lookahead] if n > lookahead else [])
        on_grid = n >= CLIP and (n - CLIP) % step == 0  # an offline window completes: computed at once
        leaving_frame_needs_it = lookahead < CLIP and n > lookahead  # the newest window covers the frame leaving
        newest = (max(0, n - CLIP), min(n, CLIP))  # (first frame, length) of the window ending at the newest frame
        assert calls[before:] == ([newest] if on_grid or leaving_frame_needs_it else [])
        assert stream.buffered_windows() <= lookahead // step + 2  # the newest window + the grid's in the last K
        assert len(stream.phases[0].buffer) <= CLIP
    rest = stream.flush()
    assert [r.index for r in rest] == list(range(frames - lookahead, frames))
    assert stream.push(pose2d[0], theta[0], betas[0]) == [] or lookahead == 0  # a new stream after flush
    assert stream.pushed == 1 and stream.emitted == (1 if lookahead == 0 else 0)


def test_empty_single_frame_and_short_streams() -> None:
    fn = _window_signature_fn()
    rot, shape = refine_stream(fn, *_inputs(0), clip_len=CLIP, lookahead=2)
    assert rot.shape == (0, 24, 3, 3) and shape.shape == (0, 10)
    assert StreamRefiner(fn, clip_len=CLIP, lookahead=0).flush() == []
    one = _inputs(1)
    causal = StreamRefiner(fn, clip_len=CLIP, lookahead=0)
    (frame,) = causal.push(*(a[0] for a in one))
    want_rot, want_shape = refine_sequence(fn, *one, clip_len=CLIP)
    np.testing.assert_allclose(frame.rot_mat, want_rot[0], atol=1e-12)
    np.testing.assert_allclose(frame.betas, want_shape[0], atol=1e-12)
    delayed = StreamRefiner(fn, clip_len=CLIP, lookahead=3)
    assert delayed.push(*(a[0] for a in one)) == []
    (late,) = delayed.flush()
    assert late.index == 0
    np.testing.assert_allclose(late.rot_mat, want_rot[0], atol=1e-12)
    short = _inputs(5)  # shorter than a window: flushed frames are the offline result of all 5 frames
    streamed = refine_stream(fn, *short, clip_len=CLIP, lookahead=2)
    offline = refine_sequence(fn, *short, clip_len=CLIP)
    np.testing.assert_allclose(streamed[0][3:], offline[0][3:], atol=1e-12)
    assert np.abs(streamed[0][:3] - offline[0][:3]).max() > 1e-3  # earlier frames saw fewer frames


def test_bad_arguments_and_frames_are_refused() -> None:
    fn = _window_signature_fn()
    with pytest.raises(ValueError, match="lookahead >= 0"):
        StreamRefiner(fn, clip_len=CLIP, lookahead=-1)
    with pytest.raises(ValueError, match="overlap < clip_len"):
        StreamRefiner(fn, clip_len=CLIP, lookahead=0, overlap=CLIP)
    stream = StreamRefiner(fn, clip_len=CLIP, lookahead=0)
    with pytest.raises(ValueError, match=r"theta \(72,\)"):
        stream.push(np.zeros((17, 3)), np.zeros(69), np.zeros(10))
