"""Training corruptions of HybrIK's rotations and the 2D detections (``lib.data.augment``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lib.data.augment import DRIFT_KNOT_FRAMES, corrupt_pose, drop_keypoints, rotation_noise


def _pose(rng: np.random.Generator, frames: int) -> np.ndarray:
    return Rotation.random(frames * 24, random_state=1).as_rotvec().reshape(frames, 72).astype(np.float32)


def test_rotation_noise_is_white_plus_a_piecewise_linear_drift() -> None:
    frames = 40
    noise = rotation_noise(np.random.default_rng(0), frames, max_deg=10.0)
    assert noise.shape == (frames, 24, 3)
    # Redraw the same levels and parts by hand: the drift is linear between knots DRIFT_KNOT_FRAMES apart.
    rng = np.random.default_rng(0)
    white_std, drift_std = np.radians(rng.uniform(0.0, 10.0, size=2))
    white = rng.normal(0.0, white_std, size=(frames, 24, 3))
    knots = frames // DRIFT_KNOT_FRAMES + 1
    values = rng.normal(0.0, drift_std, size=(knots, 24, 3))
    drift = noise - white
    np.testing.assert_allclose(drift[0], values[0], atol=1e-12)
    np.testing.assert_allclose(drift[-1], values[-1], atol=1e-12)
    second_diff = drift[2:] - 2 * drift[1:-1] + drift[:-2]
    kinks = np.flatnonzero(np.abs(second_diff).max(axis=(1, 2)) > 1e-9) + 1
    assert len(kinks) <= 2 * (knots - 2)  # straight lines between the knots (a knot between two frames bends both)


def test_rotation_noise_levels_are_drawn_up_to_the_maximum() -> None:
    stds = [np.degrees(rotation_noise(np.random.default_rng(s), 64, 6.0).std()) for s in range(40)]
    assert max(stds) < 6.0 * 1.5 and min(stds) < 2.0 and max(stds) > 3.0


def test_corrupt_pose_composes_noise_on_either_side_and_zero_is_identity() -> None:
    rng = np.random.default_rng(3)
    pose = _pose(rng, 8)
    assert corrupt_pose(pose, np.random.default_rng(0), 0.0) is pose
    sides = set()
    for seed in range(12):
        out = corrupt_pose(pose, np.random.default_rng(seed), 5.0)
        assert out.shape == pose.shape and out.dtype == pose.dtype
        # replay the draws: the noise, then the side
        replay = np.random.default_rng(seed)
        noise = Rotation.from_rotvec(rotation_noise(replay, 8, 5.0).reshape(-1, 3))
        left = replay.random() < 0.5
        rot = Rotation.from_rotvec(pose.reshape(-1, 3).astype(np.float64))
        expected = noise * rot if left else rot * noise
        got = Rotation.from_rotvec(out.reshape(-1, 3).astype(np.float64))
        assert np.degrees((got * expected.inv()).magnitude()).max() < 1e-3
        other = rot * noise if left else noise * rot
        assert np.degrees((got * other.inv()).magnitude()).max() > 0.01
        sides.add(left)
    assert sides == {True, False}


def test_drop_keypoints_zeroes_confidence_and_coordinates_of_dropped_joints() -> None:
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.normal(size=(200, 17, 2)), rng.uniform(0.2, 1.0, size=(200, 17, 1))], -1)
    assert drop_keypoints(kp, rng, 0.0) is kp
    out = drop_keypoints(kp, np.random.default_rng(1), 0.5)
    dropped = out[..., 2] == 0
    assert 0 < dropped.mean() <= 0.5
    np.testing.assert_array_equal(out[dropped], 0.0)
    np.testing.assert_array_equal(out[~dropped], kp[~dropped])
    with pytest.raises(ValueError, match="confidence channel"):
        drop_keypoints(kp[..., :2], rng, 0.1)
