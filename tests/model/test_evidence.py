"""HybrIK's joints and the 2D's disagreement with them (``lib.model.evidence``), against a numpy loop
per frame, and its meaning: zero where the 2D agrees, a moved detection shows at its joint in metres."""

from __future__ import annotations

import numpy as np
import torch

from lib.model.evidence import EVIDENCE_CHANNELS, hybrik_2d_evidence


def _numpy_evidence(xy: np.ndarray, conf: np.ndarray, joints_mm: np.ndarray) -> np.ndarray:
    """Per frame, in loops: weighted centroids, scale = ratio of RMS spreads, (x - x_c) / s - (X - X_c)."""
    out = np.zeros(xy.shape[:-1] + (5,))
    for idx in np.ndindex(*xy.shape[:-2]):
        x, c, j = xy[idx], conf[idx], joints_mm[idx] / 1000.0  # (J, 2), (J,), (J, 3)
        xc = sum(c[k] * x[k] for k in range(len(c))) / c.sum()
        jc = sum(c[k] * j[k, :2] for k in range(len(c))) / c.sum()
        s = np.sqrt(sum(c[k] * np.sum((x[k] - xc) ** 2) for k in range(len(c)))
                    / sum(c[k] * np.sum((j[k, :2] - jc) ** 2) for k in range(len(c))))
        out[idx][:, :3] = j
        for k in range(len(c)):
            out[idx][k, 3:] = ((x[k] - xc) / s - (j[k, :2] - jc)) if c[k] > 0 else 0.0
    return out


def test_evidence_matches_a_weighted_least_squares_fit_per_frame() -> None:
    rng = np.random.default_rng(0)
    joints = rng.normal(0.0, [250.0, 450.0, 150.0], size=(2, 3, 17, 3))  # mm, body-sized
    scale, shift = rng.uniform(0.2, 0.5, size=(2, 3, 1, 1)), rng.uniform(-0.5, 0.5, size=(2, 3, 1, 2))
    xy = scale * joints[..., :2] / 1000.0 + shift + rng.normal(0.0, 0.01, size=(2, 3, 17, 2))
    conf = rng.uniform(0.1, 1.0, size=(2, 3, 17))
    conf[0, 1, 4] = 0.0  # undetected: no weight, no disagreement
    pose2d = np.concatenate([xy, conf[..., None]], -1)
    got = hybrik_2d_evidence(torch.from_numpy(pose2d), torch.from_numpy(joints)).numpy()
    assert got.shape == (2, 3, 17, EVIDENCE_CHANNELS)
    np.testing.assert_allclose(got, _numpy_evidence(xy, conf, joints), atol=1e-9)
    assert np.all(got[0, 1, 4, 3:] == 0.0)
    # without a confidence channel every joint weighs 1
    plain = hybrik_2d_evidence(torch.from_numpy(xy), torch.from_numpy(joints)).numpy()
    np.testing.assert_allclose(plain, _numpy_evidence(xy, np.ones_like(conf), joints), atol=1e-9)


def test_evidence_is_zero_where_2d_agrees_and_shows_a_moved_joint_in_metres() -> None:
    rng = np.random.default_rng(1)
    joints = rng.normal(0.0, [250.0, 450.0, 150.0], size=(1, 1, 17, 3))
    scale = 0.3  # normalised units per metre
    xy = scale * joints[..., :2] / 1000.0 + 0.1
    conf = np.ones((1, 1, 17, 1))
    agree = hybrik_2d_evidence(torch.from_numpy(np.concatenate([xy, conf], -1)), torch.from_numpy(joints)).numpy()
    np.testing.assert_allclose(agree[..., 3:], 0.0, atol=1e-12)
    np.testing.assert_allclose(agree[..., :3], joints / 1000.0)
    moved = xy.copy()
    moved[0, 0, 5, 0] += scale * 0.2  # the detection puts joint 5 20 cm further right
    got = hybrik_2d_evidence(torch.from_numpy(np.concatenate([moved, conf], -1)), torch.from_numpy(joints)).numpy()
    assert got[0, 0, 5, 3] > 0.15 and abs(got[0, 0, 5, 4]) < 0.05  # mostly that joint, in metres
    others = np.delete(got[0, 0, :, 3:], 5, axis=0)
    assert np.abs(others).max() < 0.05


def test_evidence_stays_bounded_when_the_2d_contradicts_hybrik() -> None:
    rng = np.random.default_rng(2)
    joints = rng.normal(0.0, [250.0, 450.0, 150.0], size=(1, 4, 17, 3))
    xy = -0.3 * joints[..., :2] / 1000.0  # mirrored: a least-squares scale would be negative or ~0
    got = hybrik_2d_evidence(torch.from_numpy(xy), torch.from_numpy(joints)).numpy()
    assert np.abs(got[..., 3:]).max() < 4 * np.abs(joints[..., :2] / 1000.0).max()
