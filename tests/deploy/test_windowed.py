"""Windowed refinement of whole sequences: coverage, phases, the blend, smoothness at window borders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lib.data.clips import WindowPlan
from lib.windowed import refine_sequence, torch_window_fn, with_flip

CLIP = 16


def _per_frame_fn(calls: list[np.ndarray]):
    """A time-invariant window function: frame f's output depends only on frame f's input
    (rotation of joint 0 from theta[:3], identity elsewhere; betas + mean 2D x). Records theta[..., 3] (frame ids)."""

    def run(pose2d, theta, betas):
        calls.append(theta[..., 3].copy())
        rot = np.broadcast_to(np.eye(3), theta.shape[:2] + (24, 3, 3)).copy()
        rot[:, :, 0] = Rotation.from_rotvec(theta[..., :3].reshape(-1, 3)).as_matrix().reshape(theta.shape[:2] + (3, 3))
        return rot, betas + pose2d[..., 0].mean(-1, keepdims=True)

    return run


def _inputs(frames: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    theta = np.zeros((frames, 72))
    theta[:, :3] = rng.normal(0, 0.5, (frames, 3))
    theta[:, 3] = np.arange(frames)  # frame id, read back by the fake window function
    pose2d = rng.uniform(-1, 1, (frames, 17, 3))
    return pose2d, theta, rng.normal(size=(frames, 10))


@pytest.mark.parametrize("frames", [1, 5, 16, 37, 85])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_a_time_invariant_model_is_reproduced_exactly_and_windows_follow_the_phases(frames: int, stride: int) -> None:
    pose2d, theta, betas = _inputs(frames)
    calls: list[np.ndarray] = []
    rot, shape = refine_sequence(_per_frame_fn(calls), pose2d, theta, betas, clip_len=CLIP, sample_stride=stride,
                                 max_windows_per_batch=3)
    expected = Rotation.from_rotvec(theta[:, :3]).as_matrix()
    np.testing.assert_allclose(rot[:, 0], expected, atol=1e-6)
    np.testing.assert_allclose(rot[:, 1:], np.broadcast_to(np.eye(3), (frames, 23, 3, 3)), atol=1e-6)
    np.testing.assert_allclose(shape, betas + pose2d[..., 0].mean(-1, keepdims=True), atol=1e-5)
    seen = np.concatenate([c.reshape(-1) for c in calls]).astype(int)
    assert set(seen) == set(range(frames))  # every frame refined
    for batch in calls:
        for window in batch:  # one phase, consecutive at the training frame rate, at most clip_len
            assert 1 <= len(window) <= CLIP
            assert np.all(np.diff(window) == stride)
            if frames >= stride * CLIP:
                assert len(window) == CLIP  # long phases are cut into full windows only


def test_constant_input_gives_a_constant_output() -> None:
    pose2d, theta, betas = _inputs(1)
    theta[:, 3] = 0
    reps = (70, 1, 1)
    calls: list[np.ndarray] = []
    rot, shape = refine_sequence(_per_frame_fn(calls), np.tile(pose2d, reps), np.tile(theta, (70, 1)),
                                 np.tile(betas, (70, 1)), clip_len=CLIP, sample_stride=2)
    assert np.ptp(rot, axis=0).max() < 1e-9 and np.ptp(shape, axis=0).max() < 1e-9
    assert len(calls) >= 1


def test_overlapping_windows_blend_with_trapezoid_weights() -> None:
    """A window function whose output is the position inside its window: the stitched value of a frame is
    the trapezoid-weighted mean of those positions over the windows covering it (computed by hand here)."""
    frames, clip, overlap = 20, 8, 4

    def position_fn(pose2d, theta, betas):
        t = np.broadcast_to(np.arange(theta.shape[1], dtype=np.float64)[None, :, None], betas.shape)
        return np.broadcast_to(np.eye(3), theta.shape[:2] + (24, 3, 3)), t

    _, shape = refine_sequence(position_fn, *_inputs(frames), clip_len=clip, overlap=overlap)
    starts = [0, 4, 8, 12]  # step clip - overlap = 4; the last window ends at 20
    acc, total = np.zeros(frames), np.zeros(frames)
    for s in starts:
        for i in range(clip):
            w = min(1.0, (i + 1) / (overlap + 1), (clip - i) / (overlap + 1))
            acc[s + i] += w * i
            total[s + i] += w
    np.testing.assert_allclose(shape[:, 0], acc / total, atol=1e-12)


def _smooth_inputs(frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A slow, smooth motion: every pose value and 2D coordinate a low-frequency sinusoid of time."""
    rng = np.random.default_rng(3)
    t = np.arange(frames)[:, None]
    theta = 0.3 * np.sin(2 * np.pi * t / 60.0 + rng.uniform(0, 2 * np.pi, 72)) * rng.uniform(0.2, 1.0, 72)
    theta[:, :3] += np.array([np.pi, 0.0, 0.0])
    xy = 0.5 * np.sin(2 * np.pi * t[..., None] / 50.0 + rng.uniform(0, 2 * np.pi, (17, 2)))
    pose2d = np.concatenate([xy, np.full((frames, 17, 1), 0.9)], axis=-1)
    return pose2d, theta, np.tile(rng.normal(size=10), (frames, 1))


