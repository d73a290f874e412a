"""The refine head: backbone features + HybrIK's rotations -> refined SMPL rotations and betas.

As the original (MotionBERT's ``SMPLRegressor``), but a true residual around HybrIK:

* feature branch: (N, T, J*C) -> Dropout -> Linear -> BatchNorm -> ReLU, per frame;
* prior branch: HybrIK's pose in 6D (N, 144, T) -> Conv1d(k=5) -> BatchNorm -> ReLU;
* both concatenated -> Conv1d(k=5) -> 6D residual, **zero-initialised**, added to HybrIK's 6D and
  decoded with the same 6D convention that encoded it (``lib.geometry.rotation``; the original
  encoded rows and decoded columns, reference section 10.7).

An untrained head therefore returns HybrIK's rotations (up to the Gram-Schmidt round trip, ~1e-7).

Optional (``smooth_kernel`` K > 0; 0 = the original head): the residual is added to HybrIK's 6D pose
passed through ``PriorSmoother``, a learnable per-channel temporal filter of K taps initialised to a
normalised Gaussian (sigma K / 4 frames). Why: HybrIK's errors are largely per-frame jitter, and the
residual branch sees HybrIK's pose through two 5-frame convolutions only (9 frames): no filter of 9
taps removes white noise as well as the 23-frame Savitzky-Golay baseline does (a 9-frame mean keeps
~9 % of white noise's second difference, the 23-frame cubic fit ~5.5 %), and learning one from a
zero-initialised residual takes far more steps than a short run makes. Starting from a smoothed
HybrIK lets the residual spend its capacity on what the 2D stream knows. An untrained head then
returns the filtered HybrIK pose.

Betas: one person has one body shape, so by default (``clip_shape``) every frame of a clip gets the
clip's mean of HybrIK's betas. HybrIK's per-frame betas jitter, and passed through unchanged (the
original's behaviour, ``clip_shape: false``) that jitter moves every joint from frame to frame: on the
synthetic benchmark it alone held the refined acceleration error at ~7 mm/frame^2 (2.4 with clip
means, same weights). With ``refine_shape`` a clip-level residual (mean over frames of the feature
branch -> zero-initialised Linear) is added to those betas.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lib.body.joint_names import SMPL_NUM_BETAS, SMPL_NUM_JOINTS
from lib.geometry.rotation import matrix_to_rot6d, rot6d_to_matrix

ROT6D_DIM = 6
POSE_6D_DIM = SMPL_NUM_JOINTS * ROT6D_DIM  # 144
TEMPORAL_KERNEL = 5  # frames seen by each temporal Conv1d (receptive field of the two: 9 frames)


def gaussian_taps(kernel: int) -> Tensor:
    """(kernel,) normalised Gaussian taps, sigma = kernel / 4 frames (the window spans +-2 sigma)."""
    offsets = torch.arange(kernel, dtype=torch.float64) - kernel // 2
    taps = torch.exp(-0.5 * (offsets / (kernel / 4.0)) ** 2)
    return (taps / taps.sum()).float()


class PriorSmoother(nn.Module):
    """Learnable per-channel temporal filter: (N, T, C) -> (N, T, C), ``kernel`` odd taps per channel.

    Clip ends are replicate-padded, so a constant signal passes unchanged while the taps sum to 1 (at
    initialisation; training may rescale them, which the 6D decoding ignores: Gram-Schmidt normalises).
    A single frame (T = 1) passes unchanged up to that scale.
    """

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        if kernel < 3 or kernel % 2 == 0:
            raise ValueError(f"PriorSmoother kernel must be odd and >= 3, got {kernel}")
        self.kernel = kernel
        self.weight = nn.Parameter(gaussian_taps(kernel).repeat(channels, 1, 1))  # (C, 1, K) depthwise

    def forward(self, x: Tensor) -> Tensor:
        pad = self.kernel // 2
        padded = F.pad(x.transpose(1, 2), (pad, pad), mode="replicate")  # (N, C, T + K - 1)
        return F.conv1d(padded, self.weight, groups=self.weight.shape[0]).transpose(1, 2)  # (N, T, C)


HEAD_NORMS = ("batch", "layer")


class FrameLayerNorm(nn.Module):
    """LayerNorm over the channels of each frame: (N, H, T) -> (N, H, T).

    Frame-local and without running statistics, so a frame is normalised the same way in training
    and evaluation, in a batch of 16-frame clips or of single COCO images, alone or with others.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


