"""Frames + person boxes through the HybrIK stage -> the arrays of HybrIK's demo ``res.pk``.

``hybrik_predict`` crops and normalises every frame with ``lib.hybrik.preprocess`` (HybrIK's test
transform), runs the PyTorch ``HybrIKCam`` or an exported ONNX file / onnxruntime session in batches,
and stacks the per-frame results under the keys ``scripts/demo_video.py --save-pk`` writes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from lib.deploy.hybrik_export import onnx_session
from lib.errors import DataError
from lib.hybrik.camera import CROP_PX
from lib.hybrik.model import HybrIKCam
from lib.hybrik.preprocess import HybrIKCrop, hybrik_crop

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 8
# res.pk key -> (network output, per-frame shape). pred_scores and pred_phi need the PyTorch model
# (the seed's ONNX outputs do not include maxvals or pred_phi).
RES_KEYS: dict[str, tuple[str, tuple[int, ...]]] = {
    "pred_uvd": ("pred_uvd_jts", (29, 3)),
    "pred_xyz_17": ("pred_xyz_jts_17", (17, 3)),
    "pred_xyz_29": ("pred_xyz_jts_29", (29, 3)),
    "pred_xyz_24_struct": ("pred_xyz_jts_24_struct", (24, 3)),
    "pred_scores": ("maxvals", (29,)),
    "pred_camera": ("pred_camera", (1,)),
    "pred_betas": ("pred_shape", (10,)),
    "pred_thetas": ("pred_theta_mats", (216,)),
    "pred_phi": ("pred_phi", (23, 2)),
    "pred_cam_root": ("cam_root", (3,)),
    "transl": ("transl", (3,)),
}
Runner = Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, np.ndarray]]


def _torch_runner(model: HybrIKCam, flip_test: bool) -> Runner:
    device = next(model.parameters()).device
    model.eval()

    @torch.no_grad()
    def run(image: np.ndarray, bbox: np.ndarray, center: np.ndarray) -> dict[str, np.ndarray]:
        crops = torch.from_numpy(image).to(device).permute(0, 3, 1, 2)  # (N, 3, H, W)
        out = model(crops, torch.from_numpy(bbox).to(device), torch.from_numpy(center).to(device),
                    flip_test=flip_test)
        return {k: v.float().cpu().numpy() for k, v in out.items()}

    return run


def _onnx_runner(session: Any) -> Runner:
    names = [o.name for o in session.get_outputs()]

    def run(image: np.ndarray, bbox: np.ndarray, center: np.ndarray) -> dict[str, np.ndarray]:
        values = session.run(names, {"input_image": image, "bbox": bbox, "image_center": center})
        return dict(zip(names, values))

    return run


def _runner(model: HybrIKCam | Any, flip_test: bool) -> Runner:
    if isinstance(model, HybrIKCam):
        return _torch_runner(model, flip_test)
    if isinstance(model, (str, os.PathLike)):
        return _onnx_runner(onnx_session(Path(model)))
    if hasattr(model, "run") and hasattr(model, "get_outputs"):
        return _onnx_runner(model)
    raise TypeError(f"expected a HybrIKCam, an .onnx path or an onnxruntime session, got {type(model).__name__}")


def _crop(frame: np.ndarray, box: np.ndarray) -> tuple[HybrIKCrop | None, str]:
    """HybrIK's crop of one frame, or (None, why not): an empty box, a box outside the frame, a failed crop."""
    height, width = frame.shape[:2]
    if not np.isfinite(box).all():
        return None, "empty person box"
    if box[2] <= box[0] or box[3] <= box[1]:
        return None, f"empty person box {np.round(box, 1).tolist()} (zero width or height)"
    if box[2] <= 0 or box[3] <= 0 or box[0] >= width or box[1] >= height:
        return None, f"person box {np.round(box, 1).tolist()} outside the {width} x {height} frame"
    try:
        return hybrik_crop(frame, box), ""
    except ValueError as exc:
        return None, f"crop failed ({' '.join(str(exc).split())[:120]})"


