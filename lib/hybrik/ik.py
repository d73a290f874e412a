"""HybrIK's hybrid analytical inverse kinematics (twist-and-swing), batched, differentiable and exportable.

Given 29 root-relative joints (m), one twist angle per non-root SMPL joint as (cos, sin) and the rest
skeleton of the shaped template, every SMPL joint rotation is recovered analytically:

* pelvis: the rotation that best maps the rest bones to its children (spine1, left hip, right hip) onto
  the predicted ones (orthogonal Procrustes with the determinant fix, i.e. Kabsch). Solved here with
  Horn's quaternion method: the optimal rotation is the quaternion of the largest eigenvalue of a
  symmetric 4x4 matrix, found by repeated squaring plus power steps (fixed iteration count, only
  matmuls: no SVD, no ``.cpu()``, exports to ONNX). Tests prove it equals the SVD solution.
* every other joint j with child c, in kinematic order: the swing is the smallest rotation taking the
  rest bone (j -> c) onto the target bone expressed in the parent's frame; the twist is the rotation
  by the predicted angle about the rest bone; ``R_j = swing @ twist``.

Two variants, as in HybrIK:

* ``naive=False`` (HybrIK's final output path): the target bone is the predicted child minus where the
  IK has already placed joint j (so bone-length errors do not accumulate), except that when this
  differs by more than ``BONE_MISMATCH_M`` from the predicted bone rescaled to the template length, the
  rescaled predicted bone is used instead. The decision is made per sample and per joint.
* ``naive=True`` (HybrIK's ``update_scale`` path): the target bone is the predicted bone itself and the
  pelvis orientation is analytic (swing spine1, then turn about the spine to align the hip centre).

Fixes of HybrIK's defects (reference ``motionbert_hybrik.md`` 3.1): zero-length rest bones give the
identity instead of NaN (defect 3); an empty pelvis fit falls back to the identity for that sample only;
no SVD or ``.cpu()`` in the graph (defect 4); the twist (cos, sin) is normalised exactly, so the twist
matrix is a rotation even for short predicted vectors (HybrIK divides by ``|phi| + 1e-8``).
Unlike HybrIK, no input is detached, so gradients reach the joints through every path; forward values
are the same.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lib.body.joint_names import SMPL_NUM_JOINTS
from lib.hybrik.skeleton import (
    HYBRIK_PARENTS,
    IK_CHILDREN,
    IK_LEVELS,
    PELVIS_CHILDREN,
)

BONE_MISMATCH_M = 0.015   # HybrIK's 15 mm rule (see the module docstring)
MIN_BONE_M = 1e-6         # a bone shorter than this has no direction: its swing is the identity
PHI_EPS = 1e-8            # a twist vector (cos, sin) shorter than this means no twist
TINY = 1e-20              # guards divisions whose numerator is exactly zero in the same case
# Horn's method: squarings of the shifted 4x4 matrix (error ~ ratio^(2^k)) and plain power steps after.
HORN_SQUARINGS = 16
HORN_POWER_STEPS = 2
# A perpendicular axis is built from e_x unless the bone is within ~25 deg of it (then from e_y).
_PERP_SWITCH = 0.9


def _norm(v: Tensor) -> Tensor:
    """(..., 3) -> (..., 1) Euclidean norm."""
    return torch.linalg.vector_norm(v, dim=-1, keepdim=True)


def _unit(v: Tensor, min_norm: float = MIN_BONE_M) -> Tensor:
    """(..., 3) -> unit vectors; vectors shorter than ``min_norm`` come out (near) zero, never NaN."""
    return v / _norm(v).clamp_min(min_norm)


def skew(v: Tensor) -> Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrix ``K`` with ``K @ x = v x x``."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*v.shape[:-1], 3, 3)


def rodrigues(axis: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotation about ``axis`` by the angle with the given cosine and sine.

    Args:
        axis: (..., 3) unit (or zero: then the result is the identity).
        cos, sin: (...,).
    Returns:
        (..., 3, 3): ``I + sin K + (1 - cos) K^2``.
    """
    k = skew(axis)
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device)
    return eye + sin[..., None, None] * k + (1 - cos)[..., None, None] * (k @ k)


def _perpendicular(a: Tensor) -> Tensor:
    """(..., 3) unit -> a unit vector perpendicular to it."""
    basis = torch.eye(3, dtype=a.dtype, device=a.device)
    ex, ey = basis[0].expand_as(a), basis[1].expand_as(a)
    helper = torch.where(a[..., :1].abs() < _PERP_SWITCH, ex, ey)
    return _unit(torch.linalg.cross(a, helper, dim=-1))