def channel_norm(kind: str, channels: int) -> nn.Module:
    """The head's normalisation of (N, H, T) features: ``batch`` (the original's BatchNorm1d) or ``layer``."""
    if kind == "batch":
        return nn.BatchNorm1d(channels)
    if kind == "layer":
        return FrameLayerNorm(channels)
    raise ValueError(f"head norm must be one of {HEAD_NORMS}, got {kind!r}")


class RefineHead(nn.Module):
    """Residual SMPL pose (and optionally shape) refinement.

    Args:
        num_joints: J of the backbone features (17).
        dim_rep: C of the backbone features.
        hidden_dim: width of both branches.
        dropout: dropout on the flattened features (the task config's ``dropout``).
        refine_shape: add a clip-level beta residual.
        clip_shape: every frame gets the clip's mean of HybrIK's betas (else HybrIK's per-frame betas).
        smooth_kernel: 0 (the original head) or the odd tap count of the ``PriorSmoother`` that
            filters HybrIK's 6D pose before the residual is added.
        norm: ``batch`` (the original's BatchNorm1d over the N*T frames of a batch) or ``layer``
            (``FrameLayerNorm``: per frame, no running statistics).
    """

    def __init__(self, num_joints: int, dim_rep: int, hidden_dim: int, dropout: float,
                 refine_shape: bool = False, smooth_kernel: int = 0, clip_shape: bool = True,
                 norm: str = "batch") -> None:
        super().__init__()
        self.clip_shape = clip_shape
        pad = TEMPORAL_KERNEL // 2
        self.refine_shape = refine_shape
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(num_joints * dim_rep, hidden_dim)
        self.bn1 = channel_norm(norm, hidden_dim)
        self.fc2 = nn.Conv1d(POSE_6D_DIM, hidden_dim, TEMPORAL_KERNEL, padding=pad)
        self.bn2 = channel_norm(norm, hidden_dim)
        self.relu = nn.ReLU()
        self.head_pose = nn.Conv1d(2 * hidden_dim, POSE_6D_DIM, TEMPORAL_KERNEL, padding=pad)
        nn.init.zeros_(self.head_pose.weight)
        nn.init.zeros_(self.head_pose.bias)
        self.smoother = PriorSmoother(POSE_6D_DIM, smooth_kernel) if smooth_kernel else None
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
            With ``norm="batch"``, training mode needs more than one frame in the batch (N * T > 1).
        """
        x = self.fc1(self.dropout(feat.flatten(-2)))  # (N, T, J*C) -> (N, T, H)
        x = self.relu(self.bn1(x.transpose(1, 2)))  # (N, H, T): normalised over the N*T frames or per frame
        init6d = matrix_to_rot6d(init_rot).flatten(-2)  # (N, T, 24, 6) -> (N, T, 144)
        prior = self.relu(self.bn2(self.fc2(init6d.transpose(1, 2))))  # (N, H, T)
        delta = self.head_pose(torch.cat([x, prior], dim=1)).transpose(1, 2)  # (N, 2H, T) -> (N, T, 144)
        base = init6d if self.smoother is None else self.smoother(init6d)  # (N, T, 144)
        rot_mat = rot6d_to_matrix((base + delta).unflatten(-1, (SMPL_NUM_JOINTS, ROT6D_DIM)))  # (N, T, 24, 3, 3)
        shape = init_shape.mean(dim=1, keepdim=True).expand_as(init_shape) if self.clip_shape else init_shape
        if self.refine_shape:
            shape = shape + self.head_shape(x.mean(dim=-1)).unsqueeze(1)  # (N, 1, 10) over all frames
        return rot_mat, shape

