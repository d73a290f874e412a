"""HybrIK's camera: where its demo puts the mesh, and how it projects to the frame.

HybrIK's ``scripts/demo_video.py`` renders ``pred_vertices + transl`` with a pinhole camera of focal
length ``FOCAL_CROP_PX / CROP_PX * bbox_w`` px (``bbox_w``: width of the expanded square box that
``lib.hybrik.preprocess`` returns) and principal point at the image centre; axes as OpenCV (x right,
y down, z forward), metres. ``pred_vertices`` is centred on the H36M pelvis that HybrIK regresses
from the mesh (its own ``J_regressor_h36m``). So, for a mesh ``V`` (F, 6890, 3) m and HybrIK's
``transl`` (F, 3) m:

    V_cam = V - pelvis(V) + transl
    u = f * X / Z + W / 2,   v = f * Y / Z + H / 2,   f = 1000 / 256 * (x2 - x1) of the expanded box.

The refined mesh keeps HybrIK's ``transl`` (the refiner does not estimate translation), so both
meshes sit in the same place and overlay the frame the same way.
"""

from __future__ import annotations

import numpy as np

DEPTH_FACTOR_M = 2.2  # HybrIK's BBOX_3D_SHAPE 2200 mm: xyz joints are in these units
FOCAL_CROP_PX = 1000.0  # HybrIK's FOCAL_LENGTH, defined for the 256 px crop
CROP_PX = 256.0
MIN_DEPTH_M = 1e-3      # points closer than this are clamped before dividing (behind-camera guard)


def focal_px(bbox: np.ndarray) -> np.ndarray:
    """Focal length in full-frame pixels per frame.

    Args:
        bbox: (F, 4) expanded square boxes xyxy px (HybrIK's ``bbox`` in ``res.pk``).
    Returns:
        (F,) px: ``1000 / 256 * (x2 - x1)``.
    """
    bbox = np.asarray(bbox, dtype=np.float64)
    return FOCAL_CROP_PX / CROP_PX * (bbox[..., 2] - bbox[..., 0])


def place_in_camera(points: np.ndarray, pelvis: np.ndarray, transl: np.ndarray) -> np.ndarray:
    """Points of a mesh (any origin) -> HybrIK's camera frame.

    Args:
        points: (F, P, 3) m (vertices or joints of the SMPL mesh).
        pelvis: (F, 3) m, the H36M pelvis of the same mesh (HybrIK's regressor row 0).
        transl: (F, 3) m, HybrIK's ``transl``.
    Returns:
        (F, P, 3) m: ``points - pelvis + transl``.
    """
    return points - pelvis[:, None, :] + transl[:, None, :]


def project(points_cam: np.ndarray, focal: np.ndarray, width: np.ndarray | float,
            height: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection with the principal point at the image centre.

    Args:
        points_cam: (F, P, 3) m in the camera frame.
        focal: (F,) px.
        width, height: image size px, scalars or (F,).
    Returns:
        uv (F, P, 2) px and depth (F, P) m (unclamped; <= 0 means behind the camera).
    """
    f = np.asarray(focal, dtype=np.float64)[:, None]
    cx = np.broadcast_to(np.asarray(width, dtype=np.float64), f.shape[:1])[:, None] / 2
    cy = np.broadcast_to(np.asarray(height, dtype=np.float64), f.shape[:1])[:, None] / 2
    z = points_cam[..., 2]
    zs = np.maximum(z, MIN_DEPTH_M)
    uv = np.stack([f * points_cam[..., 0] / zs + cx, f * points_cam[..., 1] / zs + cy], axis=-1)
    return uv, z
