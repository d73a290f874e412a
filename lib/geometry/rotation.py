"""Rotation maths: axis-angle <-> matrix <-> 6D (one convention), SO(3) projection, camera roll
(no body knowledge: the SMPL / H36M flips are in ``lib.body.flip``).

Every function is batched over any leading dimensions, differentiable, and (except
``project_to_so3``, which needs an SVD) exportable to ONNX with the TorchScript exporter: there is
no data-dependent Python control flow, branches are ``torch.where`` with safe denominators so both
sides stay finite and gradients are finite everywhere, and the cross product is written out.

Conventions:
    * axis-angle ``aa`` (..., 3): unit axis times the angle in radians (right-hand rule).
    * matrices act on column vectors, ``x' = R @ x``.
    * 6D (both directions): the first two COLUMNS of R, ``d6 = [R00, R10, R20, R01, R11, R21]``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

# Below this squared angle (angle < 0.05 rad) Rodrigues' coefficients use their Taylor series;
# the truncation error (angle^8 / 9!) is below float64 precision there.
_SMALL_ANGLE_SQ = 2.5e-3
# Below this squared ratio |v| / w of a quaternion, atan(x) / x uses its Taylor series (x^12 / 13 error).
_SMALL_QUAT_RATIO_SQ = 1e-2
# Floor of the norm in the 6D Gram-Schmidt decode, so a zero column gives a finite (if arbitrary) result.
_GRAM_SCHMIDT_EPS = 1e-8
# Floor of the divisor when picking a quaternion candidate (pytorch3d's value); the chosen one is >= 1.
_QUAT_CANDIDATE_FLOOR = 0.1
# Below this |cos| of the middle Euler angle the decomposition is at gimbal lock (the last angle is set to 0).
_GIMBAL_EPS = 1e-9


def _cross(a: Tensor, b: Tensor) -> Tensor:
    """Cross product of (..., 3) vectors, written out (``torch.cross`` does not export cleanly)."""
    ax, ay, az = a.unbind(-1)
    bx, by, bz = b.unbind(-1)
    return torch.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], dim=-1)


def _skew(v: Tensor) -> Tensor:
    """Skew-symmetric matrix [v]x of (..., 3) vectors -> (..., 3, 3), so that [v]x @ u = v x u."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    rows = [torch.stack([zero, -z, y], -1), torch.stack([z, zero, -x], -1), torch.stack([-y, x, zero], -1)]
    return torch.stack(rows, dim=-2)  # (..., 3, 3)


def axis_angle_to_matrix(aa: Tensor) -> Tensor:
    """Rodrigues' formula ``R = I + A [v]x + B [v]x^2`` with ``A = sin(t)/t``, ``B = (1 - cos t)/t^2``.

    Args:
        aa: (..., 3) axis-angle, radians.
    Returns:
        (..., 3, 3) rotation matrices. Exact and with finite gradients at angle 0 (Taylor series there).
    """
    t2 = (aa * aa).sum(-1)  # (...,)
    small = t2 < _SMALL_ANGLE_SQ
    t = torch.sqrt(torch.where(small, torch.ones_like(t2), t2))  # safe: never sqrt(0)
    half_sin = torch.sin(0.5 * t)
    a_big = torch.sin(t) / t
    b_big = 2.0 * half_sin * half_sin / (t * t)  # 2 sin^2(t/2) = 1 - cos t, no cancellation
    a_small = 1.0 - t2 / 6.0 * (1.0 - t2 / 20.0 * (1.0 - t2 / 42.0))
    b_small = 0.5 - t2 / 24.0 * (1.0 - t2 / 30.0 * (1.0 - t2 / 56.0))
    a = torch.where(small, a_small, a_big)[..., None, None]
    b = torch.where(small, b_small, b_big)[..., None, None]
    k = _skew(aa)  # (..., 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(k.shape)
    return eye + a * k + b * (k @ k)


