"""A synthetic SMPL stand-in with the real structure, written in every file form users have.

The licensed SMPL model is never available to this project, so tests and demos run on a stand-in
that has exactly the structure of SMPLify's ``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl``:

==================  ==================  =========  =============================================
key                 shape               dtype      what the stand-in holds
==================  ==================  =========  =============================================
v_template          (6890, 3)           float64    a crude human in T-pose, metres, y up, facing +z,
                                                   left = +x, pelvis near (0, -0.22, 0.03) like SMPL
f                   (13776, 3)          uint32     a closed genus-0 mesh (UV-sphere connectivity)
shapedirs           (6890, 3, 10)       float64    scale, girth, leg length + smooth fields (cm/unit)
posedirs            (6890, 3, 207)      float64    small smooth fields (mm per unit of R - I)
J_regressor         (24, 6890)          float64    convex weights over nearby vertices (rows sum 1)
                                                   that regress the designed skeleton exactly
weights             (6890, 24)          float64    softmax over distance to bones, top 4, rows sum 1
kintree_table       (2, 24)             int64      SMPL's parents, root parent 4294967295
J                   (24, 3)             float64    J_regressor @ v_template
bs_style, bs_type   'lbs', 'lrotmin'    str
weights_prior,      (6890, 24),         float64,   as in the original (unused by smplx and by us);
vert_sym_idxs       (6890,)             int64      the mirror map is exact for this symmetric mesh
==================  ==================  =========  =============================================

plus the joint regressors ``J_regressor_h36m_correct`` (17, 6890) and ``J_regressor_extra`` (9, 6890)
(SPIN's, used by MotionBERT / EHGFormer) and HybrIK's ``J_regressor_h36m`` (17, 6890).

The mesh: a UV sphere with 82 rings x 84 segments + 2 poles (exactly 6890 vertices and 13776
faces). Each vertex keeps its sphere connectivity and gets a position from a map of its (ring,
segment) coordinates: the north-pole disk becomes the head, four disks on the sides become the arms
and the legs (tubes with rounded tips swept along the T-pose skeleton), everything else the torso (a
superellipsoid seen from its centre). Near each limb's rim the tube blends into the torso, and the torso
is pulled in around each rim, so the junctions are small. Connectivity never changes, so the mesh
is always closed and manifold whatever the geometry.

Files (``write_smpl_assets``): ``SMPL_NEUTRAL.pkl`` exactly like the SMPLify original (pickle
protocol 2, ``shapedirs`` a ``chumpy.ch.Ch``, ``J_regressor`` a ``scipy.sparse.csc.csc_matrix``,
``J_regressor_prior`` too, numpy arrays through ``numpy.core.multiarray._reconstruct`` with raw
byte strings as Python 2 wrote them: plain ``pickle.load`` needs chumpy),
``SMPL_NEUTRAL_plain.pkl`` (plain numpy, protocol 4), ``SMPL_NEUTRAL.npz`` and the three regressor
``.npy`` files. Written without chumpy or scipy: stand-in modules are registered in ``sys.modules``
only while pickling. Everything is deterministic for a seed (same bytes); never commit the output.

HybrIK's layout (``write_hybrik_model_files``): a folder laid out exactly like HybrIK's
``model_files/``: ``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl`` (the chumpy-style form under
SMPLify's own name), ``J_regressor_h36m.npy`` (HybrIK's regressor) and ``h36m_mean_beta.npy``
((10,) float64 mean betas); no SPIN file.

CLI: ``python -m lib.body.synthetic --out DIR [--seed 0] [--forms chumpy plain npz] [--layout hybrik]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import pickle
import struct
import sys
import types
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from lib.atomic_write import write_bytes_atomic
from lib.body.joint_names import (
    H36M_JOINT_NAMES,
    SMPL_JOINT_NAMES,
    SMPL_NUM_BETAS,
    SMPL_NUM_FACES,
    SMPL_NUM_JOINTS,
    SMPL_NUM_VERTICES,
    SMPL_PARENTS,
)
from lib.body.smpl import (
    EXTRA_REGRESSOR_FILE,
    H36M_REGRESSOR_FILE,
    HYBRIK_H36M_REGRESSOR_FILE,
    HYBRIK_MEAN_BETA_FILE,
    KINTREE_ROOT,
    SMPL_MODEL_FILE,
    SMPL_NPZ_FILE,
    SMPL_ORIGINAL_FILE,
)

# ----------------------------------------------------------------------------------------------
# File forms (the file names are lib.body.smpl's)
SMPL_PLAIN_FILE = "SMPL_NEUTRAL_plain.pkl"
FORMS = ("chumpy", "plain", "npz")
LAYOUTS = ("data_root", "hybrik")  # this project's data_root files, or HybrIK's model_files/
_MEAN_BETA_SCALE = 0.3  # the stand-in's mean betas: a fixed, small, non-zero shape
CHUMPY_PROTOCOL = 2  # the SMPLify files were written by Python 2
PLAIN_PROTOCOL = 4

# Names of the 9 extra joints of SPIN's J_regressor_extra.npy (rows in this order).
EXTRA_JOINT_NAMES = (
    "right_hip_lsp", "left_hip_lsp", "neck_lsp", "head_top_lsp", "pelvis_mpii", "thorax_mpii",
    "spine_h36m", "jaw_h36m", "head_h36m",
)

# ----------------------------------------------------------------------------------------------
# Mesh layout: UV sphere, vertex 0 = north pole, then ring-major (ring 1..82, segment 0..83), last =
# south pole. Ring index 0 / 83 stand for the poles in the continuous (ring, segment) coordinates.
N_RINGS = 82
N_SEGMENTS = 84
SOUTH_RING = N_RINGS + 1
HALF_TURN = N_SEGMENTS // 2  # segment of the right side (phi = pi); the left side is segment 0

# The T-pose skeleton in metres (y up, facing +z, left = +x), close to SMPL's neutral rest joints.
_JOINTS_LEFT_HALF = {  # x >= 0 side and the midline; right side joints are mirrored
    "pelvis": (0.0, -0.225, 0.025), "left_hip": (0.07, -0.315, 0.02), "spine1": (0.0, -0.11, 0.0),
    "left_knee": (0.105, -0.68, 0.015), "spine2": (0.0, 0.02, 0.025),
    "left_ankle": (0.09, -1.09, -0.02), "spine3": (0.0, 0.075, 0.028),
    "left_foot": (0.12, -1.14, 0.12), "neck": (0.0, 0.29, -0.015), "left_collar": (0.08, 0.19, -0.005),
    "head": (0.0, 0.355, 0.035), "left_shoulder": (0.17, 0.22, -0.02),
    "left_elbow": (0.43, 0.21, -0.04), "left_wrist": (0.69, 0.215, -0.045),
    "left_hand": (0.775, 0.21, -0.055),
}
# Where the leaf bones end (for skinning): head top, fingertip, toe tip.
_HEAD_TOP = (0.0, 0.55, 0.015)
_FINGERTIP_LEFT = (0.86, 0.21, -0.055)
_TOE_LEFT = (0.125, -1.14, 0.18)

# Limb paths from the tip to the root: (point (m), tube radius (m)); right limbs are mirrored.
_ARM_LEFT_PATH = (
    ((0.845, 0.21, -0.055), 0.026), ((0.775, 0.21, -0.055), 0.038), ((0.69, 0.215, -0.045), 0.030),
    ((0.56, 0.215, -0.042), 0.038), ((0.43, 0.21, -0.04), 0.036), ((0.30, 0.215, -0.03), 0.047),
    ((0.18, 0.215, -0.02), 0.058), ((0.12, 0.19, -0.01), 0.065),
)
_LEG_LEFT_PATH = (
    ((0.125, -1.135, 0.16), 0.028), ((0.12, -1.13, 0.11), 0.036), ((0.105, -1.12, 0.04), 0.042),
    ((0.09, -1.09, -0.02), 0.045), ((0.095, -0.95, -0.005), 0.042), ((0.10, -0.82, -0.01), 0.055),
    ((0.105, -0.68, 0.015), 0.05), ((0.095, -0.50, 0.02), 0.072), ((0.085, -0.38, 0.02), 0.085),
    ((0.08, -0.29, 0.02), 0.095),
)
_HEAD_PATH = (
    ((0.0, 0.465, 0.015), 0.085), ((0.0, 0.43, 0.025), 0.095), ((0.0, 0.37, 0.03), 0.08),
    ((0.0, 0.31, 0.0), 0.055), ((0.0, 0.26, -0.005), 0.065),
)

# Disks in (ring, segment) coordinates: centre ring, centre segment, radius (index units).
_HEAD_RINGS = 10  # rings 0..10 around the north pole
_ARM_RING, _ARM_RADIUS = 26.0, 15.0
_LEG_RING, _LEG_RADIUS = 64.0, 17.0
# Fraction of the disk radius over which a tube blends into the torso surface.
_BLEND_START = 0.72
# The torso is pulled in around each limb rim: the rim lands at this fraction of the disk radius,
# and the pull fades out over _RIM_BAND index units outside the rim.
_RIM_SHRINK = 0.35
_RIM_BAND = 8.0
# Ring index -> polar angle of the torso direction (from +y), piecewise linear.
_TORSO_RING_KNOTS = (0.0, 10.0, 26.0, 45.0, 64.0, 83.0)
_TORSO_THETA_KNOTS = (0.0, 0.28, 0.66, 1.70, 2.80, np.pi)
# Torso: superellipsoid around this centre; semi-axes (m) and exponent.
_TORSO_CENTRE = (0.0, -0.04, 0.025)
_TORSO_HALF_WIDTH = 0.165
_TORSO_HALF_HEIGHT = 0.31
_TORSO_HALF_DEPTH = 0.105
_TORSO_EXPONENT = 2.6
_WAIST_THETA, _WAIST_WIDTH, _WAIST_DEPTH = 1.75, 0.35, 0.08  # a narrower waist (fraction)

# Skinning: softmax temperature over the distance to each allowed bone (m) and influences kept.
_SKIN_TEMPERATURE = 0.02
_SKIN_TOP_K = 4
# Joint regressors: bandwidth (m) of the maximum-entropy weights (HybrIK's file is fitted with a
# slightly different one, so the two H36M regressors differ a little, as the real ones do).
_REGRESSOR_BANDWIDTH = 0.05
_HYBRIK_REGRESSOR_BANDWIDTH = 0.06
_HYBRIK_H36M_SHIFT = {"pelvis": (0.0, -0.006, 0.0), "left_hip": (0.004, -0.004, 0.0),
                      "right_hip": (-0.004, -0.004, 0.0), "nose": (0.0, -0.005, -0.004),
                      "head_top": (0.0, -0.008, 0.0), "thorax": (0.0, 0.005, 0.0)}
_REGRESSOR_SUPPORT = 30.0  # vertices whose prior log-weight is this far below the best are ignored
_REGRESSOR_NEWTON_STEPS = 60
_REGRESSOR_TOLERANCE = 1e-10  # m
_REGRESSOR_DROP = 1e-3
# Blend-shape magnitudes.
_SCALE_PER_BETA = 0.035  # relative size change per unit beta 0 (about +6 cm of height)
_GIRTH_PER_BETA = 0.015  # m outward per unit beta 1
_LEG_LENGTH_PER_BETA = 0.03  # relative stretch below the pelvis per unit beta 2
_FIELD_AMPLITUDE = 0.01  # m, smooth random fields of betas 3..9
_POSEDIR_AMPLITUDE = 0.002  # m per unit of (R - I)
_POSEDIR_REACH = 0.12  # m, how far from its joint a pose blend shape reaches


def _skeleton() -> np.ndarray:
    """The T-pose joints (24, 3) in metres, SMPL order, mirrored from the left half."""
    joints = np.zeros((SMPL_NUM_JOINTS, 3))
    for index, name in enumerate(SMPL_JOINT_NAMES):
        if name.startswith("right_"):
            joints[index] = _mirror(np.asarray(_JOINTS_LEFT_HALF["left_" + name[len("right_"):]]))
        else:
            joints[index] = _JOINTS_LEFT_HALF[name]
    return joints


def _mirror(points: np.ndarray) -> np.ndarray:
    """Mirror points (..., 3) across the x = 0 plane (left <-> right)."""
    return points * np.array([-1.0, 1.0, 1.0])


# ----------------------------------------------------------------------------------------------
# Connectivity
def sphere_faces() -> np.ndarray:
    """Faces (13776, 3) of the 82 x 84 UV sphere, counter-clockwise seen from outside."""
    def vid(ring: np.ndarray, seg: np.ndarray) -> np.ndarray:
        return 1 + (ring - 1) * N_SEGMENTS + seg % N_SEGMENTS

    seg = np.arange(N_SEGMENTS)
    north = np.stack([np.zeros_like(seg), vid(np.ones_like(seg), seg + 1), vid(np.ones_like(seg), seg)], 1)
    south_id = 1 + N_RINGS * N_SEGMENTS
    last = np.full_like(seg, N_RINGS)
    south = np.stack([np.full_like(seg, south_id), vid(last, seg), vid(last, seg + 1)], 1)
    ring, seg2 = np.meshgrid(np.arange(1, N_RINGS), seg, indexing="ij")  # (81, 84)
    ring, seg2 = ring.ravel(), seg2.ravel()
    upper = np.stack([vid(ring, seg2), vid(ring, seg2 + 1), vid(ring + 1, seg2)], 1)
    lower = np.stack([vid(ring, seg2 + 1), vid(ring + 1, seg2 + 1), vid(ring + 1, seg2)], 1)
    faces = np.concatenate([north, upper, lower, south]).astype(np.uint32)
    assert faces.shape == (SMPL_NUM_FACES, 3)
    return faces


def _grid_coordinates() -> tuple[np.ndarray, np.ndarray]:
    """(ring, segment) float coordinates (6890,) of every vertex; the poles get ring 0 / 83, segment 0."""
    ring = np.concatenate([[0.0], np.repeat(np.arange(1, N_RINGS + 1, dtype=float), N_SEGMENTS),
                           [float(SOUTH_RING)]])
    seg = np.concatenate([[0.0], np.tile(np.arange(N_SEGMENTS, dtype=float), N_RINGS), [0.0]])
    return ring, seg


def _wrap_segment(delta: np.ndarray) -> np.ndarray:
    """Signed segment difference wrapped to [-42, 42)."""
    return (delta + HALF_TURN) % N_SEGMENTS - HALF_TURN


# ----------------------------------------------------------------------------------------------
# Geometry: torso map, limb tubes, blending
def _torso_points(ring: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Torso surface points (N, 3) m for continuous (ring, segment) coordinates."""
    theta = np.interp(ring, _TORSO_RING_KNOTS, _TORSO_THETA_KNOTS)
    phi = 2.0 * np.pi * seg / N_SEGMENTS
    direction = np.stack([np.sin(theta) * np.cos(phi), np.cos(theta), np.sin(theta) * np.sin(phi)], -1)
    narrowing = _WAIST_DEPTH * np.exp(-(((theta - _WAIST_THETA) / _WAIST_WIDTH) ** 2))
    half_width = _TORSO_HALF_WIDTH * (1.0 - narrowing)
    p = _TORSO_EXPONENT
    inv = (np.abs(direction[:, 0] / half_width) ** p + np.abs(direction[:, 1] / _TORSO_HALF_HEIGHT) ** p
           + np.abs(direction[:, 2] / _TORSO_HALF_DEPTH) ** p)
    radius = inv ** (-1.0 / p)
    return np.asarray(_TORSO_CENTRE) + radius[:, None] * direction


