"""What the 2D says about HybrIK's pose: per-joint disagreement under a weak-perspective camera.

Why (issue 14): the backbone sees only the 2D. Trained from scratch on a few thousand frames it does
not learn to lift 2D to 3D, so the head learnt its body-pose corrections from HybrIK's pose alone:
replacing style b's detections by clean projections, or removing every detection, moved the refined
PA-MPJPE by less than 0.2 mm. Such a refiner is a prior over its training set's motions, and does
damage elsewhere. Handing the backbone HybrIK's own 3D joints and where the 2D disagrees with them
makes "correct HybrIK where the 2D disagrees" a per-joint comparison instead of a lifting problem.

``hybrik_2d_evidence`` maps, per frame, HybrIK's joints (x, y in the camera frame) onto the detections
with one scale and one 2D translation (confidence-weighted centroids matched, scale = ratio of the two
RMS spreads about them), and returns HybrIK's joints and each detection's offset from its mapped joint,
both in metres. The spread ratio (not a least-squares scale) stays positive and bounded when the 2D
contradicts HybrIK altogether (a left/right swap, a wrong person), so the disagreement does too.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lib.body.smpl import MM_PER_M

EVIDENCE_CHANNELS = 5  # HybrIK joint x, y, z (m) + 2D disagreement x, y (m)
_WEIGHT_EPS = 1e-6
_SCALE_EPS = 1e-3  # normalised-canvas units per metre; a visible person is > 0.05


def hybrik_2d_evidence(pose2d: Tensor, joints_mm: Tensor) -> Tensor:
    """HybrIK's joints and the 2D's disagreement with them: (N, T, J, C), (N, T, J, 3) -> (N, T, J, 5).

    Per frame, with c_j the confidence (1 without a confidence channel), x the 2D and X HybrIK's joint
    (x, y): centroids x_c = sum c x / sum c, X_c likewise; s = sqrt(sum c |x - x_c|^2 / sum c |X - X_c|^2).
    Channels: X, Y, Z of HybrIK's joint (m, as given, e.g. pelvis-centred), then
    (x_j - x_c) / s - (X_j - X_c) (m): where the detection puts the joint relative to HybrIK, 0 for an
    undetected joint (c = 0).

    Args:
        pose2d: (N, T, J, C) normalised 2D (channels x, y[, confidence]), any common scale and origin.
        joints_mm: (N, T, J, 3) HybrIK's joints in the camera's orientation, mm.
    """
    xy = pose2d[..., :2]  # (N, T, J, 2)
    weight = pose2d[..., 2:3].clamp_min(0.0) if pose2d.shape[-1] > 2 else torch.ones_like(xy[..., :1])  # (N, T, J, 1)
    joints = joints_mm / MM_PER_M  # (N, T, J, 3) m
    plane = joints[..., :2]  # (N, T, J, 2)
    total = weight.sum(dim=-2, keepdim=True).clamp_min(_WEIGHT_EPS)  # (N, T, 1, 1)
    dx = xy - (weight * xy).sum(dim=-2, keepdim=True) / total  # (N, T, J, 2)
    dX = plane - (weight * plane).sum(dim=-2, keepdim=True) / total  # (N, T, J, 2)
    spread_2d = (weight * dx.square()).sum(dim=(-2, -1), keepdim=True)  # (N, T, 1, 1)
    spread_3d = (weight * dX.square()).sum(dim=(-2, -1), keepdim=True)  # (N, T, 1, 1)
    scale = (spread_2d / spread_3d.clamp_min(_WEIGHT_EPS)).sqrt().clamp_min(_SCALE_EPS)  # (N, T, 1, 1)
    disagreement = (dx / scale - dX) * (weight > 0)  # (N, T, J, 2) m
    return torch.cat([joints, disagreement], dim=-1)
