"""HybrIK with camera (HybrIK's ``HRNetSMPLCam``): image crop -> 3D heatmaps, shape, twist, camera -> SMPL.

Pipeline for a normalised 256 x 256 crop (``lib.hybrik.preprocess``):

1. HRNet (``preact``) -> heatmap logits (29 joints x 64 depth bins x 64 x 64) and a 2048-d feature.
2. One softmax over each joint's whole volume, then soft-argmax: ``pred_uvd_jts`` in [-0.5, 0.5]
   (u, v across the crop, d across ``DEPTH_FACTOR_M`` = 2.2 m of depth); ``maxvals`` the peak.
3. From the feature: betas ``pred_shape = init_shape + decshape(f)``, twist ``pred_phi = decphi(f)``
   as (cos, sin) per joint 1..23 (un-normalised), ``pred_camera = init_cam + deccam(f)`` (weak-perspective
   scale, ``init_cam`` = 0.9), per-joint uncertainty ``pred_sigma = sigmoid(decsigma(f))``.
4. Camera (focal ``FOCAL_CROP_PX`` = 1000 px on the 256 px crop): at inference the scale is refined
   by a weighted least-squares fit of the projections of the naive-IK joints to uv (weights
   ``max(1 - 10 sigma, 0)`` on the 24 SMPL joints; HybrIK's ``update_scale``), then
   ``depth = 1000 / (256 * scale)``; uv, shifted by the box centre's offset from the image centre
   (divided by the box size), are back-projected at ``z * 2.2 + depth``: ``pred_xyz_jts_29``
   (root-relative, units of 2.2 m) and ``cam_root`` (m, camera frame).
5. HybrIK's inverse pass (``self.smpl.hybrik``, ``lib.hybrik.smpl_layer``: hybrid IK -> 24 rotations,
   SMPL -> mesh). ``pred_vertices`` (m) are centred on the H36M pelvis of HybrIK's own regressor,
   ``pred_xyz_jts_24_struct`` and ``pred_xyz_jts_17`` are root-relative in units of 2.2 m, and
   ``transl = cam_root - (root of the root-relative SMPL joints)``, which is ``cam_root`` itself.

Camera scale without a box (a deliberate difference, ``docs/differences.md``): HybrIK's least-squares
scale can come out negative when no box places the crop in the frame (a person several metres behind
the camera); ``fit_camera_scale`` keeps the network's scale for such a sample instead.

Flip test, done the intended way: the mirrored crop's heatmap logits are mirrored back, left/right
joints swapped and shifted one pixel right **on a copy** (HybrIK shifts in place over overlapping
memory: defect 1); heatmaps, betas, twist (sin negated, pairs swapped) and sigma are averaged, the
camera scales combined by their harmonic mean. ``update_scale`` falls back to the network's scale per
sample (defect 2: HybrIK's batched inverse fails the whole batch when one sample has no confident joint).

Parameter and buffer names equal HybrIK's so its checkpoints load (``lib.hybrik.checkpoint``); the SMPL
arrays and HybrIK's ``J_regressor_h36m`` are non-persistent buffers (``self.smpl``, as HybrIK's
``smpl`` layer) from HybrIK's ``model_files/`` (or a ``data_root`` holding the same files).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lib.body.joint_names import H36M_NUM_JOINTS, SMPL_NUM_BETAS, SMPL_NUM_JOINTS
from lib.body.smpl import HYBRIK_MEAN_BETA_FILE, BodyModel
from lib.errors import AssetError
from lib.hybrik.camera import DEPTH_FACTOR_M, FOCAL_CROP_PX
from lib.hybrik.hrnet import FEATURE_DIM, HRNet
from lib.hybrik.ik import forward_kinematics, hybrik_ik
from lib.hybrik.preprocess import INPUT_SIZE
from lib.hybrik.skeleton import HYBRIK_FLIP_PERM, HYBRIK_NUM_JOINTS, NUM_TWIST, TWIST_FLIP_PERM
from lib.hybrik.smpl_layer import HybrIKSMPL


DEPTH_DIM = 64                   # depth bins of the 3D heatmap
HRNET_WIDTH = 48                 # HybrIK's released HRNet-W48
INIT_CAM_SCALE = 0.9             # HybrIK's init_cam
CAM_DEPTH_EPS = 1e-9             # HybrIK's epsilon in depth = focal / (256 * scale + eps)
SIGMA_WEIGHT = 10.0              # update_scale weights: max(1 - SIGMA_WEIGHT * sigma, 0)
MIN_SCALE_FIT = 1e-8             # sum of squared weighted uv below this: no scale fit for that sample
MEAN_BETA_SOURCE = ("HybrIK's model_files/h36m_mean_beta.npy (https://github.com/Jeff-sjtu/HybrIK); point "
                    "--hybrik_model_files (or data_root) at that folder; only needed for a network without a checkpoint")

OUTPUT_KEYS = (
    "pred_phi", "pred_delta_shape", "pred_shape", "pred_theta_mats", "pred_uvd_jts", "pred_xyz_jts_29",
    "pred_xyz_jts_24", "pred_xyz_jts_24_struct", "pred_xyz_jts_17", "pred_vertices", "maxvals", "cam_scale",
    "cam_root", "transl", "pred_camera", "pred_sigma", "scores", "img_feat",
)


def heatmap_softmax(logits: Tensor) -> Tensor:
    """(B, J, D, H, W) logits -> probabilities, one softmax over each joint's whole volume."""
    batch, joints = logits.shape[:2]
    return torch.softmax(logits.reshape(batch, joints, -1), dim=-1).reshape(logits.shape)


