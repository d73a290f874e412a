"""Synthetic data style "b": the same files and formats as style "a", every convention different.

    python -m lib.data.synthetic --out data/demo_b --preset demo --style b      (style b: this module)

``lib.data.synthetic_style_a`` (style "a") documents the files, keys, dtypes and source names; style "b"
writes exactly those (same keys, shapes, dtypes, naming patterns, a test sequence shorter than 16
frames) but draws everything from other distributions, as data a user brings would differ from ours.
All numbers are module constants here (never in configs). Pure function of (seed, preset): same bytes.
RNG streams are disjoint from style a's (an extra stream key), so the two styles share nothing random.

SMPL stand-in
    ``write_smpl_assets(out, seed=seed + SMPL_SEED_OFFSET)`` (7919): other shape / pose blend-shape
    fields. GT betas ~ N(0, ``GT_BETAS_STD`` = 1.0^2) per person (style a: 0.7).

Motion (ground truth)
    Segments of 1.5-3 s (``SEGMENT_S``), cross-faded over 0.3 s, of seven families (style a: walk, turn,
    arms, squat, segments of 2-4 s):
    * run: stride cycle 1.3-1.6 Hz, 1.5-2.0 m per cycle (2-3.2 m/s), hip -50..+15 deg, knee up to
      95-115 deg in swing, elbows bent 80-100 deg, arm swing +-30-40 deg, vertical bob 4 cm, trunk lean;
      the heading wanders (0.35 rad/s) and is steered home (2 rad/s) beyond 0.5-1.5 m;
    * jump: vertical jumps (period 1.2-2.0 s, crouch 30-50 deg, flight 0.15-0.35 m, arms swung up) or
      jumping jacks (period 0.9-1.3 s, arms abducted 150 deg, legs 20 deg, flight 0.05-0.10 m);
    * box: guard (upper arms forward 45 deg, elbows 110-130 deg, knees 20 deg) with punches (Poisson
      1.5-2.5 /s, alternating arms, 0.3 s each: elbow extended, shoulder raised, trunk twist 12 deg);
    * pick: bending down to pick up (period 3-5 s): pelvis tilt 40-70 deg with the legs kept vertical,
      knees 10-40 deg, spine flexion, arms reaching down;
    * sit: sit down / stand up on an invisible chair (period 4-6 s): hips 80-90 deg, knees equal (shin
      vertical), trunk lean 25-35 deg during the transitions, pelvis drops by 0.42 (1 - cos hip) m and
      moves back over the chair by 0.42 sin(hip) m;
    * dance: band-limited (0.3-2 Hz, FFT-filtered white noise) random trajectories of shoulders (35 deg),
      elbows, hips, knees, spine, head and pelvis yaw (25 deg), a beat bounce at 1.6-2.2 Hz, slow turns;
    * idle: slow weight shifts (0.1-0.25 Hz), looking around (neck / head 20 deg), arms hanging,
      crossed or on the hips.
    Rest posture: arms down 60-72 deg, elbows 15-30 deg, knees 5 deg, band-limited sway (0.05-0.6 Hz).
    Clipped to style a's joint limits. Frame rates (the pickle has no fps field: they change the
    per-frame speed): 3DPW 25 or 30 fps drawn per sequence, H36M 50 fps, COCO poses from a 30 fps motion.

Cameras (perspective, x right, y down, z forward; an upright person's global orientation is near pi)
    3DPW: per sequence portrait 1080 x 1920 (W x H, p = 0.55) or landscape 1920 x 1080, focal
    1000-2000 px, principal point within +-2 % of the centre; hand-held: the operator keeps the offset
    to the path smoothed over 1 s, 2.5-5 m away, pitched down or up by 0-20 deg (camera height from the
    pitch, 0.4-2.6 m), swaying (band-limited 0.2-1.5 Hz rotations, 1.5 / 1.0 / 1.5 deg pitch / roll /
    yaw; 2 cm translation). H36M: the four real ids and intrinsics (1000 x 1000 / 1000 x 1002) but other
    placements than style a: heights 2.6 / 0.6 / 2.3 / 0.9 m, distances 6.0 / 5.2 / 6.8 / 5.6 m,
    azimuths 20 / 110 / -160 / -70 deg (+-5 deg, +-0.1 m per motion), fixed, looking at 0.9 m.
    3DPW and H36M back off along the optical axis until every joint is inside (3-4 % margin).
    COCO: images of real sizes (640x480, 480x640, 640x427, 427x640, 500x375, 612x612, 640x360), focal
    0.9-1.6 x max(W, H), camera 0.3-2.5 m high, roll +-6 deg; the person's box is 35-95 % of the image
    height and centred anywhere in the middle 60 %; with p = 0.25 the person is cropped (box 90-150 %
    of the height, centre anywhere): joints outside the image get confidence 0.

2D detections (``joint_2d``, ``confidence``); s = ``KP2D_SCALE_FRAC`` x person box size (0.7 %)
    * noise: Student-t (``KP2D_T_DOF`` = 3) x s per coordinate (heavy tails), plus a per-joint AR(1)
      detector drift (tau 0.4 s, std ``KP2D_DRIFT_FRAC`` = 0.4 % of the box per coordinate);
    * outliers: bursts starting with p = 0.6 % per joint and frame, lasting 1-4 frames, displaced by
      10-35 % of the box in one direction, confidence U(0.3, 0.8) (over-confident);
    * left/right swaps: p = 0.4 % per frame, 2-6 frames, legs or arms exchanged, confidence kept;
    * missing joints: p = 0.3 % per joint and frame, 2-8 frames, confidence exactly 0, coordinates 0 or
      the last seen value (per sequence, p = 0.5 each);
    * confidence = sigmoid(4 - 0.8 e / s) + N(0, 0.03^2), clipped to [0.01, 1], e the displacement
      (style a: Gaussian in e); exactly 0 only for missing joints and joints outside the image.
    Detections are clipped to the image.

HybrIK-like prediction: R_pred = Exp(glitch) Exp(white) Exp(drift) Exp(limb) R_gt (noise on the LEFT,
in the parent's frame; for the global orientation in the camera frame), per joint and frame:
    * white: uniform random axis, angle ~ Gamma(2, ``WHITE_MEAN_DEG`` / 2), mean 2.5 deg;
    * drift: isotropic AR(1) rotation vector per joint, 2.2 deg per axis, time constant 0.3-1.0 s
      (drawn per sequence);
    * limb: one AR(1) vector per chain (legs hip-knee-ankle-foot, arms shoulder-elbow-wrist-hand,
      spine1-spine2-spine3-neck-head),
      3.4 deg per axis, the same 0.3-1.0 s time constant, applied with weight 1 to the chain's first
      joint and 0.5 to the others (whole-limb errors);
    * global: the whole body's orientation, an AR(1) in the camera frame with 4 / 4 / 1 deg on x / y / z
      (depth ambiguity: little in-plane error), time constant 0.5-1.5 s;
    * glitch: with p = 1 % per frame, 2-4 body joints off by 20-40 deg (random axes) for 1-3 frames.
    COCO (single images): every AR(1) term drawn from its stationary distribution per image.
    Mean geodesic angle of R_pred R_gt^T (measured, demo preset): body joints ``MEAN_BODY_ANGLE_DEG``
    = 5.5 deg, global orientation ``MEAN_GLOBAL_ANGLE_DEG`` = 5.8 deg (style a: 7.4 deg, the same on
    every joint), but correlated in time and along the limbs, so it costs more: 14-joint pelvis-aligned
    MPJPE on 3DPW test about 70-80 mm (demo: 76 mm, PA-MPJPE 41 mm; style a: 73 / 47 mm). Betas: ``BETAS_SHRINK`` x GT (0.8, a shrink to the mean) + per-sequence N(0, 0.15^2)
    + per-frame N(0, 0.2^2) (style a: GT + N(0, 0.3^2) + N(0, 0.1^2)).

Axis-angle storage
    ``smpl_pose`` and ``pred_smpl_pose`` hold scipy's canonical ``as_rotvec`` (angle <= pi), which flips
    the axis whenever the global orientation crosses pi, inside sequences, as real files do. For a
    sequence with p = ``CONTINUOUS_ROTVEC_PROB`` = 0.5 (drawn for GT and prediction separately; COCO
    never) the rotation vectors follow a temporally continuous quaternion instead, starting on the
    canonical hemisphere (w >= 0), the global orientation's with p = 0.5 on the other one (a clip cut
    from a longer recording): frames whose quaternion is on the other hemisphere hold the equivalent
    v (1 - 2 pi / |v|) (angle > pi). Both represent the same rotation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from lib.body.joint_names import H36M_JOINT_NAMES, SMPL_NUM_BETAS, SMPL_NUM_JOINTS
from lib.data.keypoints2d import H36M_CAMERA_RES
from lib.data.synthetic_style_a import (
    H36M_CAMERAS,
    MESH_FILES,
    MM_PER_M,
    Preset,
    SMPL_JOINT_INDEX,
    clip_to_limits,
    look_at,
    moving_average,
    project,
    set_side,
    smoothstep,
    smpl_joints,
    standing_heights,
    world_rotations,
    write_pickle,
)

STYLE = "b"
GENERATOR_VERSION = 1  # bumped whenever the output for a given (seed, preset) changes
_STYLE_STREAM = 0xB                # extra RNG stream key: style b never shares a draw with style a
_DATASET_ID = {"h36m": 1, "pw3d": 2, "coco": 3}
_SPLIT_ID = {"train": 1, "test": 2}
SMPL_SEED_OFFSET = 7919
GT_BETAS_STD = 1.0

# --- frame rates -------------------------------------------------------------------------------------
H36M_FPS = 50.0
PW3D_FPS_CHOICES = (25.0, 30.0)
COCO_POOL_FPS = 30.0

# --- motion ------------------------------------------------------------------------------------------
ACTIVITIES = ("run", "jump", "box", "pick", "sit", "dance", "idle")
ACTIVITY_PROBS = {"h36m": (0.15, 0.10, 0.15, 0.15, 0.15, 0.15, 0.15),
                  "pw3d": (0.25, 0.10, 0.15, 0.10, 0.10, 0.15, 0.15),
                  "coco": (0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.10)}
SEGMENT_S = (1.5, 3.0)
RAMP_S = 0.3
WANDER_RAD_S = 0.35
HOME_GAIN_RAD_S = 2.0
HOME_RADIUS_M = (0.5, 1.5)
RUN_REF_SPEED_M_S = 2.5
LEG_LENGTH_M = 0.85
THIGH_M = 0.42
SWAY_BAND_HZ = (0.05, 0.6)
DANCE_BAND_HZ = (0.3, 2.0)
BAND_MIN_S = 8.0                  # band-limited noise is drawn over at least this long, then cut

# --- cameras -----------------------------------------------------------------------------------------
PW3D_SIZES = ((1080, 1920), (1920, 1080))       # (W, H): portrait, landscape
PW3D_PORTRAIT_PROB = 0.55
PW3D_FOCAL_PX = (1000.0, 2000.0)
PW3D_PRINCIPAL_JITTER = 0.02
PW3D_DISTANCE_M = (2.5, 5.0)
PW3D_PITCH_DEG = 20.0
PW3D_AIM_HEIGHT_M = (0.7, 1.2)
PW3D_HEIGHT_RANGE_M = (0.4, 2.6)
PW3D_FOLLOW_S = 1.0
PW3D_SWAY_DEG = (1.5, 1.0, 1.5)                 # pitch (x), roll (z), yaw (y) std
PW3D_SWAY_BAND_HZ = (0.2, 1.5)
PW3D_SHAKE_M = 0.02
PW3D_MARGIN = 0.03
# camera id -> (azimuth deg, height m, distance m)
H36M_PLACEMENT = {"54138969": (20.0, 2.6, 6.0), "55011271": (110.0, 0.6, 5.2),
                  "58860488": (-160.0, 2.3, 6.8), "60457274": (-70.0, 0.9, 5.6)}
H36M_JITTER = (5.0, 0.1, 0.3)                   # +- azimuth deg, height m, distance m per motion
H36M_AIM_HEIGHT_M = 0.9
H36M_MARGIN = 0.04
COCO_SIZES = ((640, 480), (480, 640), (640, 427), (427, 640), (500, 375), (612, 612), (640, 360))
COCO_SIZE_PROBS = (0.30, 0.20, 0.20, 0.10, 0.08, 0.07, 0.05)
COCO_FOCAL_REL = (0.9, 1.6)
COCO_CAMERA_HEIGHT_M = (0.3, 2.5)
COCO_ROLL_DEG = 6.0
COCO_HEIGHT_FRAC = (0.35, 0.95)
COCO_CROP_PROB = 0.25
COCO_CROP_HEIGHT_FRAC = (0.9, 1.5)
MIN_DEPTH_M = 1.0

# --- 2D detections -----------------------------------------------------------------------------------
KP2D_SCALE_FRAC = 0.007
KP2D_T_DOF = 3.0
KP2D_DRIFT_FRAC = 0.004
KP2D_DRIFT_TAU_S = 0.4
KP2D_OUTLIER_START = 0.006
KP2D_OUTLIER_FRAMES = (1, 4)
KP2D_OUTLIER_FRAC = (0.10, 0.35)
KP2D_OUTLIER_CONF = (0.3, 0.8)
KP2D_SWAP_START = 0.004
KP2D_SWAP_FRAMES = (2, 6)
KP2D_MISSING_START = 0.003
KP2D_MISSING_FRAMES = (2, 8)
KP2D_STALE_PROB = 0.5
KP2D_CONF_BIAS = 4.0
KP2D_CONF_SLOPE = 0.8
KP2D_CONF_NOISE = 0.03
KP2D_CONF_MIN = 0.01
KP2D_MIN_BOX_PX = 40.0
_H36M_LEGS = tuple(tuple(H36M_JOINT_NAMES.index(f"{side}_{j}") for j in ("hip", "knee", "ankle"))
                   for side in ("left", "right"))
_H36M_ARMS = tuple(tuple(H36M_JOINT_NAMES.index(f"{side}_{j}") for j in ("shoulder", "elbow", "wrist"))
                   for side in ("left", "right"))

# --- HybrIK-like prediction --------------------------------------------------------------------------
WHITE_MEAN_DEG = 2.5
WHITE_GAMMA_SHAPE = 2.0
DRIFT_DEG = 2.2
DRIFT_TAU_S = (0.3, 1.0)
LIMB_DEG = 3.4
LIMB_WEIGHTS = (1.0, 0.5)                       # first joint of the chain, the others
GLOBAL_DEG = (4.0, 4.0, 1.0)                    # camera x, y, z
GLOBAL_TAU_S = (0.5, 1.5)
GLITCH_PROB = 0.01
GLITCH_FRAMES = (1, 3)
GLITCH_JOINTS = (2, 4)
GLITCH_DEG = (20.0, 40.0)
MEAN_BODY_ANGLE_DEG = 5.5                       # measured mean geodesic angle of R_pred R_gt^T (demo)
MEAN_GLOBAL_ANGLE_DEG = 5.8
BETAS_SHRINK = 0.8
BETAS_OFFSET_STD = 0.15
BETAS_JITTER_STD = 0.2
CONTINUOUS_ROTVEC_PROB = 0.5
CHAINS = tuple(tuple(SMPL_JOINT_INDEX[name] for name in chain) for chain in (
    ("left_hip", "left_knee", "left_ankle", "left_foot"),
    ("right_hip", "right_knee", "right_ankle", "right_foot"),
    ("left_shoulder", "left_elbow", "left_wrist", "left_hand"),
    ("right_shoulder", "right_elbow", "right_wrist", "right_hand"),
    ("spine1", "spine2", "spine3", "neck", "head"),
))

# --- names -------------------------------------------------------------------------------------------
H36M_SUBJECTS = {"train": ("S1", "S5", "S6", "S7", "S8"), "test": ("S9", "S11")}
H36M_ACTIONS = {"run": ("Walking", "WalkDog"), "jump": ("Directions", "Posing"),
                "box": ("Discussion", "Greeting"), "pick": ("Purchases", "Eating"),
                "sit": ("Sitting", "SittingDown"), "dance": ("Photo", "Smoking"), "idle": ("Waiting", "Phoning")}
PW3D_PLACES = {"train": ("courtyard", "outdoors"), "test": ("downtown", "flat", "office")}
PW3D_ACTIVITIES = {"run": ("runForBus", "crosscountry", "slalom"), "jump": ("jumpBench", "parcours"),
                   "box": ("box", "fencing", "capoeira"), "pick": ("laceShoe", "packBags", "backpack"),
                   "sit": ("relaxOnBench", "sitOnStairs"), "dance": ("dancing", "freestyle"),
                   "idle": ("phoneCall", "goodNews", "arguing")}
COCO_FOLDERS = {"train": "train2014", "test": "val2014"}
COCO_MAX_IMAGE_ID = 600_000

PRESETS = {
    "tiny": Preset(h36m_train=((80, 2), (66, 1), (72, 2)), h36m_test=((70, 2), (11, 1)),
                   pw3d_train=(52, 47, 61, 44, 58, 40), pw3d_test=(57, 43, 38, 9),
                   coco_train=72, coco_test=36),
    "demo": Preset(h36m_train=((260, 2), (244, 2), (275, 1), (238, 2), (251, 2)),
                   h36m_test=((221, 2), (208, 1), (12, 1)),
                   pw3d_train=(171, 158, 190, 146, 183, 162, 177, 149, 195, 168, 155, 187, 174, 141),
                   pw3d_test=(183, 152, 201, 167, 144, 10),
                   coco_train=600, coco_test=150),
}


def _rng(seed: int, dataset: str, split: str, index: int, *more: int) -> np.random.Generator:
    return np.random.default_rng([seed, _STYLE_STREAM, _DATASET_ID[dataset], _SPLIT_ID[split], index, *more])


# ------------------------------------------------------------------------------------------------------
# Random signals
# ------------------------------------------------------------------------------------------------------
def band_noise(rng: np.random.Generator, n: int, fps: float, shape: tuple[int, ...], std: float | np.ndarray,
               band_hz: tuple[float, float]) -> np.ndarray:
    """Band-limited Gaussian noise (FFT-filtered white noise), (n, *shape), std ``std`` per channel."""
    m = max(n, int(math.ceil(BAND_MIN_S * fps)))
    x = rng.standard_normal((m, *shape))
    spec = np.fft.rfft(x, axis=0)
    freq = np.fft.rfftfreq(m, 1.0 / fps)
    spec[(freq < band_hz[0]) | (freq > band_hz[1])] = 0.0
    y = np.fft.irfft(spec, n=m, axis=0)
    y /= y.std(axis=0, keepdims=True) + 1e-12
    return y[:n] * std


def ar1(rng: np.random.Generator, n: int, shape: tuple[int, ...], std: float | np.ndarray,
        tau_frames: float | None) -> np.ndarray:
    """Stationary AR(1) noise (n, *shape) with std ``std`` and time constant ``tau_frames``.

    ``tau_frames`` None: independent draws from the stationary distribution (single images)."""
    eps = rng.standard_normal((n, *shape))
    if tau_frames is None:
        return eps * std
    a = math.exp(-1.0 / tau_frames)
    out = np.empty_like(eps)
    out[0] = eps[0]
    b = math.sqrt(1.0 - a * a)
    for f in range(1, n):
        out[f] = a * out[f - 1] + b * eps[f]
    return out * std


def _events(rng: np.random.Generator, n: int, shape: tuple[int, ...], start_prob: float,
            frames: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Bursts: each (frame, channel) starts one with ``start_prob``, lasting ``frames`` (inclusive) frames.

    Returns:
        active (n, *shape) bool; origin (n, *shape) int: the frame where the active burst started (0 if none).
    """
    start = rng.random((n, *shape)) < start_prob
    length = rng.integers(frames[0], frames[1] + 1, size=(n, *shape))
    active = np.zeros((n, *shape), dtype=bool)
    origin = np.zeros((n, *shape), dtype=np.int64)
    index = np.arange(n).reshape(-1, *([1] * len(shape)))
    for d in range(frames[1]):
        s = start[:n - d] & (length[:n - d] > d)
        active[d:] |= s
        origin[d:] = np.where(s, np.broadcast_to(index[:n - d], s.shape), origin[d:])
    return active, origin


