"""A complete synthetic ``data_root`` in the real formats: SMPL stand-in, regressors, the three mesh pickles.

    python -m lib.data.synthetic --out data/demo --preset demo      (style a: this module)

writes what a real ``data/mesh`` holds (see ``data/mesh/README.md``): the SMPL stand-in and its joint
regressors (``lib.body.synthetic.write_smpl_assets``, chumpy-style form) and
``mesh_det_h36m_w_hybrik_pred.pkl``, ``mesh_det_coco_w_hybrik_pred.pkl``,
``mesh_det_pw3d_w_hybrik_pred_hr48_w.pkl`` with MotionBERT's keys, shapes and dtypes. The output is a
pure function of (seed, preset): same seed, same bytes.

This module is style "a" (the default of ``lib.data.synthetic``, the entry point). Style "b"
(``lib.data.synthetic_style_b``) writes the same files with every convention drawn differently (SMPL stand-in, motion families,
frame rates, cameras and image sizes, detector and HybrIK noise models, axis-angle representation);
see that module's docstring.

Motion (ground truth)
    Each sequence is a chain of 2-4 s segments, each one activity, cross-faded over 0.5 s:
    * walk: gait cycle 0.8-1.0 Hz, stride 1.2-1.5 m, hip flexion +-18-28 deg, knee flexion up to 45-60 deg
      in swing, counter-phase arm swing +-12-25 deg, pelvis yaw +-5 deg, vertical bob 2 cm; the heading
      wanders (0.25 rad/s) and is steered back towards the stage centre beyond 0.5 m, so paths curve and turn;
    * turn: turning in place at 0.6-1.2 rad/s with steps at 40 % of the walk amplitude;
    * arms: raise-and-lower cycles (period 2-3.5 s) of one or both arms, lateral or frontal (up to
      110-140 deg), or a wave (raised arm, elbow oscillating at 1.5 Hz);
    * squat: cycles (period 2-3.5 s) of hip flexion 35-65 deg, knee twice that, ankle keeping the foot
      flat, trunk lean, arms forward; the pelvis drops by leg length x (1 - cos hip flexion).
    Every sequence has its own speed, amplitudes, phases, start heading and position, a resting posture
    (arms down 70-78 deg, elbows 8-60 deg) and slow sway of spine, head, elbows and wrists (sums of sinusoids,
    0.1-0.5 Hz).
    Euler angles (intrinsic XYZ in each joint's rest frame, right side mirrored) are clipped to joint
    limits (``JOINT_LIMITS_DEG``). GT betas ~ N(0, 0.7^2) per person (H36M: per subject, shared by all
    of the subject's sequences; 3DPW: per track; COCO: per image).

Cameras (perspective, no distortion)
    H36M: the four real camera ids with their real focal lengths and principal points (about 1145 px,
    image 1000 x 1002 or 1000 x 1000), at the four corners of the stage (azimuth 45 + k 90 deg), fixed,
    looking at the path's centroid; as in H36M each motion is recorded by several cameras (1-2 here, one
    sequence each: same GT body pose, the global orientation, 2D and noise differ per camera).
    3DPW: image = canvas 1920 x 1920, focal 1200-1500 px, the camera keeps its offset to the person's
    path smoothed over 2 s (an operator walking along), so it translates but does not rotate.
    COCO: image = canvas 640 x 640, focal 1000-1500 px, one camera per image.
    Camera height 1.0-2.0 m, 3.5-5 m from the point it looks at (1 m above the ground); when a joint
    would leave the image (6 % margin) the camera backs off along its optical axis until every joint is
    inside, so the person is fully in frame (distances about 3-7 m).

2D detections (``joint_2d``, ``confidence``)
    joint_2d = perspective projection of the H36M-17 joints of the GT mesh (``BodyModel.h36m_joints``)
    + i.i.d. Gaussian noise, ``KP2D_SIGMA_PX`` = 4 px per coordinate; with probability
    ``KP2D_OUTLIER_PROB`` = 3 % per joint and frame the joint is instead displaced by 25-80 px in a
    random direction (an outlier). Confidence of an inlier = 0.95 exp(-e^2 / (2 (3 sigma)^2)) + N(0, 0.02^2)
    with e its displacement in px (so larger errors get lower scores); of an outlier U(0.05, 0.35);
    clipped to [0, 1]. Detections are clipped to the image.

HybrIK-like prediction (``pred_smpl_pose``, ``pred_smpl_shape``)
    For every joint rotation (global orientation included, in the camera frame):
    R_pred = R_gt Exp(jitter) Exp(bias), with
    * jitter: i.i.d. per frame, N(0, (``HYBRIK_JITTER_DEG`` = 3.5 deg)^2) per axis (mean angle 5.6 deg);
    * bias: slowly varying, a sum of 4 sinusoids per joint and axis with frequencies 0.05-0.3 Hz and random
      phases, std ``HYBRIK_BIAS_DEG`` = 3 deg per axis (mean angle about 4.8 deg); for COCO (single
      images) drawn i.i.d. per image with the same std;
    so the relative rotation has a mean angle of about 7.4 deg and frame-to-frame changes of about
    8 deg (mean angle of the difference of two jitters). Betas: GT + a per-sequence offset
    N(0, 0.3^2) + per-frame N(0, 0.1^2). Pelvis-aligned 14-joint MPJPE of the prediction vs GT is about
    70-80 mm on the stand-in (the tests check 40-90 mm), close to HybrIK's published 3DPW error.

Files, keys, dtypes
    joint_2d (F,17,2) px float32 (train) / float64 (test); confidence (F,17,1) same dtype as joint_2d;
    joint_cam (F,17,3) float64 **mm**, camera frame (Pose2Mesh's unit; unused by the refiner);
    smpl_pose (F,72) float64 rad; smpl_shape (F,10) float64; pred_smpl_pose (F,72) float32 rad;
    pred_smpl_shape (F,10) float32; img_hw list of (H, W) int tuples; image_id list of (1,) int64
    arrays; source list of str; H36M: camera_name list of str. Frame rates: 3DPW 30 Hz, H36M 50 Hz
    (the cameras' native rate; MotionBERT does not state the rate of its H36M mesh file).
    H36M sources ``S{subject}_{Action}_{subaction}.{camera}``, train subjects S1 S5 S6 S7 S8, test S9 S11;
    3DPW sources ``{place}_{activity}_{take:02d}{person}``, train and test from disjoint places;
    COCO sources ``{train2014|val2014}/COCO_..._{id:012d}.jpg``. Test splits hold one sequence shorter
    than 16 frames and lengths that are not multiples of 16.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from lib.atomic_write import atomic_open
from lib.body.joint_names import SMPL_JOINT_NAMES, SMPL_NUM_BETAS, SMPL_NUM_JOINTS
from lib.data.keypoints2d import DATASET_CANVAS, H36M_CAMERA_RES

PICKLE_PROTOCOL = 4
MESH_FILES = {
    "h36m": "mesh_det_h36m_w_hybrik_pred.pkl",
    "coco": "mesh_det_coco_w_hybrik_pred.pkl",
    "pw3d": "mesh_det_pw3d_w_hybrik_pred_hr48_w.pkl",
}
FPS = {"h36m": 50.0, "pw3d": 30.0, "coco": 30.0}   # COCO: rate of the motion its poses are drawn from
_DATASET_ID = {"h36m": 1, "pw3d": 2, "coco": 3}     # RNG stream keys (stable, not Python's str hash)
_SPLIT_ID = {"train": 1, "test": 2}
SMPL_CHUNK = 256                                    # frames per BodyModel call (~21 MB of vertices)
MM_PER_M = 1000.0

# --- noise model (see the module docstring) --------------------------------------------------------
KP2D_SIGMA_PX = 4.0
KP2D_OUTLIER_PROB = 0.03
KP2D_OUTLIER_PX = (25.0, 80.0)
KP2D_OUTLIER_CONF = (0.05, 0.35)
KP2D_CONF_MAX = 0.95
KP2D_CONF_NOISE = 0.02
HYBRIK_JITTER_DEG = 3.5
HYBRIK_BIAS_DEG = 3.0
HYBRIK_BIAS_FREQ_HZ = (0.05, 0.3)
HYBRIK_BETAS_OFFSET_STD = 0.3
HYBRIK_BETAS_JITTER_STD = 0.1
GT_BETAS_STD = 0.7

# --- motion ----------------------------------------------------------------------------------------
ACTIVITIES = ("walk", "turn", "arms", "squat")
ACTIVITY_PROBS = {"h36m": (0.35, 0.15, 0.30, 0.20), "pw3d": (0.50, 0.15, 0.20, 0.15),
                  "coco": (0.25, 0.15, 0.35, 0.25)}
SEGMENT_S = (2.0, 4.0)
RAMP_S = 0.5
WANDER_RAD_S = 0.25
HOME_GAIN_RAD_S = 1.2
HOME_RADIUS_M = (0.5, 1.5)        # steering towards the stage centre ramps up between these distances
LEG_LENGTH_M = 0.85               # hip to ankle, for the squat's pelvis drop
SWAY_FREQ_HZ = (0.1, 0.5)
# Arms at rest: elbow flexion per sequence, then slow elbow and wrist sway (std). A first version kept the
# elbows at 8-20 deg and the wrists still: a refiner trained on it had never seen a bent arm and broke
# the arms of another generator's people (wrist MPJPE 115 -> 300 mm; issue 14).
REST_ELBOW_DEG = (8.0, 60.0)
ELBOW_SWAY_DEG = 15.0
WRIST_SWAY_DEG = 15.0

# --- cameras ---------------------------------------------------------------------------------------
# Human3.6M's real intrinsics (focal x, y; principal point) and our azimuth of each camera around the stage.
H36M_CAMERAS = {
    "54138969": ((1145.0, 1143.8), (512.5, 515.5), 45.0),
    "55011271": ((1149.7, 1147.6), (508.8, 508.1), 135.0),
    "58860488": ((1149.1, 1148.8), (519.8, 501.4), -135.0),
    "60457274": ((1145.5, 1144.8), (515.0, 501.9), -45.0),
}
FOCAL_PX = {"pw3d": (1200.0, 1500.0), "coco": (1000.0, 1500.0)}
CAMERA_HEIGHT_M = (1.0, 2.0)
CAMERA_DISTANCE_M = (3.5, 5.0)
AIM_HEIGHT_M = 1.0
FRAME_MARGIN = 0.06               # fraction of min(W, H) kept free around the joints
MIN_DEPTH_M = 2.0
PW3D_FOLLOW_S = 2.0               # 3DPW's operator follows the path smoothed over this window

H36M_SUBJECTS = {"train": ("S1", "S5", "S6", "S7", "S8"), "test": ("S9", "S11")}
H36M_ACTIONS = {"walk": ("Walking", "WalkTogether", "WalkDog"), "turn": ("Directions", "Waiting"),
                "arms": ("Greeting", "Posing", "Discussion"), "squat": ("SittingDown", "Purchases")}
PW3D_PLACES = {"train": ("courtyard", "outdoors"), "test": ("downtown", "flat", "office")}
PW3D_ACTIVITIES = {"walk": ("walking", "walkBridge"), "turn": ("rangeOfMotions", "arguing"),
                   "arms": ("warmWelcome", "dancing"), "squat": ("jumpBench", "squat")}
COCO_FOLDERS = {"train": "train2014", "test": "val2014"}
COCO_MAX_IMAGE_ID = 600_000

SMPL_JOINT_INDEX = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}
# (min, max) deg of each Euler axis (intrinsic XYZ in the joint's rest frame), left-side convention;
# right-side joints use the mirrored limits (y and z negated). Joints not listed: +-20 deg.
JOINT_LIMITS_DEG: dict[str, tuple[tuple[float, float], ...]] = {
    "spine1": ((-30, 45), (-30, 30), (-25, 25)), "spine2": ((-30, 45), (-30, 30), (-25, 25)),
    "spine3": ((-30, 45), (-30, 30), (-25, 25)), "neck": ((-40, 45), (-60, 60), (-30, 30)),
    "head": ((-40, 45), (-60, 60), (-30, 30)),
    "hip": ((-110, 30), (-40, 40), (-20, 45)), "knee": ((0, 150), (-5, 5), (-5, 5)),
    "ankle": ((-40, 40), (-20, 20), (-20, 20)), "foot": ((-10, 10), (-10, 10), (-10, 10)),
    "collar": ((-15, 15), (-15, 15), (-15, 15)), "shoulder": ((-160, 60), (-90, 90), (-95, 95)),
    "elbow": ((-5, 5), (-150, 0), (-5, 5)), "wrist": ((-40, 40), (-40, 40), (-40, 40)),
    "hand": ((-20, 20), (-20, 20), (-20, 20)),
}


@dataclass(frozen=True)
class Preset:
    """Sizes per dataset and split: frames per sequence (H36M: per motion, with its number of cameras);
    COCO: number of images."""

    h36m_train: tuple[tuple[int, int], ...]     # (frames, cameras) per motion; one sequence per camera
    h36m_test: tuple[tuple[int, int], ...]
    pw3d_train: tuple[int, ...]
    pw3d_test: tuple[int, ...]
    coco_train: int
    coco_test: int


PRESETS = {
    "tiny": Preset(h36m_train=((96, 2), (75, 2)), h36m_test=((90, 2), (13, 1)),
                   pw3d_train=(90, 77, 70, 63), pw3d_test=(85, 50, 11),
                   coco_train=64, coco_test=32),
    "demo": Preset(h36m_train=((300, 2), (287, 2), (312, 2), (296, 2)), h36m_test=((250, 2), (261, 1), (14, 1)),
                   pw3d_train=(300, 291, 306, 284, 315, 297, 288, 310), pw3d_test=(250, 229, 263, 13),
                   coco_train=512, coco_test=128),
}


@dataclass
class _Camera:
    """A pinhole camera: world -> camera rotation, centre, intrinsics and image size."""

    rotation: np.ndarray          # (3, 3) world -> camera (x right, y down, z forward)
    centre: np.ndarray            # (F, 3) m, world, per frame (a fixed camera repeats one row)
    focal: tuple[float, float]    # px
    principal: tuple[float, float]  # px
    size: tuple[int, int]         # (W, H) px


@dataclass
class _Take:
    """One sequence (or one COCO image) before rendering: GT motion in the world frame and its camera."""

    source: str
    rng: np.random.Generator
    euler: np.ndarray             # (F, 24, 3) rad; joint 0 = (lean, yaw offset, sway) of the pelvis
    heading: np.ndarray           # (F,) rad, body forward = (sin h, 0, cos h)
    root: np.ndarray              # (F, 3) m, world root position; y = vertical offset from standing
    betas: np.ndarray             # (10,)
    camera: _Camera
    motion: int                   # takes of one motion seen by several cameras share this index
    camera_name: str | None = None
    fps: float = 30.0
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------------
# Motion
# ------------------------------------------------------------------------------------------------------
def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def smooth_noise(rng: np.random.Generator, t: np.ndarray, shape: tuple[int, ...], std: float,
                 freq_hz: tuple[float, float], waves: int = 4) -> np.ndarray:
    """A smooth random signal: per channel a sum of ``waves`` sinusoids with random frequency and phase.

    Args:
        t: (F,) s. shape: channel shape. std: standard deviation of each channel over time.
    Returns:
        (F, *shape).
    """
    freqs = rng.uniform(*freq_hz, size=(*shape, waves))
    phases = rng.uniform(0.0, 2.0 * np.pi, size=(*shape, waves))
    arg = 2.0 * np.pi * freqs * t.reshape(-1, *([1] * (len(shape) + 1))) + phases   # (F, *shape, waves)
    return np.sin(arg).sum(axis=-1) * std * math.sqrt(2.0 / waves)


def _segments(rng: np.random.Generator, duration: float, probs: tuple[float, ...]) -> list[tuple[str, float]]:
    """Activities and their start times (s) covering [0, duration]."""
    out: list[tuple[str, float]] = []
    start = 0.0
    while start < duration:
        out.append((ACTIVITIES[rng.choice(len(ACTIVITIES), p=probs)], start))
        start += rng.uniform(*SEGMENT_S)
    return out


def _segment_weights(t: np.ndarray, starts: list[float]) -> np.ndarray:
    """(K, F) cross-fade weights of K consecutive segments; they sum to one at every frame."""
    up = [np.ones_like(t)] + [smoothstep((t - s) / RAMP_S + 0.5) for s in starts[1:]]
    up.append(np.zeros_like(t))
    return np.stack([up[k] - up[k + 1] for k in range(len(starts))])


def set_side(euler: np.ndarray, joint: str, left: np.ndarray | float, right: np.ndarray | float,
              axis: int) -> None:
    """Add an anatomical angle (deg, left-side convention) to both sides; the right side is mirrored."""
    sign = 1.0 if axis == 0 else -1.0
    euler[:, SMPL_JOINT_INDEX["left_" + joint], axis] += left
    euler[:, SMPL_JOINT_INDEX["right_" + joint], axis] += sign * right


@dataclass(frozen=True)
class _Gait:
    freq_hz: float
    speed_m_s: float
    hip_deg: float
    knee_deg: float
    arm_deg: float
    phase: float


def _sample_gait(rng: np.random.Generator) -> _Gait:
    freq = rng.uniform(0.8, 1.0)
    return _Gait(freq_hz=freq, speed_m_s=freq * rng.uniform(1.2, 1.5), hip_deg=rng.uniform(18, 28),
                 knee_deg=rng.uniform(45, 60), arm_deg=rng.uniform(12, 25), phase=rng.uniform(0, 2 * np.pi))


def _walk(t: np.ndarray, gait: _Gait, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Gait-cycle angles (F, 24, 3) deg and the pelvis bob (F,) m, at ``scale`` of the full amplitude."""
    phi = 2 * np.pi * gait.freq_hz * t + gait.phase
    e = np.zeros((len(t), SMPL_NUM_JOINTS, 3))
    set_side(e, "hip", -gait.hip_deg * np.sin(phi), gait.hip_deg * np.sin(phi), 0)
    set_side(e, "knee", gait.knee_deg * ((1 + np.cos(phi)) / 2) ** 2,
              gait.knee_deg * ((1 - np.cos(phi)) / 2) ** 2, 0)
    set_side(e, "ankle", -8 * np.cos(phi), 8 * np.cos(phi), 0)
    set_side(e, "shoulder", gait.arm_deg * np.sin(phi), -gait.arm_deg * np.sin(phi), 0)
    set_side(e, "elbow", -8 * (1 - np.sin(phi)) / 2, -8 * (1 + np.sin(phi)) / 2, 1)
    e[:, 0, 1] += 5 * np.sin(phi)                       # pelvis yaw with the stride
    e[:, SMPL_JOINT_INDEX["spine2"], 1] -= 4 * np.sin(phi)            # counter-rotation of the trunk
    bob = -0.02 * np.cos(2 * phi)
    return e * scale, bob * scale