def soft_argmax_3d(heat: Tensor) -> tuple[Tensor, Tensor]:
    """Expected (u, v, d) of each joint's probability volume, and its peak.

    Args:
        heat: (B, J, D, H, W) probabilities (each joint sums to 1).
    Returns:
        uvd (B, J, 3) in [-0.5, 0.5] (bin i at ``i / size - 0.5``), maxvals (B, J, 1).
    """
    batch, joints, depth, height, width = heat.shape
    maxvals = heat.reshape(batch, joints, -1).amax(dim=-1, keepdim=True)
    marginals = (heat.sum(dim=(2, 3)), heat.sum(dim=(2, 4)), heat.sum(dim=(3, 4)))  # over u, v, d
    coords = []
    for marginal, size in zip(marginals, (width, height, depth)):
        index = torch.arange(size, dtype=heat.dtype, device=heat.device)
        coords.append((marginal * index).sum(-1) / size - 0.5)  # (B, J)
    return torch.stack(coords, dim=-1), maxvals


def flip_heatmap_logits(logits: Tensor) -> Tensor:
    """Heatmap logits of a mirrored crop -> the frame of the original crop.

    Mirror u, swap left/right joints, then shift one pixel towards +u on a copy: column 0 keeps its
    value, column i takes column i - 1 (standard HRNet flip testing; HybrIK's in-place version is defect 1).

    Args:
        logits: (B, 29, D, H, W).
    Returns:
        (B, 29, D, H, W).
    """
    mirrored = logits.flip(dims=(-1,))[:, list(HYBRIK_FLIP_PERM)]
    return torch.cat([mirrored[..., :1], mirrored[..., :-1]], dim=-1)


def flip_twist(phis: Tensor) -> Tensor:
    """(B, 23, 2) twist of a mirrored crop -> original frame: sin negated, left/right rows swapped."""
    return torch.stack([phis[..., 0], -phis[..., 1]], dim=-1)[:, list(TWIST_FLIP_PERM)]


def flip_joint_values(values: Tensor) -> Tensor:
    """(B, 29, C) per-joint values of a mirrored crop -> left/right swapped."""
    return values[:, list(HYBRIK_FLIP_PERM)]


def bbox_offset(bbox: Tensor | None, image_center: Tensor | None, like: Tensor) -> Tensor:
    """Offset of the box centre from the image centre in box units (HybrIK's ``bbox_center``).

    Args:
        bbox: (B, 4) xyxy px (the expanded square box), or None.
        image_center: (B, 2) px, or None.
        like: a tensor giving batch size, dtype and device when there is no box.
    Returns:
        (B, 1, 2); zeros without a box (the crop centre is the principal point).
    """
    if bbox is None or image_center is None:
        return torch.zeros(like.shape[0], 1, 2, dtype=like.dtype, device=like.device)
    center = (bbox[:, :2] + bbox[:, 2:]) * 0.5
    size = bbox[:, 2:] - bbox[:, :2]
    return ((center - image_center) / size)[:, None, :]