def _path(points: tuple, mirror: bool = False) -> list[tuple[np.ndarray, float]]:
    """A tube path as (point (3,) m, radius m) pairs, optionally mirrored to the right side."""
    return [(_mirror(np.asarray(p)) if mirror else np.asarray(p), r) for p, r in points]


def _limb_disks() -> list[dict]:
    """The four side disks: centre (ring, segment), radius, tube path and frame reference."""
    arm = _path(_ARM_LEFT_PATH)
    leg = _path(_LEG_LEFT_PATH)
    y_axis, x_axis = np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])
    # The frame reference of each tube is the direction the torso's "north" (smaller ring) maps to on
    # the rim: up for the arms, outwards for the legs.
    return [
        {"name": "left_arm", "ring": _ARM_RING, "seg": 0.0, "radius": _ARM_RADIUS, "path": arm, "ref": y_axis},
        {"name": "right_arm", "ring": _ARM_RING, "seg": float(HALF_TURN), "radius": _ARM_RADIUS,
         "path": _path(_ARM_LEFT_PATH, mirror=True), "ref": y_axis},
        {"name": "left_leg", "ring": _LEG_RING, "seg": 0.0, "radius": _LEG_RADIUS, "path": leg, "ref": x_axis},
        {"name": "right_leg", "ring": _LEG_RING, "seg": float(HALF_TURN), "radius": _LEG_RADIUS,
         "path": _path(_LEG_LEFT_PATH, mirror=True), "ref": -x_axis},
    ]


