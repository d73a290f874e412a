"""Temporal baselines against scipy, hand-worked One-Euro steps, SO(3) invariants, and the scoring path
against ``evaluate_split``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import savgol_filter as scipy_savgol
from scipy.spatial.transform import Rotation

from lib.data.datasets import EvalSequences
from lib.eval.baselines import (
    OneEuro,
    SavGol,
    baseline_predictor,
    input_predictor,
    refiner_input_predictor,
    one_euro_alpha,
    one_euro_filter,
    one_euro_rotations,
    savgol_filter,
    savgol_rotations,
    score_split,
    sequence_mean_betas,
    tune_baseline,
)

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[2]
HYPER = REPO / "hyper_config" / "method2" / "manual_joint_label1.yaml"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def _assert_rotations(rot: np.ndarray, atol: float = 1e-10) -> None:
    rot = np.asarray(rot, dtype=np.float64)
    eye = np.broadcast_to(np.eye(3), rot.shape)
    np.testing.assert_allclose(rot @ np.swapaxes(rot, -1, -2), eye, atol=atol)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=atol)


def _noisy_rotations(rng: np.random.Generator, frames: int, joints: int = 24, noise_deg: float = 6.0) -> np.ndarray:
    """A slow rotation per joint (about a random axis) with i.i.d. per-frame jitter, (F, J, 3, 3)."""
    axis = rng.normal(size=(1, joints, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    t = np.arange(frames)[:, None, None] / 30.0
    slow = Rotation.from_rotvec((axis * (0.8 * np.sin(2.0 * t) + 0.3)).reshape(-1, 3))
    jitter = Rotation.from_rotvec(rng.normal(scale=math.radians(noise_deg), size=(frames * joints, 3)))
    return (slow * jitter).as_matrix().reshape(frames, joints, 3, 3)


# ---------------------------------------------------------------------------------- Savitzky-Golay

@pytest.mark.parametrize("window, order", [(5, 2), (7, 3), (11, 1), (9, 4), (3, 0), (1, 0), (31, 3)])
def test_savgol_matches_scipy_interp_on_a_scalar_signal(rng, window, order):
    x = np.cumsum(rng.normal(size=64))
    np.testing.assert_allclose(savgol_filter(x, window, order), scipy_savgol(x, window, order, mode="interp"),
                               atol=1e-10)


def test_savgol_filters_axis_0_of_every_trailing_entry_like_scipy(rng):
    x = rng.normal(size=(40, 4, 3))
    expected = scipy_savgol(x, 9, 2, axis=0, mode="interp")
    np.testing.assert_allclose(savgol_filter(x, 9, 2), expected, atol=1e-10)


@pytest.mark.parametrize("window, order", [(7, 2), (9, 3), (5, 1)])
def test_savgol_keeps_polynomials_up_to_its_order_including_the_edges(rng, window, order):
    t = np.arange(25, dtype=np.float64)
    for degree in range(order + 1):
        coeffs = rng.normal(size=degree + 1)
        x = np.polyval(coeffs, t / 10.0)
        np.testing.assert_allclose(savgol_filter(x, window, order), x, atol=1e-9)


def test_savgol_shorter_than_the_window_uses_the_longest_odd_window_that_fits(rng):
    x = rng.normal(size=(6, 2))
    # 6 frames < window 9: the window becomes 5 and the order stays 3 (< 5)
    np.testing.assert_allclose(savgol_filter(x, 9, 3), scipy_savgol(x, 5, 3, axis=0, mode="interp"), atol=1e-10)
    # 4 frames, order 4: window 3, order 2 (an exact fit through 3 points: unchanged)
    short = rng.normal(size=3)
    np.testing.assert_allclose(savgol_filter(short, 9, 4), short, atol=1e-12)
    assert savgol_filter(np.zeros((0, 3)), 9, 2).shape == (0, 3)


def test_savgol_rejects_even_windows_and_too_high_orders():
    with pytest.raises(ValueError, match="odd"):
        savgol_filter(np.zeros(10), 4, 1)
    with pytest.raises(ValueError, match="order"):
        savgol_filter(np.zeros(10), 5, 5)


# ----------------------------------------------------------------------------------------- One-Euro

def test_one_euro_alpha_is_the_first_order_lowpass_factor():
    # tau = 1 / (2 pi f_c); alpha = 1 / (1 + tau * fps): at f_c = fps / (2 pi), tau * fps = 1 -> alpha 1/2
    assert one_euro_alpha(30.0 / (2 * math.pi), 30.0) == pytest.approx(0.5)
    assert one_euro_alpha(1.0, 10.0) == pytest.approx(2 * math.pi / (2 * math.pi + 10.0))


def test_one_euro_keeps_a_constant():
    x = np.full((20, 3), 2.5)
    np.testing.assert_allclose(one_euro_filter(x, 30.0, 1.0, 0.5), x, atol=1e-12)


def test_one_euro_lags_on_a_step_as_the_formula_says():
    # fps 10, min_cutoff 1 Hz, beta 0.5, d_cutoff 1 Hz; input 0, 0, 1, 1, 1
    # alpha_d = 1 / (1 + 10 / (2 pi)) = 0.385870
    # frame 2: dx = (1 - 0) * 10 = 10, dx^ = 3.858695, f_c = 1 + 0.5 * 3.858695 = 2.929348,
    #          alpha = 1 / (1 + 10 / (2 pi 2.929348)) = 0.647957, x^ = 0.647957
    # frame 3: dx = (1 - 0.647957) * 10 = 3.520428, dx^ = 0.385870 * 3.520428 + 0.614130 * 3.858695 = 3.728168,
    #          f_c = 2.864084, alpha = 0.642801, x^ = 0.647957 + 0.642801 * 0.352043 = 0.874251
    out = one_euro_filter(np.array([0.0, 0.0, 1.0, 1.0, 1.0]), fps=10.0, min_cutoff=1.0, beta=0.5, d_cutoff=1.0)
    np.testing.assert_allclose(out[:4], [0.0, 0.0, 0.647957, 0.874251], atol=1e-6)
    assert 0.874251 < out[4] < 1.0  # still lagging, monotonically approaching the step


def test_one_euro_with_beta_zero_is_exponential_smoothing(rng):
    x = rng.normal(size=30)
    alpha = 1.0 / (1.0 + 25.0 / (2 * math.pi * 2.0))
    expected = [x[0]]
    for value in x[1:]:
        expected.append(alpha * value + (1 - alpha) * expected[-1])
    np.testing.assert_allclose(one_euro_filter(x, 25.0, 2.0, 0.0), expected, atol=1e-12)


# ---------------------------------------------------------------------------------------- rotations

@pytest.mark.parametrize("apply", [lambda r: savgol_rotations(r, 9, 2),
                                   lambda r: one_euro_rotations(r, 30.0, 1.0, 0.3)])
def test_rotation_filters_return_a_constant_rotation_sequence_unchanged(apply):
    fixed = Rotation.random(24, random_state=3).as_matrix()  # (24, 3, 3)
    rot = np.broadcast_to(fixed, (15, 24, 3, 3)).copy()
    np.testing.assert_allclose(apply(rot), rot, atol=1e-10)


@pytest.mark.parametrize("apply", [lambda r: savgol_rotations(r, 7, 2),
                                   lambda r: one_euro_rotations(r, 30.0, 0.5, 0.1)])
def test_rotation_filters_return_rotations_and_reduce_jitter(rng, apply):
    rot = _noisy_rotations(rng, 60)
    out = apply(rot)
    _assert_rotations(out)
    step_in = np.linalg.norm(np.diff(rot, axis=0), axis=(-2, -1)).mean()
    step_out = np.linalg.norm(np.diff(out, axis=0), axis=(-2, -1)).mean()
    assert step_out < 0.6 * step_in


def test_one_euro_rotations_about_one_axis_follow_the_angle_recursion(rng):
    # Blending R_z(a) and R_z(b) then projecting gives R_z(atan2(...)): an independent scalar recursion.
    fps, cutoff = 30.0, 1.5
    theta = np.cumsum(rng.normal(scale=0.2, size=40))
    rot = Rotation.from_euler("z", theta[:, None]).as_matrix()[:, None]  # (F, 1, 3, 3)
    alpha = 1.0 / (1.0 + fps / (2 * math.pi * cutoff))
    est = [theta[0]]
    for t in theta[1:]:
        est.append(math.atan2(alpha * math.sin(t) + (1 - alpha) * math.sin(est[-1]),
                              alpha * math.cos(t) + (1 - alpha) * math.cos(est[-1])))
    expected = Rotation.from_euler("z", np.array(est)[:, None]).as_matrix()[:, None]
    np.testing.assert_allclose(one_euro_rotations(rot, fps, cutoff, beta=0.0), expected, atol=1e-10)


def test_one_euro_rotations_adapt_faster_with_a_larger_beta():
    # A joint turning at 3 rad/s: the speed-adaptive cut-off reduces the lag behind the motion.
    theta = 3.0 * np.arange(30) / 30.0
    rot = Rotation.from_euler("x", theta[:, None]).as_matrix()[:, None]
    lag = {}
    for beta in (0.0, 1.0):
        out = one_euro_rotations(rot, 30.0, 0.5, beta)
        lag[beta] = theta[-1] - Rotation.from_matrix(out[-1, 0]).as_euler("xyz")[0]
    assert 0.0 < lag[1.0] < 0.5 * lag[0.0]


def test_sequence_mean_betas():
    betas = np.array([[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_allclose(sequence_mean_betas(betas), [[2.0, 4.0], [2.0, 4.0]])


# ----------------------------------------------------------------------------------------- scoring

@pytest.fixture(scope="module")
def scoring(data_root):
    from lib.body.smpl import BodyModel
    from lib.config.task import load_task_config
    from lib.data.datasets import MeshFiles
    cfg = load_task_config(REPO / "configs" / "mesh" / "demo.yaml").replace(
        data_root=str(data_root), dim_rep=16, depth=1, num_heads=2, hidden_dim=32, clip_len=8)
    files = MeshFiles(cfg)
    return cfg, files, BodyModel(data_root)


def test_score_split_scores_the_input_exactly_as_evaluate_split(scoring):
    from lib.config.hyper import load_hyper_config
    from lib.eval.evaluate import evaluate_split
    from lib.config.options import ModelOptions
    from lib.model.build import build_model
    cfg, files, body = scoring
    split = files.split("pw3d", "test")
    scores = score_split({"input": input_predictor}, body, cfg, split, CPU)
    torch.manual_seed(0)
    model = build_model(cfg, load_hyper_config(HYPER),
                        ModelOptions())
    report = evaluate_split(model, body, cfg, "pw3d", CPU, split=split, flip=False)
    assert scores.frames == report.frames == split.frames
    for key, value in report.input.items():
        assert scores.metrics["input"][key] == pytest.approx(value, rel=1e-12), key
    np.testing.assert_allclose(scores.per_joint["input"], report.per_joint["input"], atol=1e-9)


def test_tune_baseline_ranks_the_grid_and_an_identity_filter_scores_as_the_input(scoring):
    cfg, files, body = scoring
    split = files.split("pw3d", "train")
    grid = [SavGol(1, 0), SavGol(9, 2), SavGol(5, 1)]
    result = tune_baseline(grid, body, cfg, split, CPU, fps=30.0, betas="input")
    # the smoothers filter what the refiner is given (demo.yaml: HybrIK's 2D fit, fit2d_prior)
    reference = score_split({"input": refiner_input_predictor}, body, cfg, split, CPU).metrics["input"]
    identity = next(row for row in result.rows if row["window"] == 1)
    for key, value in reference.items():  # window 1 = no filtering (up to float32 rounding of the rotations)
        assert identity[key] == pytest.approx(value, abs=1e-3), key
    mpjpe = [row["mpjpe"] for row in result.rows]
    assert mpjpe == sorted(mpjpe)
    assert result.best.label == result.rows[0]["label"]
    assert result.to_json()["grid"][0]["mpjpe"] == min(mpjpe)
    # the synthetic HybrIK jitter is i.i.d. per frame: any smoothing lowers the acceleration error
    smoothed = next(row for row in result.rows if row["window"] == 9)
    assert smoothed["accel_err"] < 0.5 * identity["accel_err"]


def test_baseline_predictor_uses_the_sequence_mean_betas(scoring):
    cfg, files, body = scoring
    split = files.split("pw3d", "test")
    sequence = next(iter(EvalSequences(split, 1, cfg.clip_len)))
    labels = sequence.frame_arrays()
    rot, betas = baseline_predictor(OneEuro(1.0, 0.1), 30.0, betas="mean")(sequence, labels)
    assert rot.shape == (sequence.frames, 24, 3, 3)
    _assert_rotations(rot.numpy(), atol=1e-6)  # float32 output
    np.testing.assert_allclose(betas.numpy(), np.broadcast_to(labels["hybrik_shape"].double().mean(0), betas.shape),
                               atol=1e-6)


def test_gaussian_filter_matches_scipy_inside_and_renormalises_at_the_ends() -> None:
    from scipy.ndimage import gaussian_filter1d

    from lib.eval.baselines import Gaussian, gaussian_filter, gaussian_rotations

    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3, 2))
    sigma = 2.0
    out = gaussian_filter(x, sigma)
    half = 6  # ceil(3 sigma)
    ref = gaussian_filter1d(x, sigma, axis=0, truncate=3.0, mode="constant")
    np.testing.assert_allclose(out[half:-half], ref[half:-half], atol=1e-12)
    taps = np.exp(-0.5 * (np.arange(0, half + 1) / sigma) ** 2)  # frame 0 sees offsets 0..6 only
    np.testing.assert_allclose(out[0], (taps[:, None, None] * x[:half + 1]).sum(0) / taps.sum(), atol=1e-12)
    np.testing.assert_allclose(gaussian_filter(np.ones((5, 2)), 4.0), 1.0)  # a constant passes unchanged
    rot = Rotation.from_rotvec(rng.normal(scale=0.3, size=(30 * 24, 3))).as_matrix().reshape(30, 24, 3, 3)
    smooth = Gaussian(1.5).apply(rot, fps=30.0)
    np.testing.assert_allclose(smooth @ np.swapaxes(smooth, -1, -2), np.broadcast_to(np.eye(3), smooth.shape),
                               atol=1e-9)
    np.testing.assert_allclose(smooth, gaussian_rotations(rot, 1.5))
    with pytest.raises(ValueError, match="sigma"):
        Gaussian(0.0)
