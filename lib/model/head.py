"""The refine head: backbone features + HybrIK's rotations -> refined SMPL rotations and betas.

As the original (MotionBERT's ``SMPLRegressor``), but a true residual around HybrIK:

* feature branch: (N, T, J*C) -> Dropout -> Linear -> BatchNorm -> ReLU, per frame;
* prior branch: HybrIK's pose in 6D (N, 144, T) -> Conv1d(k=5) -> BatchNorm -> ReLU;
* both concatenated -> Conv1d(k=5) -> 6D residual, **zero-initialised**, added to HybrIK's 6D and
  decoded with the same 6D convention that encoded it (``lib.geometry.rotation``; the original
  encoded rows and decoded columns, reference section 10.7).

An untrained head therefore returns HybrIK's rotations (up to the Gram-Schmidt round trip, ~1e-7).
Betas pass through unchanged by default; with ``refine_shape`` a clip-level residual (mean over
frames of the feature branch -> zero-initialised Linear) is added to every frame's HybrIK betas.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lib.body.joint_names import SMPL_NUM_BETAS, SMPL_NUM_JOINTS
from lib.geometry.rotation import matrix_to_rot6d, rot6d_to_matrix

ROT6D_DIM = 6
POSE_6D_DIM = SMPL_NUM_JOINTS * ROT6D_DIM  # 144
TEMPORAL_KERNEL = 5  # frames seen by each temporal Conv1d (receptive field of the two: 9 frames)


class RefineHead(nn.Module):
    """Residual SMPL pose (and optionally shape) refinement.

    Args:
        num_joints: J of the backbone features (17).
        dim_rep: C of the backbone features.
        hidden_dim: width of both branches.
        dropout: dropout on the flattened features (the task config's ``dropout``).
        refine_shape: add a clip-level beta residual (else betas pass through).
    """

    def __init__(self, num_joints: int, dim_rep: int, hidden_dim: int, dropout: float,
                 refine_shape: bool = False) -> None:
        super().__init__()
        pad = TEMPORAL_KERNEL // 2
        self.refine_shape = refine_shape
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(num_joints * dim_rep, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim)
        self.fc2 = nn.Conv1d(POSE_6D_DIM, hidden_dim, TEMPORAL_KERNEL, padding=pad)
        self.bn2 = nn.BatchNorm1d(hidden_dim)
        self.relu = nn.ReLU()
        self.head_pose = nn.Conv1d(2 * hidden_dim, POSE_6D_DIM, TEMPORAL_KERNEL, padding=pad)
        nn.init.zeros_(self.head_pose.weight)
        nn.init.zeros_(self.head_pose.bias)
        if refine_shape:
            self.head_shape = nn.Linear(hidden_dim, SMPL_NUM_BETAS)
            nn.init.zeros_(self.head_shape.weight)
            nn.init.zeros_(self.head_shape.bias)

    def forward(self, feat: Tensor, init_rot: Tensor, init_shape: Tensor) -> tuple[Tensor, Tensor]:
        """Refine HybrIK's SMPL parameters.

        Args:
            feat: (N, T, J, C) backbone features.
            init_rot: (N, T, 24, 3, 3) HybrIK's rotation matrices.
            init_shape: (N, T, 10) HybrIK's betas.
        Returns:
            rot_mat: (N, T, 24, 3, 3) refined rotations.
            shape: (N, T, 10) betas.
        Note:
            BatchNorm in training mode needs more than one frame in the batch (N * T > 1).
        """
        x = self.fc1(self.dropout(feat.flatten(-2)))  # (N, T, J*C) -> (N, T, H)
        x = self.relu(self.bn1(x.transpose(1, 2)))  # (N, H, T): BatchNorm over the N*T frames
        init6d = matrix_to_rot6d(init_rot).flatten(-2)  # (N, T, 24, 6) -> (N, T, 144)
        prior = self.relu(self.bn2(self.fc2(init6d.transpose(1, 2))))  # (N, H, T)
        delta = self.head_pose(torch.cat([x, prior], dim=1)).transpose(1, 2)  # (N, 2H, T) -> (N, T, 144)
        rot_mat = rot6d_to_matrix((init6d + delta).unflatten(-1, (SMPL_NUM_JOINTS, ROT6D_DIM)))  # (N, T, 24, 3, 3)
        shape = init_shape
        if self.refine_shape:
            shape = init_shape + self.head_shape(x.mean(dim=-1)).unsqueeze(1)  # (N, 1, 10) over all frames
        return rot_mat, shape

