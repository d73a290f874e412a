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
returns the filtered HybrIK pose. With ``smooth_adaptive`` the filter is instead ``AdaptivePriorSmoother``: a
Gaussian of up to K taps whose width each clip picks from its own ratio of frame-to-frame jitter to motion
(a learnt fixed filter smooths at the training data's rate, and removes the motion of faster movers).

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


def gaussian_taps_sigma(kernel: int, sigma: Tensor | float, like: Tensor) -> Tensor:
    """Normalised Gaussian taps at the ``kernel`` (odd) offsets -K//2..K//2 for each sigma: (...,) -> (..., K),
    in ``like``'s dtype and device."""
    offsets = torch.arange(kernel, dtype=like.dtype, device=like.device) - kernel // 2  # (K,)
    sigma = torch.as_tensor(sigma, dtype=like.dtype, device=like.device).unsqueeze(-1)  # (..., 1)
    return torch.softmax(-0.5 * (offsets / sigma).square(), dim=-1)


def gaussian_taps(kernel: int) -> Tensor:
    """(kernel,) normalised Gaussian taps, sigma = kernel / 4 frames (the window spans +-2 sigma), float32."""
    return gaussian_taps_sigma(kernel, kernel / 4.0, torch.zeros((), dtype=torch.float64)).float()


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


# The clip statistic of ``AdaptivePriorSmoother``: motion is read on the clip smoothed by a fixed Gaussian of
# this sigma (frames; REFERENCE_TAPS taps, +-2 sigma), noise on the raw clip's second differences.
REFERENCE_SIGMA = 3.0
REFERENCE_TAPS = 13
_STAT_EPS = 1e-8  # floor of both statistics: the log ratio stays finite on a still or one-frame clip
# Initial rule log(sigma) = slope * log(noise / motion) + intercept, least squares of each 16-frame window's
# best Gaussian width (on the fitted HybrIK input vs the ground truth) on style A's train split only
# (``python -m benchmarks.bench_adaptive_width``; style B's gives 0.42, -0.88); sigma is clamped to
# [SIGMA_MIN, kernel / 4].
INIT_SLOPE, INIT_INTERCEPT = 0.39, -0.86
SIGMA_MIN = 0.3


def gaussian_filter_clip(x: Tensor, taps: Tensor) -> Tensor:
    """Filter each clip's channels along time with its own taps, replicate-padded: (N, T, C), (N, K) -> (N, T, C).

    K odd; a constant clip passes unchanged when the taps sum to 1. The K frames under each output frame are
    gathered at once and weighted by one batched product (per-clip taps need no grouped convolution, and the
    exported graph stays a handful of nodes).
    """
    kernel = taps.shape[-1]
    pad = kernel // 2
    padded = F.pad(x.transpose(1, 2), (pad, pad), mode="replicate").transpose(1, 2)  # (N, T + K - 1, C)
    frames = torch.arange(x.shape[1], device=x.device)
    windows = padded[:, frames[:, None] + torch.arange(kernel, device=x.device)]  # (N, T, K, C)
    return (taps[:, None, None, :] @ windows).squeeze(2)  # (N, T, 1, K) @ (N, T, K, C) -> (N, T, C)


def noise_to_motion(x: Tensor) -> Tensor:
    """Log of a clip's frame-to-frame noise over its motion: (N, T, C) -> (N,).

    noise: mean squared second difference of x (white noise of variance s^2 gives 6 s^2; smooth motion
    little); motion: mean squared first difference of x smoothed by a sigma-3 Gaussian (the noise mostly
    gone). Both are floored at 1e-8: one frame gives log(1) = 0, two frames (no second difference) log(1e-8 /
    motion), the narrowest filter.
    """
    second = (x[:, 2:] - 2.0 * x[:, 1:-1] + x[:, :-2]).square().mean(dim=-1)  # (N, T - 2)
    reference = gaussian_filter_clip(x, gaussian_taps_sigma(REFERENCE_TAPS, REFERENCE_SIGMA, x).expand(x.shape[0], -1))
    first = (reference[:, 1:] - reference[:, :-1]).square().mean(dim=-1)  # (N, T - 1)
    count2 = torch.ones_like(second).sum(dim=1).clamp_min(1.0)  # (N,): 0 frames -> 1 (the sum is 0 anyway)
    count1 = torch.ones_like(first).sum(dim=1).clamp_min(1.0)
    noise = (second.sum(dim=1) / count2).clamp_min(_STAT_EPS)  # floors, not + eps: the exporter's optimiser
    motion = (first.sum(dim=1) / count1).clamp_min(_STAT_EPS)  # drops an addition of 1e-8 (0 / 0 on one frame)
    return torch.log(noise / motion)


class AdaptivePriorSmoother(nn.Module):
    """A Gaussian temporal filter whose width each clip picks from its own input: (N, T, C) -> (N, T, C).

    ``sigma = exp(slope * noise_to_motion(x) + intercept)`` frames, clamped to [SIGMA_MIN, kernel / 4], with
    ``slope`` and ``intercept`` learnable scalars. Why: a fixed filter learned on one data style smooths at that
    style's rate; people who move four times faster per frame (style B against style A) lose their motion to
    it. The clip's own ratio of jitter to motion tells how much to smooth: a rule fitted on one style's train
    split picks sigma ~2.7 frames on its test split and ~1.3 on the other style's, near each style's own best
    (docs/differences.md, ``python -m benchmarks.bench_adaptive_width``).
    """

    def __init__(self, kernel: int) -> None:
        super().__init__()
        if kernel < 3 or kernel % 2 == 0:
            raise ValueError(f"AdaptivePriorSmoother kernel must be odd and >= 3, got {kernel}")
        self.kernel = kernel
        self.slope = nn.Parameter(torch.tensor(INIT_SLOPE))
        self.intercept = nn.Parameter(torch.tensor(INIT_INTERCEPT))

    def sigma(self, x: Tensor) -> Tensor:
        """(N, T, C) -> (N,) frames."""
        log_sigma = self.slope * noise_to_motion(x.detach()) + self.intercept
        return log_sigma.exp().clamp(SIGMA_MIN, self.kernel / 4.0)

    def forward(self, x: Tensor) -> Tensor:
        return gaussian_filter_clip(x, gaussian_taps_sigma(self.kernel, self.sigma(x), x))

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}"


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
        smooth_adaptive: that filter an ``AdaptivePriorSmoother`` (per-clip Gaussian width, at most
            smooth_kernel / 4 frames) instead of learnt per-channel taps.
        norm: ``batch`` (the original's BatchNorm1d over the N*T frames of a batch) or ``layer``
            (``FrameLayerNorm``: per frame, no running statistics).
    """

    def __init__(self, num_joints: int, dim_rep: int, hidden_dim: int, dropout: float,
                 refine_shape: bool = False, smooth_kernel: int = 0, clip_shape: bool = True,
                 norm: str = "batch", smooth_adaptive: bool = False) -> None:
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
        self.smoother: nn.Module | None = None
        if smooth_kernel:
            self.smoother = (AdaptivePriorSmoother(smooth_kernel) if smooth_adaptive
                             else PriorSmoother(POSE_6D_DIM, smooth_kernel))
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

