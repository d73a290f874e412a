"""Frames + person boxes (or ready crops) through the HybrIK stage -> the arrays of HybrIK's demo ``res.pk``.

``hybrik_predict`` takes one of three inputs (``INPUT_KINDS``):

* ``"frames"`` (default): RGB frames with tight person boxes (a detector's); each frame is cropped and
  normalised with HybrIK's test transform (box padded to a square, enlarged x1.25; ``lib.hybrik.preprocess``);
* ``"square_boxes"``: RGB frames with HybrIK's own square crop boxes (the ``bbox`` of its ``res.pk``,
  already padded and enlarged): cropped exactly there;
* ``"crops"``: crops already made and normalised the HybrIK way (256 x 256 x 3 float, HybrIK's
  ``input_image``) with their square boxes and the full frames' sizes: fed as they are.

It runs the PyTorch ``HybrIKCam`` or an exported ONNX file / onnxruntime session in batches and stacks
the per-frame results under the keys ``scripts/demo_video.py --save-pk`` writes.
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
from lib.hybrik.preprocess import HybrIKCrop, check_square_box, crop_square_box, hybrik_crop, ready_crop

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 8
INPUT_KINDS = ("frames", "square_boxes", "crops")  # see the module docstring
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


def _crop(image: np.ndarray, box: np.ndarray, kind: str, size: tuple[int, int]) -> tuple[HybrIKCrop | None, str]:
    """HybrIK's crop of one frame (or a ready crop), or (None, why not): an empty box, a box outside the
    frame, a failed crop.

    Args:
        image: an RGB frame, or a ready crop (``kind == "crops"``).
        box: (4,) xyxy px.
        size: (W, H) px of the full frame.
    """
    width, height = size
    if not np.isfinite(box).all():
        return None, "empty person box"
    if box[2] <= box[0] or box[3] <= box[1]:
        return None, f"empty person box {np.round(box, 1).tolist()} (zero width or height)"
    if box[2] <= 0 or box[3] <= 0 or box[0] >= width or box[1] >= height:
        return None, f"person box {np.round(box, 1).tolist()} outside the {width} x {height} frame"
    try:
        if kind == "crops":
            return ready_crop(image, box, size), ""
        return (crop_square_box if kind == "square_boxes" else hybrik_crop)(image, box), ""
    except ValueError as exc:
        return None, f"crop failed ({' '.join(str(exc).split())[:160]})"


def _check_inputs(boxes: np.ndarray, kind: str, image_sizes: np.ndarray | None) -> np.ndarray | None:
    """Refuse what would fail every frame alike: an unknown kind, tight boxes given as square ones, crops
    without frame sizes. Returns the (F, 2) frame sizes of ``"crops"`` (None otherwise)."""
    if kind not in INPUT_KINDS:
        raise DataError(f"inputs={kind!r}; expected one of {list(INPUT_KINDS)}")
    if kind != "frames":
        for f, box in enumerate(boxes):
            if np.isfinite(box).all() and box[2] > box[0] and box[3] > box[1]:
                try:
                    check_square_box(box)
                except ValueError as exc:
                    raise DataError(f"frame {f}: {exc}; with inputs='{kind}' every box must be HybrIK's square "
                                    "crop box (pass tight boxes with inputs='frames')") from None
    if kind != "crops":
        return None
    sizes = None if image_sizes is None else np.asarray(image_sizes, dtype=np.float64)
    if sizes is None or sizes.shape != (len(boxes), 2) or not (np.isfinite(sizes).all() and (sizes > 0).all()):
        got = None if sizes is None else sizes.shape
        raise DataError(f"inputs='crops' needs image_sizes, the (W, H) px of each full frame, shape "
                        f"({len(boxes)}, 2); got {got}")
    return sizes


def hybrik_predict(frames: Iterable[np.ndarray], boxes: np.ndarray, model: HybrIKCam | str | os.PathLike | Any, *,
                   inputs: str = "frames", image_sizes: np.ndarray | None = None, flip_test: bool = True,
                   batch_size: int = DEFAULT_BATCH, frame_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Run HybrIK on F frames (or F ready crops) with one person box each.

    Args:
        frames: F images, consumed lazily in batches: RGB frames (H, W, 3) uint8 (not BGR) for
            ``inputs="frames"`` and ``"square_boxes"``; crops (256, 256, 3) float32 normalised the
            HybrIK way (``lib.hybrik.preprocess.normalize_image``) for ``inputs="crops"``.
        boxes: (F, 4) xyxy px: tight person boxes (a detector's; the whole frame when there is none) for
            ``"frames"``; HybrIK's square crop boxes (``res.pk``'s ``bbox``) for ``"square_boxes"`` and
            ``"crops"``.
        model: a ``HybrIKCam`` (PyTorch, any device), the path of an exported ONNX file, or an onnxruntime
            session with the seed's I/O (its flip test is whatever was baked in at export).
        inputs: ``"frames"``, ``"square_boxes"`` or ``"crops"`` (``INPUT_KINDS``, module docstring).
        image_sizes: (F, 2) (W, H) px of the full frames; needed (only) with ``"crops"``.
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
        DataError: frame and box counts differ, there is no frame, or no frame could be run; an unknown
            ``inputs``; a box that is not square with ``"square_boxes"`` / ``"crops"``; ``"crops"``
            without ``image_sizes``.
    """
    run = _runner(model, flip_test)
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise DataError(f"boxes have shape {boxes.shape}; expected (F, 4) xyxy px, one box per frame")
    crop_sizes = _check_inputs(boxes, inputs, image_sizes)
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
        size = (int(crop_sizes[f, 0]), int(crop_sizes[f, 1])) if crop_sizes is not None else frame.shape[1::-1]
        sizes.append((size[1], size[0]))  # (H, W)
        crop, reason = _crop(frame, boxes[f], inputs, size)
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

