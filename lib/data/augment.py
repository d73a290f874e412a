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


# ------------------------------------------------------------------------ virtual camera orbit


def focal_from_projection(joints_cam: np.ndarray, joints_2d: np.ndarray, conf: np.ndarray) -> float:
    """The pinhole focal length (px) that best maps camera-frame joints to their detections.

    Least squares over every joint with confidence > 0.5 of ``u = f X / Z + cx``, ``v = f Y / Z + cy``
    (unknowns f, cx, cy; one camera per sequence). Detection noise averages out over a sequence.

    Args:
        joints_cam: (F, J, 3) camera frame, any length unit (only X / Z, Y / Z are used), Z > 0.
        joints_2d: (F, J, 2) px.
        conf: (F, J) detector confidence.
    Returns:
        f in px, or NaN when fewer than 4 usable joints exist or the fit is degenerate (f <= 0).
    """
    ok = (conf > 0.5) & (joints_cam[..., 2] > 0)  # (F, J)
    if ok.sum() < 4:
        return float("nan")
    ratio = joints_cam[ok][:, :2] / joints_cam[ok][:, 2:3]  # (n, 2): X / Z, Y / Z
    uv = joints_2d[ok][:, :2]  # (n, 2) px
    n = len(ratio)
    a = np.zeros((2 * n, 3))
    a[:n, 0], a[:n, 1] = ratio[:, 0], 1.0
    a[n:, 0], a[n:, 2] = ratio[:, 1], 1.0
    b = np.concatenate([uv[:, 0], uv[:, 1]])
    (f, _, _), *_ = np.linalg.lstsq(a, b, rcond=None)
    return float(f) if f > 0 else float("nan")


def orbit_matrix(pitch: float, yaw: float) -> np.ndarray:
    """(3, 3) rotation Ry(yaw) Rx(pitch) in the camera frame (x right, y down, z forward), radians."""
    cp, sp, cy, sy = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    return ry @ rx


def reproject_keypoints_2d(pose2d: np.ndarray, joints_cam: np.ndarray, moved: np.ndarray, focal: float,
                           width: float) -> np.ndarray:
    """The 2D input as the camera would see it had the true joints been at ``moved``.

    Every detected 2D joint moves by the change of projection of its true 3D joint; the detection's own
    error (detection minus projection of the true joint) is carried over unchanged. The principal point
    cancels (only differences of projections are used). Joints with confidence 0 (missing) stay as they are.

    Args:
        pose2d: (T, J, C) normalised 2D (``x / W * 2 - 1``, ``y / W * 2 - H / W``), channel 2 confidence.
        joints_cam: (T, J, 3) true joints in the camera frame, mm, Z > 0.
        moved: (T, J, 3) where they go, same frame and unit.
        focal: px.
        width: the canvas width W, px.
    Returns:
        (T, J, C) float32.
    """
    project = lambda x: focal * x[..., :2] / x[..., 2:3]  # (T, J, 2) px, up to the principal point
    shift = (project(moved) - project(joints_cam)) * (2.0 / width)  # (T, J, 2) normalised units
    out = pose2d.copy()
    seen = pose2d[..., 2] > 0 if pose2d.shape[-1] > 2 else np.ones(pose2d.shape[:-1], dtype=bool)
    out[..., :2] += np.where(seen[..., None], shift, 0.0)
    return out.astype(np.float32)


def orbit_keypoints_2d(pose2d: np.ndarray, joints_cam: np.ndarray, rot: np.ndarray, focal: float,
                       width: float) -> np.ndarray:
    """The 2D input as a camera orbiting the person by ``rot`` about its root would see it.

    Each 3D joint is rotated about the root (joint 0 of ``joints_cam``, which stays where it is) and
    re-projected with ``reproject_keypoints_2d`` (detection errors carried over, missing joints kept).

    Args:
        pose2d: (T, J, C) normalised 2D, channel 2 confidence.
        joints_cam: (T, J, 3) true joints in the camera frame, mm.
        rot: (3, 3) the orbit, camera frame.
        focal: px.
        width: the canvas width W, px.
    Returns:
        (T, J, C) float32.
    """
    root = joints_cam[:, :1]  # (T, 1, 3)
    moved = (joints_cam - root) @ rot.T + root  # (T, J, 3)
    return reproject_keypoints_2d(pose2d, joints_cam, moved, focal, width)


# ------------------------------------------------------------------------ body-pose offsets


def limb_offsets(rng: np.random.Generator, frames: int, max_deg: float) -> np.ndarray:
    """Random per-joint rotation vectors (frames, 24, 3), radians, that turn a clip's body pose; joint 0 is 0.

    Each of the 23 body joints gets a constant offset plus a linear ramp over the clip (centred on its
    middle frame), each a random axis times an angle drawn uniformly from [0, ``max_deg``] degrees: the
    pose moves somewhere the data never showed, and the limb's speed changes by up to ``max_deg`` per clip.
    """
    def random_vectors() -> np.ndarray:  # (23, 3): random axes, angles uniform in [0, max_deg]
        axes = rng.normal(size=(SMPL_NUM_JOINTS - 1, 3))
        axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
        return axes * np.radians(rng.uniform(0.0, max_deg, size=(SMPL_NUM_JOINTS - 1, 1)))

    constant, ramp = random_vectors(), random_vectors()
    t = np.linspace(-0.5, 0.5, frames)[:, None, None] if frames > 1 else np.zeros((1, 1, 1))  # (T, 1, 1)
    out = np.zeros((frames, SMPL_NUM_JOINTS, 3))
    out[:, 1:] = constant + t * ramp
    return out


def offset_pose(pose: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """SMPL axis-angle poses with every joint turned in its own frame: R_j -> R_j Exp(o_j).

    Args:
        pose: (T, 72) axis-angle, radians.
        offsets: (T, 24, 3) rotation vectors, radians (``limb_offsets``).
    Returns:
        (T, 72), ``pose``'s dtype.
    """
    rot = Rotation.from_rotvec(pose.reshape(-1, 3).astype(np.float64))
    out = rot * Rotation.from_rotvec(offsets.reshape(-1, 3))
    return out.as_rotvec().reshape(pose.shape).astype(pose.dtype)