def _border_vs_inside(rot: np.ndarray, frames: int, overlap: int) -> tuple[float, float]:
    """Max first difference |R[f+1] - R[f]| at window borders and elsewhere."""
    windows = WindowPlan(frames, CLIP, 1, overlap).windows
    borders = {w.start - 1 for w in windows if w.start > 0} | {w.end - 1 for w in windows if w.end < frames}
    step = np.linalg.norm((rot[1:] - rot[:-1]).reshape(frames - 1, -1), axis=1)  # (F - 1,)
    at_border = np.array([f in borders for f in range(frames - 1)])
    return float(step[at_border].max()), float(step[~at_border].max())


def test_no_jump_at_window_borders_with_the_real_model(tiny_setup) -> None:
    frames = 100
    pose2d, theta, betas = _smooth_inputs(frames)
    fn = with_flip(torch_window_fn(tiny_setup.model))
    rot, _ = refine_sequence(fn, pose2d, theta, betas, clip_len=CLIP, sample_stride=1)
    border, inside = _border_vs_inside(rot, frames, CLIP // 2)
    assert border <= inside
    # the refiner does change the input, and without overlap the same model does jump at borders
    hybrik = Rotation.from_rotvec(theta.reshape(-1, 3)).as_matrix().reshape(frames, 24, 3, 3)
    assert np.abs(rot - hybrik).max() > 1e-3
    rot0, _ = refine_sequence(fn, pose2d, theta, betas, clip_len=CLIP, sample_stride=1, overlap=0)
    border0, inside0 = _border_vs_inside(rot0, frames, 0)
    assert border0 > inside0


def test_flip_averages_with_the_mirrored_pass(tiny_setup) -> None:
    pose2d, theta, betas = _smooth_inputs(CLIP)
    plain = torch_window_fn(tiny_setup.model)
    rot, _ = with_flip(plain)(pose2d[None], theta[None], betas[None])
    a, _ = plain(pose2d[None], theta[None], betas[None])
    # mirror by hand: x -> -x and L/R swap of the 2D input, SMPL L/R swap with y, z negated
    from lib.body.joint_names import H36M_FLIP_PERM, SMPL_FLIP_PERM

    m2d = pose2d[:, list(H36M_FLIP_PERM)] * np.array([-1.0, 1.0, 1.0])
    mtheta = (theta.reshape(CLIP, 24, 3)[:, list(SMPL_FLIP_PERM)] * np.array([1.0, -1.0, -1.0])).reshape(CLIP, 72)
    b, _ = plain(m2d[None], mtheta[None], betas[None])
    flip = np.diag([1.0, -1.0, -1.0])  # conjugating by the mirror negates the y and z axis-angle parts
    b = (flip @ b @ flip)[:, :, list(SMPL_FLIP_PERM)]
    np.testing.assert_allclose(rot, 0.5 * (a + b), atol=1e-5)
    assert torch.is_grad_enabled()  # the window function does not leak no_grad


def test_window_function_equals_the_models_own_forward(tiny_setup) -> None:
    pose2d, theta, betas = _smooth_inputs(CLIP)
    rot, shape = torch_window_fn(tiny_setup.model)(pose2d[None], theta[None], betas[None])
    with torch.no_grad():
        out = tiny_setup.model(*(torch.as_tensor(a[None], dtype=torch.float32) for a in (pose2d, theta, betas)))
    np.testing.assert_allclose(rot, out["rot_mat"].numpy(), atol=1e-6)
    np.testing.assert_allclose(shape, out["shape"].numpy(), atol=1e-6)
