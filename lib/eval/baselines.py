"""Classic temporal baselines that need no training, and their scoring on a split.

Three filters smooth HybrIK's per-frame rotations of a whole sequence:

* **Savitzky-Golay** (``savgol_rotations``): a least-squares polynomial of degree ``order`` fitted
  to each window of ``window`` frames, evaluated at its centre. At the sequence ends the polynomial
  fitted to the first (last) ``window`` frames is evaluated at the end frames: the edge mode
  ``mode="interp"`` of ``scipy.signal.savgol_filter`` (implemented here in numpy; scipy is only the
  tests' reference). A sequence shorter than ``window`` uses the longest odd window that fits, and
  a degree below that window.
* **Gaussian** (``gaussian_rotations``): a normalised Gaussian kernel of standard deviation ``sigma``
  frames, truncated at 3 sigma; at the sequence ends the kernel is cut and renormalised (the same
  as edge-replicating the signal is not: cut-and-renormalise keeps a linear trend's bias small).
* **One-Euro** (``one_euro_rotations``; Casiez, Roussel and Vogel, CHI 2012): a first-order
  low-pass filter whose cut-off rises with the signal's speed, ``f_c = min_cutoff + beta |dx/dt|``
  (Hz), with the speed itself low-passed at ``d_cutoff``. Causal: frame i sees frames 0..i only.

**Rotations.** Both filters act on the nine entries of each joint's rotation matrix and project
the result back to SO(3) (``lib.geometry.rotation.project_to_so3``: the nearest rotation in the
Frobenius norm, i.e. the chordal L2 mean, the same operation the evaluation uses to blend
overlapping windows). Matrices have no wrap-around (unlike axis-angle at pi) and no sign ambiguity
(unlike quaternions), and for the small changes inside a window the projected average equals, to
first order, filtering in the tangent space of the mean. Savitzky-Golay filters the entries of the
whole sequence, then projects every frame once. One-Euro keeps its state on SO(3): each step blends
the new rotation into the previous *projected* estimate and projects again, and a joint's speed is
``|dR/dt|_F / sqrt(2)``, its angular speed in rad/s (``|R_1 - R_2|_F = 2 sqrt(2) sin(theta / 2)``),
so ``beta`` is in s/rad (Hz per rad/s) and each joint gets its own cut-off.

**Betas.** One person keeps one shape, so the baselines use the per-sequence mean of HybrIK's
betas on every frame (``betas="mean"``, an offline estimate), or HybrIK's betas unchanged
(``betas="input"``, what the refiner does with ``clip_shape: false``, the original's pass-through).

**Scoring** (``score_split``) is ``lib.eval.evaluate.evaluate_split``'s: every frame of every
sequence once, each sequence scored by the same ``score_sequence`` (SMPL in chunks, per-frame errors
summed in ``MetricSums``, the per-joint 17-joint error, the acceleration error per sequence on the
root-aligned 14 joints). The ground truth of a
sequence is run through SMPL once and shared by every variant, so ``tune_baseline`` scores a whole
parameter grid in one pass over the training split.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from lib.body.joint_names import H36M_NUM_JOINTS, SMPL_NUM_BETAS, SMPL_NUM_JOINTS
from lib.config.task import TaskConfig
from lib.data.datasets import EvalSequence, EvalSequences, MeshSplit
from lib.eval.evaluate import hybrik_input_rotations, protocol, score_sequence
from lib.eval.metrics import METRIC_KEYS, MetricSums
from lib.geometry.rotation import axis_angle_to_matrix, project_to_so3, project_to_so3_numpy

log = logging.getLogger(__name__)

# |R_1 - R_2|_F = 2 sqrt(2) sin(theta / 2) ~ sqrt(2) theta: divide a matrix speed by this for rad/s.
FROBENIUS_PER_RAD = math.sqrt(2.0)
DEFAULT_D_CUTOFF_HZ = 1.0  # the One-Euro paper's recommended derivative cut-off
BetasMode = Literal["mean", "input"]
BETAS_MODES = ("mean", "input")

# Parameter grids of ``tune_baseline`` (the benchmark's full mode). Windows in frames (odd); at 30 Hz
# 5..31 frames span 0.17..1.0 s. One-Euro cut-offs in Hz, beta in s/rad.
SAVGOL_WINDOWS = (5, 7, 9, 13, 17, 23, 31)
SAVGOL_ORDERS = (1, 2, 3)
ONE_EURO_MIN_CUTOFFS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
ONE_EURO_BETAS = (0.0, 0.3, 1.0, 3.0)
GAUSSIAN_SIGMAS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)  # frames
GAUSSIAN_TRUNCATE = 3.0  # sigmas each side


# ---------------------------------------------------------------------------------- Savitzky-Golay


def _check_window(window: int, order: int) -> None:
    if int(window) != window or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd integer >= 1, got {window!r}")
    if int(order) != order or not 0 <= order < window:
        raise ValueError(f"order must be an integer in [0, window={window}), got {order!r}")


def savgol_fit_matrix(window: int, order: int) -> np.ndarray:
    """Least-squares polynomial smoothing of one window, as a matrix.

    Row ``r`` holds the weights that give, from the ``window`` samples at positions
    ``-h .. h`` (h = window // 2), the value at position ``r - h`` of the degree-``order``
    polynomial fitted to them: ``M = V (V^T V)^-1 V^T`` with ``V[i, k] = (i - h)^k``. Row ``h`` is
    the classic Savitzky-Golay kernel; every row sums to 1 and reproduces polynomials of degree
    <= ``order`` exactly.

    Returns:
        (window, window) float64.
    """
    _check_window(window, order)
    half = window // 2
    positions = np.arange(-half, half + 1, dtype=np.float64) / max(half, 1)  # scaled: better conditioned
    vander = positions[:, None] ** np.arange(order + 1)[None, :]  # (window, order + 1)
    return vander @ np.linalg.pinv(vander)  # (window, window): fitted values at every position


def savgol_filter(x: np.ndarray, window: int, order: int) -> np.ndarray:
    """Savitzky-Golay smoothing along axis 0, edges as ``scipy.signal.savgol_filter(mode="interp")``.

    Frames ``h .. F-1-h`` (h = window // 2) get the centred window's fit; the first (last) h frames
    get the values, at their positions, of the polynomial fitted to the first (last) ``window``
    frames. With F < ``window`` the window shrinks to the largest odd number <= F and the order to
    at most that window - 1 (scipy refuses such input).

    Args:
        x: (F, ...) samples, uniformly spaced in time.
        window: odd number of frames per fit, >= 1.
        order: polynomial degree, 0 <= order < window.
    Returns:
        (F, ...) float64.
    """
    _check_window(window, order)
    x = np.asarray(x, dtype=np.float64)
    frames = x.shape[0]
    if frames == 0:
        return x.copy()
    if frames < window:
        window = frames if frames % 2 else frames - 1
        order = min(order, window - 1)
    fit = savgol_fit_matrix(window, order)  # (w, w)
    half = window // 2
    flat = x.reshape(frames, -1)  # (F, D)
    out = np.empty_like(flat)
    # Interior: the centre row of the fit applied to every full window.
    windows = np.lib.stride_tricks.sliding_window_view(flat, window, axis=0)  # (F - w + 1, D, w)
    out[half:frames - half] = windows @ fit[half]  # (F - w + 1, D)
    # Edges: the first / last window's polynomial at the edge positions.
    out[:half] = fit[:half] @ flat[:window]  # (h, D)
    out[frames - half:] = fit[half + 1:] @ flat[frames - window:]  # (h, D)
    return out.reshape(x.shape)


def _project(mat: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> nearest rotations (float64), through ``lib.geometry.rotation.project_to_so3``."""
    return project_to_so3(torch.from_numpy(np.ascontiguousarray(mat, dtype=np.float64))).numpy()


def savgol_rotations(rot: np.ndarray, window: int, order: int) -> np.ndarray:
    """Savitzky-Golay smoothing of a sequence of joint rotations.

    Each of the nine matrix entries of each joint is filtered over time (``savgol_filter``), then
    every frame is projected back to SO(3).

    Args:
        rot: (F, J, 3, 3) rotation matrices of consecutive frames (J = 24 for SMPL).
        window, order: see ``savgol_filter``.
    Returns:
        (F, J, 3, 3) float64 rotations (orthonormal, det +1).
    """
    rot = np.asarray(rot, dtype=np.float64)
    if rot.ndim != 4 or rot.shape[-2:] != (3, 3):
        raise ValueError(f"expected rotations of shape (F, J, 3, 3), got {rot.shape}")
    if rot.shape[0] == 0:
        return rot.copy()
    return _project(savgol_filter(rot, window, order))


# ---------------------------------------------------------------------------------------- Gaussian


def gaussian_filter(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 with the kernel cut at the ends and renormalised.

    Args:
        x: (F, ...) samples of consecutive frames. sigma: standard deviation, frames (> 0).
    Returns:
        (F, ...) float64; ``out[i] = sum_k w_k x[i + k] / sum_k w_k`` over the k with 0 <= i + k < F,
        w_k = exp(-k^2 / (2 sigma^2)), |k| <= ceil(GAUSSIAN_TRUNCATE sigma).
    """
    if not sigma > 0:
        raise ValueError(f"gaussian sigma must be > 0 frames, got {sigma}")
    x = np.asarray(x, dtype=np.float64)
    frames = x.shape[0]
    half = int(math.ceil(GAUSSIAN_TRUNCATE * sigma))
    offsets = np.arange(-half, half + 1)
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    flat = x.reshape(frames, -1)
    out = np.zeros_like(flat)
    norm = np.zeros(frames)
    for k, w in zip(offsets, taps):
        lo, hi = max(0, -k), min(frames, frames - k)  # rows i with 0 <= i + k < F
        if lo >= hi:
            continue
        out[lo:hi] += w * flat[lo + k:hi + k]
        norm[lo:hi] += w
    return (out / norm[:, None]).reshape(x.shape)


def gaussian_rotations(rot: np.ndarray, sigma: float) -> np.ndarray:
    """``gaussian_filter`` of the matrix entries of (F, J, 3, 3) rotations, projected back to SO(3)."""
    rot = np.asarray(rot, dtype=np.float64)
    if rot.ndim != 4 or rot.shape[-2:] != (3, 3):
        raise ValueError(f"expected rotations of shape (F, J, 3, 3), got {rot.shape}")
    if rot.shape[0] == 0:
        return rot.copy()
    return _project(gaussian_filter(rot, sigma))


# ----------------------------------------------------------------------------------------- One-Euro


def one_euro_alpha(cutoff_hz: np.ndarray | float, fps: float) -> np.ndarray:
    """Smoothing factor of a first-order low-pass at ``cutoff_hz`` sampled at ``fps``:
    ``1 / (1 + tau / T_e)`` with ``tau = 1 / (2 pi f_c)`` and ``T_e = 1 / fps``."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff_hz, dtype=np.float64))
    return 1.0 / (1.0 + tau * fps)


def _check_one_euro(fps: float, min_cutoff: float, beta: float, d_cutoff: float) -> None:
    if not (fps > 0 and min_cutoff > 0 and d_cutoff > 0 and beta >= 0):
        raise ValueError(f"One-Euro needs fps, min_cutoff, d_cutoff > 0 and beta >= 0; got fps={fps}, "
                         f"min_cutoff={min_cutoff}, beta={beta}, d_cutoff={d_cutoff}")


def one_euro_filter(x: np.ndarray, fps: float, min_cutoff: float, beta: float,
                    d_cutoff: float = DEFAULT_D_CUTOFF_HZ) -> np.ndarray:
    """The One-Euro filter along axis 0, each entry of the trailing axes on its own.

    The paper's algorithm: ``x^_0 = x_0``, ``dx^_0 = 0``; then for i >= 1
    ``dx_i = (x_i - x^_{i-1}) fps``, ``dx^_i = a(d_cutoff) dx_i + (1 - a(d_cutoff)) dx^_{i-1}``,
    ``f_c = min_cutoff + beta |dx^_i|``, ``x^_i = a(f_c) x_i + (1 - a(f_c)) x^_{i-1}`` with
    ``a = one_euro_alpha``. (The derivative is taken against the previous *filtered* value, as in the
    paper's pseudo-code; some implementations use the previous raw sample.)

    Args:
        x: (F, ...) samples at ``fps`` Hz.
        fps: sampling rate, Hz.
        min_cutoff: cut-off at zero speed, Hz.
        beta: cut-off increase per unit of speed (Hz per (unit of x)/s).
        d_cutoff: cut-off of the speed estimate, Hz.
    Returns:
        (F, ...) float64.
    """
    _check_one_euro(fps, min_cutoff, beta, d_cutoff)
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    if x.shape[0] == 0:
        return out
    alpha_d = one_euro_alpha(d_cutoff, fps)
    out[0] = x[0]
    speed = np.zeros(x.shape[1:])
    for i in range(1, x.shape[0]):
        speed = alpha_d * (x[i] - out[i - 1]) * fps + (1.0 - alpha_d) * speed
        alpha = one_euro_alpha(min_cutoff + beta * np.abs(speed), fps)
        out[i] = alpha * x[i] + (1.0 - alpha) * out[i - 1]
    return out


def one_euro_rotations(rot: np.ndarray, fps: float, min_cutoff: float, beta: float,
                       d_cutoff: float = DEFAULT_D_CUTOFF_HZ) -> np.ndarray:
    """The One-Euro filter on SO(3), one cut-off per joint and frame.

    As ``one_euro_filter`` on the matrices, with two changes that make it a rotation filter: the
    speed of a joint is ``|dR^|_F / sqrt(2)`` (rad/s, one number per joint, so the nine entries share
    one cut-off), and every blended estimate ``a R_i + (1 - a) R^_{i-1}`` is projected to SO(3)
    before the next step. For rotations about one fixed axis the estimate's angle then follows
    ``atan2(a sin t_i + (1 - a) sin t^_{i-1}, a cos t_i + (1 - a) cos t^_{i-1})``.

    Args:
        rot: (F, J, 3, 3) rotation matrices of consecutive frames at ``fps`` Hz.
        fps: frame rate, Hz.
        min_cutoff: cut-off at rest, Hz.
        beta: cut-off increase per rad/s of angular speed (s/rad).
        d_cutoff: cut-off of the speed estimate, Hz.
    Returns:
        (F, J, 3, 3) float64 rotations.
    """
    _check_one_euro(fps, min_cutoff, beta, d_cutoff)
    rot = np.asarray(rot, dtype=np.float64)
    if rot.ndim != 4 or rot.shape[-2:] != (3, 3):
        raise ValueError(f"expected rotations of shape (F, J, 3, 3), got {rot.shape}")
    out = np.empty_like(rot)
    if rot.shape[0] == 0:
        return out
    alpha_d = one_euro_alpha(d_cutoff, fps)
    out[0] = _project(rot[0])
    velocity = np.zeros(rot.shape[1:])  # (J, 3, 3) filtered dR/dt, 1/s
    for i in range(1, rot.shape[0]):
        velocity = alpha_d * (rot[i] - out[i - 1]) * fps + (1.0 - alpha_d) * velocity
        speed = np.linalg.norm(velocity, axis=(-2, -1)) / FROBENIUS_PER_RAD  # (J,) rad/s
        alpha = one_euro_alpha(min_cutoff + beta * speed, fps)[:, None, None]  # (J, 1, 1)
        out[i] = project_to_so3_numpy(alpha * rot[i] + (1.0 - alpha) * out[i - 1])
    return out


# ------------------------------------------------------------------------------ baselines as values


@dataclass(frozen=True)
class SavGol:
    """Savitzky-Golay baseline parameters: ``window`` frames (odd), polynomial ``order``."""

    window: int
    order: int
    kind: ClassVar[str] = "savgol"

    def __post_init__(self) -> None:
        _check_window(self.window, self.order)

    def apply(self, rot: np.ndarray, fps: float) -> np.ndarray:
        """(F, J, 3, 3) -> (F, J, 3, 3) (``fps`` unused: the window is in frames)."""
        return savgol_rotations(rot, self.window, self.order)

    @property
    def label(self) -> str:
        return f"savgol(window={self.window}, order={self.order})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "window": self.window, "order": self.order}


@dataclass(frozen=True)
class OneEuro:
    """One-Euro baseline parameters: cut-offs in Hz, ``beta`` in s/rad."""

    min_cutoff: float
    beta: float
    d_cutoff: float = DEFAULT_D_CUTOFF_HZ
    kind: ClassVar[str] = "one_euro"

    def __post_init__(self) -> None:
        _check_one_euro(1.0, self.min_cutoff, self.beta, self.d_cutoff)

    def apply(self, rot: np.ndarray, fps: float) -> np.ndarray:
        """(F, J, 3, 3) at ``fps`` Hz -> (F, J, 3, 3)."""
        return one_euro_rotations(rot, fps, self.min_cutoff, self.beta, self.d_cutoff)

    @property
    def label(self) -> str:
        return f"one_euro(min_cutoff={self.min_cutoff:g}, beta={self.beta:g}, d_cutoff={self.d_cutoff:g})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "min_cutoff": self.min_cutoff, "beta": self.beta, "d_cutoff": self.d_cutoff}


@dataclass(frozen=True)
class Gaussian:
    """Gaussian smoother parameters: ``sigma`` frames."""

    sigma: float
    kind: ClassVar[str] = "gaussian"

    def __post_init__(self) -> None:
        if not self.sigma > 0:
            raise ValueError(f"gaussian sigma must be > 0 frames, got {self.sigma}")

    def apply(self, rot: np.ndarray, fps: float) -> np.ndarray:
        """(F, J, 3, 3) -> (F, J, 3, 3) (``fps`` unused: sigma is in frames)."""
        return gaussian_rotations(rot, self.sigma)

    @property
    def label(self) -> str:
        return f"gaussian(sigma={self.sigma:g})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "sigma": self.sigma}


Baseline = SavGol | OneEuro | Gaussian


def savgol_grid(windows: Sequence[int] = SAVGOL_WINDOWS, orders: Sequence[int] = SAVGOL_ORDERS) -> list[SavGol]:
    """Every (window, order) with order < window."""
    return [SavGol(w, p) for w in windows for p in orders if p < w]


def one_euro_grid(min_cutoffs: Sequence[float] = ONE_EURO_MIN_CUTOFFS, betas: Sequence[float] = ONE_EURO_BETAS,
                  d_cutoff: float = DEFAULT_D_CUTOFF_HZ) -> list[OneEuro]:
    """Every (min_cutoff, beta) at one ``d_cutoff``."""
    return [OneEuro(c, b, d_cutoff) for c in min_cutoffs for b in betas]


def gaussian_grid(sigmas: Sequence[float] = GAUSSIAN_SIGMAS) -> list[Gaussian]:
    """One candidate per sigma (frames)."""
    return [Gaussian(float(sg)) for sg in sigmas]


def sequence_mean_betas(betas: np.ndarray) -> np.ndarray:
    """(F, 10) per-frame betas -> (F, 10): their mean over the sequence on every frame."""
    betas = np.asarray(betas, dtype=np.float64)
    return np.broadcast_to(betas.mean(axis=0, keepdims=True), betas.shape).copy()


# ----------------------------------------------------------------------------------------- scoring

# (sequence, its frame arrays) -> rotations (F, 24, 3, 3) and betas (F, 10), one per frame, CPU.
Predictor = Callable[[EvalSequence, Mapping[str, Tensor]], tuple[Tensor, Tensor]]


def input_predictor(sequence: EvalSequence, labels: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """HybrIK's own rotations and betas, converted exactly as ``evaluate_split`` converts them (its own pose
    also when the split feeds the refiner its 2D fit, ``fit2d_prior``: the "input" of every report)."""
    return hybrik_input_rotations(labels, sequence.frames), labels["hybrik_shape"]


def refiner_input_predictor(sequence: EvalSequence, labels: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """The rotations the refiner is given (HybrIK's 2D fit with ``fit2d_prior``, else HybrIK's own) and
    HybrIK's betas: the "fit alone" baseline of a fitting config."""
    n = sequence.frames
    return axis_angle_to_matrix(labels["hybrik_pose"].reshape(n, SMPL_NUM_JOINTS, 3)), labels["hybrik_shape"]


def baseline_predictor(baseline: Baseline, fps: float, betas: BetasMode = "mean") -> Predictor:
    """A ``Predictor`` filtering HybrIK's rotations of the whole sequence with ``baseline`` (the rotations the
    refiner is given: with ``fit2d_prior``, HybrIK's 2D fit, i.e. "fit + smoother").

    Args:
        baseline: ``SavGol`` or ``OneEuro`` parameters.
        fps: the split's frame rate (``lib.eval.evaluate.DATASET_FPS``), Hz.
        betas: ``"mean"`` (per-sequence mean of HybrIK's betas) or ``"input"`` (unchanged).
    """
    if betas not in BETAS_MODES:
        raise ValueError(f"betas must be one of {BETAS_MODES}, got {betas!r}")

    def predict(sequence: EvalSequence, labels: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        n = sequence.frames
        aa = labels["hybrik_pose"].double().reshape(n, SMPL_NUM_JOINTS, 3)  # (F, 24, 3) rad
        rot = baseline.apply(axis_angle_to_matrix(aa).numpy(), fps)  # (F, 24, 3, 3)
        shape = labels["hybrik_shape"].numpy()
        if betas == "mean":
            shape = sequence_mean_betas(shape)
        return torch.from_numpy(rot).float(), torch.from_numpy(np.asarray(shape)).float()

    return predict


@dataclass
class SplitScores:
    """Metrics of several variants on one split, each frame scored once (mm; accel_err mm/frame^2)."""

    dataset: str
    split: str
    frames: int
    sequences: int
    protocol: dict[str, Any]
    metrics: dict[str, dict[str, float]]
    per_joint: dict[str, list[float]] = field(default_factory=dict)  # 17-joint MPJPE per joint, mm
    seconds: float = 0.0


def _checked(name: str, prediction: tuple[Tensor, Tensor], sequence: EvalSequence) -> tuple[Tensor, Tensor]:
    """A predictor's (rotations, betas) after checking their shapes against the sequence."""
    rot, shape = prediction
    n = sequence.frames
    if tuple(rot.shape) != (n, SMPL_NUM_JOINTS, 3, 3) or tuple(shape.shape) != (n, SMPL_NUM_BETAS):
        raise ValueError(f"predictor '{name}' returned {tuple(rot.shape)} and {tuple(shape.shape)} for sequence "
                         f"{sequence.name!r} of {n} frames; expected ({n}, {SMPL_NUM_JOINTS}, 3, 3) and "
                         f"({n}, {SMPL_NUM_BETAS})")
    return rot, shape


@torch.no_grad()
def score_split(predictors: Mapping[str, Predictor], body: nn.Module, cfg: TaskConfig, split: MeshSplit,
                device: torch.device, *, show_progress: bool = False) -> SplitScores:
    """Score per-frame predictions of every sequence of a split, as ``evaluate_split`` scores the refiner.

    Per sequence (``EvalSequences(split, cfg.sample_stride, cfg.clip_len)``, so a predictor may also
    refine windows, e.g. ``lambda s, _: refine_sequence(model, s, device, flip)``): each predictor
    returns rotations (F, 24, 3, 3) and betas (F, 10), scored by ``lib.eval.evaluate.score_sequence``
    (the ground truth through SMPL once for all predictors; root ``cfg.eval_root``).

    Args:
        predictors: {variant name: predictor}.
        body: ``BodyModel`` on ``device``.
        cfg: ``TaskConfig`` (``clip_len``, ``sample_stride``, ``eval_root``).
        split: any split (train or test) of a video dataset.
        device: where SMPL runs.
    Returns:
        ``SplitScores`` with the means of ``METRIC_KEYS`` per variant.
    """
    start = time.perf_counter()
    sequences = EvalSequences(split, cfg.sample_stride, cfg.clip_len)
    sums = {name: MetricSums() for name in predictors}
    per_joint = {name: np.zeros(H36M_NUM_JOINTS) for name in predictors}
    frames = 0
    for sequence in tqdm(sequences, desc=f"score {split.dataset}/{split.split}", unit="seq", leave=False,
                         disable=not show_progress):
        labels = sequence.frame_arrays()
        predicted = {name: _checked(name, predict(sequence, labels), sequence)
                     for name, predict in predictors.items()}  # whole sequences: (F, 24, 3, 3), (F, 10)
        score_sequence(body, labels, predicted, cfg.eval_root, device, sums, per_joint)
        frames += sequence.frames
    if frames != split.frames:  # every sequence yields its frames once; a mismatch is a bug
        raise RuntimeError(f"scored {frames} frames of {split.frames} in {split.path}")
    return SplitScores(
        dataset=split.dataset, split=split.split, frames=frames, sequences=len(sequences),
        protocol={**protocol(cfg, flip=False, overlap=cfg.clip_len // 2), "flip_test": None,
                  "baselines": "whole sequences filtered offline (One-Euro causally), no windows, no flip"},
        metrics={name: s.means() for name, s in sums.items()},
        per_joint={name: (v / max(frames, 1)).round(3).tolist() for name, v in per_joint.items()},
        seconds=time.perf_counter() - start)


# ------------------------------------------------------------------------------------------ tuning


@dataclass
class TuneResult:
    """The grid of one baseline kind on the training split, and the chosen parameters."""

    kind: str
    select_on: str
    best: Baseline
    rows: list[dict[str, Any]]  # one per candidate: its parameters, label and metrics, best first
    frames: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "select_on": self.select_on, "best": self.best.to_dict(),
                "best_label": self.best.label, "frames": self.frames, "seconds": round(self.seconds, 2),
                "grid": self.rows}


def tune_baseline(candidates: Sequence[Baseline], body: nn.Module, cfg: TaskConfig, split: MeshSplit,
                  device: torch.device, fps: float, *, betas: BetasMode = "mean", select_on: str = "mpjpe",
                  show_progress: bool = False) -> TuneResult:
    """Grid search of one baseline's parameters on a (training) split.

    Every candidate is scored with ``score_split`` (all in one pass: the ground truth is run through
    SMPL once per sequence) and the one with the lowest ``select_on`` wins: the 14-joint MPJPE by
    default, the metric the refiner's checkpoint selection uses. Ties keep the earlier candidate.

    Args:
        candidates: ``SavGol`` or ``OneEuro`` parameters (one kind), e.g. ``savgol_grid()``.
        split: the split to tune on; use the TRAINING split, never the test split.
        fps: the split's frame rate, Hz.
        betas, select_on: see ``baseline_predictor``; a key of ``METRIC_KEYS``.
    Returns:
        ``TuneResult`` (best parameters, every candidate's metrics sorted by ``select_on``).
    """
    if not candidates:
        raise ValueError("tune_baseline needs at least one candidate")
    kinds = {c.kind for c in candidates}
    if len(kinds) != 1:
        raise ValueError(f"tune one baseline kind at a time, got {sorted(kinds)}")
    if select_on not in METRIC_KEYS:
        raise ValueError(f"select_on must be one of {METRIC_KEYS}, got {select_on!r}")
    predictors = {c.label: baseline_predictor(c, fps, betas) for c in candidates}
    if len(predictors) != len(candidates):
        raise ValueError("duplicate candidates in the grid")
    scores = score_split(predictors, body, cfg, split, device, show_progress=show_progress)
    rows = [{**c.to_dict(), "label": c.label, **scores.metrics[c.label]} for c in candidates]
    order = sorted(range(len(candidates)), key=lambda i: (rows[i][select_on], i))
    best = candidates[order[0]]
    log.info("%s tuned on %s/%s (%d frames, %d candidates, %.1fs): %s, %s %.2f", best.kind, split.dataset,
             split.split, scores.frames, len(candidates), scores.seconds, best.label, select_on,
             rows[order[0]][select_on])
    return TuneResult(kind=best.kind, select_on=select_on, best=best, rows=[rows[i] for i in order],
                      frames=scores.frames, seconds=scores.seconds)
