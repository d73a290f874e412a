"""Horizontal flips: involutions, the matrix flip equal to the axis-angle flip, hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.body.flip import flip_h36m_keypoints, flip_smpl_axis_angle, flip_smpl_rotmat
from lib.body.joint_names import H36M_JOINT_NAMES, SMPL_JOINT_NAMES
from lib.geometry.rotation import axis_angle_to_matrix

TOL = 1e-12


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_flip_smpl_axis_angle_is_an_involution_and_matches_matrix_flip(rng):
    pose = torch.from_numpy(rng.normal(size=(3, 4, 72)))
    flipped = flip_smpl_axis_angle(pose)
    np.testing.assert_array_equal(flip_smpl_axis_angle(flipped).numpy(), pose.numpy())
    mats = axis_angle_to_matrix(pose.reshape(3, 4, 24, 3))
    via_mats = flip_smpl_rotmat(mats)
    via_aa = axis_angle_to_matrix(flipped.reshape(3, 4, 24, 3))
    np.testing.assert_allclose(via_mats.numpy(), via_aa.numpy(), atol=TOL)
    np.testing.assert_array_equal(flip_smpl_rotmat(via_mats).numpy(), mats.numpy())


def test_flip_smpl_axis_angle_hand_case():
    pose = torch.zeros(72, dtype=torch.float64)
    left_knee, right_knee = SMPL_JOINT_NAMES.index("left_knee"), SMPL_JOINT_NAMES.index("right_knee")
    pose[left_knee * 3: left_knee * 3 + 3] = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    pose[0:3] = torch.tensor([0.4, 0.5, 0.6], dtype=torch.float64)
    flipped = flip_smpl_axis_angle(pose).reshape(24, 3).numpy()
    np.testing.assert_array_equal(flipped[right_knee], [0.1, -0.2, -0.3])
    np.testing.assert_array_equal(flipped[left_knee], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(flipped[0], [0.4, -0.5, -0.6])


def test_flip_h36m_keypoints_on_a_mirrored_skeleton(rng):
    names = H36M_JOINT_NAMES
    # A hand-built skeleton with right-side joints at negative x and their left mirrors at +x.
    half = {"hip": (0.1, 0.0, 0.0), "knee": (0.12, -0.4, 0.05), "ankle": (0.11, -0.8, 0.0),
            "shoulder": (0.2, 0.5, 0.0), "elbow": (0.3, 0.3, 0.1), "wrist": (0.35, 0.1, 0.2)}
    centre = {"pelvis": (0.0, 0.0, 0.0), "spine": (0.0, 0.2, 0.01), "thorax": (0.0, 0.5, 0.02),
              "nose": (0.0, 0.6, 0.1), "head_top": (0.0, 0.75, 0.0)}
    skel = np.zeros((17, 3))
    for j, name in enumerate(names):
        side, _, part = name.partition("_")
        if name in centre:
            skel[j] = centre[name]
        elif part in half:
            x, y, z = half[part]
            skel[j] = (x if side == "left" else -x, y, z)
    skel[names.index("left_wrist")] += (0.0, 0.05, 0.0)  # break the symmetry on one side
    flipped = flip_h36m_keypoints(torch.from_numpy(skel)).numpy()
    expected = skel.copy()
    expected[names.index("right_wrist")] = (-0.35, 0.15, 0.2)  # the raised wrist moved to the right
    expected[names.index("left_wrist")] = (0.35, 0.1, 0.2)
    np.testing.assert_allclose(flipped, expected, atol=TOL)
    # Extra channels (confidence) travel with their joint and are not negated.
    kp = torch.from_numpy(rng.normal(size=(2, 5, 17, 3)))
    flipped2 = flip_h36m_keypoints(kp)
    r, l = names.index("right_elbow"), names.index("left_elbow")
    np.testing.assert_array_equal(flipped2[..., l, 2].numpy(), kp[..., r, 2].numpy())
    np.testing.assert_array_equal(flipped2[..., l, 0].numpy(), -kp[..., r, 0].numpy())
    np.testing.assert_array_equal(flip_h36m_keypoints(flipped2).numpy(), kp.numpy())


def test_numpy_arrays_flip_as_tensors_do(rng):
    pose = rng.normal(size=(2, 5, 72)).astype(np.float32)
    rot = rng.normal(size=(2, 5, 24, 3, 3))
    kp = rng.normal(size=(2, 5, 17, 3))
    for flip, value in ((flip_smpl_axis_angle, pose), (flip_smpl_rotmat, rot), (flip_h36m_keypoints, kp)):
        out = flip(value)
        assert isinstance(out, np.ndarray) and out.dtype == value.dtype and out.shape == value.shape
        np.testing.assert_array_equal(out, flip(torch.from_numpy(value)).numpy())