def _random_axes(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    v = rng.standard_normal((*shape, 3))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# ------------------------------------------------------------------------------------------------------
# Motion
# ------------------------------------------------------------------------------------------------------
@dataclass
class _Move:
    """One activity's contribution: Euler angles (F, 24, 3) deg and root signals (F,)."""

    euler: np.ndarray
    vertical: np.ndarray | float = 0.0     # m, up
    speed: np.ndarray | float = 0.0        # m/s along the heading
    turn: np.ndarray | float = 0.0         # rad/s
    back: np.ndarray | float = 0.0         # m, root displaced backwards (sitting over a chair)


def _zeros(t: np.ndarray) -> np.ndarray:
    return np.zeros((len(t), SMPL_NUM_JOINTS, 3))


def _bump(s: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A C1 bump of half-width ``width`` around ``centre`` on a phase s in [0, 1)."""
    x = np.clip((s - centre) / width, -1.0, 1.0)
    return np.cos(0.5 * np.pi * x) ** 2


def _run(rng: np.random.Generator, t: np.ndarray, fps: float) -> _Move:
    freq = rng.uniform(1.3, 1.6)
    phi = 2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)
    e = _zeros(t)
    set_side(e, "hip", -17.5 - 32.5 * np.sin(phi), -17.5 + 32.5 * np.sin(phi), 0)
    knee = rng.uniform(95, 115)
    set_side(e, "knee", 15 + knee * ((1 + np.cos(phi + 0.6)) / 2) ** 2,
              15 + knee * ((1 - np.cos(phi + 0.6)) / 2) ** 2, 0)
    set_side(e, "ankle", -15 * np.cos(phi), 15 * np.cos(phi), 0)
    arm = rng.uniform(30, 40)
    set_side(e, "shoulder", arm * np.sin(phi), -arm * np.sin(phi), 0)
    set_side(e, "elbow", -rng.uniform(80, 100), -rng.uniform(80, 100), 1)
    e[:, 0, 1] += 8 * np.sin(phi)
    e[:, SMPL_JOINT_INDEX["spine2"], 1] -= 8 * np.sin(phi)
    for spine in ("spine1", "spine2"):
        e[:, SMPL_JOINT_INDEX[spine], 0] += rng.uniform(4, 7)
    return _Move(euler=e, vertical=0.04 * np.cos(2 * phi), speed=freq * rng.uniform(1.5, 2.0))


def _jump(rng: np.random.Generator, t: np.ndarray, fps: float) -> _Move:
    e = _zeros(t)
    if rng.random() < 0.6:                                       # vertical jumps
        period = rng.uniform(1.2, 2.0)
        s = ((t - rng.uniform(0, period)) / period) % 1.0
        crouch = rng.uniform(30, 50) * (_bump(s, 0.25, 0.15) + 0.7 * _bump(s, 0.78, 0.08))
        flight = np.where((s > 0.45) & (s < 0.7), np.sin(np.pi * (s - 0.45) / 0.25), 0.0)
        set_side(e, "hip", -crouch, -crouch, 0)
        set_side(e, "knee", 2 * crouch, 2 * crouch, 0)
        set_side(e, "ankle", -crouch + 20 * flight, -crouch + 20 * flight, 0)
        for spine in ("spine1", "spine2", "spine3"):
            e[:, SMPL_JOINT_INDEX[spine], 0] += 0.3 * crouch
        swing = 40 * _bump(s, 0.3, 0.15) - 150 * _bump(s, 0.55, 0.15)
        set_side(e, "shoulder", swing, swing, 0)
        vertical = rng.uniform(0.15, 0.35) * flight - LEG_LENGTH_M * (1 - np.cos(np.radians(crouch)))
    else:                                                        # jumping jacks
        period = rng.uniform(0.9, 1.3)
        s = ((t - rng.uniform(0, period)) / period) % 1.0
        spread = np.sin(np.pi * s) ** 2
        set_side(e, "shoulder", 150 * spread, 150 * spread, 2)
        set_side(e, "hip", 0.0, 0.0, 0)
        set_side(e, "hip", 20 * spread, 20 * spread, 2)
        set_side(e, "knee", 15 * np.cos(np.pi * s) ** 2, 15 * np.cos(np.pi * s) ** 2, 0)
        vertical = rng.uniform(0.05, 0.10) * np.abs(np.sin(2 * np.pi * s))
    return _Move(euler=e, vertical=vertical)


def _box(rng: np.random.Generator, t: np.ndarray, fps: float) -> _Move:
    e = _zeros(t)
    set_side(e, "shoulder", -45.0, -45.0, 0)
    set_side(e, "shoulder", 40.0, 40.0, 2)                    # upper arms up from hanging, towards the front
    guard = rng.uniform(110, 130)
    set_side(e, "elbow", -guard, -guard, 1)
    set_side(e, "knee", 20.0, 20.0, 0)
    set_side(e, "hip", -12.0, -12.0, 0)
    set_side(e, "ankle", -8.0, -8.0, 0)
    rate = rng.uniform(1.5, 2.5)
    times = np.cumsum(rng.exponential(1.0 / rate, size=int(rate * (t[-1] + 2) * 2) + 2)) - 0.5
    side = rng.integers(2)
    for k, t0 in enumerate(times[times < t[-1] + 0.3]):
        b = _bump(t, t0, 0.15)
        left = (k + side) % 2 == 0
        ext = (guard - 10) * b
        set_side(e, "elbow", ext if left else 0.0, 0.0 if left else ext, 1)
        set_side(e, "shoulder", -40 * b if left else 0.0, 0.0 if left else -40 * b, 0)
        e[:, SMPL_JOINT_INDEX["spine2"], 1] += (12 if left else -12) * b
    e[:, 0, 1] += 15.0 * (1 if side else -1)                      # stance turned a bit
    bob = 0.01 * np.sin(2 * np.pi * 1.5 * t)
    return _Move(euler=e, vertical=bob - LEG_LENGTH_M * (1 - np.cos(np.radians(10.0))))


def _pick(rng: np.random.Generator, t: np.ndarray, fps: float) -> _Move:
    period = rng.uniform(3.0, 5.0)
    b = np.sin(np.pi * (t - rng.uniform(0, period)) / period) ** 4
    lean = rng.uniform(40, 70) * b
    knee = rng.uniform(10, 40) * b
    e = _zeros(t)
    e[:, 0, 0] += lean                                          # pelvis tilts forward ...
    set_side(e, "hip", -lean - knee / 2, -lean - knee / 2, 0)  # ... the thighs stay nearly vertical
    set_side(e, "knee", knee, knee, 0)
    set_side(e, "ankle", -knee / 2, -knee / 2, 0)
    for spine in ("spine1", "spine2", "spine3"):
        e[:, SMPL_JOINT_INDEX[spine], 0] += 0.2 * lean
    reach = rng.choice((0.0, 1.0))
    set_side(e, "shoulder", -60 * b, -60 * b * reach, 0)
    return _Move(euler=e, vertical=-LEG_LENGTH_M * (1 - np.cos(np.radians(knee / 2))))


def _sit(rng: np.random.Generator, t: np.ndarray, fps: float) -> _Move:
    period = rng.uniform(4.0, 6.0)
    s = ((t - rng.uniform(0, period)) / period) % 1.0
    level = smoothstep((s - 0.15) / 0.2) - smoothstep((s - 0.65) / 0.2)
    hip = rng.uniform(80, 90) * level
    lean = rng.uniform(25, 35) * (_bump(s, 0.25, 0.12) + _bump(s, 0.75, 0.12))
    e = _zeros(t)
    e[:, 0, 0] += lean
    set_side(e, "hip", -hip - lean, -hip - lean, 0)
    set_side(e, "knee", hip, hip, 0)                              # shins vertical
    set_side(e, "shoulder", -30 * level, -30 * level, 0)
    set_side(e, "elbow", -50 * level, -50 * level, 1)
    rad = np.radians(hip)
    return _Move(euler=e, vertical=-THIGH_M * (1 - np.cos(rad)), back=THIGH_M * np.sin(rad))


def _dance(rng: np.random.Generator, t: np.ndarray, fps: float) -> _Move:
    n = len(t)
    e = _zeros(t)
    for name, std in (("shoulder", (35, 20, 30)), ("elbow", (5, 30, 5)), ("hip", (15, 6, 8)),
                      ("knee", (12, 0, 0)), ("wrist", (15, 15, 15))):
        for side in ("left", "right"):
            e[:, SMPL_JOINT_INDEX[f"{side}_{name}"]] += band_noise(rng, n, fps, (3,), np.asarray(std, float), DANCE_BAND_HZ)
    set_side(e, "elbow", -40.0, -40.0, 1)
    set_side(e, "knee", 15.0, 15.0, 0)
    for name, std in (("spine1", 8), ("spine2", 8), ("spine3", 6), ("neck", 10), ("head", 10)):
        e[:, SMPL_JOINT_INDEX[name]] += band_noise(rng, n, fps, (3,), float(std), DANCE_BAND_HZ)
    e[:, 0, 1] += band_noise(rng, n, fps, (), 25.0, DANCE_BAND_HZ)
    beat = rng.uniform(1.6, 2.2)
    bounce = (1 - np.cos(2 * np.pi * beat * t)) / 2
    set_side(e, "knee", 10 * bounce, 10 * bounce, 0)
    set_side(e, "hip", -5 * bounce, -5 * bounce, 0)
    turn = band_noise(rng, n, fps, (), 0.6, (0.05, 0.5))
    return _Move(euler=e, vertical=-0.02 * bounce, turn=turn)


def _idle(rng: np.random.Generator, t: np.ndarray, fps: float) -> _Move:
    n = len(t)
    e = _zeros(t)
    shift = np.sin(2 * np.pi * rng.uniform(0.1, 0.25) * t + rng.uniform(0, 2 * np.pi))
    e[:, 0, 2] += 3 * shift
    set_side(e, "hip", 3 * shift, -3 * shift, 2)
    set_side(e, "knee", 4 * (1 + shift), 4 * (1 - shift), 0)
    e[:, SMPL_JOINT_INDEX["neck"], 1] += band_noise(rng, n, fps, (), 12.0, (0.05, 0.3))
    e[:, SMPL_JOINT_INDEX["head"], 1] += band_noise(rng, n, fps, (), 12.0, (0.05, 0.3))
    arms = rng.integers(3)
    if arms == 1:                                                # crossed
        set_side(e, "shoulder", -40.0, -40.0, 0)
        set_side(e, "shoulder", 35.0, 35.0, 2)
        set_side(e, "elbow", -110.0, -110.0, 1)
    elif arms == 2:                                              # hands on the hips
        set_side(e, "shoulder", 20.0, 20.0, 0)
        set_side(e, "shoulder", 30.0, 30.0, 2)
        set_side(e, "elbow", -90.0, -90.0, 1)
    return _Move(euler=e)


_ACTIVITY_FUNCS: dict[str, Callable[[np.random.Generator, np.ndarray, float], _Move]] = {
    "run": _run, "jump": _jump, "box": _box, "pick": _pick, "sit": _sit, "dance": _dance, "idle": _idle}


def _rest_posture(rng: np.random.Generator, t: np.ndarray, fps: float) -> np.ndarray:
    n = len(t)
    e = _zeros(t)
    set_side(e, "shoulder", -rng.uniform(60, 72), -rng.uniform(60, 72), 2)
    set_side(e, "elbow", -rng.uniform(15, 30), -rng.uniform(15, 30), 1)
    set_side(e, "knee", 5.0, 5.0, 0)
    for name, std in (("spine1", 2.0), ("spine2", 2.0), ("spine3", 2.0), ("neck", 5.0), ("head", 5.0)):
        e[:, SMPL_JOINT_INDEX[name]] += band_noise(rng, n, fps, (3,), std, SWAY_BAND_HZ)
    return e


def sequence_motion(rng: np.random.Generator, n_frames: int, fps: float,
                    probs: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Style-b GT motion in the world frame (y up); same outputs as ``synthetic_style_a.sequence_motion``."""
    t = np.arange(n_frames) / fps
    starts, acts = [], []
    start = 0.0
    while start < n_frames / fps:
        acts.append(ACTIVITIES[rng.choice(len(ACTIVITIES), p=probs)])
        starts.append(start)
        start += rng.uniform(*SEGMENT_S)
    up = [np.ones_like(t)] + [smoothstep((t - s) / RAMP_S + 0.5) for s in starts[1:]] + [np.zeros_like(t)]
    weights = [up[k] - up[k + 1] for k in range(len(starts))]
    euler = _rest_posture(rng, t, fps)
    speed, turn, vertical, back = (np.zeros(n_frames) for _ in range(4))
    for act, w in zip(acts, weights):
        move = _ACTIVITY_FUNCS[act](rng, t, fps)
        euler += w[:, None, None] * move.euler
        vertical += w * move.vertical
        speed += w * move.speed
        turn += w * move.turn
        back += w * move.back
    euler = np.radians(clip_to_limits(euler))
    wander = band_noise(rng, n_frames, fps, (), WANDER_RAD_S, (0.05, 0.4))
    heading = np.empty(n_frames)
    ground = np.empty((n_frames, 2))
    heading[0] = rng.uniform(0, 2 * np.pi)
    ground[0] = rng.uniform(-0.3, 0.3, size=2)
    dt = 1.0 / fps
    for f in range(n_frames - 1):
        x, z = ground[f]
        dist = math.hypot(x, z)
        home = HOME_GAIN_RAD_S * math.sin(math.atan2(-x, -z) - heading[f]) * float(
            smoothstep(np.asarray((dist - HOME_RADIUS_M[0]) / (HOME_RADIUS_M[1] - HOME_RADIUS_M[0]))))
        moving = min(speed[f] / RUN_REF_SPEED_M_S, 1.5)
        heading[f + 1] = heading[f] + dt * (turn[f] + moving * (wander[f] + home))
        ground[f + 1] = ground[f] + dt * speed[f] * np.array([math.sin(heading[f]), math.cos(heading[f])])
    forward = np.stack([np.sin(heading), np.cos(heading)], axis=-1)
    ground -= back[:, None] * forward
    root = np.stack([ground[:, 0], vertical, ground[:, 1]], axis=-1)
    share = {a: sum(w.sum() for b, w in zip(acts, weights) if b == a) for a in ACTIVITIES}
    return euler, heading, root, max(ACTIVITIES, key=lambda a: share[a])


# ------------------------------------------------------------------------------------------------------
# Cameras
# ------------------------------------------------------------------------------------------------------
@dataclass
class _CameraB:
    """Per-frame extrinsics p_cam = R p_world + t, intrinsics and image size."""

    rotation: np.ndarray                 # (F, 3, 3)
    translation: np.ndarray              # (F, 3)
    focal: tuple[float, float]
    principal: tuple[float, float]
    size: tuple[int, int]                # (W, H)
    margin: float = 0.0                  # fraction of min(W, H); < 0: place the person (COCO)


@dataclass
class _TakeB:
    source: str
    rng: np.random.Generator
    euler: np.ndarray
    heading: np.ndarray
    root: np.ndarray
    betas: np.ndarray
    camera: _CameraB
    motion: int
    fps: float
    camera_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _extrinsics(rotation: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F, 3, 3), (F, 3) world camera centres -> R, t with p_cam = R p + t."""
    return rotation, -np.einsum("fij,fj->fi", rotation, centre)


def _pw3d_camera(rng: np.random.Generator, root: np.ndarray, fps: float) -> _CameraB:
    n = len(root)
    width, height = PW3D_SIZES[0] if rng.random() < PW3D_PORTRAIT_PROB else PW3D_SIZES[1]
    f = rng.uniform(*PW3D_FOCAL_PX)
    principal = (width * (0.5 + rng.uniform(-1, 1) * PW3D_PRINCIPAL_JITTER),
                 height * (0.5 + rng.uniform(-1, 1) * PW3D_PRINCIPAL_JITTER))
    distance = rng.uniform(*PW3D_DISTANCE_M)
    pitch = np.radians(rng.uniform(-PW3D_PITCH_DEG, PW3D_PITCH_DEG))      # > 0: looking down
    aim = rng.uniform(*PW3D_AIM_HEIGHT_M)
    cam_height = float(np.clip(aim + distance * math.tan(pitch), *PW3D_HEIGHT_RANGE_M))
    az = rng.uniform(-np.pi, np.pi)
    anchor = moving_average(root, min(max(1, round(PW3D_FOLLOW_S * fps)), n))
    anchor[:, 1] = aim
    offset = np.array([distance * math.sin(az), cam_height - aim, distance * math.cos(az)])
    base = look_at(offset, np.zeros(3))
    sway = band_noise(rng, n, fps, (3,), np.radians(PW3D_SWAY_DEG), PW3D_SWAY_BAND_HZ)   # (x pitch, z roll, y yaw)
    sway_rot = Rotation.from_rotvec(sway[:, [0, 2, 1]]).as_matrix()                  # camera-frame (x, y, z)
    rotation = sway_rot @ base
    shake = band_noise(rng, n, fps, (3,), PW3D_SHAKE_M, PW3D_SWAY_BAND_HZ)
    r, t = _extrinsics(rotation, anchor + offset + shake)
    return _CameraB(rotation=r, translation=t, focal=(f, f), principal=principal, size=(width, height),
                    margin=PW3D_MARGIN)


def _h36m_camera(rng: np.random.Generator, root: np.ndarray, cam: str) -> _CameraB:
    n = len(root)
    focal, principal, _ = H36M_CAMERAS[cam]
    az, height, distance = H36M_PLACEMENT[cam]
    az = np.radians(az + rng.uniform(-1, 1) * H36M_JITTER[0])
    height += rng.uniform(-1, 1) * H36M_JITTER[1]
    distance += rng.uniform(-1, 1) * H36M_JITTER[2]
    target = root.mean(axis=0)
    target[1] = H36M_AIM_HEIGHT_M
    centre = target + np.array([distance * math.sin(az), height - H36M_AIM_HEIGHT_M, distance * math.cos(az)])
    rotation = look_at(centre, target)
    r, t = _extrinsics(np.repeat(rotation[None], n, axis=0), np.repeat(centre[None], n, axis=0))
    return _CameraB(rotation=r, translation=t, focal=focal, principal=principal, size=H36M_CAMERA_RES[cam],
                    margin=H36M_MARGIN)


def _coco_camera(rng: np.random.Generator) -> _CameraB:
    width, height = COCO_SIZES[rng.choice(len(COCO_SIZES), p=COCO_SIZE_PROBS)]
    f = rng.uniform(*COCO_FOCAL_REL) * max(width, height)
    az = rng.uniform(-np.pi, np.pi)
    target = np.array([0.0, 0.9, 0.0])
    centre = np.array([4.0 * math.sin(az), rng.uniform(*COCO_CAMERA_HEIGHT_M), 4.0 * math.cos(az)])
    r, t = _extrinsics(look_at(centre, target)[None], centre[None])
    return _CameraB(rotation=r, translation=t, focal=(f, f), principal=(width / 2, height / 2),
                    size=(width, height), margin=-1.0)


def _backoff(points: np.ndarray, cam: _CameraB) -> float:
    """Metres to move back along the optical axis so every point is inside the margin (every frame)."""
    (fx, fy), (cx, cy), (w, h) = cam.focal, cam.principal, cam.size
    margin = cam.margin * min(w, h)
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    need = np.maximum.reduce([np.full_like(z, MIN_DEPTH_M + 1.0), fx * x / (w - margin - cx),
                              -fx * x / (cx - margin), fy * y / (h - margin - cy), -fy * y / (cy - margin)])
    return float(max(0.0, (need - z).max()))


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation (3, 3) taking direction a to direction b."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis)
    if s < 1e-12:
        return np.eye(3)
    return Rotation.from_rotvec(axis / s * math.atan2(s, float(a @ b))).as_matrix()


def _place_person(rng: np.random.Generator, points: np.ndarray, cam: _CameraB) -> tuple[np.ndarray, np.ndarray]:
    """COCO: a camera-frame rigid motion (A, s), p -> A (p + s), putting the person anywhere in the image.

    Args:
        points: (1, 17, 3) camera-frame joints from a camera looking at the person.
    """
    (f, _), (cx, cy), (w, h) = cam.focal, cam.principal, cam.size
    crop = rng.random() < COCO_CROP_PROB
    frac = rng.uniform(*(COCO_CROP_HEIGHT_FRAC if crop else COCO_HEIGHT_FRAC))
    p = points[0]
    xn, yn = p[:, 0] / p[:, 2], p[:, 1] / p[:, 2]
    extent = f * (yn.max() - yn.min())                           # box height px at the current depth
    depth = float(np.median(p[:, 2]))
    shift = np.array([0.0, 0.0, depth * (extent / (frac * h) - 1.0)])
    q = p + shift
    q = q[q[:, 2] > 0.1]
    xn, yn = q[:, 0] / q[:, 2], q[:, 1] / q[:, 2]
    centre = np.array([(xn.max() + xn.min()) / 2, (yn.max() + yn.min()) / 2, 1.0])
    lo, hi = (0.0, 1.0) if crop else (0.2, 0.8)
    u, v = rng.uniform(lo, hi) * w, rng.uniform(max(lo, 0.25), min(hi, 0.75)) * h
    target = np.array([(u - cx) / f, (v - cy) / f, 1.0])
    roll = Rotation.from_rotvec([0.0, 0.0, np.radians(rng.normal(0.0, COCO_ROLL_DEG))]).as_matrix()
    return roll @ _rotation_between(centre, target), shift


# ------------------------------------------------------------------------------------------------------
# Takes
# ------------------------------------------------------------------------------------------------------
def _betas(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, GT_BETAS_STD, size=SMPL_NUM_BETAS)


def _h36m_takes(seed: int, split: str, spec: tuple[tuple[int, int], ...]) -> list[_TakeB]:
    subjects = H36M_SUBJECTS[split]
    betas = {s: _betas(np.random.default_rng([seed, _STYLE_STREAM, _DATASET_ID["h36m"], 100 + int(s[1:])]))
             for s in subjects}
    cameras = sorted(H36M_CAMERAS)
    takes, names = [], set()
    for k, (n, views) in enumerate(spec):
        rng = _rng(seed, "h36m", split, k)
        euler, heading, root, activity = sequence_motion(rng, n, H36M_FPS, ACTIVITY_PROBS["h36m"])
        subject = subjects[(k + 1) % len(subjects)]
        actions = H36M_ACTIONS[activity]
        action = actions[rng.integers(len(actions))]
        sub = 1 + int(rng.integers(2))
        while f"{subject}_{action}_{sub}" in names:
            sub += 1
        names.add(f"{subject}_{action}_{sub}")
        chosen = rng.permutation(len(cameras))[:views]
        for v, c in enumerate(chosen):
            cam = cameras[c]
            view_rng = _rng(seed, "h36m", split, k, 1 + v)
            takes.append(_TakeB(source=f"{subject}_{action}_{sub}.{cam}", rng=view_rng, euler=euler,
                                heading=heading, root=root, betas=betas[subject],
                                camera=_h36m_camera(view_rng, root, cam), motion=k, fps=H36M_FPS,
                                camera_name=cam))
    return takes


def _pw3d_takes(seed: int, split: str, lengths: tuple[int, ...]) -> list[_TakeB]:
    places = PW3D_PLACES[split]
    takes, names = [], set()
    for k, n in enumerate(lengths):
        rng = _rng(seed, "pw3d", split, k)
        fps = float(PW3D_FPS_CHOICES[rng.integers(len(PW3D_FPS_CHOICES))])
        euler, heading, root, activity = sequence_motion(rng, n, fps, ACTIVITY_PROBS["pw3d"])
        words = PW3D_ACTIVITIES[activity]
        stem = f"{places[(k + 1) % len(places)]}_{words[rng.integers(len(words))]}"
        take, person = int(rng.integers(3)), int(rng.integers(2))
        while f"{stem}_{take:02d}{person}" in names:
            take += 1
        name = f"{stem}_{take:02d}{person}"
        names.add(name)
        takes.append(_TakeB(source=name, rng=rng, euler=euler, heading=heading, root=root, betas=_betas(rng),
                            camera=_pw3d_camera(rng, root, fps), motion=k, fps=fps))
    return takes


def _coco_takes(seed: int, split: str, n_images: int) -> list[_TakeB]:
    pool_rng = _rng(seed, "coco", split, 0)
    euler, _, _, _ = sequence_motion(pool_rng, 3 * n_images, COCO_POOL_FPS, ACTIVITY_PROBS["coco"])
    frames = pool_rng.choice(len(euler), size=n_images, replace=False)
    image_ids = 1 + pool_rng.choice(COCO_MAX_IMAGE_ID - 1, size=n_images, replace=False)
    prefix = f"{COCO_FOLDERS[split]}/COCO_{COCO_FOLDERS[split]}"
    takes = []
    for k, frame in enumerate(frames):
        rng = _rng(seed, "coco", split, k + 1)
        image_id = int(image_ids[k])
        takes.append(_TakeB(source=f"{prefix}_{image_id:012d}.jpg", rng=rng, euler=euler[frame][None],
                            heading=rng.uniform(0, 2 * np.pi, size=1), root=np.zeros((1, 3)), betas=_betas(rng),
                            camera=_coco_camera(rng), motion=k, fps=COCO_POOL_FPS, extra={"image_id": image_id}))
    return takes


# ------------------------------------------------------------------------------------------------------
# 2D detections and the HybrIK-like prediction
# ------------------------------------------------------------------------------------------------------
def detections(rng: np.random.Generator, uv: np.ndarray, size: tuple[int, int], fps: float,
               single_image: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Style-b detector: heavy tails, drift, outlier bursts, swaps, missing joints, sigmoid confidence.

    Args:
        uv: (F, 17, 2) exact projections px. size: (W, H). fps: frame rate (drift time constant).
        single_image: independent frames (COCO): drift drawn from its stationary distribution.
    Returns:
        joint_2d (F, 17, 2) px, confidence (F, 17).
    """
    n, joints = uv.shape[:2]
    width, height = size
    box = np.maximum(np.maximum(np.ptp(uv[..., 0], axis=1), np.ptp(uv[..., 1], axis=1)), KP2D_MIN_BOX_PX)  # (F,)
    scale = (KP2D_SCALE_FRAC * box)[:, None, None]
    white = rng.standard_t(KP2D_T_DOF, size=(n, joints, 2)) * scale
    drift = ar1(rng, n, (joints, 2), 1.0, None if single_image else KP2D_DRIFT_TAU_S * fps) \
        * (KP2D_DRIFT_FRAC * box)[:, None, None]
    noise = white + drift
    err = np.linalg.norm(noise, axis=-1) / scale[..., 0]
    conf = 1.0 / (1.0 + np.exp(-(KP2D_CONF_BIAS - KP2D_CONF_SLOPE * err)))
    conf += rng.normal(0.0, KP2D_CONF_NOISE, size=conf.shape)
    kp = uv + noise
    # outlier bursts: one displacement per burst
    active, origin = _events(rng, n, (joints,), KP2D_OUTLIER_START, KP2D_OUTLIER_FRAMES)
    angle = rng.uniform(0, 2 * np.pi, size=(n, joints))
    jump = rng.uniform(*KP2D_OUTLIER_FRAC, size=(n, joints)) * box[:, None]
    jump_xy = np.stack([np.cos(angle), np.sin(angle)], axis=-1) * jump[..., None]
    jump_xy = np.take_along_axis(jump_xy, origin[..., None], axis=0)
    out_conf = np.take_along_axis(rng.uniform(*KP2D_OUTLIER_CONF, size=(n, joints)), origin, axis=0)
    kp = np.where(active[..., None], uv + jump_xy, kp)
    conf = np.where(active, out_conf, conf)
    # left/right swaps of legs or arms (over-confident)
    swap, swap_origin = _events(rng, n, (), KP2D_SWAP_START, KP2D_SWAP_FRAMES)
    limb = np.take_along_axis(rng.integers(2, size=n), swap_origin, axis=0)
    for which, (left, right) in enumerate((_H36M_LEGS, _H36M_ARMS)):
        rows = swap & (limb == which)
        if rows.any():
            l, r = list(left), list(right)
            kp[np.ix_(rows, l + r)] = kp[np.ix_(rows, r + l)]
            conf[np.ix_(rows, l + r)] = conf[np.ix_(rows, r + l)]
    conf = np.clip(conf, KP2D_CONF_MIN, 1.0)                        # exactly 0 only for missing joints
    # joints outside the image: clipped, confidence 0
    outside = (uv[..., 0] < 0) | (uv[..., 0] > width - 1) | (uv[..., 1] < 0) | (uv[..., 1] > height - 1)
    conf = np.where(outside, 0.0, conf)
    kp = np.clip(kp, 0.0, np.asarray(size, dtype=np.float64) - 1)
    # missing joints: confidence exactly 0, coordinates 0 or the last seen value
    missing, _ = _events(rng, n, (joints,), KP2D_MISSING_START, KP2D_MISSING_FRAMES)
    if rng.random() < KP2D_STALE_PROB:
        last = np.maximum.accumulate(np.where(missing, -1, np.arange(n)[:, None]), axis=0)   # (F, 17)
        stale = np.take_along_axis(kp, np.maximum(last, 0)[..., None], axis=0)
        kp = np.where(missing[..., None], np.where(last[..., None] >= 0, stale, 0.0), kp)
    else:
        kp = np.where(missing[..., None], 0.0, kp)
    conf = np.where(missing, 0.0, conf)
    return kp, conf


def hybrik_noise(rng: np.random.Generator, n: int, fps: float | None) -> Rotation:
    """Left-composed rotation noise Exp(glitch) Exp(white) Exp(drift) Exp(limb), (n * 24) rotations.

    ``fps`` None: independent images (AR(1) terms drawn from their stationary distribution).
    """
    j = SMPL_NUM_JOINTS
    gamma_scale = np.radians(WHITE_MEAN_DEG) / WHITE_GAMMA_SHAPE
    white = _random_axes(rng, (n, j)) * rng.gamma(WHITE_GAMMA_SHAPE, gamma_scale, size=(n, j))[..., None]
    tau = None if fps is None else rng.uniform(*DRIFT_TAU_S) * fps
    drift = ar1(rng, n, (j, 3), np.radians(DRIFT_DEG), tau)
    tau_global = None if fps is None else rng.uniform(*GLOBAL_TAU_S) * fps
    drift[:, 0] = ar1(rng, n, (3,), np.radians(np.asarray(GLOBAL_DEG)), tau_global)
    limb = np.zeros((n, j, 3))
    chain_noise = ar1(rng, n, (len(CHAINS), 3), np.radians(LIMB_DEG), tau)
    for c, chain in enumerate(CHAINS):
        limb[:, chain[0]] = LIMB_WEIGHTS[0] * chain_noise[:, c]
        limb[:, list(chain[1:])] = LIMB_WEIGHTS[1] * chain_noise[:, c, None]
    glitch = np.zeros((n, j, 3))
    active, origin = _events(rng, n, (), GLITCH_PROB, GLITCH_FRAMES)
    count = rng.integers(GLITCH_JOINTS[0], GLITCH_JOINTS[1] + 1, size=n)
    # one set of joints and rotations per glitch, drawn at its start frame
    starts = np.unique(origin[active])
    picks = {int(o): (rng.choice(np.arange(1, j), size=count[o], replace=False),
                      _random_axes(rng, (count[o],)) * np.radians(rng.uniform(*GLITCH_DEG, size=count[o]))[:, None])
             for o in starts}
    for f in np.flatnonzero(active):
        idx, vec = picks[int(origin[f])]
        glitch[f, idx] = vec
    flat = lambda x: Rotation.from_rotvec(x.reshape(-1, 3))        # noqa: E731
    return flat(glitch) * flat(white) * flat(drift) * flat(limb)


def storable_rotvec(rot: Rotation, n: int, continuous: bool, root_start_flipped: bool = False) -> np.ndarray:
    """(n * 24) rotations -> (n, 72) axis-angle: canonical (angle <= pi) or following a continuous quaternion.

    Continuous: every joint's quaternion starts on the canonical hemisphere (w >= 0), the global
    orientation's on the other one when ``root_start_flipped`` (a clip cut from a longer recording);
    frames on the other hemisphere store v (1 - 2 pi / |v|), the same rotation with angle > pi.
    """
    vec = rot.as_rotvec().reshape(n, SMPL_NUM_JOINTS, 3)
    if not continuous:
        return vec.reshape(n, -1)
    quat = rot.as_quat().reshape(n, SMPL_NUM_JOINTS, 4)
    quat *= np.where(quat[..., 3:] < 0, -1.0, 1.0)                  # the canonical hemisphere (w >= 0)
    first = np.zeros((1, SMPL_NUM_JOINTS), dtype=bool)
    first[0, 0] = root_start_flipped
    flip = np.concatenate([first, (quat[1:] * quat[:-1]).sum(-1) < 0])
    other = np.logical_xor.accumulate(flip, axis=0)                 # continuous quaternion = -canonical
    angle = np.linalg.norm(vec, axis=-1, keepdims=True)
    vec = np.where(other[..., None] & (angle > 1e-6), vec * (1.0 - 2.0 * np.pi / np.maximum(angle, 1e-6)), vec)
    return vec.reshape(n, -1)


# ------------------------------------------------------------------------------------------------------
# Rendering and writing
# ------------------------------------------------------------------------------------------------------
def _render(takes: list[_TakeB], body_model: torch.nn.Module, dataset: str, split: str) -> dict[str, Any]:
    motions = {take.motion: take for take in reversed(takes)}
    order = sorted(motions)
    n_frames = [len(motions[m].heading) for m in order]
    first = dict(zip(order, np.cumsum([0] + n_frames[:-1])))
    rot_world = world_rotations(np.concatenate([motions[m].euler for m in order]),
                                np.concatenate([motions[m].heading for m in order]))
    betas_world = np.concatenate([np.repeat(motions[m].betas[None], n, axis=0) for m, n in zip(order, n_frames)])
    root_joint, h36m_world = smpl_joints(body_model, rot_world, betas_world)
    standing = dict(zip(order, standing_heights(body_model, np.stack([motions[m].betas for m in order]))))

    cols: dict[str, list] = {k: [] for k in ("joint_2d", "confidence", "joint_cam", "smpl_pose", "smpl_shape",
                                             "pred_smpl_pose", "pred_smpl_shape")}
    img_hw, image_id, source, camera_name = [], [], [], []
    single = dataset == "coco"
    for i, take in enumerate(takes):
        n = len(take.heading)
        sl = slice(first[take.motion], first[take.motion] + n)
        cam, rng = take.camera, take.rng
        root = take.root + np.array([0.0, standing[take.motion], 0.0])
        joints_world = h36m_world[sl] - root_joint[sl][:, None] + root[:, None]
        rotation = cam.rotation if len(cam.rotation) == n else np.repeat(cam.rotation, n, axis=0)
        translation = cam.translation if len(cam.translation) == n else np.repeat(cam.translation, n, axis=0)
        joints_cam = np.einsum("fij,fkj->fki", rotation, joints_world) + translation[:, None]
        if cam.margin < 0:
            a, shift = _place_person(rng, joints_cam, cam)
            joints_cam = (joints_cam + shift) @ a.T
            rotation = a @ rotation
        else:
            joints_cam[..., 2] += _backoff(joints_cam, cam)
        rot_cam = rot_world[sl].copy()
        rot_cam[:, 0] = rotation @ rot_cam[:, 0]
        uv = project(joints_cam, cam.focal, cam.principal)
        kp, conf = detections(rng, uv, cam.size, take.fps, single_image=single)
        gt = Rotation.from_matrix(rot_cam.reshape(-1, 3, 3))
        pred = hybrik_noise(rng, n, None if single else take.fps) * gt
        pred_betas = (BETAS_SHRINK * take.betas + rng.normal(0, BETAS_OFFSET_STD, SMPL_NUM_BETAS)
                      + rng.normal(0, BETAS_JITTER_STD, (n, SMPL_NUM_BETAS)))
        cols["joint_2d"].append(kp)
        cols["confidence"].append(conf[..., None])
        cols["joint_cam"].append(joints_cam * MM_PER_M)
        for key, rot in (("smpl_pose", gt), ("pred_smpl_pose", pred)):
            continuous, flipped = rng.random(2) < (0.0 if single else CONTINUOUS_ROTVEC_PROB, 0.5)
            cols[key].append(storable_rotvec(rot, n, bool(continuous), bool(flipped)))
        cols["smpl_shape"].append(np.repeat(take.betas[None], n, axis=0))
        cols["pred_smpl_shape"].append(pred_betas)
        width, height = cam.size
        img_hw += [(height, width)] * n
        base = take.extra.get("image_id", 200_000 * (i + 1))
        image_id += [np.array([base + j], dtype=np.int64) for j in range(n)]
        source += [take.source] * n
        camera_name += [take.camera_name] * n

    float_2d = np.float32 if split == "train" else np.float64
    out: dict[str, Any] = {
        "joint_2d": np.concatenate(cols["joint_2d"]).astype(float_2d),
        "confidence": np.concatenate(cols["confidence"]).astype(float_2d),
        "joint_cam": np.concatenate(cols["joint_cam"]).astype(np.float64),
        "smpl_pose": np.concatenate(cols["smpl_pose"]).astype(np.float64),
        "smpl_shape": np.concatenate(cols["smpl_shape"]).astype(np.float64),
        "img_hw": img_hw,
        "image_id": image_id,
        "source": source,
        "pred_smpl_pose": np.concatenate(cols["pred_smpl_pose"]).astype(np.float32),
        "pred_smpl_shape": np.concatenate(cols["pred_smpl_shape"]).astype(np.float32),
    }
    if dataset == "h36m":
        out["camera_name"] = camera_name
    return out


def generate_data_root(out_dir: str | Path, seed: int = 0, preset: str = "tiny") -> dict[str, Any]:
    """Write a complete style-b ``data_root``; the summary has ``lib.data.synthetic.generate_data_root``'s
    keys, ``"style": "b"``, and per dataset ``"fps"`` as the sorted tuple of the frame rates used."""
    from lib.body.smpl import BodyModel
    from lib.body.synthetic import write_smpl_assets

    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    sizes = PRESETS[preset]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    smpl_files = write_smpl_assets(out, seed=seed + SMPL_SEED_OFFSET, forms=("chumpy",))
    body_model = BodyModel(out).eval()

    summary: dict[str, Any] = {"out_dir": str(out), "seed": seed, "preset": preset, "style": STYLE, "datasets": {}}
    builders = {
        "h36m": lambda split: _h36m_takes(seed, split, getattr(sizes, f"h36m_{split}")),
        "pw3d": lambda split: _pw3d_takes(seed, split, getattr(sizes, f"pw3d_{split}")),
        "coco": lambda split: _coco_takes(seed, split, getattr(sizes, f"coco_{split}")),
    }
    for dataset, build in builders.items():
        data: dict[str, Any] = {}
        info: dict[str, Any] = {"file": MESH_FILES[dataset]}
        rates: set[float] = set()
        for split in ("train", "test"):
            takes = build(split)
            data[split] = _render(takes, body_model, dataset, split)
            rates |= {take.fps for take in takes}
            frames = len(data[split]["source"])
            seconds = sum(len(take.heading) / take.fps for take in takes)
            info[split] = {"frames": frames, "sequences": len(takes), "seconds": round(seconds, 2)}
        info["fps"] = tuple(sorted(rates))
        write_pickle(data, out / MESH_FILES[dataset])
        summary["datasets"][dataset] = {"file": info["file"], "fps": info["fps"], "train": info["train"],
                                        "test": info["test"]}
    summary["files"] = sorted([Path(p).name for p in smpl_files.values()] + list(MESH_FILES.values()))
    return summary