def _warp_towards_rims(ring: np.ndarray, seg: np.ndarray, disks: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Pull (ring, segment) coordinates towards each disk centre so its rim lands on a small torso loop.

    For each disk, a radial map of the index distance d from its centre: d -> shrink * d inside the
    disk, then linear back to the identity at radius + band. The displacements of all disks are
    added (order-free, so the mirror-symmetric layout stays symmetric) and fade to nothing at the
    poles, where all segments of a ring meet in one vertex.
    """
    d_ring_total = np.zeros_like(ring)
    d_seg_total = np.zeros_like(seg)
    pole_fade = np.clip(np.minimum(ring, SOUTH_RING - ring) / 4.0, 0.0, 1.0)
    for disk in disks:
        d_ring = ring - disk["ring"]
        d_seg = _wrap_segment(seg - disk["seg"])
        dist = np.hypot(d_ring, d_seg)
        radius = disk["radius"]
        outer = radius + _RIM_BAND
        band = _RIM_SHRINK * radius + (dist - radius) * (outer - _RIM_SHRINK * radius) / _RIM_BAND
        new_dist = np.where(dist < radius, _RIM_SHRINK * dist, np.where(dist < outer, band, dist))
        factor = np.where(dist > 1e-12, new_dist / np.maximum(dist, 1e-12), _RIM_SHRINK)
        d_ring_total += (factor - 1.0) * d_ring * pole_fade
        d_seg_total += (factor - 1.0) * d_seg * pole_fade
    return ring + d_ring_total, seg + d_seg_total


def _resample_path(path: list[tuple[np.ndarray, float]], samples: int = 256,
                   smoothing: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chaikin-smoothed, arc-length-resampled path: points (S, 3), radii (S,), arc length (S,) m."""
    pts = np.stack([p for p, _ in path])
    rad = np.array([r for _, r in path])
    for _ in range(smoothing):  # corner cutting keeps the end points
        q_pts = 0.75 * pts[:-1] + 0.25 * pts[1:]
        r_pts = 0.25 * pts[:-1] + 0.75 * pts[1:]
        q_rad = 0.75 * rad[:-1] + 0.25 * rad[1:]
        r_rad = 0.25 * rad[:-1] + 0.75 * rad[1:]
        pts = np.concatenate([pts[:1], np.stack([q_pts, r_pts], 1).reshape(-1, 3), pts[-1:]])
        rad = np.concatenate([rad[:1], np.stack([q_rad, r_rad], 1).ravel(), rad[-1:]])
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    s = np.linspace(0.0, arc[-1], samples)
    out = np.stack([np.interp(s, arc, pts[:, k]) for k in range(3)], -1)
    return out, np.interp(s, arc, rad), s


def _tube_points(path: list[tuple[np.ndarray, float]], ref: np.ndarray, rho: np.ndarray,
                 psi: np.ndarray) -> np.ndarray:
    """Points (N, 3) of a tube with a rounded tip swept along ``path`` (tip first).

    rho in [0, 1] runs from the tip apex to the root ring, psi is the angle around the tube
    (psi = 0 towards ``ref``; the frame is (u1, u1 x T) with T pointing to the root).
    """
    pts, rad, s = _resample_path(path)
    length = s[-1]
    tangent = np.gradient(pts, s, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    tip_arc = 0.5 * np.pi * rad[0]
    rho_tip = tip_arc / (tip_arc + length)

    along = np.clip((rho - rho_tip) / (1.0 - rho_tip), 0.0, 1.0) * length
    centre = np.stack([np.interp(along, s, pts[:, k]) for k in range(3)], -1)
    axis = np.stack([np.interp(along, s, tangent[:, k]) for k in range(3)], -1)
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    radius = np.interp(along, s, rad)
    u1 = ref[None, :] - (axis @ ref)[:, None] * axis
    u1 /= np.linalg.norm(u1, axis=1, keepdims=True)
    u2 = np.cross(u1, axis)
    normal = np.cos(psi)[:, None] * u1 + np.sin(psi)[:, None] * u2
    # Rounded tip: a hemisphere of the first radius around the first path point.
    gamma = 0.5 * np.pi * np.clip(rho / rho_tip, 0.0, 1.0)
    in_tip = rho < rho_tip
    tip = centre - axis * (radius * np.cos(gamma))[:, None] + (radius * np.sin(gamma))[:, None] * normal
    tube = centre + radius[:, None] * normal
    return np.where(in_tip[:, None], tip, tube)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def build_rest_mesh() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rest (T-pose) mesh.

    Returns:
        vertices (6890, 3) float64 m, faces (13776, 3) uint32, part (6890,) int64: each vertex's body
        part as an index into BODY_PARTS (torso, head, the arms, the legs).
    """
    ring, seg = _grid_coordinates()
    disks = _limb_disks()
    warped_ring, warped_seg = _warp_towards_rims(ring, seg, disks)
    vertices = _torso_points(warped_ring, warped_seg)
    part = np.zeros(SMPL_NUM_VERTICES, dtype=np.int64)

    head_path = _path(_HEAD_PATH)
    in_head = ring <= _HEAD_RINGS
    rho = ring[in_head] / _HEAD_RINGS
    # Around the head, the tube angle runs against the segment angle so that (u1, u2, out) matches
    # the sphere's (north, east, out) frame.
    psi = -2.0 * np.pi * seg[in_head] / N_SEGMENTS
    tube = _tube_points(head_path, np.array([1.0, 0.0, 0.0]), rho, psi)
    blend = _smoothstep((rho - _BLEND_START) / (1.0 - _BLEND_START))[:, None]
    vertices[in_head] = (1.0 - blend) * tube + blend * vertices[in_head]
    part[in_head] = BODY_PARTS.index("head")

    for disk in disks:
        d_ring = ring - disk["ring"]
        d_seg = _wrap_segment(seg - disk["seg"])
        rho_all = np.hypot(d_ring, d_seg) / disk["radius"]
        inside = rho_all < 1.0
        rho = rho_all[inside]
        psi = np.arctan2(d_seg[inside], -d_ring[inside])  # psi = 0 towards smaller rings (north)
        tube = _tube_points(disk["path"], disk["ref"], rho, psi)
        blend = _smoothstep((rho - _BLEND_START) / (1.0 - _BLEND_START))[:, None]
        vertices[inside] = (1.0 - blend) * tube + blend * vertices[inside]
        part[inside] = BODY_PARTS.index(disk["name"])
    return vertices, sphere_faces(), part


def symmetric_vertex_ids() -> np.ndarray:
    """(6890,) int64: the index of each vertex's mirror image (x -> -x); exact for this mesh."""
    ring, seg = _grid_coordinates()
    ids = np.arange(SMPL_NUM_VERTICES)
    body = (ring >= 1) & (ring <= N_RINGS)
    mirror_seg = (HALF_TURN - seg[body].astype(np.int64)) % N_SEGMENTS
    ids[body] = 1 + (ring[body].astype(np.int64) - 1) * N_SEGMENTS + mirror_seg
    return ids


# ----------------------------------------------------------------------------------------------
# Skinning
# Body parts of the stand-in (build_rest_mesh's ``part``) and the joints whose bones may move them.
BODY_PARTS = ("torso", "head", "left_arm", "right_arm", "left_leg", "right_leg")
_PART_JOINT_NAMES = {
    "torso": ("pelvis", "left_hip", "right_hip", "spine1", "spine2", "spine3", "neck", "left_collar",
              "right_collar", "left_shoulder", "right_shoulder"),
    "head": ("spine3", "neck", "head"),
    "left_arm": ("spine3", "left_collar", "left_shoulder", "left_elbow", "left_wrist", "left_hand"),
    "right_arm": ("spine3", "right_collar", "right_shoulder", "right_elbow", "right_wrist", "right_hand"),
    "left_leg": ("pelvis", "left_hip", "left_knee", "left_ankle", "left_foot"),
    "right_leg": ("pelvis", "right_hip", "right_knee", "right_ankle", "right_foot"),
}


def _bone_segments(joints: np.ndarray) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """For each joint, the segments (start, end) of the bones it rotates: to each child, or to a leaf end."""
    fingertip, toe = np.asarray(_FINGERTIP_LEFT), np.asarray(_TOE_LEFT)
    leaf_ends = {"head": np.asarray(_HEAD_TOP), "left_hand": fingertip, "right_hand": _mirror(fingertip),
                 "left_foot": toe, "right_foot": _mirror(toe)}
    segments: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(SMPL_NUM_JOINTS)]
    for child, parent in enumerate(SMPL_PARENTS):
        if parent >= 0:
            segments[parent].append((joints[parent], joints[child]))
    for name, end in leaf_ends.items():
        joint = SMPL_JOINT_NAMES.index(name)
        segments[joint].append((joints[joint], end))
    return segments


def _point_segment_distance(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Distance (N,) from points (N, 3) to the segment start-end."""
    d = end - start
    t = np.clip((points - start) @ d / max(float(d @ d), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (start + t[:, None] * d), axis=1)


def skinning_weights(vertices: np.ndarray, part: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """LBS weights (6890, 24): softmax of -distance / temperature over the part's bones, top 4, rows sum 1."""
    segments = _bone_segments(joints)
    dist = np.full((vertices.shape[0], SMPL_NUM_JOINTS), np.inf)
    for joint, segs in enumerate(segments):
        dist[:, joint] = np.min([_point_segment_distance(vertices, a, b) for a, b in segs], axis=0)
    allowed = np.zeros_like(dist, dtype=bool)
    for index, name in enumerate(BODY_PARTS):
        joint_ids = [SMPL_JOINT_NAMES.index(joint) for joint in _PART_JOINT_NAMES[name]]
        allowed[np.ix_(part == index, joint_ids)] = True
    dist = np.where(allowed, dist, np.inf)
    logits = -(dist - dist.min(axis=1, keepdims=True)) / _SKIN_TEMPERATURE
    keep = np.argsort(-logits, axis=1, kind="stable")[:, :_SKIN_TOP_K]
    weights = np.zeros_like(dist)
    rows = np.arange(dist.shape[0])[:, None]
    weights[rows, keep] = np.exp(logits[rows, keep])
    return weights / weights.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# Joint regressors
def _max_entropy_weights(offsets: np.ndarray, prior: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights (K,) proportional to exp(prior + offsets @ lam) with sum_k w_k offsets_k = 0.

    Newton's method with backtracking on the convex dual log-sum-exp(prior + offsets @ lam), whose
    gradient is the weighted mean offset. Returns the weights and lam (3,).
    """
    def weights_at(lam: np.ndarray) -> tuple[np.ndarray, float]:
        logits = prior + offsets @ lam
        top = logits.max()
        expo = np.exp(logits - top)
        total = expo.sum()
        return expo / total, float(top + np.log(total))

    w, value = weights_at(lam)
    for _ in range(_REGRESSOR_NEWTON_STEPS):
        grad = w @ offsets  # (3,): the regressed point minus the target
        if np.linalg.norm(grad) < _REGRESSOR_TOLERANCE:
            break
        hess = (offsets * w[:, None]).T @ offsets - np.outer(grad, grad)
        direction = np.linalg.solve(hess + 1e-12 * np.eye(3), grad)
        step = 1.0
        while True:
            w_new, value_new = weights_at(lam - step * direction)
            if value_new <= value - 0.25 * step * float(grad @ direction) or step < 1e-8:
                break
            step *= 0.5
        lam, w, value = lam - step * direction, w_new, value_new
    return w, lam


def fit_regressor(vertices: np.ndarray, targets: np.ndarray, bandwidth: float) -> np.ndarray:
    """A joint regressor (J, 6890): smooth convex weights over the vertices around each target point.

    Maximum-entropy coordinates: w_i proportional to exp(-|v_i - t|^2 / (2 bandwidth^2) + lambda . (v_i - t)),
    lambda (3,) chosen so that sum_i w_i v_i = t exactly (whenever t lies inside the hull of the
    nearby vertices). Weights below 1e-3 of the row's largest are then dropped and the rest refitted,
    so rows are sparse like SMPL's, non-negative, sum to 1 and still regress t exactly.
    """
    regressor = np.zeros((targets.shape[0], vertices.shape[0]))
    for row, target in enumerate(targets):
        offsets = vertices - target  # (V, 3)
        prior = -(offsets * offsets).sum(1) / (2.0 * bandwidth**2)
        support = np.flatnonzero(prior > prior.max() - _REGRESSOR_SUPPORT)
        w, lam = _max_entropy_weights(offsets[support], prior[support], np.zeros(3))
        support = support[w > _REGRESSOR_DROP * w.max()]
        w, _ = _max_entropy_weights(offsets[support], prior[support], lam)
        regressor[row, support] = w
    return regressor


def _h36m_targets(joints: np.ndarray) -> np.ndarray:
    """H36M-17 joint positions (17, 3) m on the stand-in, in lib.body.joint_names.H36M_JOINT_NAMES order."""
    smpl = {name: joints[i] for i, name in enumerate(SMPL_JOINT_NAMES)}
    hip_left = np.array([0.10, -0.31, 0.02])
    points = {
        "pelvis": np.array([0.0, -0.30, 0.025]),
        "left_hip": hip_left, "right_hip": _mirror(hip_left),
        "left_knee": smpl["left_knee"], "right_knee": smpl["right_knee"],
        "left_ankle": smpl["left_ankle"] + np.array([0.0, 0.01, 0.0]),
        "right_ankle": smpl["right_ankle"] + np.array([0.0, 0.01, 0.0]),
        "spine": np.array([0.0, 0.0, 0.03]), "thorax": np.array([0.0, 0.22, 0.0]),
        "nose": np.array([0.0, 0.40, 0.105]), "head_top": np.array([0.0, 0.53, 0.015]),
        "left_shoulder": smpl["left_shoulder"], "right_shoulder": smpl["right_shoulder"],
        "left_elbow": smpl["left_elbow"], "right_elbow": smpl["right_elbow"],
        "left_wrist": smpl["left_wrist"], "right_wrist": smpl["right_wrist"],
    }
    return np.stack([points[name] for name in H36M_JOINT_NAMES])


def _hybrik_target_shift() -> np.ndarray:
    """Offsets (17, 3) m of HybrIK's H36M regressor from SPIN's corrected one (a few mm, as between the real files)."""
    shift = np.zeros((len(H36M_JOINT_NAMES), 3))
    for name, offset in _HYBRIK_H36M_SHIFT.items():
        shift[H36M_JOINT_NAMES.index(name)] = offset
    return shift


def _extra_targets() -> np.ndarray:
    """Positions (9, 3) m of SPIN's extra joints (EXTRA_JOINT_NAMES order) on the stand-in."""
    hip_left = np.array([0.095, -0.33, 0.02])
    return np.stack([
        _mirror(hip_left), hip_left, np.array([0.0, 0.30, 0.0]), np.array([0.0, 0.545, 0.015]),
        np.array([0.0, -0.30, 0.025]), np.array([0.0, 0.24, 0.0]), np.array([0.0, 0.02, 0.03]),
        np.array([0.0, 0.34, 0.08]), np.array([0.0, 0.43, 0.03]),
    ])


# ----------------------------------------------------------------------------------------------
# Blend shapes
def _smooth_fields(points: np.ndarray, rng: np.random.Generator, n_fields: int,
                   frequency: float, n_waves: int = 48) -> np.ndarray:
    """Smooth random vector fields (N, 3, n_fields) with values of order 1: random mixes of plane waves.

    Args:
        points: (N, 3) m. frequency: rad/m, the standard deviation of the wave vectors.
    """
    omega = rng.normal(0.0, frequency, size=(3, n_waves))  # rad/m
    phase = rng.uniform(0.0, 2.0 * np.pi, size=n_waves)
    basis = np.sin(points @ omega + phase)  # (N, W)
    mix = rng.normal(0.0, np.sqrt(2.0 / n_waves), size=(n_waves, 3 * n_fields))
    return (basis @ mix).reshape(points.shape[0], 3, n_fields)


def shape_blend_shapes(vertices: np.ndarray, joints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """shapedirs (6890, 3, 10) m per unit beta: scale, girth, leg length, then smooth random fields."""
    pelvis = joints[0]
    dirs = np.zeros((vertices.shape[0], 3, SMPL_NUM_BETAS))
    dirs[:, :, 0] = _SCALE_PER_BETA * (vertices - pelvis)
    # Girth: away from the nearest bone.
    segments = _bone_segments(joints)
    best = np.full(vertices.shape[0], np.inf)
    offset = np.zeros_like(vertices)
    for segs in segments:
        for a, b in segs:
            d = b - a
            t = np.clip((vertices - a) @ d / max(float(d @ d), 1e-12), 0.0, 1.0)
            foot = a + t[:, None] * d
            dist = np.linalg.norm(vertices - foot, axis=1)
            closer = dist < best
            best = np.where(closer, dist, best)
            offset = np.where(closer[:, None], vertices - foot, offset)
    dirs[:, :, 1] = _GIRTH_PER_BETA * offset / np.maximum(best, 1e-9)[:, None]
    below = np.minimum(vertices[:, 1] - pelvis[1], 0.0)
    dirs[:, 1, 2] = _LEG_LENGTH_PER_BETA * below
    fields = _smooth_fields(vertices, rng, SMPL_NUM_BETAS - 3, frequency=3.0)
    decay = 1.0 / np.arange(1, SMPL_NUM_BETAS - 2)
    dirs[:, :, 3:] = _FIELD_AMPLITUDE * fields * decay
    return dirs


def pose_blend_shapes(vertices: np.ndarray, joints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """posedirs (6890, 3, 207) m per unit of (R - I): smooth fields localised around each non-root joint."""
    n_pose = (SMPL_NUM_JOINTS - 1) * 9
    fields = _smooth_fields(vertices, rng, n_pose, frequency=4.0)  # (V, 3, 207)
    dist = np.linalg.norm(vertices[:, None, :] - joints[None, 1:, :], axis=2)  # (V, 23)
    reach = np.exp(-((dist / _POSEDIR_REACH) ** 2))
    locality = np.repeat(reach, 9, axis=1)  # (V, 207): joint k owns columns 9(k-1) .. 9k-1
    return _POSEDIR_AMPLITUDE * fields * locality[:, None, :]


# ----------------------------------------------------------------------------------------------
# The whole model
def build_smpl_standin(seed: int = 0) -> dict[str, np.ndarray]:
    """The synthetic SMPL stand-in as the arrays of the real file, plus the three joint regressors.

    Args:
        seed: seeds the smooth fields of shapedirs and posedirs (the mesh itself is fixed).
    Returns:
        dict with the SMPL keys (v_template, f, shapedirs, posedirs, J_regressor, weights,
        kintree_table, J, bs_style, bs_type, weights_prior, vert_sym_idxs) and the regressors
        ``J_regressor_h36m_correct`` (17, 6890), ``J_regressor_extra`` (9, 6890),
        ``J_regressor_h36m`` (17, 6890; HybrIK's, fitted slightly differently). Strings are str.
    """
    rng = np.random.default_rng(seed)
    vertices, faces, part = build_rest_mesh()
    joints = _skeleton()
    weights = skinning_weights(vertices, part, joints)
    j_regressor = fit_regressor(vertices, joints, _REGRESSOR_BANDWIDTH)
    h36m_targets = _h36m_targets(joints)
    kintree = np.stack([np.array([KINTREE_ROOT] + list(SMPL_PARENTS[1:]), dtype=np.int64),
                        np.arange(SMPL_NUM_JOINTS, dtype=np.int64)])
    return {
        "v_template": vertices,
        "f": faces,
        "shapedirs": shape_blend_shapes(vertices, joints, rng),
        "posedirs": pose_blend_shapes(vertices, joints, rng),
        "J_regressor": j_regressor,
        "weights": weights,
        "kintree_table": kintree,
        "J": j_regressor @ vertices,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "weights_prior": weights.copy(),
        "vert_sym_idxs": symmetric_vertex_ids(),
        "J_regressor_h36m_correct": fit_regressor(vertices, h36m_targets, _REGRESSOR_BANDWIDTH),
        "J_regressor_extra": fit_regressor(vertices, _extra_targets(), _REGRESSOR_BANDWIDTH),
        "J_regressor_h36m": fit_regressor(vertices, h36m_targets + _hybrik_target_shift(),
                                          _HYBRIK_REGRESSOR_BANDWIDTH),
    }


_REGRESSOR_KEYS = {
    H36M_REGRESSOR_FILE: "J_regressor_h36m_correct",
    EXTRA_REGRESSOR_FILE: "J_regressor_extra",
    HYBRIK_H36M_REGRESSOR_FILE: "J_regressor_h36m",
}
_MODEL_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "J",
               "bs_style", "bs_type", "weights_prior", "vert_sym_idxs")


# ----------------------------------------------------------------------------------------------
# Writing the original (chumpy) form without chumpy or scipy
class _ChStandIn:
    """Pickles like ``chumpy.ch.Ch`` built with ``ch.array(x)``: its state is chumpy's ``__dict__``."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = np.asarray(x, dtype=np.float64)

    def __getstate__(self) -> dict:
        # chumpy's Ch.__getstate__ returns its __dict__ without the weakref caches.
        return {"_dirty_vars": {"x"}, "_itr": None, "_make_dense": False, "_make_sparse": False,
                "_depends_on_deps": {}, "x": self.x}


class _CscStandIn:
    """Pickles like a ``scipy.sparse.csc.csc_matrix`` of old scipy (its ``__dict__`` as the state)."""

    def __init__(self, dense: np.ndarray) -> None:
        col, row = np.nonzero(dense.T)  # column-major: for each column, its rows ascending
        self._shape = (int(dense.shape[0]), int(dense.shape[1]))
        self.indices = row.astype(np.int32)
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(col, minlength=dense.shape[1]))]).astype(np.int32)
        self.data = dense[row, col].astype(np.float64)
        self.maxprint = 50

    def __getstate__(self) -> dict:
        return {"_shape": self._shape, "maxprint": self.maxprint, "indices": self.indices,
                "indptr": self.indptr, "data": self.data}


def _reconstruct_stand_in(*args: object) -> None:  # pragma: no cover - never called, only pickled by name
    raise RuntimeError("pickling stand-in for numpy.core.multiarray._reconstruct")


_STAND_IN_GLOBALS = (
    (_ChStandIn, "chumpy.ch", "Ch"),
    (_CscStandIn, "scipy.sparse.csc", "csc_matrix"),
    (_reconstruct_stand_in, "numpy.core.multiarray", "_reconstruct"),
)
_STAND_IN_MODULES = ("chumpy", "chumpy.ch", "scipy", "scipy.sparse", "scipy.sparse.csc",
                     "numpy.core.multiarray")
_ABSENT = object()


@contextlib.contextmanager
def _original_module_names() -> Iterator[None]:
    """Register stand-in modules so the stand-in classes pickle under chumpy's / old scipy's / old numpy's
    names; restore ``sys.modules`` exactly afterwards (real scipy included), even on error.

    Not thread-safe: another thread importing scipy meanwhile would see the stand-in.
    """
    saved = {name: sys.modules.get(name, _ABSENT) for name in _STAND_IN_MODULES}
    saved_names = {obj: (obj.__module__, obj.__qualname__) for obj, _, _ in _STAND_IN_GLOBALS}
    try:
        for name in _STAND_IN_MODULES:
            sys.modules[name] = types.ModuleType(name)
        for obj, module, qualname in _STAND_IN_GLOBALS:
            obj.__module__, obj.__qualname__ = module, qualname
            setattr(sys.modules[module], qualname, obj)
        yield
    finally:
        for obj, (module, qualname) in saved_names.items():
            obj.__module__, obj.__qualname__ = module, qualname
        for name, module in saved.items():
            if module is _ABSENT:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class _OriginalFormPickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table can be extended
    """Pickles as Python 2 / numpy 1.x wrote the SMPLify files: arrays through
    ``numpy.core.multiarray._reconstruct`` and raw byte strings as BINSTRING (Python 3's protocol 2
    would wrap bytes in ``_codecs.encode`` of a latin-1 text instead, which is 1.5x larger).
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def reducer_override(self, obj: object) -> object:
        if type(obj) is np.ndarray:
            _, args, state = obj.__reduce__()
            return _reconstruct_stand_in, args, state
        return NotImplemented

    def _save_py2_str(self, obj: bytes) -> None:
        size = len(obj)
        if size < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([size]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", size) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _chumpy_form_bytes(model: dict[str, np.ndarray]) -> bytes:
    """The SMPLify-style pickle: protocol 2, Ch shapedirs, CSC J_regressor / J_regressor_prior."""
    content: dict[str, object] = {}
    for key in _MODEL_KEYS:
        content[key] = model[key]
    content["shapedirs"] = _ChStandIn(model["shapedirs"])
    content["J_regressor"] = _CscStandIn(model["J_regressor"])
    content["J_regressor_prior"] = _CscStandIn(model["J_regressor"])
    buffer = io.BytesIO()
    with _original_module_names():
        _OriginalFormPickler(buffer, protocol=CHUMPY_PROTOCOL).dump(content)
    return buffer.getvalue()


def _plain_form_bytes(model: dict[str, np.ndarray]) -> bytes:
    """A chumpy-free pickle (what smplx's clean_ch.py writes): plain arrays, dense J_regressor."""
    return pickle.dumps({key: model[key] for key in _MODEL_KEYS}, protocol=PLAIN_PROTOCOL)


def _npz_bytes(arrays: dict[str, object]) -> bytes:
    """An uncompressed .npz with fixed zip timestamps (np.savez stamps the current time)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.asarray(value), allow_pickle=False)
    return buffer.getvalue()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def write_smpl_assets(out_dir: str | os.PathLike, seed: int = 0,
                      forms: Sequence[str] = ("chumpy",)) -> dict[str, Path]:
    """Write the stand-in SMPL model in the requested forms plus the three joint regressors.

    Args:
        out_dir: folder to write into (created).
        seed: seed of build_smpl_standin.
        forms: any of "chumpy" (SMPL_NEUTRAL.pkl, the original's form), "plain"
            (SMPL_NEUTRAL_plain.pkl), "npz" (SMPL_NEUTRAL.npz).
    Returns:
        {form or regressor key: path written}; the regressors are always written.
    Raises:
        ValueError: an unknown form.
    """
    unknown = [form for form in forms if form not in FORMS]
    if unknown:
        raise ValueError(f"unknown SMPL file form(s) {unknown}; expected some of {list(FORMS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = build_smpl_standin(seed)
    written: dict[str, Path] = {}
    writers = {
        "chumpy": (SMPL_MODEL_FILE, _chumpy_form_bytes),
        "plain": (SMPL_PLAIN_FILE, _plain_form_bytes),
        "npz": (SMPL_NPZ_FILE, lambda m: _npz_bytes({key: m[key] for key in _MODEL_KEYS})),
    }
    for form in dict.fromkeys(forms):
        name, make = writers[form]
        write_bytes_atomic(out / name, make(model))
        written[form] = out / name
    for name, key in _REGRESSOR_KEYS.items():
        write_bytes_atomic(out / name, _npy_bytes(model[key]))
        written[key] = out / name
    return written


def hybrik_mean_beta(seed: int = 0) -> np.ndarray:
    """(10,) float64 mean betas of the stand-in's ``h36m_mean_beta.npy`` (small, fixed for a seed)."""
    return np.random.default_rng([seed, SMPL_NUM_BETAS]).normal(size=SMPL_NUM_BETAS) * _MEAN_BETA_SCALE


def write_hybrik_model_files(out_dir: str | os.PathLike, seed: int = 0) -> dict[str, Path]:
    """Write the stand-in laid out exactly like HybrIK's ``model_files/`` (see the module docstring).

    Returns:
        {"smpl": basicModel_neutral_lbs_10_207_0_v1.0.0.pkl, "J_regressor_h36m": J_regressor_h36m.npy,
        "h36m_mean_beta": h36m_mean_beta.npy} paths; nothing else is written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = build_smpl_standin(seed)
    files = {
        "smpl": (SMPL_ORIGINAL_FILE, _chumpy_form_bytes(model)),
        "J_regressor_h36m": (HYBRIK_H36M_REGRESSOR_FILE, _npy_bytes(model["J_regressor_h36m"])),
        "h36m_mean_beta": (HYBRIK_MEAN_BETA_FILE, _npy_bytes(hybrik_mean_beta(seed))),
    }
    for name, content in files.values():
        write_bytes_atomic(out / name, content)
    return {key: out / name for key, (name, _) in files.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: write the stand-in SMPL files into a folder and print what was written."""
    parser = argparse.ArgumentParser(prog="python -m lib.body.synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write into (created)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the blend-shape fields")
    parser.add_argument("--forms", nargs="+", choices=FORMS, default=["chumpy"],
                        help="SMPL file forms to write (the regressors are always written)")
    parser.add_argument("--layout", choices=LAYOUTS, default="data_root",
                        help="data_root: this project's names (default); hybrik: HybrIK's model_files/ "
                             "(original SMPL file name, J_regressor_h36m.npy, h36m_mean_beta.npy; --forms ignored)")
    args = parser.parse_args(argv)
    if args.layout == "hybrik":
        written = write_hybrik_model_files(args.out, seed=args.seed)
    else:
        written = write_smpl_assets(args.out, seed=args.seed, forms=args.forms)
    for key, path in written.items():
        print(f"{key:26s} {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
