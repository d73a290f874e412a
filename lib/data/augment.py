"""Training-time corruptions of the refiner's inputs: HybrIK's rotations and the 2D detections.

Why: a small training set shows the refiner one HybrIK error model and one detector. Learnt on that
alone, the residual ties its corrections to that error model and does damage where errors look
different (issue 14: on a second data style the demo recipe ended at 1.17-1.67x input MPJPE, 1.7-2.3x
PA-MPJPE). Corrupting HybrIK's input rotations further, with noise of a random level, kind and side,
makes "trust HybrIK as far as the 2D agrees" the only rule that works on every item; dropping 2D joints
(confidence 0) teaches the refiner that a missing detection carries no position.

Pure functions of a ``numpy.random.Generator``: the dataset draws one per (seed, epoch, item).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from lib.body.joint_names import SMPL_NUM_JOINTS

# Knots of the slowly varying part of the rotation noise: one every this many frames (at least 2).
DRIFT_KNOT_FRAMES = 8


def rotation_noise(rng: np.random.Generator, frames: int, max_deg: float) -> np.ndarray:
    """Random rotation vectors (frames, 24, 3), radians: white + slowly varying, levels drawn per call.

    Per call, two standard deviations per axis are drawn uniformly from [0, ``max_deg``] degrees: one of
    white noise (independent per frame and joint) and one of a drift, linearly interpolated between
    random knots ``DRIFT_KNOT_FRAMES`` apart (correlated in time, as a per-frame estimator's errors
    on a held pose are).
    """
    white_std, drift_std = np.radians(rng.uniform(0.0, max_deg, size=2))
    white = rng.normal(0.0, white_std, size=(frames, SMPL_NUM_JOINTS, 3))
    knots = max(2, -(-frames // DRIFT_KNOT_FRAMES) + 1)
    values = rng.normal(0.0, drift_std, size=(knots, SMPL_NUM_JOINTS, 3))
    at = np.linspace(0.0, knots - 1, frames)  # (frames,) position of each frame among the knots
    lo = np.minimum(at.astype(int), knots - 2)
    w = (at - lo)[:, None, None]
    drift = (1.0 - w) * values[lo] + w * values[lo + 1]
    return white + drift


def corrupt_pose(pose: np.ndarray, rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """HybrIK's axis-angle poses with extra rotation noise: (T, 72) -> (T, 72), radians.

    The noise (``rotation_noise``) is composed on the left (N R, in the parent's / camera frame) or on
    the right (R N, in the joint's own frame), a coin flip per call. Every joint, the global
    orientation included. ``max_deg`` 0 returns ``pose`` unchanged.
    """
    if max_deg <= 0:
        return pose
    frames = pose.shape[0]
    noise = Rotation.from_rotvec(rotation_noise(rng, frames, max_deg).reshape(-1, 3))
    rot = Rotation.from_rotvec(pose.reshape(-1, 3).astype(np.float64))
    out = noise * rot if rng.random() < 0.5 else rot * noise
    return out.as_rotvec().reshape(pose.shape).astype(pose.dtype)


def drop_keypoints(pose2d: np.ndarray, rng: np.random.Generator, max_rate: float) -> np.ndarray:
    """2D detections with random joints missing: (T, 17, C) -> (T, 17, C).

    A rate is drawn uniformly from [0, ``max_rate``] per call; each (frame, joint) is then dropped with
    that probability: its confidence (channel 2) and its normalised coordinates become 0 (the canvas
    centre; ``input_norm: clip`` ignores where a confidence-0 joint lies). Needs the confidence
    channel; ``max_rate`` 0 returns the input.
    """
    if max_rate <= 0:
        return pose2d
    if pose2d.shape[-1] < 3:
        raise ValueError(f"drop_keypoints needs a confidence channel, got {pose2d.shape[-1]} channels")
    dropped = rng.random(pose2d.shape[:-1]) < rng.uniform(0.0, max_rate)  # (T, 17)
    out = pose2d.copy()
    out[dropped] = 0.0
    return out
