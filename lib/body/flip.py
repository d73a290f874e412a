"""Horizontal flips of SMPL poses and H36M keypoints: the left/right joint swap of ``joint_names`` with
the matching sign changes (training augmentation and flip test-time augmentation)."""

from __future__ import annotations

import torch
from torch import Tensor

from lib.body.joint_names import H36M_FLIP_PERM, SMPL_FLIP_PERM, SMPL_NUM_JOINTS

# A horizontal flip (mirror across x = 0) negates the y and z axis-angle components.
_AA_FLIP_SIGN = (1.0, -1.0, -1.0)


def flip_smpl_axis_angle(pose: Tensor) -> Tensor:
    """Horizontal flip of SMPL poses: swap left/right joints and negate the y and z components.

    Args:
        pose: (..., 72) axis-angle, radians (24 joints x 3).
    Returns:
        (..., 72). The flip is an involution.
    """
    aa = pose.reshape(pose.shape[:-1] + (SMPL_NUM_JOINTS, 3))  # (..., 24, 3)
    sign = torch.tensor(_AA_FLIP_SIGN, dtype=pose.dtype, device=pose.device)
    flipped = aa[..., list(SMPL_FLIP_PERM), :] * sign
    return flipped.reshape(pose.shape)


def flip_smpl_rotmat(rot: Tensor) -> Tensor:
    """The same flip on matrices: swap left/right joints and conjugate with M = diag(-1, 1, 1).

    Args:
        rot: (..., 24, 3, 3) rotation matrices.
    Returns:
        (..., 24, 3, 3), ``M R M`` per joint, which equals the flip of its axis-angle.
    """
    sign = torch.tensor((-1.0, 1.0, 1.0), dtype=rot.dtype, device=rot.device)
    mirror = sign[:, None] * sign[None, :]  # (3, 3): M R M negates entries (0, k) and (k, 0) for k != 0
    return rot[..., list(SMPL_FLIP_PERM), :, :] * mirror


def flip_h36m_keypoints(kp: Tensor) -> Tensor:
    """Horizontal flip of H36M-17 keypoints: negate channel 0 (x) and swap left/right joints.

    Args:
        kp: (..., 17, C) with x in channel 0, centred on x = 0 (root-relative 3D, or 2D normalised to
            [-1, 1]); any further channels (y, z, confidence) are kept.
    Returns:
        (..., 17, C).
    """
    sign = torch.tensor([-1.0] + [1.0] * (kp.shape[-1] - 1), dtype=kp.dtype, device=kp.device)
    return kp[..., list(H36M_FLIP_PERM), :] * sign