def camera_depth(scale: Tensor) -> Tensor:
    """Weak-perspective scale -> root depth (m) for focal 1000 on the 256 crop: ``1000 / (256 s + 1e-9)``."""
    return FOCAL_CROP_PX / (INPUT_SIZE * scale + CAM_DEPTH_EPS)


def back_project(uvd: Tensor, depth: Tensor, offset: Tensor) -> Tensor:
    """uvd -> camera-frame xyz in units of ``DEPTH_FACTOR_M``.

    Args:
        uvd: (B, J, 3) in [-0.5, 0.5].
        depth: (B, 1) m, the root depth.
        offset: (B, 1, 2) box offset (``bbox_offset``).
    Returns:
        (B, J, 3): z = d; (x, y) = (uv + offset) * 256 / 1000 * (d * 2.2 + depth) / 2.2.
    """
    z = uvd[..., 2:]
    xy = (uvd[..., :2] + offset) * (INPUT_SIZE / FOCAL_CROP_PX) * (z * DEPTH_FACTOR_M + depth[:, :, None])
    return torch.cat([xy / DEPTH_FACTOR_M, z], dim=-1)


def fit_camera_scale(uv: Tensor, joints_cam: Tensor, weight: Tensor, init_scale: Tensor) -> Tensor:
    """Per-sample weighted least squares for the weak-perspective scale (HybrIK's ``update_scale`` solve).

    Model: ``u * 256 / 1000 * (Z + t) = X`` (same for v), linear in ``t = 256 * depth / 1000 = 1 / scale``.
    Samples with no weight (or a non-positive solution) keep ``init_scale``: without a box, HybrIK's
    solve can give a negative scale (a person several metres behind the camera), which HybrIK keeps
    (``docs/differences.md``).

    Args:
        uv: (B, K, 2) projected coordinates including the box offset.
        joints_cam: (B, K, 3) m, joints placed at the network's root depth guess (camera frame).
        weight: (B, K, 1) >= 0.
        init_scale: (B, 1).
    Returns:
        (B, 1).
    """
    a = uv * weight  # (B, K, 2)
    b = (joints_cam[..., :2] - INPUT_SIZE / FOCAL_CROP_PX * uv * joints_cam[..., 2:]) * weight  # (B, K, 2)
    denom = (a * a).sum(dim=(1, 2))[:, None]  # (B, 1)
    inv_scale = (a * b).sum(dim=(1, 2))[:, None] / denom.clamp_min(MIN_SCALE_FIT)
    valid = (denom > MIN_SCALE_FIT) & (inv_scale > 0)
    return torch.where(valid, 1.0 / torch.where(valid, inv_scale, torch.ones_like(inv_scale)), init_scale)


