"""The per-frame 2D fit baseline: its error term against a least-squares solve, its composition against
scipy, and the fit itself recovering what the 2D shows (a turn of the whole body about the optical axis)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lib.body.smpl import BodyModel, posed_mesh_mm
from lib.body.fit2d import MIN_DETECTED, compose_increments, fit_to_2d, geman_mcclure, weak_perspective_error


def _lstsq_squared_errors(xy: np.ndarray, keypoints: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(17,) one frame's squared 2D errors in spreads^2 after the weighted least-squares scale and offset."""
    # Unknowns (s, t_x, t_y): rows x and y of every joint, each scaled by sqrt(w).
    design = np.zeros((17, 2, 3))
    design[:, :, 0] = xy
    design[:, 0, 1] = design[:, 1, 2] = 1.0
    root_w = np.sqrt(weight)[:, None, None]
    solution = np.linalg.lstsq((root_w * design).reshape(-1, 3), (root_w[..., 0] * keypoints).reshape(-1),
                               rcond=None)[0]
    centre = (weight[:, None] * keypoints).sum(0) / weight.sum()
    spread_sq = (weight * ((keypoints - centre) ** 2).sum(-1)).sum() / weight.sum()
    return ((design @ solution - keypoints) ** 2).sum(-1) / spread_sq


def test_weak_perspective_error_matches_a_least_squares_solve() -> None:
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(3, 17, 2)) * 300.0  # mm
    keypoints = 0.4 * xy + np.array([900.0, 500.0]) + rng.normal(size=(3, 17, 2)) * 5.0  # px, noisy
    weight = rng.uniform(0.2, 1.0, size=(3, 17))
    weight[1, :5] = 0.0
    args = torch.from_numpy(xy), torch.from_numpy(keypoints), torch.from_numpy(weight)
    got = weak_perspective_error(*args).numpy()
    robust = weak_perspective_error(*args, robust=0.05).numpy()
    for f in range(3):
        e = _lstsq_squared_errors(xy[f], keypoints[f], weight[f])  # (17,)
        np.testing.assert_allclose(got[f], (weight[f] * e).sum() / weight[f].sum(), rtol=1e-9)
        # robust: the same errors through Geman-McClure, by hand
        expected = (weight[f] * 0.05 ** 2 * e / (0.05 ** 2 + e)).sum() / weight[f].sum()
        np.testing.assert_allclose(robust[f], expected, rtol=1e-9)
    assert got.min() > 0
    exact = weak_perspective_error(torch.from_numpy(xy), torch.from_numpy(0.4 * xy + 7.0), torch.ones(3, 17))
    assert exact.abs().max() < 1e-12


def test_geman_mcclure_is_squared_near_zero_and_bounded_far_away() -> None:
    e = torch.tensor([0.0, 1e-6, 1.0, 1e6], dtype=torch.float64)
    got = geman_mcclure(e, 0.1)
    np.testing.assert_allclose(got[:2].numpy(), [0.0, 1e-6], rtol=1e-3)  # ~ e for e << 0.01
    np.testing.assert_allclose(got[2].item(), 0.01 / 1.01, rtol=1e-12)
    assert got[3].item() < 0.01 and got[3].item() > 0.0099  # bounded by scale^2


def test_compose_increments_left_on_the_root_right_on_the_body() -> None:
    rng = np.random.default_rng(1)
    rot = Rotation.random(2 * 24, random_state=2)
    increments = rng.normal(size=(2, 24, 3)) * 0.3
    got = compose_increments(torch.from_numpy(rot.as_matrix().reshape(2, 24, 3, 3)), torch.from_numpy(increments))
    turn = Rotation.from_rotvec(increments.reshape(-1, 3))
    expected = (rot * turn).as_matrix().reshape(2, 24, 3, 3)  # R_j Exp(d_j)
    expected[:, 0] = (turn * rot).as_matrix().reshape(2, 24, 3, 3)[:, 0]  # Exp(d_0) R_0
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)


@pytest.fixture(scope="module")
def body(smpl_root) -> BodyModel:
    return BodyModel(smpl_root)