def matrix_to_quaternion(mat: Tensor) -> Tensor:
    """Unit quaternion (w, x, y, z) with w >= 0 of (..., 3, 3) rotations -> (..., 4).

    Four candidate quaternions are formed, each dividing by a different component; the one with the
    largest divisor is taken (well conditioned at every angle, including pi).
    """
    m = mat.reshape(mat.shape[:-2] + (9,))  # (..., 9)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.unbind(-1)
    four_sq = torch.stack([1.0 + m00 + m11 + m22, 1.0 + m00 - m11 - m22,
                           1.0 - m00 + m11 - m22, 1.0 - m00 - m11 + m22], dim=-1)  # (..., 4) = 4 q_i^2
    positive = four_sq > 0
    q_abs = torch.sqrt(torch.where(positive, four_sq, torch.ones_like(four_sq))) * positive  # 2 |q_i|
    # Row i is 4 q_i * (w, x, y, z) for an exact rotation.
    rows = [
        torch.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], dim=-1),
        torch.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], dim=-1),
        torch.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], dim=-1),
        torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], dim=-1),
    ]
    candidates = torch.stack(rows, dim=-2) / (2.0 * q_abs.clamp_min(_QUAT_CANDIDATE_FLOOR))[..., None]  # (..., 4, 4)
    best = q_abs.argmax(dim=-1, keepdim=True)[..., None].expand(q_abs.shape[:-1] + (1, 4))  # (..., 1, 4)
    quat = torch.gather(candidates, -2, best).squeeze(-2)  # (..., 4)
    quat = quat / torch.sqrt((quat * quat).sum(-1, keepdim=True))  # the chosen candidate has norm >= 1/2
    sign = torch.where(quat[..., :1] < 0, -torch.ones_like(quat[..., :1]), torch.ones_like(quat[..., :1]))
    return quat * sign


def _quaternion_to_axis_angle(quat: Tensor) -> Tensor:
    """Unit quaternion (w, x, y, z) with w >= 0 -> (..., 3) axis-angle with angle in [0, pi].

    ``aa = v * 2 atan2(|v|, w) / |v|``; for |v| << w the factor is ``(2 / w) * atan(x) / x`` with
    ``x = |v| / w``, evaluated by its Taylor series.
    """
    w = quat[..., 0]
    v = quat[..., 1:]
    n2 = (v * v).sum(-1)
    small = n2 < _SMALL_QUAT_RATIO_SQ * w * w
    n = torch.sqrt(torch.where(small, torch.ones_like(n2), n2))  # safe: never sqrt(0)
    factor_big = 2.0 * torch.atan2(n, w) / n
    w_safe = torch.where(small, w, torch.ones_like(w))  # w > 0.99 wherever small
    x2 = n2 / (w_safe * w_safe)
    series = torch.zeros_like(x2)
    for k in range(5, -1, -1):  # atan(x)/x = sum_k (-x^2)^k / (2k + 1), Horner form
        series = 1.0 / (2 * k + 1) - x2 * series
    factor_small = 2.0 / w_safe * series
    return v * torch.where(small, factor_small, factor_big)[..., None]


def matrix_to_axis_angle(mat: Tensor) -> Tensor:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle, radians, angle in [0, pi].

    Goes through a quaternion (best-conditioned candidate), so it is stable near 0 and near pi.
    At exactly pi the two antipodal answers describe the same rotation; either may be returned.
    """
    return _quaternion_to_axis_angle(matrix_to_quaternion(mat))


def matrix_to_euler_zxy(mat: Tensor) -> Tensor:
    """(..., 3, 3) -> (..., 3) angles (z, x, y) rad with ``R = Rz(z) @ Rx(x) @ Ry(y)`` (intrinsic Z, X', Y'').

    x in [-pi/2, pi/2], z and y in (-pi, pi]. At x = +-pi/2 (gimbal lock) only z +- y is defined:
    y = 0 is returned. Not for an exported graph (``atan2`` branches).
    """
    # R = [[cz cy - sz sx sy, -sz cx, cz sy + sz sx cy],
    #      [sz cy + cz sx sy,  cz cx, sz sy - cz sx cy],
    #      [-cx sy,            sx,    cx cy]]
    r01, r11, r21 = mat[..., 0, 1], mat[..., 1, 1], mat[..., 2, 1]
    cos_x = torch.sqrt(r01 * r01 + r11 * r11)  # |cos x|, taken >= 0
    x = torch.atan2(r21, cos_x)
    locked = cos_x < _GIMBAL_EPS
    z = torch.where(locked, torch.atan2(mat[..., 1, 0], mat[..., 0, 0]), torch.atan2(-r01, r11))
    y = torch.where(locked, torch.zeros_like(x), torch.atan2(-mat[..., 2, 0], mat[..., 2, 2]))
    return torch.stack([z, x, y], dim=-1)


def slerp_matrix(start: Tensor, end: Tensor, t: Tensor) -> Tensor:
    """Spherical linear interpolation on SO(3): ``start @ exp(t * log(start^T @ end))``.

    The geodesic from ``start`` (t = 0) to ``end`` (t = 1) at constant angular speed, the shorter way
    round (the relative angle is in [0, pi]); the same rotations as quaternion slerp.

    Args:
        start, end: (..., 3, 3) rotation matrices.
        t: (...) fraction of the way, usually in [0, 1].
    Returns:
        (..., 3, 3) rotation matrices.
    """
    relative = matrix_to_axis_angle(start.transpose(-1, -2) @ end)  # (..., 3) rad
    return start @ axis_angle_to_matrix(relative * t[..., None])


def matrix_to_rot6d(mat: Tensor) -> Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns, ``[R00, R10, R20, R01, R11, R21]``."""
    return torch.cat([mat[..., :, 0], mat[..., :, 1]], dim=-1)


def _normalize(v: Tensor) -> Tensor:
    """v / max(|v|, eps) over the last axis; finite gradients even for v = 0."""
    return v / torch.sqrt((v * v).sum(-1, keepdim=True).clamp_min(_GRAM_SCHMIDT_EPS ** 2))


def rot6d_to_matrix(d6: Tensor) -> Tensor:
    """(..., 6) -> (..., 3, 3): Gram-Schmidt on the two stored columns, third column = b1 x b2.

    Any input with two non-parallel columns gives a proper rotation (det +1).
    """
    b1 = _normalize(d6[..., 0:3])
    a2 = d6[..., 3:6]
    b2 = _normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1)
    b3 = _cross(b1, b2)
    return torch.stack([b1, b2, b3], dim=-1)  # columns


