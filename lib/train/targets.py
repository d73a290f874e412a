"""Ground-truth targets of a batch, computed batched on the model's device inside the step."""

from __future__ import annotations

import torch
from torch import nn

from lib.geometry.rotation import axis_angle_to_matrix

M_TO_MM = 1000.0


def smpl_targets(body: nn.Module, pose_aa: torch.Tensor, betas: torch.Tensor) -> dict[str, torch.Tensor]:
    """SMPL meshes of ground-truth parameters, in the refiner's output convention.

    Args:
        body: ``BodyModel``.
        pose_aa: (N, T, 72) axis-angle, rad.
        betas: (N, T, 10).

    Returns:
        ``rot_mat (N,T,24,3,3)``, ``pose_aa (N,T,72)``, ``shape (N,T,10)``, ``vertices (N,T,6890,3)`` mm and
        ``keypoint_3d (N,T,17,3)`` mm, both centred on the H36M pelvis of the same mesh.
    """
    n, t = pose_aa.shape[:2]
    rot_mat = axis_angle_to_matrix(pose_aa.reshape(n, t, 24, 3))  # (N, T, 24, 3, 3)
    out = body(rot_mat.reshape(n * t, 24, 3, 3), betas.reshape(n * t, -1))
    vertices = out.vertices * M_TO_MM  # (N*T, 6890, 3) mm
    keypoints = body.h36m_joints(vertices)  # (N*T, 17, 3) mm
    pelvis = keypoints[:, :1]
    return {
        "rot_mat": rot_mat,
        "pose_aa": pose_aa,
        "shape": betas,
        "vertices": (vertices - pelvis).reshape(n, t, -1, 3),
        "keypoint_3d": (keypoints - pelvis).reshape(n, t, -1, 3),
    }
