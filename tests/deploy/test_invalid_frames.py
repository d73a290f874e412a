"""Invalid frames: where each is bridged from, slerp / linear bridging against scipy and np.interp, messages."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from lib.deploy.invalid_frames import (bridge_linear, bridge_rotations, check_frames, describe, keypoint_issues,
                                       nearest_valid)
from lib.errors import DataError

VALID = np.array([False, True, False, False, True, False, False, True, False])  # invalid at both ends


def test_nearest_valid_frames_and_fractions() -> None:
    before, after, t = nearest_valid(VALID)
    np.testing.assert_array_equal(before, [1, 1, 1, 1, 4, 4, 4, 7, 7])
    np.testing.assert_array_equal(after, [1, 1, 4, 4, 4, 7, 7, 7, 7])
    np.testing.assert_allclose(t, [0, 0, 1 / 3, 2 / 3, 0, 1 / 3, 2 / 3, 0, 0])


def test_rotations_are_slerped_per_joint_and_held_at_the_ends() -> None:
    rng = np.random.default_rng(0)
    frames, joints = len(VALID), 24
    rot = Rotation.from_rotvec(rng.normal(0, 1.0, (frames * joints, 3))).as_matrix().reshape(frames, joints, 3, 3)
    rot[~VALID] = np.nan  # never read
    got = bridge_rotations(rot, VALID)
    keys = np.flatnonzero(VALID)
    for j in range(joints):  # scipy's Slerp through the valid frames of each joint
        slerp = Slerp(keys, Rotation.from_matrix(rot[keys, j]))
        inside = np.arange(keys[0], keys[-1] + 1)
        np.testing.assert_allclose(got[inside, j], slerp(inside).as_matrix(), atol=1e-10)
    np.testing.assert_array_equal(got[VALID], rot[VALID])           # valid frames untouched
    np.testing.assert_allclose(got[0], rot[1], atol=1e-12)          # held before the first valid frame
    np.testing.assert_allclose(got[-1], rot[7], atol=1e-12)         # ... and after the last


def test_other_arrays_are_interpolated_linearly_and_held_at_the_ends() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=(len(VALID), 17, 3))
    values[~VALID] = np.nan
    got = bridge_linear(values, VALID)
    keys = np.flatnonzero(VALID)
    frames = np.arange(len(VALID))
    expected = np.stack([np.interp(frames, keys, values[keys, j, c]) for j in range(17) for c in range(3)], axis=-1)
    np.testing.assert_allclose(got, expected.reshape(len(VALID), 17, 3), atol=1e-12)  # np.interp holds at the ends
    np.testing.assert_array_equal(got[VALID], values[VALID])


def test_messages_name_the_source_and_the_first_invalid_runs() -> None:
    issues = [""] * 30
    issues[4] = "non-finite 'pose_aa'"
    for f in range(10, 20):
        issues[f] = "missing from 'img_path'"
    assert describe(issues) == "frame 4: non-finite 'pose_aa'; frames 10-19: missing from 'img_path'"
    assert check_frames(issues, "res.pk", "bridge").tolist() == [not r for r in issues]
    with pytest.raises(DataError) as err:
        check_frames(issues, "res.pk", "error")
    assert str(err.value).startswith("res.pk: 11 of 30 frames invalid (frame 4: non-finite 'pose_aa'; frames 10-19")
    assert "--on_invalid bridge" in str(err.value) and "\n" not in str(err.value)
    many = ["x" if f % 2 else "" for f in range(20)]
    assert describe(many).endswith("frame 7: x; ... (6 more runs)")
    for mode in ("bridge", "error"):
        with pytest.raises(DataError, match=r"^kp.npy: all 3 frames are invalid \(frames 0-2: no person"):
            check_frames(keypoint_issues(np.zeros((3, 17, 3))), "kp.npy", mode)


def test_a_2d_frame_is_invalid_only_when_every_confidence_is_zero() -> None:
    kp = np.ones((3, 17, 3))
    kp[1, :, 2] = 0.0
    kp[2, :16, 2] = 0.0  # one joint still seen
    assert [bool(r) for r in keypoint_issues(kp)] == [False, True, False]