def swing_rotation(rest: Tensor, target: Tensor) -> Tensor:
    """The smallest rotation taking the direction of ``rest`` onto the direction of ``target``.

    Opposite directions give a half turn about an axis perpendicular to ``rest``; a bone shorter than
    ``MIN_BONE_M`` (rest or target) gives the identity.

    Args:
        rest, target: (..., 3) any length.
    Returns:
        (..., 3, 3).
    """
    a, b = _unit(rest), _unit(target)
    cross = torch.linalg.cross(a, b, dim=-1)
    sin = _norm(cross)[..., 0]
    cos = (a * b).sum(-1)
    axis = torch.where(sin[..., None] > TINY, cross / sin.clamp_min(TINY)[..., None], _perpendicular(a))
    valid = (_norm(rest)[..., 0] > MIN_BONE_M) & (_norm(target)[..., 0] > MIN_BONE_M)
    cos = torch.where(valid, cos, torch.ones_like(cos))
    sin = torch.where(valid, sin, torch.zeros_like(sin))
    return rodrigues(axis, cos, sin)


def normalize_twist(phis: Tensor) -> Tensor:
    """(..., 2) raw (cos, sin) -> unit (cos, sin); a (near) zero vector -> (1, 0), no twist.

    HybrIK divides by ``|phi| + 1e-8``, which leaves (cos, sin) slightly short of unit length (so the
    twist matrix is not quite a rotation when |phi| is small) and turns a zero vector into a projection;
    here the division is exact and the zero vector means no twist.
    """
    norm = torch.linalg.vector_norm(phis, dim=-1, keepdim=True)
    no_twist = torch.cat([torch.ones_like(phis[..., :1]), torch.zeros_like(phis[..., 1:])], dim=-1)
    return torch.where(norm > PHI_EPS, phis / norm.clamp_min(PHI_EPS), no_twist)


def twist_rotation(rest: Tensor, phis: Tensor) -> Tensor:
    """Rotation about the rest bone by the twist angle.

    Args:
        rest: (..., 3) rest bone (zero length: identity, HybrIK's defect 3 fixed).
        phis: (..., 2) unit (cos, sin).
    Returns:
        (..., 3, 3).
    """
    return rodrigues(_unit(rest), phis[..., 0], phis[..., 1])