def _arms(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Raise-and-lower cycles of one or both arms, (F, 24, 3) deg."""
    period = rng.uniform(2.0, 3.5)
    env = np.sin(np.pi * (t - rng.uniform(0, period)) / period) ** 2
    amp = rng.uniform(0.8, 1.0)
    mode = ("lateral", "frontal", "wave")[rng.integers(3)]
    sides = ((1.0, 1.0), (1.0, 0.0), (0.0, 1.0))[rng.integers(3)]
    e = np.zeros((len(t), SMPL_NUM_JOINTS, 3))
    if mode == "lateral":
        set_side(e, "shoulder", sides[0] * amp * 140 * env, sides[1] * amp * 140 * env, 2)
    elif mode == "frontal":
        set_side(e, "shoulder", -sides[0] * amp * 130 * env, -sides[1] * amp * 130 * env, 0)
        set_side(e, "elbow", sides[0] * 30 * env, sides[1] * 30 * env, 1)   # straighten the arm
    else:
        wave = np.sin(2 * np.pi * 1.5 * t)
        left, right = (1.0, 0.0) if sides[0] else (0.0, 1.0)
        set_side(e, "shoulder", left * amp * 110 * env, right * amp * 110 * env, 2)
        set_side(e, "elbow", -left * (70 + 25 * wave) * env, -right * (70 + 25 * wave) * env, 1)
    return e


def _squat(rng: np.random.Generator, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squat cycles, (F, 24, 3) deg, and the pelvis drop (F,) m (positive = down)."""
    period = rng.uniform(2.0, 3.5)
    depth = rng.uniform(35, 65)
    h = depth * np.sin(np.pi * (t - rng.uniform(0, period)) / period) ** 2
    e = np.zeros((len(t), SMPL_NUM_JOINTS, 3))
    set_side(e, "hip", -h, -h, 0)
    set_side(e, "knee", 2 * h, 2 * h, 0)
    set_side(e, "ankle", -h, -h, 0)                    # hip + knee + ankle = 0: the foot stays flat
    for spine in ("spine1", "spine2", "spine3"):
        e[:, SMPL_JOINT_INDEX[spine], 0] += 0.15 * h                  # lean the trunk forward
    set_side(e, "shoulder", -0.9 * h, -0.9 * h, 0)     # arms forward for balance
    drop = LEG_LENGTH_M * (1 - np.cos(np.radians(h)))
    return e, drop


def _rest_posture(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Arms down, soft elbows and knees, per-sequence offsets and slow sway; (F, 24, 3) deg."""
    e = np.zeros((len(t), SMPL_NUM_JOINTS, 3))
    set_side(e, "shoulder", -rng.uniform(70, 78), -rng.uniform(70, 78), 2)
    set_side(e, "elbow", -rng.uniform(*REST_ELBOW_DEG), -rng.uniform(*REST_ELBOW_DEG), 1)
    set_side(e, "knee", 3.0, 3.0, 0)
    e[:, SMPL_JOINT_INDEX["spine1"], 0] += rng.uniform(-4, 4)
    for name, std in (("spine1", 1.5), ("spine2", 1.5), ("spine3", 1.5), ("neck", 4.0), ("head", 6.0)):
        e[:, SMPL_JOINT_INDEX[name]] += smooth_noise(rng, t, (3,), std, SWAY_FREQ_HZ)
    for side in ("left", "right"):   # forearms and hands are never still
        e[:, SMPL_JOINT_INDEX[f"{side}_elbow"], 1] += smooth_noise(rng, t, (), ELBOW_SWAY_DEG, SWAY_FREQ_HZ)
        e[:, SMPL_JOINT_INDEX[f"{side}_wrist"]] += smooth_noise(rng, t, (3,), WRIST_SWAY_DEG, SWAY_FREQ_HZ)
    return e


def clip_to_limits(euler_deg: np.ndarray) -> np.ndarray:
    """Clip (F, 24, 3) deg to ``JOINT_LIMITS_DEG`` (joint 0, the pelvis, is not clipped)."""
    lo = np.full((SMPL_NUM_JOINTS, 3), -20.0)
    hi = np.full((SMPL_NUM_JOINTS, 3), 20.0)
    lo[0], hi[0] = -np.inf, np.inf
    for name, limits in JOINT_LIMITS_DEG.items():
        arr = np.asarray(limits, dtype=float)            # (3, 2)
        if name in SMPL_JOINT_INDEX:
            lo[SMPL_JOINT_INDEX[name]], hi[SMPL_JOINT_INDEX[name]] = arr[:, 0], arr[:, 1]
            continue
        lo[SMPL_JOINT_INDEX["left_" + name]], hi[SMPL_JOINT_INDEX["left_" + name]] = arr[:, 0], arr[:, 1]
        mirrored = arr.copy()
        mirrored[1:] = -arr[1:, ::-1]                    # y, z mirrored: [a, b] -> [-b, -a]
        lo[SMPL_JOINT_INDEX["right_" + name]], hi[SMPL_JOINT_INDEX["right_" + name]] = mirrored[:, 0], mirrored[:, 1]
    return np.clip(euler_deg, lo, hi)


def sequence_motion(rng: np.random.Generator, n_frames: int, fps: float,
                    probs: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """One sequence of GT motion in the world frame (y up).

    Returns:
        euler (F, 24, 3) rad: intrinsic XYZ per joint; joint 0 holds the pelvis (lean, yaw offset, sway).
        heading (F,) rad: body forward = (sin h, 0, cos h).
        root (F, 3) m: root position on the ground plane (x, z) and its vertical offset (y, <= ~0).
        activity: the activity that fills most of the sequence (names the sequence).
    """
    t = np.arange(n_frames) / fps
    segments = _segments(rng, n_frames / fps, probs)
    weights = _segment_weights(t, [start for _, start in segments])   # (K, F)
    gait = _sample_gait(rng)
    euler = _rest_posture(rng, t)
    speed = np.zeros(n_frames)
    turn = np.zeros(n_frames)
    vertical = np.zeros(n_frames)
    for (activity, _), w in zip(segments, weights):
        if activity in ("walk", "turn"):
            e, bob = _walk(t, gait, 1.0 if activity == "walk" else 0.4)
            vertical += w * bob
            if activity == "walk":
                speed += w * gait.speed_m_s
            else:
                turn += w * rng.choice((-1.0, 1.0)) * rng.uniform(0.6, 1.2)
        elif activity == "arms":
            e = _arms(rng, t)
        else:
            e, drop = _squat(rng, t)
            vertical -= w * drop
        euler += w[:, None, None] * e
    euler = np.radians(clip_to_limits(euler))
    wander = smooth_noise(rng, t, (), WANDER_RAD_S, (0.05, 0.3))
    heading = np.empty(n_frames)
    ground = np.empty((n_frames, 2))                     # (x, z)
    heading[0] = rng.uniform(0, 2 * np.pi)
    ground[0] = rng.uniform(-0.5, 0.5, size=2)
    dt = 1.0 / fps
    for f in range(n_frames - 1):
        x, z = ground[f]
        dist = math.hypot(x, z)
        home = HOME_GAIN_RAD_S * math.sin(math.atan2(-x, -z) - heading[f]) * float(
            smoothstep(np.asarray((dist - HOME_RADIUS_M[0]) / (HOME_RADIUS_M[1] - HOME_RADIUS_M[0]))))
        walking = speed[f] / gait.speed_m_s
        heading[f + 1] = heading[f] + dt * (turn[f] + walking * (wander[f] + home))
        ground[f + 1] = ground[f] + dt * speed[f] * np.array([math.sin(heading[f]), math.cos(heading[f])])
    root = np.stack([ground[:, 0], vertical, ground[:, 1]], axis=-1)
    share = {a: sum(w.sum() for (b, _), w in zip(segments, weights) if b == a) for a in ACTIVITIES}
    return euler, heading, root, max(ACTIVITIES, key=lambda a: share[a])


def world_rotations(euler: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """(F, 24, 3) rad Euler + (F,) heading -> (F, 24, 3, 3) rotations; joint 0 in the world frame."""
    n = len(heading)
    body = Rotation.from_euler("XYZ", euler[:, 1:].reshape(-1, 3)).as_matrix().reshape(n, -1, 3, 3)
    pelvis = Rotation.from_euler("YXZ", np.stack(
        [heading + euler[:, 0, 1], euler[:, 0, 0], euler[:, 0, 2]], axis=-1)).as_matrix()    # (F, 3, 3)
    return np.concatenate([pelvis[:, None], body], axis=1)


# ------------------------------------------------------------------------------------------------------
# Cameras and 2D
# ------------------------------------------------------------------------------------------------------
def look_at(centre: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(3, 3) world -> camera rotation (x right, y down, z forward) of a level camera at ``centre``."""
    forward = (target - centre) / np.linalg.norm(target - centre)
    right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward])


