"""Horizontal flips of SMPL poses and H36M keypoints: the left/right joint swap of ``joint_names`` with
the matching sign changes (training augmentation and flip test-time augmentation).

Each function takes a torch tensor or a numpy array and returns the same kind: the flip test of a
stream flips one small window per frame, where a numpy flip costs microseconds and a torch call can
cost milliseconds on a busy CPU (thread start-up)."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from lib.body.joint_names import H36M_FLIP_PERM, SMPL_FLIP_PERM, SMPL_NUM_JOINTS

# A horizontal flip (mirror across x = 0) negates the y and z axis-angle components.
_AA_FLIP_SIGN = (1.0, -1.0, -1.0)
Array = TypeVar("Array", Tensor, np.ndarray)


def _constant(values, like: Array) -> Array:
    """``values`` as an array of ``like``'s kind, dtype (and device)."""
    if isinstance(like, np.ndarray):
        return np.asarray(values, dtype=like.dtype)
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def flip_smpl_axis_angle(pose: Array) -> Array:
    """Horizontal flip of SMPL poses: swap left/right joints and negate the y and z components.

    Args:
        pose: (..., 72) axis-angle, radians (24 joints x 3).
    Returns:
        (..., 72). The flip is an involution.
    """
    aa = pose.reshape(pose.shape[:-1] + (SMPL_NUM_JOINTS, 3))  # (..., 24, 3)
    sign = _constant(_AA_FLIP_SIGN, pose)
    flipped = aa[..., list(SMPL_FLIP_PERM), :] * sign
    return flipped.reshape(pose.shape)


def flip_smpl_rotmat(rot: Array) -> Array:
    """The same flip on matrices: swap left/right joints and conjugate with M = diag(-1, 1, 1).

    Args:
        rot: (..., 24, 3, 3) rotation matrices.
    Returns:
        (..., 24, 3, 3), ``M R M`` per joint, which equals the flip of its axis-angle.
    """
    sign = _constant((-1.0, 1.0, 1.0), rot)
    mirror = sign[:, None] * sign[None, :]  # (3, 3): M R M negates entries (0, k) and (k, 0) for k != 0
    return rot[..., list(SMPL_FLIP_PERM), :, :] * mirror


def flip_h36m_keypoints(kp: Array) -> Array:
    """Horizontal flip of H36M-17 keypoints: negate channel 0 (x) and swap left/right joints.

    Args:
        kp: (..., 17, C) with x in channel 0, centred on x = 0 (root-relative 3D, or 2D normalised to
            [-1, 1]); any further channels (y, z, confidence) are kept.
    Returns:
        (..., 17, C).
    """
    sign = _constant([-1.0] + [1.0] * (kp.shape[-1] - 1), kp)
    return kp[..., list(H36M_FLIP_PERM), :] * sign
