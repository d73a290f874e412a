"""2D keypoints: per-dataset canvases, the pixel <-> network normalisation, COCO-17 -> H36M-17.

The normalisation is the original's (shared/CONTRACT.md): with (W, H) the dataset's canvas,

    x_n = x / W * 2 - 1,    y_n = y / W * 2 - H / W,

i.e. the canvas centre maps to 0 and both axes are divided by half the **width** (aspect ratio kept).
The network input is (x_n, y_n, confidence) with the confidence clipped to [0, 1].

Every function takes numpy arrays or torch tensors and returns the same type.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from lib.body.joint_names import COCO_JOINT_NAMES, H36M_JOINT_NAMES, H36M_NUM_JOINTS

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

# Fixed canvases (W, H) px of the datasets whose frames are normalised with one size.
DATASET_CANVAS: dict[str, tuple[int, int]] = {"pw3d": (1920, 1920), "coco": (640, 640)}
# Human3.6M: (W, H) px per camera id (the four real cameras).
H36M_CAMERA_RES: dict[str, tuple[int, int]] = {
    "54138969": (1000, 1002), "55011271": (1000, 1000),
    "58860488": (1000, 1000), "60457274": (1000, 1002),
}

COCO_NUM_JOINTS = len(COCO_JOINT_NAMES)
# head_top = mid_ears + HEAD_TOP_EXTRAPOLATION * (mid_ears - mid_shoulders). Anthropometric tables put the
# ear (tragion) at ~0.92 and the shoulder (acromion) at ~0.82 of stature; the vertex is at 1.0, so the
# head top lies ~0.7 of the shoulder->ear distance beyond the ears. Collinear points keep their ratio under
# projection (up to perspective), so the same rule works in 2D.
HEAD_TOP_EXTRAPOLATION = 0.7


def _coco(name: str) -> int:
    return COCO_JOINT_NAMES.index(name)


def _coco_to_h36m_weights() -> tuple[np.ndarray, np.ndarray]:
    """Linear map from COCO-17 to H36M-17 positions and the mask of COCO joints each H36M joint uses.

    Returns:
        weights (17 H36M, 17 COCO) float64: h36m_xy = weights @ coco_xy.
        used (17 H36M, 17 COCO) bool: which COCO joints enter each H36M joint (for the confidence).
    """
    hips = {_coco("left_hip"): 0.5, _coco("right_hip"): 0.5}
    shoulders = {_coco("left_shoulder"): 0.5, _coco("right_shoulder"): 0.5}
    k = HEAD_TOP_EXTRAPOLATION
    head_top = {_coco("left_ear"): 0.5 * (1 + k), _coco("right_ear"): 0.5 * (1 + k),
                _coco("left_shoulder"): -0.5 * k, _coco("right_shoulder"): -0.5 * k}
    spine = {j: 0.5 * w for j, w in (*hips.items(), *shoulders.items())}
    same = ("right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "nose",
            "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist")
    recipe: dict[str, dict[int, float]] = {name: {_coco(name): 1.0} for name in same}
    recipe.update(pelvis=hips, thorax=shoulders, spine=spine, head_top=head_top)
    weights = np.zeros((H36M_NUM_JOINTS, COCO_NUM_JOINTS))
    for h, name in enumerate(H36M_JOINT_NAMES):
        for c, w in recipe[name].items():
            weights[h, c] = w
    return weights, weights != 0


_COCO_TO_H36M_WEIGHTS, _COCO_TO_H36M_USED = _coco_to_h36m_weights()


def normalize_2d(xy: ArrayT, width: float, height: float) -> ArrayT:
    """Pixels -> network coordinates: ``x / W * 2 - 1``, ``y / W * 2 - H / W``.

    Args:
        xy: (..., J, 2) px, x to the right and y down from the canvas' top-left corner.
        width, height: the canvas (W, H) px.
    Returns:
        (..., J, 2), same type (and floating dtype) as ``xy``; the canvas centre maps to (0, 0).
    """
    _check_xy(xy)
    x = xy[..., 0] / width * 2 - 1
    y = xy[..., 1] / width * 2 - height / width
    return _stack((x, y), like=xy)


def denormalize_2d(xy_n: ArrayT, width: float, height: float) -> ArrayT:
    """Network coordinates -> pixels; the exact inverse of :func:`normalize_2d`.

    Args:
        xy_n: (..., J, 2) normalised coordinates.
        width, height: the canvas (W, H) px used to normalise.
    Returns:
        (..., J, 2) px, same type as ``xy_n``.
    """
    _check_xy(xy_n)
    x = (xy_n[..., 0] + 1) * width / 2
    y = (xy_n[..., 1] + height / width) * width / 2
    return _stack((x, y), like=xy_n)


def pose2d_input(xy: ArrayT, conf: ArrayT, width: float, height: float) -> ArrayT:
    """The refiner's 2D input: normalised (x, y) plus the confidence clipped to [0, 1].

    Args:
        xy: (..., J, C>=2) px; only the first two channels are read (MotionBERT's ``joint_2d``).
        conf: (..., J) or (..., J, 1) detector confidence, any range.
        width, height: the canvas (W, H) px.
    Returns:
        (..., J, 3) float32 (x_n, y_n, confidence), same type as ``xy``.
    """
    xy2 = xy[..., :2]
    lead = tuple(xy2.shape[:-1])                              # (..., J)
    if tuple(conf.shape) == lead:
        conf = conf[..., None]                                # (..., J, 1)
    elif tuple(conf.shape) != (*lead, 1):
        raise ValueError(f"confidence shape {tuple(conf.shape)} does not match keypoints {tuple(xy.shape)}; "
                         f"expected {lead} or {(*lead, 1)}")
    xy_n = normalize_2d(xy2, width, height)
    if isinstance(xy_n, torch.Tensor):
        c = torch.as_tensor(conf, device=xy_n.device).clamp(0.0, 1.0)
        return torch.cat((xy_n.float(), c.float()), dim=-1)
    c = np.clip(np.asarray(conf), 0.0, 1.0)
    return np.concatenate((xy_n.astype(np.float32), c.astype(np.float32)), axis=-1)


def coco_to_h36m(kp: ArrayT, has_confidence: bool | None = None) -> ArrayT:
    """COCO-17 keypoints (``COCO_JOINT_NAMES`` order) -> H36M-17 (``H36M_JOINT_NAMES`` order).

    Joints present in both are copied. The others: pelvis = mid-hip, thorax = mid-shoulder, spine = the
    midpoint of pelvis and thorax, head_top = mid-ear extrapolated away from the mid-shoulder by
    ``HEAD_TOP_EXTRAPOLATION`` (0.7) of their distance. (MotionBERT's wild-video ``coco2h36m`` uses the
    mid-eye point instead, which lies ~10 cm below the H36M head top that the training data holds.)
    The confidence of a derived joint is the minimum over the COCO joints it uses.

    Args:
        kp: (..., 17, C) COCO-17 keypoints: positions, optionally followed by one confidence channel.
        has_confidence: whether the last channel is a confidence. Default: True when C == 3
            (the (x, y, score) layout of 2D detectors), False otherwise (pass False for 3D positions).
    Returns:
        (..., 17, C) H36M-17 keypoints, same type as ``kp``.
    """
    if kp.shape[-2] != COCO_NUM_JOINTS:
        raise ValueError(f"expected COCO keypoints (..., {COCO_NUM_JOINTS}, C), got shape {tuple(kp.shape)}")
    if has_confidence is None:
        has_confidence = kp.shape[-1] == 3
    pos = kp[..., :-1] if has_confidence else kp
    if isinstance(kp, torch.Tensor):
        dtype = torch.promote_types(kp.dtype, torch.float32)
        w = torch.as_tensor(_COCO_TO_H36M_WEIGHTS, dtype=dtype, device=kp.device)
        out = torch.einsum("hc,...cd->...hd", w, pos.to(dtype))  # (..., 17, D)
        if not has_confidence:
            return out
        used = torch.as_tensor(_COCO_TO_H36M_USED, device=kp.device)
        conf = kp[..., None, :, -1].expand(*kp.shape[:-2], H36M_NUM_JOINTS, COCO_NUM_JOINTS)  # (..., 17h, 17c)
        conf = torch.where(used, conf, torch.full_like(conf, float("inf"))).amin(dim=-1)
        return torch.cat((out, conf[..., None].to(dtype)), dim=-1)
    kp = np.asarray(kp)
    dtype = np.result_type(pos.dtype, np.float32)
    out = np.einsum("hc,...cd->...hd", _COCO_TO_H36M_WEIGHTS.astype(dtype, copy=False), pos)  # (..., 17, D)
    if not has_confidence:
        return out
    conf = np.where(_COCO_TO_H36M_USED, kp[..., None, :, -1], np.inf).min(axis=-1)  # (..., 17h)
    return np.concatenate((out, conf[..., None].astype(out.dtype)), axis=-1)


def _check_xy(xy: np.ndarray | torch.Tensor) -> None:
    if xy.shape[-1] != 2:
        raise ValueError(f"expected 2D keypoints (..., J, 2), got shape {tuple(xy.shape)}")


def _stack(parts: tuple[ArrayT, ArrayT], like: ArrayT) -> ArrayT:
    if isinstance(like, torch.Tensor):
        return torch.stack(parts, dim=-1)
    return np.stack(parts, axis=-1)