def project(points_cam: np.ndarray, focal: tuple[float, float], principal: tuple[float, float]) -> np.ndarray:
    """Pinhole projection: (..., 3) m camera frame -> (..., 2) px."""
    uv = points_cam[..., :2] / points_cam[..., 2:3]
    return uv * np.asarray(focal) + np.asarray(principal)


def _backoff(points_cam: np.ndarray, camera: _Camera) -> float:
    """Distance (m) to move the camera back along its axis so every point is inside the image margin."""
    (fx, fy), (cx, cy), (w, h) = camera.focal, camera.principal, camera.size
    margin = FRAME_MARGIN * min(w, h)
    x, y, z = points_cam[..., 0], points_cam[..., 1], points_cam[..., 2]
    need = np.maximum.reduce([
        np.full_like(z, MIN_DEPTH_M),
        fx * x / (w - margin - cx), -fx * x / (cx - margin),
        fy * y / (h - margin - cy), -fy * y / (cy - margin),
    ])
    return float(max(0.0, (need - z).max()))


def detections(rng: np.random.Generator, uv: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Detector-like 2D from exact projections: Gaussian noise, outliers, correlated confidence.

    Args:
        uv: (F, 17, 2) px exact projections.
        size: the image (W, H) px; detections never leave it.
    Returns:
        joint_2d (F, 17, 2) px, confidence (F, 17) in [0, 1].
    """
    noise = rng.normal(0.0, KP2D_SIGMA_PX, size=uv.shape)
    err = np.linalg.norm(noise, axis=-1)
    conf = KP2D_CONF_MAX * np.exp(-0.5 * (err / (3 * KP2D_SIGMA_PX)) ** 2)
    conf += rng.normal(0.0, KP2D_CONF_NOISE, size=conf.shape)
    outlier = rng.random(size=err.shape) < KP2D_OUTLIER_PROB
    angle = rng.uniform(0, 2 * np.pi, size=err.shape)
    jump = rng.uniform(*KP2D_OUTLIER_PX, size=err.shape)
    jump_xy = np.stack([np.cos(angle), np.sin(angle)], axis=-1) * jump[..., None]
    noise = np.where(outlier[..., None], jump_xy, noise)
    conf = np.where(outlier, rng.uniform(*KP2D_OUTLIER_CONF, size=err.shape), conf)
    kp = np.clip(uv + noise, 0.0, np.asarray(size, dtype=np.float64) - 1)
    return kp, np.clip(conf, 0.0, 1.0)


def hybrik_noise(rng: np.random.Generator, n: int, t: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Rotation noise of the HybrIK-like prediction, composed as R_gt Exp(jitter) Exp(bias).

    Args:
        n: frames.
        t: (n,) s for a sequence (slow bias); None for independent images (bias drawn per image).
    Returns:
        jitter, bias: (n, 24, 3) rad rotation vectors.
    """
    jitter = rng.normal(0.0, np.radians(HYBRIK_JITTER_DEG), size=(n, SMPL_NUM_JOINTS, 3))
    if t is None:
        bias = rng.normal(0.0, np.radians(HYBRIK_BIAS_DEG), size=(n, SMPL_NUM_JOINTS, 3))
    else:
        bias = smooth_noise(rng, t, (SMPL_NUM_JOINTS, 3), np.radians(HYBRIK_BIAS_DEG), HYBRIK_BIAS_FREQ_HZ)
    return jitter, bias


# ------------------------------------------------------------------------------------------------------
# Takes: sequences and images of each dataset
# ------------------------------------------------------------------------------------------------------
def _rng(seed: int, dataset: str, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _DATASET_ID[dataset], _SPLIT_ID[split], index])


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of (F, C) over ``window`` frames, edges padded with the end values."""
    half = window // 2
    padded = np.concatenate([np.repeat(x[:1], half, 0), x, np.repeat(x[-1:], window - 1 - half, 0)])
    csum = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(padded, axis=0)])
    return (csum[window:] - csum[:-window]) / window


def _camera_around(rng: np.random.Generator, root: np.ndarray, azimuth_deg: float, focal: tuple[float, float],
                   principal: tuple[float, float], size: tuple[int, int], follow_frames: int = 0) -> _Camera:
    """A camera at ``azimuth_deg`` around the person, 3.5-5 m away, 1-2 m high, looking at 1 m height.

    Fixed (``follow_frames`` = 0) it looks at the path's centroid; otherwise it keeps its offset to the
    path smoothed over ``follow_frames`` frames (a camera operator walking along, as in 3DPW).
    """
    n = len(root)
    if follow_frames:
        anchor = moving_average(root, min(follow_frames, n))                      # (F, 3)
    else:
        anchor = np.repeat(root.mean(axis=0, keepdims=True), n, axis=0)
    anchor[:, 1] = AIM_HEIGHT_M
    az = np.radians(azimuth_deg)
    distance = rng.uniform(*CAMERA_DISTANCE_M)
    offset = np.array([distance * np.sin(az), rng.uniform(*CAMERA_HEIGHT_M) - AIM_HEIGHT_M, distance * np.cos(az)])
    rotation = look_at(offset, np.zeros(3))                      # the same view direction in every frame
    return _Camera(rotation=rotation, centre=anchor + offset, focal=focal, principal=principal, size=size)


def _betas(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, GT_BETAS_STD, size=SMPL_NUM_BETAS)


def _h36m_takes(seed: int, split: str, takes_spec: tuple[tuple[int, int], ...]) -> list[_Take]:
    """H36M: each motion (subject, action, subaction) seen by 1-4 of the four cameras, one sequence each."""
    subjects = H36M_SUBJECTS[split]
    betas = {s: _betas(np.random.default_rng([seed, _DATASET_ID["h36m"], 100 + int(s[1:])])) for s in subjects}
    cameras = sorted(H36M_CAMERAS)
    takes, names = [], set()
    for k, (n, views) in enumerate(takes_spec):
        rng = _rng(seed, "h36m", split, k)
        euler, heading, root, activity = sequence_motion(rng, n, FPS["h36m"], ACTIVITY_PROBS["h36m"])
        subject = subjects[k % len(subjects)]
        actions = H36M_ACTIONS[activity]
        action = actions[rng.integers(len(actions))]
        sub = 1
        while f"{subject}_{action}_{sub}" in names:
            sub += 1
        names.add(f"{subject}_{action}_{sub}")
        for v in range(views):
            cam = cameras[(k + 2 * v + v // 2) % len(cameras)]      # opposite corners first
            view_rng = np.random.default_rng([seed, _DATASET_ID["h36m"], _SPLIT_ID[split], k, 1 + v])
            focal, principal, azimuth = H36M_CAMERAS[cam]
            camera = _camera_around(view_rng, root, azimuth, focal, principal, H36M_CAMERA_RES[cam])
            takes.append(_Take(source=f"{subject}_{action}_{sub}.{cam}", rng=view_rng, euler=euler,
                               heading=heading, root=root, betas=betas[subject], camera=camera, camera_name=cam,
                               fps=FPS["h36m"], motion=k))
    return takes


def _pw3d_takes(seed: int, split: str, lengths: tuple[int, ...]) -> list[_Take]:
    places = PW3D_PLACES[split]
    width, height = DATASET_CANVAS["pw3d"]
    takes = []
    for k, n in enumerate(lengths):
        rng = _rng(seed, "pw3d", split, k)
        euler, heading, root, activity = sequence_motion(rng, n, FPS["pw3d"], ACTIVITY_PROBS["pw3d"])
        words = PW3D_ACTIVITIES[activity]
        name = f"{places[k % len(places)]}_{words[rng.integers(len(words))]}_{k:02d}{k % 2}"
        f = rng.uniform(*FOCAL_PX["pw3d"])
        camera = _camera_around(rng, root, rng.uniform(-180, 180), (f, f), (width / 2, height / 2),
                                (width, height), follow_frames=round(PW3D_FOLLOW_S * FPS["pw3d"]))
        takes.append(_Take(source=name, rng=rng, euler=euler, heading=heading, root=root, betas=_betas(rng),
                           camera=camera, motion=k, fps=FPS["pw3d"]))
    return takes


def _coco_takes(seed: int, split: str, n_images: int) -> list[_Take]:
    """Single images: poses drawn from one long motion, each with its own person, heading and camera."""
    pool_rng = _rng(seed, "coco", split, 0)
    euler, _, _, _ = sequence_motion(pool_rng, 2 * n_images, FPS["coco"], ACTIVITY_PROBS["coco"])
    frames = pool_rng.choice(len(euler), size=n_images, replace=False)
    image_ids = 1 + pool_rng.choice(COCO_MAX_IMAGE_ID - 1, size=n_images, replace=False)
    width, height = DATASET_CANVAS["coco"]
    prefix = f"{COCO_FOLDERS[split]}/COCO_{COCO_FOLDERS[split]}"
    takes = []
    for k, frame in enumerate(frames):
        rng = _rng(seed, "coco", split, k + 1)
        image_id = int(image_ids[k])
        root = np.zeros((1, 3))
        f = rng.uniform(*FOCAL_PX["coco"])
        camera = _camera_around(rng, root, rng.uniform(-180, 180), (f, f), (width / 2, height / 2), (width, height))
        takes.append(_Take(source=f"{prefix}_{image_id:012d}.jpg", rng=rng, euler=euler[frame][None],
                           heading=rng.uniform(0, 2 * np.pi, size=1), root=root, betas=_betas(rng), camera=camera,
                           motion=k, fps=FPS["coco"], extra={"image_id": image_id}))
    return takes


# ------------------------------------------------------------------------------------------------------
# Rendering a split
# ------------------------------------------------------------------------------------------------------
def smpl_joints(body_model: torch.nn.Module, rot: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched SMPL on CPU: (B, 24, 3, 3), (B, 10) -> root joint (B, 3) m and H36M-17 joints (B, 17, 3) m."""
    roots, joints = [], []
    with torch.no_grad():
        for i in range(0, len(rot), SMPL_CHUNK):
            out = body_model(torch.as_tensor(rot[i:i + SMPL_CHUNK], dtype=torch.float32),
                             torch.as_tensor(betas[i:i + SMPL_CHUNK], dtype=torch.float32))
            roots.append(out.joints[:, 0].double().numpy())
            joints.append(body_model.h36m_joints(out.vertices).double().numpy())
    return np.concatenate(roots), np.concatenate(joints)


