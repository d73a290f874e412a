"""Animation files out: an SMPL motion prepared for the glTF and BVH writers (``animation_gltf``,
``animation_bvh``).

**Frame and units** of every exported file: metres, right-handed, **Y up**. It is HybrIK's camera
frame (x right, y down, z forward: the npz's) turned 180 deg about x, ``(x, y, z) -> (x, -y, -z)``
(``CAMERA_TO_Y_UP``): the video's camera sits at the origin looking down -Z with +Y up, which is glTF's
camera convention, and the person stands in front of it at z < 0. A point of the npz ``p`` is the point
``CAMERA_TO_Y_UP @ p`` of the files.

**One body shape per character.** A skinned mesh and a BVH skeleton have one rest shape, so each
character is exported with the mean of its betas over the valid frames (the refined betas change
only slowly: one shape per clip, blended between windows; HybrIK's jitter from frame to frame). Its
motion is exactly SMPL's for that shape: joint rotations as in the npz, the pelvis placed as the npz
places the mesh (``V - pelvis(V) + transl``, HybrIK's pelvis regressed from the mesh of that shape).
The log states how far the per-frame shapes' joints are from the exported shape's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lib.body.joint_names import H36M_ROOT, SMPL_JOINT_NAMES, SMPL_PARENTS
from lib.body.smpl import BodyModel
from lib.errors import ConfigError

log = logging.getLogger(__name__)

EXPORT_SUFFIXES = (".glb", ".bvh")
CAMERA_TO_Y_UP = np.diag([1.0, -1.0, -1.0])  # HybrIK's camera frame (y down, z forward) -> Y up, camera looks down -Z
SMPL_CHUNK = 256  # frames per SMPL forward
REFINED, HYBRIK_INPUT = "refined", "hybrik_input"  # character names: npz keys without / with the 'input_' prefix


@dataclass(frozen=True)
class Rig:
    """What the characters share: SMPL's skeleton, mesh and skinning (metres).

    Attributes:
        parents: 24 parent indices (-1 for the pelvis). names: 24 joint names.
        faces: (13776, 3) vertex ids. weights: (6890, 24) LBS weights, rows sum to 1.
        pose_targets: (207, 6890, 3) m, SMPL's pose blend shapes: vertex offsets per unit of the entries
            of ``R_j - I`` of joints 1..23 (row-major, joint by joint), added before skinning.
    """

    parents: tuple[int, ...]
    names: tuple[str, ...]
    faces: np.ndarray
    weights: np.ndarray
    pose_targets: np.ndarray


@dataclass(frozen=True)
class Motion:
    """One SMPL character's motion in the Y-up export frame (metres).

    Attributes:
        name: the character (``REFINED`` or ``HYBRIK_INPUT``).
        rotations: (F, 24, 3, 3) joint rotations; joint 0 (pelvis) in the Y-up frame, the others
            relative to their parent, as SMPL's.
        root_position: (F, 3) m, where the pelvis joint (SMPL joint 0) is.
        betas: (10,) the one body shape.
        rest_joints: (24, 3) m, SMPL's rest joints of that shape (T-pose in SMPL's own frame: y up,
            facing +z; the pelvis where SMPL puts it, not at the origin).
        rest_vertices: (6890, 3) m, the rest mesh of that shape (no pose blend shapes).
        fps: frames per second.
        valid: (F,) bool, False for frames bridged from their neighbours (``lib.deploy.invalid_frames``).
    """

    name: str
    rotations: np.ndarray
    root_position: np.ndarray
    betas: np.ndarray
    rest_joints: np.ndarray
    rest_vertices: np.ndarray
    fps: float
    valid: np.ndarray

    @property
    def frames(self) -> int:
        return len(self.rotations)

    @property
    def pose_weights(self) -> np.ndarray:
        """(F, 207) the pose blend shapes' weights: ``R_j - I`` of joints 1..23, row-major."""
        return (self.rotations[:, 1:] - np.eye(3)).reshape(self.frames, -1)


def check_export_paths(paths: list[Path]) -> None:
    """Raises ConfigError for a file name without a known suffix, or the same file named twice."""
    for path in paths:
        if path.suffix.lower() not in EXPORT_SUFFIXES:
            raise ConfigError(f"--export {path}: expected a file name ending in {' or '.join(EXPORT_SUFFIXES)}")
    if len({p.resolve() for p in paths}) != len(paths):
        raise ConfigError(f"--export {' '.join(map(str, paths))}: a file is named twice")


def rig_from_body(body: BodyModel) -> Rig:
    """The ``Rig`` of a loaded SMPL model (float64 copies of its buffers)."""
    return Rig(parents=tuple(SMPL_PARENTS), names=tuple(SMPL_JOINT_NAMES), faces=np.asarray(body.faces),
               weights=body.lbs_weights.double().cpu().numpy(),
               pose_targets=body.pose_blend_shapes().double().cpu().numpy())  # (207, V, 3)