def horn_matrix(cov: Tensor) -> Tensor:
    """Horn's symmetric 4x4 matrix whose top eigenvector is the best rotation as a quaternion (w, x, y, z).

    Args:
        cov: (B, 3, 3) ``sum_k rest_k target_k^T``.
    Returns:
        (B, 4, 4).
    """
    sxx, sxy, sxz = cov[:, 0, 0], cov[:, 0, 1], cov[:, 0, 2]
    syx, syy, syz = cov[:, 1, 0], cov[:, 1, 1], cov[:, 1, 2]
    szx, szy, szz = cov[:, 2, 0], cov[:, 2, 1], cov[:, 2, 2]
    rows = [
        [sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
        [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
        [szx - sxz, sxy + syx, syy - sxx - szz, syz + szy],
        [sxy - syx, szx + sxz, syz + szy, szz - sxx - syy],
    ]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """(..., 4) unit quaternion (w, x, y, z) -> (..., 3, 3) rotation matrix."""
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(*q.shape[:-1], 3, 3)


def kabsch_rotation(rest: Tensor, target: Tensor) -> Tensor:
    """Proper rotation R minimising ``sum_k |R rest_k - target_k|^2`` (Kabsch with the determinant fix).

    Horn's quaternion method with a fixed number of squarings and power steps (see the module docstring).
    A sample whose cross-covariance is all zero gets the identity (HybrIK's per-sample fallback).

    Args:
        rest, target: (B, K, 3) corresponding vectors.
    Returns:
        (B, 3, 3).
    """
    cov = rest.transpose(1, 2) @ target  # (B, 3, 3): sum_k rest_k target_k^T
    horn = horn_matrix(cov)
    # Shift by |cov|_F >= the largest singular value: the wanted eigenvalue becomes the largest in modulus.
    shift = torch.linalg.matrix_norm(cov)[:, None, None]
    shifted = horn + shift * torch.eye(4, dtype=cov.dtype, device=cov.device)
    power = shifted
    for _ in range(HORN_SQUARINGS):
        power = power @ power
        power = power / power.abs().amax(dim=(1, 2), keepdim=True).clamp_min(TINY)
    # power ~ q q^T: its column with the largest diagonal entry is the best-conditioned multiple of q.
    column = power.diagonal(dim1=1, dim2=2).argmax(dim=1)  # (B,)
    q = power.gather(2, column[:, None, None].expand(-1, 4, 1))  # (B, 4, 1)
    for _ in range(HORN_POWER_STEPS):
        q = shifted @ q
        q = q / _norm(q.transpose(1, 2)).transpose(1, 2).clamp_min(TINY)
    q = q[..., 0]
    identity = torch.eye(4, dtype=cov.dtype, device=cov.device)[0].expand_as(q)
    q = torch.where(_norm(q) > 0.5, _unit(q, TINY), identity)
    return quaternion_to_matrix(q)


def pelvis_orient_analytic(rest_bones: Tensor, pred_bones: Tensor) -> Tensor:
    """HybrIK's SVD-free pelvis rotation (naive path): swing spine1, then turn about it to align the hips.

    Args:
        rest_bones, pred_bones: (B, 29, 3) bone vectors (joint minus parent).
    Returns:
        (B, 3, 3).
    """
    spine, left_hip, right_hip = PELVIS_CHILDREN
    rot_spine = swing_rotation(rest_bones[:, spine], pred_bones[:, spine])
    axis = _unit(pred_bones[:, spine])
    center_pred = (pred_bones[:, left_hip] + pred_bones[:, right_hip]) / 2
    center_rest = (rot_spine @ ((rest_bones[:, left_hip] + rest_bones[:, right_hip]) / 2)[..., None])[..., 0]
    center_pred = center_pred - (center_pred * axis).sum(-1, keepdim=True) * axis
    center_rest = center_rest - (center_rest * axis).sum(-1, keepdim=True) * axis
    return swing_rotation(center_rest, center_pred) @ rot_spine


def forward_kinematics(rot_mats: Tensor, rest_joints: Tensor) -> Tensor:
    """Posed SMPL joints from local rotations (the joint part of SMPL's forward, without the mesh).

    Args:
        rot_mats: (B, 24, 3, 3) local rotations.
        rest_joints: (B, 24, 3) m, rest joints of the shaped template.
    Returns:
        (B, 24, 3) m; joint 0 stays at its rest position.
    """
    world_rot = [rot_mats[:, 0]]
    world_pos = [rest_joints[:, 0]]
    for joint in range(1, SMPL_NUM_JOINTS):
        parent = HYBRIK_PARENTS[joint]
        bone = rest_joints[:, joint] - rest_joints[:, parent]
        world_pos.append(world_pos[parent] + (world_rot[parent] @ bone[..., None])[..., 0])
        world_rot.append(world_rot[parent] @ rot_mats[:, joint])
    return torch.stack(world_pos, dim=1)


def _bones(joints: Tensor) -> Tensor:
    """(B, 29, 3) joints -> (B, 29, 3) vectors from each parent (row 0: the root position itself)."""
    parents = list(HYBRIK_PARENTS)
    parents[0] = 0
    bones = joints - joints[:, parents]
    return torch.cat([joints[:, :1], bones[:, 1:]], dim=1)


def hybrik_ik(joints: Tensor, phis: Tensor, rest_joints: Tensor, naive: bool = False) -> Tensor:
    """29 root-relative joints + twist -> the 24 local SMPL rotations (see the module docstring).

    Args:
        joints: (B, 29, 3) m, root-relative (HybrIK's ``pose_skeleton``).
        phis: (B, 23, 2) twist of joints 1..23 as (cos, sin), any length (normalised here).
        rest_joints: (B, 29, 3) m, rest skeleton of the same betas (``lib.hybrik.model.rest_skeleton``).
        naive: HybrIK's ``update_scale`` variant instead of its final one.
    Returns:
        (B, 24, 3, 3) local rotation matrices (row 0: the global orientation).
    """
    rest_bones, pred_bones = _bones(rest_joints), _bones(joints)
    phis = normalize_twist(phis)
    children = list(PELVIS_CHILDREN)
    if naive:
        root = pelvis_orient_analytic(rest_bones, pred_bones)
    else:
        root = kabsch_rotation(rest_bones[:, children], pred_bones[:, children])
    # The predicted skeleton moved so that its root sits on the rest root (where the IK starts).
    final = joints - joints[:, :1] + rest_joints[:, :1]
    chain = {0: root}
    local = {0: root}
    posed = {0: rest_joints[:, 0]}
    for level in IK_LEVELS:
        joint_ids = list(level)
        parent_ids = [HYBRIK_PARENTS[j] for j in level]
        child_ids = [IK_CHILDREN[j] for j in level]
        chain_parent = torch.stack([chain[p] for p in parent_ids], dim=1)  # (B, L, 3, 3)
        rest_child = rest_bones[:, child_ids]  # (B, L, 3)
        if naive:
            target = pred_bones[:, child_ids]
        else:
            # Where the IK has put joint j so far: parent position + parent chain applied to the rest bone.
            placed = (torch.stack([posed[p] for p in parent_ids], dim=1)
                      + (chain_parent @ rest_bones[:, joint_ids, :, None])[..., 0])  # (B, L, 3)
            for k, j in enumerate(level):
                posed[j] = placed[:, k]
            target = final[:, child_ids] - placed
            predicted = pred_bones[:, child_ids]
            rescaled = predicted * (_norm(rest_child) / _norm(predicted).clamp_min(MIN_BONE_M))
            mismatch = _norm(target - rescaled) > BONE_MISMATCH_M
            target = torch.where(mismatch, rescaled, target)
        local_target = (chain_parent.transpose(-1, -2) @ target[..., None])[..., 0]  # in the parent's frame
        twist = twist_rotation(rest_child, phis[:, [j - 1 for j in level]])
        rot = swing_rotation(rest_child, local_target) @ twist  # (B, L, 3, 3)
        chain_joint = chain_parent @ rot
        for k, j in enumerate(level):
            local[j] = rot[:, k]
            chain[j] = chain_joint[:, k]
    return torch.stack([local[j] for j in range(SMPL_NUM_JOINTS)], dim=1)
