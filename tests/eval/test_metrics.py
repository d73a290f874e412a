"""Metrics on hand-worked cases and against independent (scipy) computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from lib.body.joint_names import H36M_EVAL_14, H36M_JOINT_NAMES
from lib.eval.metrics import (
    METRIC_KEYS,
    MetricSums,
    accel_error_mm,
    accel_mm_per_frame2_to_m_per_s2,
    center_on_root,
    center_vertices,
    frame_errors_mm,
    mpjpe_mm,
    mpve_mm,
    pa_mpjpe_mm,
    procrustes_align,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _skeletons(rng: np.random.Generator, frames: int = 6) -> np.ndarray:
    return rng.normal(scale=300.0, size=(frames, 17, 3))  # mm


def test_mpjpe_hand_case():
    gt = np.zeros((2, 2, 3))
    pred = np.array([[[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]], [[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]]])
    np.testing.assert_allclose(mpjpe_mm(pred, gt), [2.5, 1.5])


def test_similarity_transform_gives_zero_pa_mpjpe_but_large_mpjpe(rng):
    gt = _skeletons(rng)
    rots = Rotation.random(len(gt), random_state=4).as_matrix()
    pred = 1.7 * np.einsum("fik,fjk->fji", rots, gt) + np.array([100.0, -50.0, 400.0])
    assert mpjpe_mm(pred, gt).min() > 100.0
    np.testing.assert_allclose(pa_mpjpe_mm(pred, gt), 0.0, atol=1e-9)
    np.testing.assert_allclose(procrustes_align(pred, gt), gt, atol=1e-9)


def _reference_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Independent Umeyama: scipy's Kabsch (proper rotation) + closed-form scale and translation."""
    x = pred - pred.mean(0)
    y = gt - gt.mean(0)
    rot, _ = Rotation.align_vectors(y, x)  # argmin_R sum |y_j - R x_j|^2, det R = +1
    rx = rot.apply(x)
    scale = (y * rx).sum() / (x * x).sum()
    return scale * rx + gt.mean(0)


def test_procrustes_matches_scipy_on_noisy_input(rng):
    gt = _skeletons(rng)
    pred = gt @ Rotation.from_rotvec([0.3, -0.2, 1.0]).as_matrix().T * 0.8 + rng.normal(scale=40.0, size=gt.shape)
    ours = procrustes_align(pred, gt)
    for f in range(len(gt)):
        np.testing.assert_allclose(ours[f], _reference_align(pred[f], gt[f]), atol=1e-8)
        # scipy.linalg.orthogonal_procrustes agrees when the optimum is a proper rotation.
        x, y = pred[f] - pred[f].mean(0), gt[f] - gt[f].mean(0)
        omega, _ = orthogonal_procrustes(x, y)
        assert np.linalg.det(omega) > 0
        scale = np.trace(x @ omega @ y.T) / (x * x).sum()
        np.testing.assert_allclose(ours[f], scale * x @ omega + gt[f].mean(0), atol=1e-8)


def test_procrustes_does_not_reflect(rng):
    gt = _skeletons(rng)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    # A reflection would fit exactly; a proper rotation cannot, so the error stays positive.
    assert (pa_mpjpe_mm(mirrored, gt) > 10.0).all()
    ours = procrustes_align(mirrored, gt)
    for f in range(len(gt)):
        np.testing.assert_allclose(ours[f], _reference_align(mirrored[f], gt[f]), atol=1e-8)
        omega, _ = orthogonal_procrustes(mirrored[f] - mirrored[f].mean(0), gt[f] - gt[f].mean(0))
        assert np.linalg.det(omega) < 0  # the unconstrained optimum is the reflection we refused
    # A planar point set's mirror image IS reachable by a rotation (turn it over): error ~0.
    planar = gt.copy()
    planar[..., 2] = 0.0
    np.testing.assert_allclose(pa_mpjpe_mm(planar * np.array([-1.0, 1.0, 1.0]), planar), 0.0, atol=1e-8)


def test_accel_error_constant_acceleration():
    t = np.arange(10.0)[:, None, None]  # frames
    a_pred = np.array([[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]])  # mm/frame^2, per joint
    a_gt = np.array([[1.0, 2.0, -1.0], [0.0, 3.0, 4.0]])
    pred = 0.5 * a_pred * t ** 2 + 7.0 * t  # a constant velocity changes nothing
    gt = 0.5 * a_gt * t ** 2
    err = accel_error_mm(pred, gt)
    assert err.shape == (8,)
    np.testing.assert_allclose(err, (3.0 + 5.0) / 2, atol=1e-9)  # |(0, 0, 3)| and |(0, -3, -4)|
    assert accel_error_mm(pred[:2], gt[:2]).shape == (0,)
    assert accel_mm_per_frame2_to_m_per_s2(3.5, 30.0) == pytest.approx(3.5 * 900 / 1000)


