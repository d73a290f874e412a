"""Loss terms against numpy re-implementations on tiny tensors, and the combinator's bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.config.task import TaskConfig
from lib.errors import ConfigError
from lib.train import losses
from lib.train.losses import ANGLE_PAIRS, LAMBDA_TO_TERM, LOSS_TERMS, compute_losses

# The original's hand-written tables (MotionBERT lib/model/loss.py), typed independently of H36M_BONES.
ORIGINAL_LIMBS = [(0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10),
                  (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16)]
ORIGINAL_ANGLE_PAIRS = [(0, 3), (0, 6), (3, 6), (0, 1), (1, 2), (3, 4), (4, 5), (6, 7), (7, 10), (7, 13),
                        (8, 13), (10, 13), (7, 8), (8, 9), (10, 11), (11, 12), (13, 14), (14, 15)]
N, T = 2, 3


def _batch(rng: np.random.Generator, t: int = T) -> dict[str, torch.Tensor]:
    from scipy.spatial.transform import Rotation

    aa = rng.normal(scale=0.4, size=(N, t, 24, 3))
    kp = rng.normal(scale=200.0, size=(N, t, 17, 3))
    kp -= kp[:, :, :1]
    return {
        "rot_mat": torch.from_numpy(Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(N, t, 24, 3, 3)),
        "pose_aa": torch.from_numpy(aa.reshape(N, t, 72)),
        "shape": torch.from_numpy(rng.normal(size=(N, t, 10))),
        "keypoint_3d": torch.from_numpy(kp),
    }


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().numpy()


def _limb_vectors(kp: np.ndarray) -> np.ndarray:
    return np.stack([kp[..., a, :] - kp[..., b, :] for a, b in ORIGINAL_LIMBS], axis=-2)  # (N, T, 16, 3)


def _angles(kp: np.ndarray) -> np.ndarray:
    limbs = _limb_vectors(kp)
    pairs = ORIGINAL_ANGLE_PAIRS + [(8, 10)]
    out = []
    for i, k in pairs:
        a, b = limbs[..., i, :], limbs[..., k, :]
        cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
        out.append(np.arccos(np.clip(cos, -1 + 1e-7, 1 - 1e-7)))
    return np.stack(out, axis=-1)


def test_angle_pairs_are_the_originals_plus_the_missing_twin():
    assert len(ANGLE_PAIRS) == 19
    assert set(ORIGINAL_ANGLE_PAIRS) < set(ANGLE_PAIRS)
    assert set(ANGLE_PAIRS) - set(ORIGINAL_ANGLE_PAIRS) == {(8, 10)}  # thorax->nose vs thorax->left shoulder


def test_joint_terms_match_numpy(rng):
    pred, gt = _batch(rng), _batch(rng)
    drift = torch.arange(T, dtype=torch.float64)[None, :, None, None] * 30.0
    pred["keypoint_3d"] = pred["keypoint_3d"] + drift  # not centred: the joint losses centre again
    p, g = _np(pred["keypoint_3d"]), _np(gt["keypoint_3d"])
    pc, gc = p - p[:, :, :1], g - g[:, :, :1]
    assert losses.loss_3d_pos(pred["keypoint_3d"], gt["keypoint_3d"]).item() == pytest.approx(
        np.linalg.norm(pc - gc, axis=-1).mean())
    scale = (gc * pc).sum((-1, -2)) / (pc * pc).sum((-1, -2))  # per-frame least squares
    assert losses.loss_3d_scale(pred["keypoint_3d"], gt["keypoint_3d"]).item() == pytest.approx(
        np.linalg.norm(scale[..., None, None] * pc - gc, axis=-1).mean())
    assert losses.loss_3d_velocity(pred["keypoint_3d"], gt["keypoint_3d"]).item() == pytest.approx(
        np.linalg.norm(np.diff(pc, axis=1) - np.diff(gc, axis=1), axis=-1).mean())
    accel_p = pc[:, 2:] - 2 * pc[:, 1:-1] + pc[:, :-2]  # written out, not np.diff(n=2)
    accel_g = gc[:, 2:] - 2 * gc[:, 1:-1] + gc[:, :-2]
    assert losses.loss_3d_accel(pred["keypoint_3d"], gt["keypoint_3d"]).item() == pytest.approx(
        np.linalg.norm(accel_p - accel_g, axis=-1).mean())
    len_p = np.linalg.norm(_limb_vectors(p), axis=-1)
    len_g = np.linalg.norm(_limb_vectors(g), axis=-1)
    assert losses.loss_lv(pred["keypoint_3d"]).item() == pytest.approx(np.var(len_p, axis=1, ddof=1).mean())
    assert losses.loss_lg(pred["keypoint_3d"], gt["keypoint_3d"]).item() == pytest.approx(np.abs(len_p - len_g).mean())
    ang_p, ang_g = _angles(p), _angles(g)
    assert losses.loss_a(pred["keypoint_3d"], gt["keypoint_3d"]).item() == pytest.approx(np.abs(ang_p - ang_g).mean())
    assert losses.loss_av(pred["keypoint_3d"], gt["keypoint_3d"]).item() == pytest.approx(
        np.abs(np.diff(ang_p, axis=1) - np.diff(ang_g, axis=1)).mean())


def test_smpl_terms_match_numpy(rng):
    pred, gt = _batch(rng), _batch(rng)
    d_rot = _np(pred["rot_mat"]) - _np(gt["rot_mat"])
    d_shape = _np(pred["shape"]) - _np(gt["shape"])
    assert losses.loss_pose(pred["rot_mat"], gt["rot_mat"], "L1").item() == pytest.approx(np.abs(d_rot).mean())
    assert losses.loss_pose(pred["rot_mat"], gt["rot_mat"], "MSE").item() == pytest.approx((d_rot ** 2).mean())
    assert losses.loss_shape(pred["shape"], gt["shape"], "L1").item() == pytest.approx(np.abs(d_shape).mean())
    assert losses.loss_shape(pred["shape"], gt["shape"], "MSE").item() == pytest.approx((d_shape ** 2).mean())
    theta = np.concatenate([_np(pred["pose_aa"]), _np(pred["shape"])], axis=-1)
    assert losses.loss_norm(pred["pose_aa"], pred["shape"]).item() == pytest.approx(
        np.linalg.norm(theta, axis=-1).mean())


def test_scale_loss_ignores_a_global_scale(rng):
    gt = _batch(rng)["keypoint_3d"]
    assert losses.loss_3d_scale(2.5 * gt, gt).item() == pytest.approx(0.0, abs=1e-9)
    assert losses.loss_3d_pos(2.5 * gt, gt).item() > 100.0


def test_all_terms_zero_when_pred_equals_gt(rng):
    gt = _batch(rng)
    # loss_lv is a prior on the prediction alone: it vanishes for limbs of constant length, so move a
    # rigid skeleton over time here.
    gt["keypoint_3d"] = gt["keypoint_3d"][:, :1].expand(N, T, 17, 3) + torch.arange(T)[None, :, None, None]
    out = compute_losses(gt, gt, TaskConfig(dt_file_pw3d="x.pkl"), "L1")
    for term in LOSS_TERMS:
        if term == "loss_norm":
            assert out[term].item() > 0.0
        else:
            assert out[term].item() == pytest.approx(0.0, abs=1e-6), term


def test_temporal_terms_zero_for_single_frame(rng):
    pred, gt = _batch(rng, t=1), _batch(rng, t=1)
    for fn in (losses.loss_3d_velocity, losses.loss_av, losses.loss_3d_accel):
        assert fn(pred["keypoint_3d"], gt["keypoint_3d"]).item() == 0.0
    assert losses.loss_lv(pred["keypoint_3d"]).item() == 0.0
    assert losses.loss_3d_pos(pred["keypoint_3d"], gt["keypoint_3d"]).item() > 0.0


def test_total_is_the_weighted_sum_and_gradients_reach_rot_mat(rng):
    pred, gt = _batch(rng), _batch(rng)
    pred["rot_mat"].requires_grad_(True)
    pred["keypoint_3d"].requires_grad_(True)
    weights = {name: 0.0 for name in LAMBDA_TO_TERM} | {"lambda_3d": 0.5, "lambda_3dv": 10.0,
                                                         "lambda_pose": 1000.0, "lambda_a": 2.0}
    out = compute_losses(pred, gt, weights, "L1")
    assert set(out) == set(LOSS_TERMS) | {"total"}
    assert all(v.dim() == 0 for v in out.values())
    expected = sum(weights[name] * out[term].item() for name, term in LAMBDA_TO_TERM.items())
    assert out["total"].item() == pytest.approx(expected)
    # Zero-weight terms are still reported, with their value, but carry no graph.
    assert out["loss_lg"].item() > 0.0 and not out["loss_lg"].requires_grad
    assert out["loss_pose"].requires_grad
    out["total"].backward()
    grad = pred["rot_mat"].grad
    assert grad is not None and torch.isfinite(grad).all()
    # L1 gradient of the mean: 1000 * sign(diff) / numel.
    sign = torch.sign(pred["rot_mat"].detach() - gt["rot_mat"])
    np.testing.assert_allclose(grad.numpy(), (1000.0 * sign / sign.numel()).numpy(), atol=1e-12)


def test_task_config_weights_are_used(rng):
    pred, gt = _batch(rng), _batch(rng)
    cfg = TaskConfig(dt_file_pw3d="x.pkl", lambda_lg=3.0)
    out = compute_losses(pred, gt, cfg, "MSE")
    expected = sum(getattr(cfg, name) * out[term].item() for name, term in LAMBDA_TO_TERM.items())
    assert out["total"].item() == pytest.approx(expected)
    assert out["loss_pose"].item() == pytest.approx(losses.loss_pose(pred["rot_mat"], gt["rot_mat"], "MSE").item())


def test_bad_weights_and_loss_type_are_config_errors(rng):
    pred = _batch(rng)
    good = {name: 1.0 for name in LAMBDA_TO_TERM}
    with pytest.raises(ConfigError, match="lambda_norm"):
        compute_losses(pred, pred, {k: v for k, v in good.items() if k != "lambda_norm"}, "L1")
    with pytest.raises(ConfigError, match="lambda_typo"):
        compute_losses(pred, pred, good | {"lambda_typo": 1.0}, "L1")
    with pytest.raises(ConfigError, match="loss_type"):
        compute_losses(pred, pred, good, "L2")
    with pytest.raises(KeyError, match="rot_mat"):
        compute_losses({k: v for k, v in pred.items() if k != "rot_mat"}, pred, good, "L1")


def test_accel_term_ignores_constant_velocity_and_punishes_jitter(rng):
    gt = _batch(rng, t=6)["keypoint_3d"]
    t = torch.arange(6, dtype=torch.float64)[None, :, None, None]
    offset = torch.zeros(1, 1, 17, 3, dtype=torch.float64)
    offset[..., 1:, 0] = 1.0  # every joint but the root (the terms are root-relative)
    drift = gt + 7.0 * t * offset  # constant velocity: 7 mm/frame
    assert losses.loss_3d_accel(drift, gt).item() == pytest.approx(0.0, abs=1e-9)
    assert losses.loss_3d_velocity(drift, gt).item() == pytest.approx(7.0 * 16 / 17)
    jitter = gt + 3.0 * (-1.0) ** t * offset  # +-3 mm every other frame: second difference 4 x 3 mm
    assert losses.loss_3d_accel(jitter, gt).item() == pytest.approx(12.0 * 16 / 17)
    assert losses.loss_3d_velocity(jitter, gt).item() == pytest.approx(6.0 * 16 / 17)