def standing_heights(body_model: torch.nn.Module, betas: np.ndarray) -> np.ndarray:
    """(K,) m: height of the root joint above the lowest vertex in the rest pose, per betas (K, 10)."""
    heights = []
    with torch.no_grad():
        for i in range(0, len(betas), SMPL_CHUNK):
            chunk = torch.as_tensor(betas[i:i + SMPL_CHUNK], dtype=torch.float32)
            rest = torch.eye(3).expand(len(chunk), SMPL_NUM_JOINTS, 3, 3)
            out = body_model(rest, chunk)
            heights.append((out.joints[:, 0, 1] - out.vertices[..., 1].amin(dim=1)).double().numpy())
    return np.concatenate(heights)


def _render(takes: list[_Take], body_model: torch.nn.Module, dataset: str, split: str) -> dict[str, Any]:
    """GT in the camera frame, 2D detections and the HybrIK-like prediction of every take, concatenated."""
    # SMPL runs once per motion in the world frame; each camera's view is a rigid transform of it.
    motions = {take.motion: take for take in reversed(takes)}        # first take of each motion
    order = sorted(motions)
    n_frames = [len(motions[m].heading) for m in order]
    first = dict(zip(order, np.cumsum([0] + n_frames[:-1])))
    rot_world = world_rotations(np.concatenate([motions[m].euler for m in order]),
                                np.concatenate([motions[m].heading for m in order]))      # (M, 24, 3, 3)
    betas_world = np.concatenate([np.repeat(motions[m].betas[None], n, axis=0) for m, n in zip(order, n_frames)])
    root_joint, h36m_world = smpl_joints(body_model, rot_world, betas_world)
    standing = dict(zip(order, standing_heights(body_model, np.stack([motions[m].betas for m in order]))))

    cols: dict[str, list] = {k: [] for k in ("joint_2d", "confidence", "joint_cam", "rot_cam", "betas", "jitter",
                                             "bias", "pred_smpl_shape")}
    img_hw, image_id, source, camera_name = [], [], [], []
    for i, take in enumerate(takes):
        n = len(take.heading)
        sl = slice(first[take.motion], first[take.motion] + n)
        cam = take.camera
        root = take.root + np.array([0.0, standing[take.motion], 0.0])            # (n, 3) world
        joints_world = h36m_world[sl] - root_joint[sl][:, None] + root[:, None]     # (n, 17, 3)
        joints_cam = (joints_world - cam.centre[:, None]) @ cam.rotation.T
        joints_cam[..., 2] += _backoff(joints_cam, cam)
        rot_cam = rot_world[sl].copy()
        rot_cam[:, 0] = cam.rotation @ rot_cam[:, 0]                                # global orientation
        kp, conf = detections(take.rng, project(joints_cam, cam.focal, cam.principal), cam.size)
        jitter, bias = hybrik_noise(take.rng, n, None if dataset == "coco" else np.arange(n) / take.fps)
        pred_betas = (take.betas + take.rng.normal(0, HYBRIK_BETAS_OFFSET_STD, SMPL_NUM_BETAS)
                      + take.rng.normal(0, HYBRIK_BETAS_JITTER_STD, (n, SMPL_NUM_BETAS)))
        for key, value in (("joint_2d", kp), ("confidence", conf[..., None]), ("joint_cam", joints_cam * MM_PER_M),
                           ("rot_cam", rot_cam), ("betas", np.repeat(take.betas[None], n, axis=0)),
                           ("jitter", jitter), ("bias", bias), ("pred_smpl_shape", pred_betas)):
            cols[key].append(value)
        width, height = cam.size
        img_hw += [(height, width)] * n
        base = take.extra.get("image_id", 100_000 * (i + 1))
        image_id += [np.array([base + j], dtype=np.int64) for j in range(n)]
        source += [take.source] * n
        camera_name += [take.camera_name] * n

    gt = Rotation.from_matrix(np.concatenate(cols["rot_cam"]).reshape(-1, 3, 3))
    noise = (Rotation.from_rotvec(np.concatenate(cols["jitter"]).reshape(-1, 3))
             * Rotation.from_rotvec(np.concatenate(cols["bias"]).reshape(-1, 3)))
    total = len(source)
    float_2d = np.float32 if split == "train" else np.float64
    out: dict[str, Any] = {
        "joint_2d": np.concatenate(cols["joint_2d"]).astype(float_2d),
        "confidence": np.concatenate(cols["confidence"]).astype(float_2d),
        "joint_cam": np.concatenate(cols["joint_cam"]).astype(np.float64),
        "smpl_pose": gt.as_rotvec().reshape(total, -1).astype(np.float64),
        "smpl_shape": np.concatenate(cols["betas"]).astype(np.float64),
        "img_hw": img_hw,
        "image_id": image_id,
        "source": source,
        "pred_smpl_pose": (gt * noise).as_rotvec().reshape(total, -1).astype(np.float32),
        "pred_smpl_shape": np.concatenate(cols["pred_smpl_shape"]).astype(np.float32),
    }
    if dataset == "h36m":
        out["camera_name"] = camera_name
    return out