def hybrik_predict(frames: Iterable[np.ndarray], boxes: np.ndarray, model: HybrIKCam | str | os.PathLike | Any, *,
                   flip_test: bool = True, batch_size: int = DEFAULT_BATCH,
                   frame_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Run HybrIK on F frames with one person box each.

    Args:
        frames: F RGB frames (H, W, 3) uint8 (not BGR), consumed lazily in batches.
        boxes: (F, 4) tight person boxes xyxy px (e.g. a detector's; the whole frame when there is none).
        model: a ``HybrIKCam`` (PyTorch, any device), the path of an exported ONNX file, or an onnxruntime
            session with the seed's I/O (its flip test is whatever was baked in at export).
        flip_test: for the PyTorch model: HybrIK's demo uses it.
        batch_size: frames per forward pass.
        frame_names: stored as ``img_path`` (default: the frame index, 6 digits).
    Returns:
        HybrIK's ``res.pk`` arrays, stacked over frames: ``pred_uvd`` (F, 29, 3) crop units in
        [-0.5, 0.5]; ``pred_xyz_17`` (F, 17, 3), ``pred_xyz_29`` (F, 29, 3), ``pred_xyz_24_struct``
        (F, 24, 3) root-relative in units of 2.2 m; ``pred_camera`` (F, 1); ``pred_betas`` (F, 10);
        ``pred_thetas`` (F, 216) 24 row-major rotation matrices; ``pred_cam_root`` and ``transl`` (F, 3) m;
        ``transl_camsys`` (F, 3) = ``transl * 256 / bbox_w`` (HybrIK's demo); ``bbox`` (F, 4) expanded
        square box xyxy px; ``height``, ``width`` (F,) px; ``img_path`` (F,). With the PyTorch model also
        ``pred_scores`` (F, 29) heatmap peaks and ``pred_phi`` (F, 23, 2).
        A frame whose box is empty (NaN, zero size; ``lib.deploy.inputs.read_boxes``), lies outside the
        frame, or whose crop fails is not run: its rows are NaN (an invalid frame for
        ``lib.deploy.invalid_frames``) and a warning names it.
    Raises:
        DataError: frame and box counts differ, there is no frame, or no frame could be run.
    """
    run = _runner(model, flip_test)
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise DataError(f"boxes have shape {boxes.shape}; expected (F, 4) xyxy px, one box per frame")
    total = len(boxes)
    collected: dict[str, np.ndarray] = {}  # res.pk key -> (F, ...) float32, NaN where HybrIK did not run
    issues: list[str] = []
    sizes: list[tuple[int, int]] = []
    pending: list[tuple[int, HybrIKCrop]] = []

    def flush() -> None:
        rows = [f for f, _ in pending]
        crops = [c for _, c in pending]
        bbox = np.stack([c.bbox for c in crops])  # (n, 4) the expanded square boxes
        out = {**run(np.stack([c.image for c in crops]), bbox, np.stack([c.image_center for c in crops])),
               "bbox": bbox}
        for key, (name, shape) in {**RES_KEYS, "bbox": ("bbox", (4,))}.items():
            if name in out:
                if key not in collected:
                    collected[key] = np.full((total, *shape), np.nan, dtype=np.float32)
                collected[key][rows] = np.asarray(out[name], dtype=np.float32).reshape(len(rows), *shape)
        pending.clear()

    for frame in frames:
        f = len(sizes)
        if f >= total:
            raise DataError(f"more frames than boxes ({total}); give one xyxy box per frame")
        sizes.append(tuple(frame.shape[:2]))
        crop, reason = _crop(frame, boxes[f])
        issues.append(reason)
        if crop is not None:
            pending.append((f, crop))
        if len(pending) == batch_size:
            flush()
    if len(sizes) != total or not sizes:
        raise DataError(f"{len(sizes)} frames but {total} boxes; give one xyxy box per frame")
    if pending:
        flush()
    skipped = [(f, reason) for f, reason in enumerate(issues) if reason]
    if len(skipped) == total:
        raise DataError(f"HybrIK ran on no frame: each of the {total} frames has an empty box or a failed crop "
                        f"(frame {skipped[0][0]}: {skipped[0][1]}); give boxes that overlap the frames")
    if skipped:
        logger.warning("HybrIK skipped %d of %d frames (their results are NaN, invalid frames): %s", len(skipped), total,
                       "; ".join(f"frame {f}: {reason}" for f, reason in skipped[:4])
                       + (f"; ... ({len(skipped) - 4} more)" if len(skipped) > 4 else ""))
    res = dict(collected)
    bbox_width = res["bbox"][:, 2] - res["bbox"][:, 0]
    res["transl_camsys"] = res["transl"] * (CROP_PX / bbox_width)[:, None]
    res["height"] = np.array([h for h, _ in sizes], dtype=np.int64)
    res["width"] = np.array([w for _, w in sizes], dtype=np.int64)
    names = list(frame_names) if frame_names is not None else [f"{i:06d}" for i in range(len(sizes))]
    res["img_path"] = np.array(names)
    logger.info("HybrIK: %d frames (%s outputs)", len(sizes), "PyTorch" if isinstance(model, HybrIKCam) else "ONNX")
    return res