def rest_shape(body: BodyModel, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SMPL's rest joints (24, 3) and rest vertices (6890, 3) m of one shape (10,), as ``BodyModel`` shapes them."""
    b = torch.as_tensor(betas, dtype=body.shapedirs.dtype)
    joints = body.J_template + torch.einsum("jcl,l->jc", body.J_shapedirs, b)  # (24, 3)
    vertices = body.v_template + torch.einsum("vcl,l->vc", body.shapedirs, b)  # (V, 3)
    return joints.double().cpu().numpy(), vertices.double().cpu().numpy()


@torch.no_grad()
def hybrik_pelvis(body: BodyModel, hybrik_regressor: np.ndarray, rot_mat: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """(F, 3) m: HybrIK's pelvis (its H36M regressor's root row) of the unplaced SMPL meshes of one shape."""
    row = torch.as_tensor(hybrik_regressor[H36M_ROOT], dtype=torch.float64)  # (V,)
    b = torch.as_tensor(betas, dtype=torch.float32)[None]  # (1, 10)
    pelvis = []
    for lo in range(0, len(rot_mat), SMPL_CHUNK):
        chunk = torch.as_tensor(rot_mat[lo:lo + SMPL_CHUNK], dtype=torch.float32)  # (n, 24, 3, 3)
        vertices = body(chunk, b.expand(len(chunk), -1)).vertices.double()  # (n, V, 3)
        pelvis.append(torch.einsum("v,nvc->nc", row, vertices).numpy())
    return np.concatenate(pelvis)


def motion_from_smpl(name: str, body: BodyModel, hybrik_regressor: np.ndarray, rot_mat: np.ndarray,
                     betas: np.ndarray, transl: np.ndarray, valid: np.ndarray, fps: float) -> Motion:
    """A character's ``Motion`` from the npz's arrays.

    Args:
        rot_mat: (F, 24, 3, 3) SMPL rotations in HybrIK's camera frame. betas: (F, 10).
        transl: (F, 3) m, HybrIK's translation. valid: (F,) bool (the shape is their mean of betas).
        hybrik_regressor: (17, 6890) the regressor whose pelvis the npz centres meshes on.
    """
    valid = np.asarray(valid, dtype=bool)
    shape = np.asarray(betas, dtype=np.float64)[valid].mean(axis=0)  # (10,)
    rest_joints, rest_vertices = rest_shape(body, shape)
    pelvis = hybrik_pelvis(body, hybrik_regressor, rot_mat, shape)  # (F, 3)
    root_camera = rest_joints[0] - pelvis + np.asarray(transl, dtype=np.float64)  # (F, 3): SMPL keeps joint 0 at rest
    rotations = np.array(rot_mat, dtype=np.float64)  # (F, 24, 3, 3), a copy
    rotations[:, 0] = CAMERA_TO_Y_UP @ rotations[:, 0]
    _log_shape_spread(name, body, np.asarray(betas, dtype=np.float64), shape)
    return Motion(name=name, rotations=rotations, root_position=root_camera @ CAMERA_TO_Y_UP.T, betas=shape,
                  rest_joints=rest_joints, rest_vertices=rest_vertices, fps=float(fps), valid=valid)


def _log_shape_spread(name: str, body: BodyModel, betas: np.ndarray, shape: np.ndarray) -> None:
    """Log how far (mm) the per-frame shapes' rest joints are from the exported shape's."""
    j_shapedirs = body.J_shapedirs.double().cpu().numpy()  # (24, 3, 10)
    offsets = np.einsum("jcl,fl->fjc", j_shapedirs, betas - shape)  # (F, 24, 3) m
    spread_mm = 1000.0 * float(np.linalg.norm(offsets, axis=-1).max())
    log.info("%s: exported with one body shape (mean betas); the per-frame shapes' rest joints differ from it "
             "by up to %.1f mm", name, spread_mm)


def motions_from_result(arrays: dict[str, np.ndarray], body: BodyModel,
                        hybrik_regressor: np.ndarray) -> tuple[Motion, Motion]:
    """(refined, HybrIK input) ``Motion``s of ``infer_mesh``'s result arrays (``pipeline.result_arrays``)."""
    valid, fps = arrays["valid"], float(arrays["fps"])
    return tuple(motion_from_smpl(name, body, hybrik_regressor, arrays[f"{prefix}rot_mat"], arrays[f"{prefix}betas"],
                                  arrays[f"{prefix}transl"], valid, fps)
                 for name, prefix in ((REFINED, ""), (HYBRIK_INPUT, "input_")))


def camera_from_result(arrays: dict[str, np.ndarray]) -> tuple[float, float] | None:
    """(vertical field of view rad, aspect W / H) of HybrIK's camera (median focal length), or None."""
    if "focal_px" not in arrays or "image_size" not in arrays:
        return None
    focal = float(np.median(arrays["focal_px"]))
    width, height = (float(v) for v in arrays["image_size"][0])
    return 2.0 * float(np.arctan(height / (2.0 * focal))), width / height
