"""Ground-truth targets of a batch, computed batched on the model's device inside the step."""

from __future__ import annotations

import torch
from torch import nn

from lib.geometry.rotation import axis_angle_to_matrix
from lib.body.smpl import posed_mesh_mm


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
    rot_mat = axis_angle_to_matrix(pose_aa.unflatten(-1, (24, 3)))  # (N, T, 24, 3, 3)
    vertices, keypoints = posed_mesh_mm(body, rot_mat, betas)
    return {"rot_mat": rot_mat, "pose_aa": pose_aa, "shape": betas, "vertices": vertices, "keypoint_3d": keypoints}