def _scene(body: BodyModel):
    """Ground truth, HybrIK-like input (the root turned 15 deg about the optical axis) and the ground
    truth's weak-perspective 2D in pixels."""
    rng = np.random.default_rng(3)
    frames = 4
    pose = rng.normal(size=(frames, 24, 3)) * 0.15
    pose[:, 0] = Rotation.from_euler("x", 180, degrees=True).as_rotvec()  # upright, facing the camera
    gt = torch.from_numpy(Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(frames, 24, 3, 3)).float()
    betas = torch.zeros(frames, 10)
    _, joints = posed_mesh_mm(body, gt[None], betas[None])
    pose2d = torch.cat([0.5 * joints[0, ..., :2] + torch.tensor([960.0, 540.0]), torch.ones(frames, 17, 1)], dim=-1)
    wrong = gt.clone()
    wrong[:, 0] = torch.from_numpy(Rotation.from_euler("z", 15, degrees=True).as_matrix()).float() @ gt[:, 0]
    return gt, wrong, betas, pose2d


def _mpjpe(body: BodyModel, rot: torch.Tensor, gt: torch.Tensor, betas: torch.Tensor) -> float:
    _, a = posed_mesh_mm(body, rot[None], betas[None])
    _, b = posed_mesh_mm(body, gt[None], betas[None])
    return float((a - b).norm(dim=-1).mean())


def test_fit_recovers_what_the_2d_shows(body) -> None:
    gt, wrong, betas, pose2d = _scene(body)
    before = _mpjpe(body, wrong, gt, betas)
    fitted = fit_to_2d(body, wrong, betas, pose2d, prior_weight=1e-4, steps=150)
    after = _mpjpe(body, fitted, gt, betas)
    assert before > 30.0 and after < 0.05 * before, (before, after)
    # The same detections in another canvas (scaled and shifted) give the same fit.
    moved = pose2d.clone()
    moved[..., :2] = moved[..., :2] / 960.0 - 1.0
    np.testing.assert_allclose(fit_to_2d(body, wrong, betas, moved, prior_weight=1e-4, steps=150).numpy(),
                               fitted.numpy(), atol=2e-3)


def test_prior_and_undetected_frames_keep_hybrik(body) -> None:
    gt, wrong, betas, pose2d = _scene(body)
    pose2d[1, MIN_DETECTED - 1:, 2] = 0.0  # frame 1: MIN_DETECTED - 1 joints left
    fitted = fit_to_2d(body, wrong, betas, pose2d, prior_weight=1e-4, steps=50)
    assert torch.equal(fitted[1], wrong[1])
    assert not torch.allclose(fitted[0], wrong[0], atol=1e-3)
    held = fit_to_2d(body, wrong, betas, pose2d, prior_weight=1e4, steps=50)  # the prior wins
    assert float((held - wrong).abs().max()) < 1e-3
    with pytest.raises(ValueError, match="prior_weight"):
        fit_to_2d(body, wrong, betas, pose2d, prior_weight=-1.0)
    with pytest.raises(ValueError, match="robust"):
        fit_to_2d(body, wrong, betas, pose2d, prior_weight=1e-2, robust=0.0)


def test_robust_fit_follows_an_outlier_far_less_than_the_squared_fit(body) -> None:
    gt, _, betas, pose2d = _scene(body)
    spread = float(pose2d[0, :, :2].sub(pose2d[0, :, :2].mean(0)).square().sum(-1).mean().sqrt())
    bad = pose2d.clone()
    bad[:, 16, :2] += torch.tensor([0.8, -0.6]) * spread  # one wrist (H36M 16) detected a spread away
    # Fitted from the ground truth itself: every millimetre it moves is the outlier's pull.
    squared = _mpjpe(body, fit_to_2d(body, gt, betas, bad, prior_weight=0.03), gt, betas)
    robust = _mpjpe(body, fit_to_2d(body, gt, betas, bad, prior_weight=0.03, robust=0.2), gt, betas)
    assert squared > 60.0 and robust < 0.4 * squared, (squared, robust)
    clean = _mpjpe(body, fit_to_2d(body, gt, betas, pose2d, prior_weight=0.03, robust=0.2), gt, betas)
    assert clean < 1.0, clean  # without the outlier the robust fit stays at the ground truth