def write_pickle(obj: Any, path: Path) -> None:
    """Pickle with a fixed protocol through ``lib.atomic_write`` (no partial files)."""
    with atomic_open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=PICKLE_PROTOCOL)


STYLE = "a"
# Bumped whenever the output for a given (seed, preset) changes (``lib.data.synthetic.ensure_data_root``
# then rewrites an older data_root). 2: rest arms bend (issue 14).
GENERATOR_VERSION = 2


def generate_data_root(out_dir: str | Path, seed: int = 0, preset: str = "tiny") -> dict[str, Any]:
    """Write a complete style-a synthetic ``data_root`` (see the module docstring).

    Args:
        out_dir: folder to write into (created if missing; existing files of the same names are replaced).
        seed: the only source of randomness; same seed, preset and style -> same bytes.
        preset: ``"tiny"`` (tests) or ``"demo"`` (the embedded demo).
    Returns:
        ``{"out_dir", "seed", "preset", "style", "generator_version", "files": [names], "datasets": {name:
        {"file", "fps", "train": {"frames", "sequences", "seconds"}, "test": {...}}}}``.
    """
    from lib.body.smpl import BodyModel                      # the SMPL boundary; imported on use
    from lib.body.synthetic import write_smpl_assets

    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    sizes = PRESETS[preset]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    smpl_files = write_smpl_assets(out, seed=seed, forms=("chumpy",))
    body_model = BodyModel(out).eval()

    summary: dict[str, Any] = {"out_dir": str(out), "seed": seed, "preset": preset, "style": STYLE,
                               "generator_version": GENERATOR_VERSION, "datasets": {}}
    builders = {
        "h36m": lambda split: _h36m_takes(seed, split, getattr(sizes, f"h36m_{split}")),
        "pw3d": lambda split: _pw3d_takes(seed, split, getattr(sizes, f"pw3d_{split}")),
        "coco": lambda split: _coco_takes(seed, split, getattr(sizes, f"coco_{split}")),
    }
    for dataset, build in builders.items():
        data, info = {}, {"file": MESH_FILES[dataset], "fps": FPS[dataset]}
        for split in ("train", "test"):
            takes = build(split)
            data[split] = _render(takes, body_model, dataset, split)
            frames = len(data[split]["source"])
            info[split] = {"frames": frames, "sequences": len(takes), "seconds": round(frames / FPS[dataset], 2)}
        write_pickle(data, out / MESH_FILES[dataset])
        summary["datasets"][dataset] = info
    summary["files"] = sorted([Path(p).name for p in smpl_files.values()] + list(MESH_FILES.values()))
    return summary