def project_to_so3(mat: Tensor) -> Tensor:
    """Nearest rotation (Frobenius norm) to each (..., 3, 3) matrix: ``U diag(1, 1, det(U V^T)) V^T``.

    Used to average rotations (mean of the matrices, projected back). Needs an SVD, so it is not for
    an exported graph. Differentiable except where singular values coincide.
    """
    u, _, vh = torch.linalg.svd(mat)
    det = torch.linalg.det(u @ vh)  # +1 or -1
    fix = torch.ones(mat.shape[:-2] + (3,), dtype=mat.dtype, device=mat.device)
    fix = torch.cat([fix[..., :2], det[..., None]], dim=-1)  # (..., 3)
    return (u * fix[..., None, :]) @ vh


def project_to_so3_numpy(mat: np.ndarray) -> np.ndarray:
    """``project_to_so3``'s formula in numpy (float64), for a few matrices at a time: one frame of a
    stream, one step of a recursive filter. There a small torch SVD / det call costs 3-100x the numpy
    one (thread start-up; ~40 ms per call on a loaded 2-core machine); the results agree to ~1e-15.

    Args:
        mat: (..., 3, 3). Returns: (..., 3, 3) float64 rotations.
    """
    u, _, vh = np.linalg.svd(np.asarray(mat, dtype=np.float64))
    det = np.linalg.det(u @ vh)  # +1 or -1
    u = u.copy()
    u[..., :, 2] *= det[..., None]
    return u @ vh


def roll_matrix(angle: float) -> Tensor:
    """(3, 3) float32 rotation by ``angle`` rad about the camera's optical axis z (x right, y down)."""
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def turn_smpl_axis_angle(pose: Tensor, rot: Tensor) -> Tensor:
    """SMPL poses seen by a camera turned by ``rot``: the global orientation becomes rot R, the body is unchanged.

    Args:
        pose: (..., 72) axis-angle, radians; joint 0 is the global orientation in the camera frame.
        rot: (3, 3) rotation in the camera frame (any dtype; used in ``pose``'s).
    Returns:
        (..., 72); the 23 body joints (relative to their parents) are unchanged.
    """
    root = rot.to(dtype=pose.dtype, device=pose.device) @ axis_angle_to_matrix(pose[..., :3])  # (..., 3, 3)
    return torch.cat([matrix_to_axis_angle(root), pose[..., 3:]], dim=-1)


def roll_smpl_axis_angle(pose: Tensor, angle: float) -> Tensor:
    """A camera roll applied to SMPL poses in the camera frame: the global orientation becomes Rz R
    (``turn_smpl_axis_angle`` with ``roll_matrix(angle)``). pose: (..., 72) axis-angle, rad."""
    return turn_smpl_axis_angle(pose, roll_matrix(angle))


def roll_keypoints_2d(kp: Tensor, angle: float) -> Tensor:
    """The same roll in the image: (x, y) rotated about the origin by ``angle`` (y down).

    A camera rotated about its optical axis sees every point rotated about the principal point by
    the same angle, so on coordinates centred at the principal point (the normalised canvas centre)
    this matches ``roll_smpl_axis_angle``. kp: (..., J, C), channels 0, 1 = x, y; others unchanged.
    """
    c, s = math.cos(angle), math.sin(angle)
    x, y = kp[..., 0:1], kp[..., 1:2]
    return torch.cat([c * x - s * y, s * x + c * y, kp[..., 2:]], dim=-1)