def test_center_on_root_pelvis_vs_mid_hip():
    right_hip, left_hip = H36M_JOINT_NAMES.index("right_hip"), H36M_JOINT_NAMES.index("left_hip")
    joints = np.zeros((1, 17, 3))
    joints[0, 0] = (10.0, 20.0, 30.0)            # pelvis
    joints[0, right_hip] = (-90.0, 0.0, 30.0)
    joints[0, left_hip] = (110.0, 10.0, 30.0)    # mid-hip = (10, 5, 30), 15 mm below the pelvis
    joints[0, 8] = (10.0, 500.0, 30.0)           # thorax
    by_pelvis = center_on_root(joints, "pelvis")
    by_hips = center_on_root(joints, "mid_hip")
    np.testing.assert_allclose(by_pelvis[0, 0], 0.0)
    np.testing.assert_allclose(by_hips[0, right_hip] + by_hips[0, left_hip], 0.0)
    np.testing.assert_allclose(by_hips - by_pelvis, np.broadcast_to([0.0, 15.0, 0.0], joints.shape))
    verts = np.full((1, 4, 3), 10.0)
    np.testing.assert_allclose(center_vertices(verts, joints, "pelvis")[0, 0], [0.0, -10.0, -20.0])
    np.testing.assert_allclose(center_vertices(verts, joints, "mid_hip")[0, 0], [0.0, 5.0, -20.0])
    with pytest.raises(ValueError):
        center_on_root(joints, "neck")


def test_mpve_centres_each_body_on_its_own_root(rng):
    gt_joints = _skeletons(rng, 3)
    gt_verts = rng.normal(scale=300.0, size=(3, 4, 3))
    shift = np.array([500.0, -20.0, 3000.0])  # a global translation is not an error
    pred_joints, pred_verts = gt_joints + shift, gt_verts + shift
    pred_verts[:, 1] += (3.0, 4.0, 0.0)       # one of four vertices off by 5 mm
    err = mpve_mm(center_vertices(pred_verts, pred_joints), center_vertices(gt_verts, gt_joints))
    np.testing.assert_allclose(err, 1.25)


def test_frame_errors_use_eval14_and_17_joints(rng):
    gt = _skeletons(rng, 4)
    spine = H36M_JOINT_NAMES.index("spine")
    assert spine not in H36M_EVAL_14
    pred = gt + 250.0                          # global offset: removed by centring
    pred[:, spine] += (0.0, 0.0, 34.0)         # spine is outside the 14-joint set
    out = frame_errors_mm(pred, gt)
    assert set(out) == {"mpjpe", "pa_mpjpe", "mpjpe_17j", "pa_mpjpe_17j"}
    np.testing.assert_allclose(out["mpjpe"], 0.0, atol=1e-9)
    np.testing.assert_allclose(out["pa_mpjpe"], 0.0, atol=1e-9)
    np.testing.assert_allclose(out["mpjpe_17j"], 2.0)  # 34 mm on one of 17 joints
    for f in range(len(gt)):
        ref = _reference_align(pred[f] - pred[f, 0], gt[f] - gt[f, 0])
        expected = np.linalg.norm(ref - (gt[f] - gt[f, 0]), axis=-1).mean()
        assert out["pa_mpjpe_17j"][f] == pytest.approx(expected, abs=1e-9)
    verts = rng.normal(size=(4, 5, 3))
    with_verts = frame_errors_mm(pred, gt, verts + 250.0, verts)
    np.testing.assert_allclose(with_verts["mpve"], 0.0, atol=1e-9)


def test_metric_sums_accumulate_merge_and_average():
    a, b = MetricSums(), MetricSums()
    a.add("mpjpe", np.array([1.0, 2.0, 3.0]))
    b.add_all({"mpjpe": np.array([10.0]), "accel_err": np.array([4.0, 6.0])})
    a.add("accel_err", np.zeros(0))              # a 2-frame sequence adds nothing
    merged = a.merge(b)
    assert merged.means() == pytest.approx({"mpjpe": 4.0, "accel_err": 5.0})
    assert merged.counts["mpjpe"] == 4 and merged.counts["accel_err"] == 2
    assert a.means() == pytest.approx({"mpjpe": 2.0})  # merge leaves its inputs unchanged
    assert set(MetricSums().sums) == set(METRIC_KEYS)
    with pytest.raises(KeyError):
        a.add("mpjpe_mm", np.ones(2))
