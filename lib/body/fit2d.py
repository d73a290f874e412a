"""Each frame's HybrIK pose fitted to its own 2D keypoints, no training.

Per frame, HybrIK's rotations change by small increments, the global orientation's left-composed in
the camera frame (``Exp(d_0) R_0``) and every body joint's right-composed in its parent's frame
(``R_j Exp(d_j)``), chosen to minimise::

    E = sum_j c_j rho(|s (X_j, Y_j) + t - x_j|^2 / spread^2) / C  +  prior_weight * sum_j |d_j|^2

with (X_j, Y_j, Z_j) the SMPL H36M-17 joints of the changed pose (the betas given; camera axes;
``BodyModel.h36m_joints_of_pose``, no mesh), x_j the detections, c_j their confidences (C their sum),
(s, t) the frame's least-squares scale and offset given the joints (weak perspective, solved in closed form at every
step, so the fit does not depend on pixels vs a normalised canvas), and ``spread`` the detections'
confidence-weighted RMS distance to their centroid (E has no units), and rho the squared error itself
(``robust`` None) or Geman-McClure's ``rho(e) = r^2 e / (r^2 + e)`` with ``r = robust`` (SMPLify's robust 2D term):
a detection farther than ~r spreads from the body pulls no harder than one at r, so an outlier burst, a
left/right swap or a heavy-tailed detector moves the pose far less (the scale and offset stay a weighted
least-squares solve over every joint, so an outlier still shifts those). L-BFGS from zero increments,
``steps`` iterations. Depth is not in the 2D: the prior keeps each increment near HybrIK where the 2D
cannot tell (a bone turned towards or away from the camera projects alike). A frame with fewer than
``MIN_DETECTED`` detected joints keeps HybrIK's pose.

What it is for: the refiner's optional first stage (``fit2d_prior`` in the task config:
``lib.data.hybrik_fit`` fits every split's HybrIK input before training, evaluation and inference
see it), the strongest simple baseline that reads the 2D (``lib.eval.fit2d``; the smoothers in
``lib.eval.baselines`` read only HybrIK's rotations), and, fitted to noise-free projections of the
ground truth, an estimate of how much of HybrIK's error a single frame's 2D can remove at all
(``benchmarks/bench_fit2d.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lib.body.joint_names import SMPL_NUM_JOINTS
from lib.geometry.rotation import axis_angle_to_matrix

MIN_DETECTED = 4  # joints with confidence > 0 a frame needs to be fitted (a scale and offset take 2)
DEFAULT_STEPS = 50  # L-BFGS iterations
HISTORY = 20  # L-BFGS memory
_EPS = 1e-9


def weak_perspective_projection(xy: Tensor, keypoints: Tensor, weight: Tensor) -> Tensor:
    """The joints' camera x, y mapped onto the detections by the best scale and offset.

    Args:
        xy: (F, J, 2) the joints' camera x, y (any unit).
        keypoints: (F, J, 2) the detections (any unit, any offset; the same aspect ratio).
        weight: (F, J) confidences >= 0.
    Returns:
        (F, J, 2) ``s xy + t`` in the detections' units, (s, t) the weighted least-squares scale and offset
        of each frame (t puts the joints' weighted centroid on the detections').
    """
    total = weight.sum(dim=-1, keepdim=True).clamp_min(_EPS).unsqueeze(-1)  # (F, 1, 1)
    w = weight.unsqueeze(-1)  # (F, J, 1)
    xy_c = xy - (w * xy).sum(dim=-2, keepdim=True) / total  # (F, J, 2) centred
    kp_mean = (w * keypoints).sum(dim=-2, keepdim=True) / total  # (F, 1, 2)
    scale = (w * xy_c * (keypoints - kp_mean)).sum(dim=(-2, -1)) / (w * xy_c.square()).sum(dim=(-2, -1)).clamp_min(_EPS)
    return scale[:, None, None] * xy_c + kp_mean


def geman_mcclure(squared: Tensor, scale: float) -> Tensor:
    """Geman-McClure's robust penalty of squared errors: ``scale^2 e / (scale^2 + e)`` (same shape).

    ~e for e << scale^2 (the squared error), bounded by scale^2 far away (an outlier's pull fades).
    """
    scale_sq = scale * scale
    return scale_sq * squared / (scale_sq + squared)


def weak_perspective_error(xy: Tensor, keypoints: Tensor, weight: Tensor, robust: float | None = None) -> Tensor:
    """Per-frame normalised 2D error after the best scale and offset.

    Args:
        xy, keypoints, weight: as ``weak_perspective_projection``.
        robust: None (squared error) or the Geman-McClure scale, in spreads (``geman_mcclure``).
    Returns:
        (F,) ``sum_j w_j rho(|s xy_j + t - k_j|^2 / spread^2) / sum_j w_j``, with ``spread`` the detections'
        weighted RMS distance to their weighted centroid and rho the identity or ``geman_mcclure``; 0 where
        the weights sum to 0.
    """
    total = weight.sum(dim=-1).clamp_min(_EPS)  # (F,)
    w = weight.unsqueeze(-1)  # (F, J, 1)
    kp_c = keypoints - (w * keypoints).sum(dim=-2, keepdim=True) / total[:, None, None]
    residual = weak_perspective_projection(xy, keypoints, weight) - keypoints  # (F, J, 2)
    spread_sq = (w * kp_c.square()).sum(dim=(-2, -1)) / total  # (F,)
    squared = residual.square().sum(dim=-1) / spread_sq.clamp_min(_EPS)[:, None]  # (F, J) in spreads^2
    if robust is not None:
        squared = geman_mcclure(squared, robust)
    return (weight * squared).sum(dim=-1) / total


def compose_increments(rot: Tensor, increments: Tensor) -> Tensor:
    """``Exp(d_0) R_0`` (camera frame) and ``R_j Exp(d_j)`` (parent's frame) for j >= 1.

    Args:
        rot: (F, 24, 3, 3); increments: (F, 24, 3) axis-angle, rad.
    Returns:
        (F, 24, 3, 3).
    """
    turn = axis_angle_to_matrix(increments)  # (F, 24, 3, 3)
    root = turn[:, :1] @ rot[:, :1]
    return torch.cat([root, rot[:, 1:] @ turn[:, 1:]], dim=1)


def fit_to_2d(body: nn.Module, rot: Tensor, betas: Tensor, pose2d: Tensor, *, prior_weight: float,
              steps: int = DEFAULT_STEPS, robust: float | None = None) -> Tensor:
    """Fit every frame's rotations to its 2D keypoints (module docstring).

    Args:
        body: ``BodyModel``.
        rot: (F, 24, 3, 3) HybrIK's rotations; betas: (F, 10).
        pose2d: (F, 17, 3) H36M-17 detections (x, y, confidence), pixels or normalised.
        prior_weight: weight of ``sum_j |d_j|^2`` (rad^2) against the normalised 2D error.
        steps: L-BFGS iterations (each one or more passes of SMPL's joints over all frames).
        robust: None (squared 2D error) or the Geman-McClure scale in spreads (``weak_perspective_error``).
    Returns:
        (F, 24, 3, 3) fitted rotations (HybrIK's where fewer than ``MIN_DETECTED`` joints are detected).
    """
    if prior_weight < 0 or steps < 0:
        raise ValueError(f"prior_weight and steps must be >= 0, got {prior_weight} and {steps}")
    if robust is not None and not robust > 0:
        raise ValueError(f"robust must be None or a scale > 0, got {robust}")
    rot, betas = rot.float(), betas.float()
    keypoints, weight = pose2d[..., :2].float(), pose2d[..., 2].float().clamp_min(0.0)  # (F, 17, 2), (F, 17)
    fitted = (weight > 0).sum(dim=-1) >= MIN_DETECTED  # (F,)
    increments = torch.zeros(rot.shape[0], SMPL_NUM_JOINTS, 3, requires_grad=True)
    # L-BFGS on the sum over frames (frames are independent; one shared line search): unlike Adam, whose
    # per-parameter normalisation moves a direction the 2D barely sees as far as one it sees, it follows
    # the curvature, so the prior decides the depth-ambiguous directions.
    optimizer = torch.optim.LBFGS([increments], lr=1.0, max_iter=steps, history_size=HISTORY,
                                  tolerance_grad=1e-10, tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        joints = body.h36m_joints_of_pose(compose_increments(rot, increments), betas)  # (F, 17, 3) m, no mesh
        error = weak_perspective_error(joints[..., :2], keypoints, weight, robust)  # (F,)
        loss = ((error + prior_weight * increments.square().sum(dim=(-2, -1))) * fitted).sum()
        loss.backward()
        return loss

    if steps > 0:
        with torch.enable_grad():
            optimizer.step(closure)
    with torch.no_grad():
        return torch.where(fitted[:, None, None, None], compose_increments(rot, increments), rot)
