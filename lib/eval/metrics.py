"""Evaluation metrics as pure numpy functions (float64 inside), units in the names.

Every metric returns PER-FRAME errors, so an evaluation accumulates sums and counts
(``MetricSums``) without keeping vertices of the whole test set in memory; the caller averages.
Inputs are in millimetres. One implementation per metric; Procrustes exists once
(``procrustes_align``).

Protocol (MotionBERT / EHGFormer, reference ``ehgformer_mesh.md`` 6.2): joints and vertices are
centred on the H36M pelvis of the SAME body (``root="pelvis"``); MPJPE and PA-MPJPE are reported on
``H36M_EVAL_14`` (``mpjpe``, ``pa_mpjpe``) and on all 17 joints (``mpjpe_17j``, ``pa_mpjpe_17j``).
``root="mid_hip"`` gives the VIBE / TCMR / WHAM convention (midpoint of the two hips).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from lib.body.joint_names import H36M_EVAL_14, H36M_JOINT_NAMES, H36M_NUM_JOINTS, H36M_ROOT

RootName = Literal["pelvis", "mid_hip"]
_HIPS = (H36M_JOINT_NAMES.index("right_hip"), H36M_JOINT_NAMES.index("left_hip"))  # H36M joints 1 and 4
# Keys of the metrics JSON (CONTRACT.md), all in mm except accel_err in mm/frame^2.
METRIC_KEYS = ("mpve", "mpjpe", "pa_mpjpe", "mpjpe_17j", "pa_mpjpe_17j", "accel_err")
METRIC_UNITS = {key: "mm" for key in METRIC_KEYS} | {"accel_err": "mm/frame^2"}
MM_PER_M = 1000.0
# Guards the Procrustes scale against a prediction with all joints at one point.
_MIN_VARIANCE = 1e-12


def _root_of(joints17: np.ndarray, root: RootName) -> np.ndarray:
    """(..., 17, 3) H36M joints -> (..., 1, 3) root position."""
    if joints17.shape[-2:] != (H36M_NUM_JOINTS, 3):
        raise ValueError(f"expected H36M-17 joints of shape (..., 17, 3), got {joints17.shape}")
    if root == "pelvis":
        return joints17[..., H36M_ROOT:H36M_ROOT + 1, :]
    if root == "mid_hip":
        return joints17[..., list(_HIPS), :].mean(axis=-2, keepdims=True)
    raise ValueError(f"root = {root!r}; allowed: 'pelvis', 'mid_hip'")


def center_on_root(x: np.ndarray, root: RootName = "pelvis") -> np.ndarray:
    """Subtract the root joint from H36M-17 joints.

    Args:
        x: (..., 17, 3) H36M-17 joints.
        root: "pelvis" (joint 0) or "mid_hip" (mean of right hip 1 and left hip 4).
    Returns:
        (..., 17, 3) float64, same units.
    """
    x = np.asarray(x, dtype=np.float64)
    return x - _root_of(x, root)


def center_vertices(verts: np.ndarray, joints17: np.ndarray, root: RootName = "pelvis") -> np.ndarray:
    """Subtract from each mesh the root of the SAME body's H36M joints.

    Args:
        verts: (F, V, 3) vertices.
        joints17: (F, 17, 3) H36M joints regressed from those vertices, same units.
    Returns:
        (F, V, 3) float64.
    """
    verts = np.asarray(verts, dtype=np.float64)
    return verts - _root_of(np.asarray(joints17, dtype=np.float64), root)


def _mean_distance(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(F, P, 3), (F, P, 3) -> (F,) mean Euclidean distance over the P points."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"expected two (F, P, 3) arrays of one shape, got {pred.shape} and {gt.shape}")
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=-1)


def mpjpe_mm(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean per-joint position error per frame.

    Args:
        pred, gt: (F, J, 3) mm, already centred; the caller picks the joints (e.g. ``H36M_EVAL_14``).
    Returns:
        (F,) mm.
    """
    return _mean_distance(pred, gt)


def mpve_mm(pred_verts: np.ndarray, gt_verts: np.ndarray) -> np.ndarray:
    """Mean per-vertex error per frame, no alignment.

    Args:
        pred_verts, gt_verts: (F, V, 3) mm, already centred (``center_vertices``).
    Returns:
        (F,) mm.
    """
    return _mean_distance(pred_verts, gt_verts)


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-frame similarity transform (rotation, scale, translation) of ``pred`` onto ``gt`` (Umeyama).

    Minimises sum_j |s R p_j + t - g_j|^2 with R a proper rotation (reflections are fixed).

    Args:
        pred, gt: (F, J, 3), same units.
    Returns:
        (F, J, 3) float64: ``pred`` aligned.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    mu_p = pred.mean(axis=1, keepdims=True)  # (F, 1, 3)
    mu_g = gt.mean(axis=1, keepdims=True)
    x = pred - mu_p
    y = gt - mu_g
    cov = np.einsum("fji,fjk->fik", y, x)  # (F, 3, 3) = sum_j y_j x_j^T
    u, sing, vh = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vh))  # -1 where the best orthogonal map is a reflection
    fix = np.stack([np.ones_like(d), np.ones_like(d), d], axis=-1)  # (F, 3)
    rot = (u * fix[:, None, :]) @ vh  # (F, 3, 3), maps centred pred onto centred gt
    var_p = np.maximum((x * x).sum(axis=(1, 2)), _MIN_VARIANCE)  # (F,)
    scale = (sing * fix).sum(axis=-1) / var_p  # (F,)
    return scale[:, None, None] * np.einsum("fik,fjk->fji", rot, x) + mu_g