class HybrIKCam(nn.Module):
    """HybrIK's HRNet-with-camera model (see the module docstring).

    Args:
        body: the SMPL layer (its arrays are non-persistent buffers).
        h36m_regressor: (17, 6890) HybrIK's ``J_regressor_h36m`` (not SPIN's ``..._correct``).
        width: HRNet width (48 for HybrIK's released weights).
        mean_beta: (10,) initial ``init_shape`` (HybrIK's ``h36m_mean_beta.npy``); zeros when None.
            A checkpoint overwrites it.
    """

    NUM_JOINTS = HYBRIK_NUM_JOINTS

    def __init__(self, body: BodyModel, h36m_regressor: np.ndarray | Tensor, width: int = HRNET_WIDTH,
                 mean_beta: np.ndarray | Tensor | None = None) -> None:
        super().__init__()
        self.preact = HRNet(width=width, heatmap_channels=HYBRIK_NUM_JOINTS * DEPTH_DIM)
        init_shape = torch.zeros(SMPL_NUM_BETAS) if mean_beta is None else torch.as_tensor(mean_beta)
        self.register_buffer("init_shape", init_shape.reshape(SMPL_NUM_BETAS).float())
        self.register_buffer("init_cam", torch.tensor([INIT_CAM_SCALE]))
        self.decshape = nn.Linear(FEATURE_DIM, SMPL_NUM_BETAS)
        self.decphi = nn.Linear(FEATURE_DIM, NUM_TWIST * 2)
        self.deccam = nn.Linear(FEATURE_DIM, 1)
        self.decsigma = nn.Linear(FEATURE_DIM, HYBRIK_NUM_JOINTS)
        self.smpl = HybrIKSMPL(body, h36m_regressor)  # HybrIK's layer name; only non-persistent buffers

    def _heads(self, feature: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(B, 2048) -> delta betas (B, 10), betas (B, 10), twist (B, 23, 2), scale (B, 1), sigma (B, 29, 1)."""
        delta_shape = self.decshape(feature)
        shape = delta_shape + self.init_shape
        phi = self.decphi(feature).reshape(-1, NUM_TWIST, 2)
        camera = self.deccam(feature) + self.init_cam
        sigma = torch.sigmoid(self.decsigma(feature)).reshape(-1, HYBRIK_NUM_JOINTS, 1)
        return delta_shape, shape, phi, camera, sigma

    def refine_scale(self, uvd: Tensor, sigma: Tensor, init_scale: Tensor, betas: Tensor, phis: Tensor,
                     offset: Tensor) -> Tensor:
        """HybrIK's ``update_scale``: refit the camera scale to the 2D evidence of the 24 SMPL joints.

        The naive IK gives joints of the predicted shape; placed at the initial depth guess they are
        fitted to uv by ``fit_camera_scale`` with weights ``max(1 - 10 sigma, 0)``.

        Returns:
            (B, 1) scale.
        """
        xyz = back_project(uvd, camera_depth(init_scale), offset)  # (B, 29, 3), depth-factor units
        root = xyz[:, 0] * DEPTH_FACTOR_M  # (B, 3) m; HybrIK leaves the camera depth out here
        skeleton = (xyz - xyz[:, :1]) * DEPTH_FACTOR_M
        rest = self.smpl.rest_skeleton(betas)
        rot = hybrik_ik(skeleton, phis, rest, naive=True)
        joints = forward_kinematics(rot, rest[:, :SMPL_NUM_JOINTS])  # (B, 24, 3)
        joints = joints - joints[:, :1] + root[:, None]
        uv = uvd[:, :SMPL_NUM_JOINTS, :2] + offset
        weight = (1 - SIGMA_WEIGHT * sigma[:, :SMPL_NUM_JOINTS]).clamp_min(0)
        return fit_camera_scale(uv, joints, weight, init_scale)

    def forward(self, image: Tensor, bbox: Tensor | None = None, image_center: Tensor | None = None,
                flip_test: bool = False) -> dict[str, Tensor]:
        """One batch of normalised crops through HybrIK.

        Args:
            image: (B, 3, 256, 256) normalised RGB crops (NCHW).
            bbox: (B, 4) expanded square boxes xyxy px; with ``image_center`` places the root in the
                full-frame camera. Without them the crop centre is the principal point.
            image_center: (B, 2) px.
            flip_test: average with the mirrored crop (the intended flip test, see the module docstring).
        Returns:
            dict with ``OUTPUT_KEYS``: pred_phi (B, 23, 2), pred_delta_shape and pred_shape (B, 10),
            pred_theta_mats (B, 216) row-major, pred_uvd_jts and pred_xyz_jts_29 (B, 87),
            pred_xyz_jts_24 and pred_xyz_jts_24_struct (B, 72), pred_xyz_jts_17 (B, 51) (xyz in units
            of 2.2 m, root-relative), pred_vertices (B, 6890, 3) m, maxvals (B, 29, 1), cam_scale and
            pred_camera (B, 1), cam_root and transl (B, 3) m, pred_sigma and scores (B, 29, 1),
            img_feat (B, 2048).
        """
        batch = image.shape[0]
        inputs = torch.cat([image, image.flip(dims=(3,))]) if flip_test else image
        logits, feature = self.preact(inputs)
        logits = logits.reshape(inputs.shape[0], HYBRIK_NUM_JOINTS, DEPTH_DIM, *logits.shape[-2:])
        if flip_test:
            heat = (heatmap_softmax(logits[:batch]) + heatmap_softmax(flip_heatmap_logits(logits[batch:]))) / 2
        else:
            heat = heatmap_softmax(logits)
        uvd, maxvals = soft_argmax_3d(heat)
        delta_shape, shape, phi, camera, sigma = self._heads(feature[:batch])
        if flip_test:
            _, shape_f, phi_f, camera_f, sigma_f = self._heads(feature[batch:])
            shape = (shape + shape_f) / 2
            phi = (phi + flip_twist(phi_f)) / 2
            camera = 2 / (1 / camera + 1 / camera_f)
            sigma = (sigma + flip_joint_values(sigma_f)) / 2

        offset = bbox_offset(bbox, image_center, uvd)
        scale = camera[:, :1]
        if not self.training:
            scale = self.refine_scale(uvd, sigma, scale, shape, phi, offset)
        depth = camera_depth(scale)  # (B, 1) m
        xyz = back_project(uvd, depth, offset)  # (B, 29, 3), camera frame, units of 2.2 m
        cam_root = xyz[:, 0] * DEPTH_FACTOR_M + torch.cat([torch.zeros_like(depth), torch.zeros_like(depth), depth], 1)
        xyz = xyz - xyz[:, :1]

        smpl = self.smpl.hybrik(xyz * DEPTH_FACTOR_M, shape, phi)  # root-relative, metres
        joints = smpl.joints  # (B, 24, 3), SMPL root at 0
        return {
            "pred_phi": phi,
            "pred_delta_shape": delta_shape,
            "pred_shape": shape,
            "pred_theta_mats": smpl.rot_mats.reshape(batch, SMPL_NUM_JOINTS * 9),
            "pred_uvd_jts": uvd.reshape(batch, HYBRIK_NUM_JOINTS * 3),
            "pred_xyz_jts_29": xyz.reshape(batch, HYBRIK_NUM_JOINTS * 3),
            "pred_xyz_jts_24": xyz[:, :SMPL_NUM_JOINTS].reshape(batch, SMPL_NUM_JOINTS * 3),
            "pred_xyz_jts_24_struct": (joints / DEPTH_FACTOR_M).reshape(batch, SMPL_NUM_JOINTS * 3),
            "pred_xyz_jts_17": (smpl.joints_from_verts / DEPTH_FACTOR_M).reshape(batch, H36M_NUM_JOINTS * 3),
            "pred_vertices": smpl.vertices,
            "maxvals": maxvals,
            "cam_scale": scale,
            "cam_root": cam_root,
            "transl": cam_root - joints[:, 0],
            "pred_camera": camera,
            "pred_sigma": sigma,
            "scores": 1 - sigma,
            "img_feat": feature[:batch],
        }


def load_mean_beta(data_root: str | os.PathLike) -> np.ndarray:
    """HybrIK's ``h36m_mean_beta.npy`` (10,) from ``data_root`` (HybrIK's ``model_files/``).

    Raises:
        AssetError: missing, unreadable or ill-shaped (one line: path, expected, source).
    """
    path = Path(data_root) / HYBRIK_MEAN_BETA_FILE
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise AssetError(f"{path.resolve()}: cannot read mean betas ({type(exc).__name__}); expected a (10,) "
                         f"float array: {MEAN_BETA_SOURCE}") from None
    if array.size != SMPL_NUM_BETAS or not np.issubdtype(array.dtype, np.number):
        raise AssetError(f"{path.resolve()}: mean betas have shape {array.shape}; expected (10,): {MEAN_BETA_SOURCE}")
    return array.reshape(SMPL_NUM_BETAS).astype(np.float32)


def build_hybrik(model_files: str | os.PathLike, width: int = HRNET_WIDTH, mean_beta: bool = False) -> HybrIKCam:
    """HybrIKCam with SMPL and HybrIK's H36M regressor from HybrIK's ``model_files/``, in eval mode.

    Args:
        model_files: HybrIK's ``model_files/`` as they are (``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl``,
            ``J_regressor_h36m.npy``, ``h36m_mean_beta.npy``), or a data_root holding the SMPL model under
            any of its names (``lib.body.smpl.SMPL_FOLDER_FILES``) and ``J_regressor_h36m.npy``. SPIN's
            regressors are not read.
        width: HRNet width.
        mean_beta: initialise ``init_shape`` from ``h36m_mean_beta.npy`` (a network without a checkpoint);
            otherwise zeros until a checkpoint is loaded.
    Raises:
        AssetError: a missing or malformed file (one line naming it and where HybrIK users find it).
    """
    smpl = HybrIKSMPL.from_model_files(model_files)
    initial = load_mean_beta(model_files) if mean_beta else None
    return HybrIKCam(smpl.body, smpl.j_regressor_h36m, width=width, mean_beta=initial).eval()
