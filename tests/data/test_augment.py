"""Training corruptions of HybrIK's rotations and the 2D detections (``lib.data.augment``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lib.data.augment import (
    DRIFT_KNOT_FRAMES,
    corrupt_pose,
    drop_keypoints,
    focal_from_projection,
    limb_offsets,
    offset_pose,
    orbit_keypoints_2d,
    orbit_matrix,
    reproject_keypoints_2d,
    rotation_noise,
)


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


# ------------------------------------------------------------------------ virtual camera orbit

W, H, F, CX, CY = 1080.0, 1920.0, 1500.0, 530.0, 975.0  # canvas, focal, principal point (px)


def _scene(rng: np.random.Generator, frames: int = 6) -> np.ndarray:
    """(frames, 17, 3) mm: a body-sized point cloud 3.5 m in front of the camera, moving a little."""
    body = rng.normal(0.0, [250.0, 500.0, 120.0], size=(17, 3))
    offset = np.stack([np.linspace(0, 300, frames), np.zeros(frames), 3500 + np.linspace(0, 200, frames)], -1)
    return body[None] + offset[:, None]


def _project_normalised(x: np.ndarray) -> np.ndarray:
    """Independent pinhole projection to the normalised canvas: (..., 3) mm -> (..., 2)."""
    u = F * x[..., 0] / x[..., 2] + CX
    v = F * x[..., 1] / x[..., 2] + CY
    return np.stack([u / W * 2 - 1, v / W * 2 - H / W], -1)


def test_focal_from_projection_recovers_the_camera() -> None:
    rng = np.random.default_rng(0)
    joints = _scene(rng)
    uv = np.stack([F * joints[..., 0] / joints[..., 2] + CX, F * joints[..., 1] / joints[..., 2] + CY], -1)
    conf = np.ones(joints.shape[:2])
    assert focal_from_projection(joints, uv, conf) == pytest.approx(F, rel=1e-9)
    noisy = uv + rng.normal(0.0, 3.0, uv.shape)  # 3 px detection noise
    assert focal_from_projection(joints, noisy, conf) == pytest.approx(F, rel=0.05)
    assert np.isnan(focal_from_projection(joints, uv, np.zeros_like(conf)))  # nothing confident


def test_orbit_matrix_is_pitch_then_yaw() -> None:
    expected = Rotation.from_euler("YX", [0.3, -0.2]).as_matrix()  # intrinsic: Ry(0.3) Rx(-0.2)
    np.testing.assert_allclose(orbit_matrix(-0.2, 0.3), expected, atol=1e-12)


def test_orbit_moves_2d_as_the_rotated_body_projects_and_keeps_detection_error() -> None:
    rng = np.random.default_rng(1)
    joints = _scene(rng)
    error = rng.normal(0.0, 0.01, joints.shape[:2] + (2,))  # detection error, normalised units
    conf = rng.uniform(0.2, 1.0, joints.shape[:2])
    conf[2, 5] = 0.0  # a missing joint: its coordinates mean nothing and stay as they are
    pose2d = np.concatenate([_project_normalised(joints) + error, conf[..., None]], -1).astype(np.float32)
    rot = Rotation.from_euler("YX", [0.25, -0.3]).as_matrix()
    out = orbit_keypoints_2d(pose2d, joints, rot, F, W)
    root = joints[:, :1]
    expected = _project_normalised((joints - root) @ rot.T + root) + error  # the orbited body, same error
    seen = conf > 0
    np.testing.assert_allclose(out[..., :2][seen], expected[seen], atol=1e-5)
    np.testing.assert_array_equal(out[2, 5], pose2d[2, 5])
    np.testing.assert_array_equal(out[..., 2], pose2d[..., 2])
    np.testing.assert_allclose(out[:, 0, :2], pose2d[:, 0, :2], atol=1e-6)  # the root stays where it is
    np.testing.assert_allclose(orbit_keypoints_2d(pose2d, joints, np.eye(3), F, W), pose2d, atol=1e-7)


def test_reproject_moves_2d_to_the_new_joints_and_keeps_detection_error() -> None:
    rng = np.random.default_rng(2)
    joints = _scene(rng)
    moved = joints + rng.normal(0.0, 80.0, joints.shape)  # any new 3D joints
    error = rng.normal(0.0, 0.01, joints.shape[:2] + (2,))
    conf = rng.uniform(0.2, 1.0, joints.shape[:2])
    conf[1, 3] = 0.0
    pose2d = np.concatenate([_project_normalised(joints) + error, conf[..., None]], -1).astype(np.float32)
    out = reproject_keypoints_2d(pose2d, joints, moved, F, W)
    seen = conf > 0
    np.testing.assert_allclose(out[..., :2][seen], (_project_normalised(moved) + error)[seen], atol=1e-5)
    np.testing.assert_array_equal(out[1, 3], pose2d[1, 3])


# ------------------------------------------------------------------------ body-pose offsets


def test_limb_offsets_are_a_constant_plus_a_ramp_up_to_the_maximum_and_spare_the_root() -> None:
    rng = np.random.default_rng(3)
    out = limb_offsets(rng, 9, 30.0)
    assert out.shape == (9, 24, 3)
    np.testing.assert_array_equal(out[:, 0], 0.0)  # the global orientation is not a limb
    steps = np.diff(out, axis=0)  # a straight line in rotation-vector space
    np.testing.assert_allclose(steps, np.broadcast_to(steps[:1], steps.shape), atol=1e-12)
    constant, ramp = out[4, 1:], out[-1, 1:] - out[0, 1:]  # middle frame; whole clip
    for part in (constant, ramp):
        angles = np.degrees(np.linalg.norm(part, axis=-1))
        assert angles.max() <= 30.0 + 1e-9 and angles.max() > 15.0  # drawn up to the maximum
    np.testing.assert_array_equal(limb_offsets(np.random.default_rng(3), 1, 30.0)[0, 1:], constant)  # one frame: constant
    assert np.abs(limb_offsets(rng, 5, 0.0)).max() == 0.0


def test_offset_pose_turns_each_joint_in_its_own_frame() -> None:
    import torch

    from lib.geometry.rotation import axis_angle_to_matrix

    rng = np.random.default_rng(4)
    pose = rng.normal(0.0, 0.6, (5, 72)).astype(np.float32)
    offsets = limb_offsets(rng, 5, 40.0)
    out = offset_pose(pose, offsets)
    assert out.dtype == np.float32 and out.shape == (5, 72)
    mat = lambda aa: axis_angle_to_matrix(torch.from_numpy(np.asarray(aa, np.float64)).reshape(5, 24, 3)).numpy()
    np.testing.assert_allclose(mat(out), mat(pose) @ mat(offsets), atol=1e-5)  # R_j Exp(o_j), not Exp(o_j) R_j
    np.testing.assert_allclose(out[:, :3], pose[:, :3], atol=1e-6)  # root offset 0: unchanged