def pa_mpjpe_mm(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """MPJPE after per-frame Procrustes alignment (``procrustes_align``).

    Args:
        pred, gt: (F, J, 3) mm.
    Returns:
        (F,) mm.
    """
    return _mean_distance(procrustes_align(pred, gt), gt)


def accel_error_mm(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Acceleration error per frame of ONE sequence (VIBE's definition, computed per sequence).

    Second difference ``a_i = X_{i-1} - 2 X_i + X_{i+1}``, norm of ``a_pred - a_gt`` per joint, mean
    over joints. Call it once per sequence, never on frames concatenated across a sequence boundary
    (the boundary would add a spurious jump). Use ``accel_mm_per_frame2_to_m_per_s2`` for m/s^2.

    Args:
        pred, gt: (F, J, 3) mm, consecutive frames of one sequence, root-centred (caller's choice of
            root and joints; the reference protocol uses ``H36M_EVAL_14``).
    Returns:
        (F - 2,) mm/frame^2, one entry per interior frame 1..F-2; empty for F < 3.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"expected two (F, J, 3) arrays of one shape, got {pred.shape} and {gt.shape}")
    if pred.shape[0] < 3:
        return np.zeros((0,), dtype=np.float64)
    diff = pred - gt
    accel = diff[:-2] - 2.0 * diff[1:-1] + diff[2:]  # (F-2, J, 3) = a_pred - a_gt
    return np.linalg.norm(accel, axis=-1).mean(axis=-1)


def accel_mm_per_frame2_to_m_per_s2(value: float | np.ndarray, fps: float) -> float | np.ndarray:
    """Convert an acceleration from mm/frame^2 to m/s^2: ``value * fps^2 / 1000``."""
    return value * fps * fps / MM_PER_M


@dataclass
class MetricSums:
    """Running sums of per-frame errors and their counts, one pair per metric key.

    ``accel_err`` counts its own entries (F - 2 per sequence), the others count frames. Sums from
    several workers or ranks combine with ``merge``; ``means`` gives the averages (metrics that never
    received a value are left out).
    """

    sums: dict[str, float] = field(default_factory=lambda: {key: 0.0 for key in METRIC_KEYS})
    counts: dict[str, int] = field(default_factory=lambda: {key: 0 for key in METRIC_KEYS})

    def add(self, key: str, per_frame: np.ndarray) -> None:
        """Add the per-frame errors (any shape, flattened) of metric ``key``."""
        if key not in self.sums:
            raise KeyError(f"unknown metric '{key}'; expected one of {', '.join(METRIC_KEYS)}")
        values = np.asarray(per_frame, dtype=np.float64)
        self.sums[key] += float(values.sum())
        self.counts[key] += int(values.size)

    def add_all(self, per_frame: dict[str, np.ndarray]) -> None:
        """``add`` for every entry of a dict (e.g. the result of ``frame_errors_mm``)."""
        for key, values in per_frame.items():
            self.add(key, values)

    def merge(self, other: "MetricSums") -> "MetricSums":
        """A new ``MetricSums`` holding both sets of sums and counts."""
        out = MetricSums()
        for key in METRIC_KEYS:
            out.sums[key] = self.sums[key] + other.sums[key]
            out.counts[key] = self.counts[key] + other.counts[key]
        return out

    def means(self) -> dict[str, float]:
        """Mean of each metric that received values: {key: sum / count}."""
        return {key: self.sums[key] / self.counts[key] for key in METRIC_KEYS if self.counts[key] > 0}


def frame_errors_mm(pred_joints17: np.ndarray, gt_joints17: np.ndarray,
                    pred_verts: np.ndarray | None = None, gt_verts: np.ndarray | None = None,
                    root: RootName = "pelvis") -> dict[str, np.ndarray]:
    """Every per-frame metric of the reference protocol for one batch of frames.

    Centres each body on its own root, then computes ``mpjpe`` / ``pa_mpjpe`` on ``H36M_EVAL_14``,
    ``mpjpe_17j`` / ``pa_mpjpe_17j`` on all 17 joints and, given vertices, ``mpve``.
    ``accel_err`` is not included: it needs whole sequences (``accel_error_mm``).

    Args:
        pred_joints17, gt_joints17: (F, 17, 3) mm, H36M joints regressed from the meshes.
        pred_verts, gt_verts: (F, V, 3) mm, or None to skip ``mpve``.
        root: centring convention (see ``center_on_root``).
    Returns:
        {key: (F,) mm} for the keys above.
    """
    pred17 = center_on_root(pred_joints17, root)
    gt17 = center_on_root(gt_joints17, root)
    eval14 = list(H36M_EVAL_14)
    out = {
        "mpjpe": mpjpe_mm(pred17[:, eval14], gt17[:, eval14]),
        "pa_mpjpe": pa_mpjpe_mm(pred17[:, eval14], gt17[:, eval14]),
        "mpjpe_17j": mpjpe_mm(pred17, gt17),
        "pa_mpjpe_17j": pa_mpjpe_mm(pred17, gt17),
    }
    if pred_verts is not None and gt_verts is not None:
        out["mpve"] = mpve_mm(center_vertices(pred_verts, pred_joints17, root),
                              center_vertices(gt_verts, gt_joints17, root))
    return out
