"""HybrIK's test-time image preprocessing: person box -> square crop -> normalised 256 x 256 input.

The one implementation of ``SimpleTransform3DSMPLCam.test_transform`` (HybrIK, reference
``motionbert_hybrik.md`` section 3), shared by ``deployment/infer_mesh.py``, the HybrIK ONNX stage,
the tests and the PyTorch port of HybrIK (``lib/hybrik``):

1. box (x1, y1, x2, y2) -> centre and size; the shorter side is padded so that the box is square
   (aspect ratio w/h = 1), then both sides are multiplied by ``SCALE_MULT`` = 1.25;
2. the square of side ``s`` around the centre is mapped to the ``INPUT_SIZE`` x ``INPUT_SIZE`` crop by
   the similarity ``crop = (src - centre) * INPUT_SIZE / s + INPUT_SIZE / 2`` (pixel centres at integer
   coordinates, as OpenCV), sampled bilinearly with zeros outside the image (``cv2.warpAffine``,
   ``INTER_LINEAR``, ``BORDER_CONSTANT``);
3. RGB / 255, then ``(value - MEAN_RGB) / STD_RGB`` per channel in R, G, B order. These are the
   ImageNet statistics in BGR order: a HybrIK quirk, copied exactly because its weights expect it.

Returned with the crop: the expanded square box (``_center_scale_to_box``; HybrIK's ``bbox`` input
and the box its camera uses) and the image centre (W / 2, H / 2) (HybrIK's ``image_center`` input).
``hybrik_crop`` starts from a tight person box (step 1 included); ``crop_square_box`` starts from a
square box HybrIK already expanded (the ``bbox`` of its ``res.pk``) and skips step 1.

Differences from HybrIK: no OpenCV. OpenCV quantises the bilinear weights to 1/32; this module
uses exact weights, so crops differ from HybrIK's by at most 1/64 of the local intensity step
(about 0.02 after normalisation for an edge of 50 grey levels), far below the network's sensitivity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

INPUT_NAMES = ("input_image", "bbox", "image_center")  # the HybrIK model's (and its ONNX's) inputs
INPUT_SIZE = 256                 # HybrIK's IMAGE_SIZE (square crop, px)
ASPECT_RATIO = 1.0               # width / height of the crop
SCALE_MULT = 1.25                # box enlargement (HybrIK's scale_mult)
MEAN_RGB = (0.406, 0.457, 0.480)  # applied to R, G, B (ImageNet means in BGR order: HybrIK's quirk)
STD_RGB = (0.225, 0.224, 0.229)
PIXEL_MAX = 255.0
SQUARE_RTOL = 1e-3               # a square box's width and height agree within this fraction
# Normalised crops lie in [(0 - max mean) / min std, (1 - min mean) / min std] = [-2.15, 2.64].
NORMALISED_RANGE = (-2.2, 2.7)


@dataclass(frozen=True)
class HybrIKCrop:
    """One preprocessed person crop, ready for HybrIK.

    Attributes:
        image: (INPUT_SIZE, INPUT_SIZE, 3) float32, normalised (NHWC layout of the ONNX ``input_image``).
        bbox: (4,) float32 xyxy px, the expanded square box the crop covers (ONNX ``bbox`` input).
        image_center: (2,) float32 (W / 2, H / 2) px of the full frame (ONNX ``image_center`` input).
    """

    image: np.ndarray
    bbox: np.ndarray
    image_center: np.ndarray


def box_to_center_scale(bbox: Sequence[float] | np.ndarray, aspect_ratio: float = ASPECT_RATIO,
                        scale_mult: float = SCALE_MULT) -> tuple[np.ndarray, np.ndarray]:
    """HybrIK's ``_box_to_center_scale``: centre and (padded, enlarged) size of an xyxy box.

    Args:
        bbox: (4,) x1, y1, x2, y2 px.
    Returns:
        centre (2,) px and scale (2,) = (width, height) px of the crop region, float64.
    """
    x1, y1, x2, y2 = (float(v) for v in bbox)
    w, h = x2 - x1, y2 - y1
    if not (np.isfinite([x1, y1, x2, y2]).all() and w > 0 and h > 0):
        raise ValueError(f"box {list(bbox)} is not a finite xyxy box with x2 > x1 and y2 > y1")
    center = np.array([x1 + 0.5 * w, y1 + 0.5 * h])
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w, h]) * scale_mult


def center_scale_to_box(center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """HybrIK's ``_center_scale_to_box``: (4,) xyxy px of the region ``scale`` around ``center``."""
    x1 = center[0] - 0.5 * scale[0]
    y1 = center[1] - 0.5 * scale[1]
    return np.array([x1, y1, x1 + scale[0], y1 + scale[1]])


def crop_to_source(center: np.ndarray, scale: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """(2, 3) affine map from crop pixel coordinates to source pixel coordinates.

    ``src = (crop - size / 2) * scale_x / size + centre`` (the inverse of HybrIK's
    ``get_affine_transform(center, scale, 0, [size, size])`` for a square region).
    """
    k = float(scale[0]) / size
    return np.array([[k, 0.0, center[0] - k * size / 2], [0.0, k, center[1] - k * size / 2]])


def warp_bilinear(image: np.ndarray, to_source: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Sample ``image`` on a ``size`` x ``size`` grid mapped by ``to_source``; zeros outside.

    Bilinear interpolation where samples beyond the image count as 0 (OpenCV's ``BORDER_CONSTANT``).

    Args:
        image: (H, W, C) any numeric dtype.
        to_source: (2, 3) affine map crop (x, y) -> source (x, y), pixel centres at integers.
    Returns:
        (size, size, C) float64.
    """
    height, width = image.shape[:2]
    grid = np.arange(size, dtype=np.float64)
    gx, gy = np.meshgrid(grid, grid)  # (size, size) crop x (columns), y (rows)
    sx = to_source[0, 0] * gx + to_source[0, 1] * gy + to_source[0, 2]
    sy = to_source[1, 0] * gx + to_source[1, 1] * gy + to_source[1, 2]
    x0, y0 = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]  # (size, size, 1)
    src = image.astype(np.float64, copy=False)

    def tap(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        inside = (xx >= 0) & (xx < width) & (yy >= 0) & (yy < height)
        values = src[np.clip(yy, 0, height - 1), np.clip(xx, 0, width - 1)]  # (size, size, C)
        return np.where(inside[..., None], values, 0.0)

    return ((1 - fy) * ((1 - fx) * tap(y0, x0) + fx * tap(y0, x0 + 1))
            + fy * ((1 - fx) * tap(y0 + 1, x0) + fx * tap(y0 + 1, x0 + 1)))


def normalize_image(rgb: np.ndarray) -> np.ndarray:
    """RGB in [0, 255] -> HybrIK's network input: ``(rgb / 255 - MEAN_RGB) / STD_RGB``, float32."""
    return ((rgb / PIXEL_MAX - np.asarray(MEAN_RGB)) / np.asarray(STD_RGB)).astype(np.float32)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {image.shape}; convert greyscale or "
                         "RGBA frames to RGB first")
    return image


def hybrik_crop(image: np.ndarray, bbox: Sequence[float] | np.ndarray) -> HybrIKCrop:
    """HybrIK's ``test_transform`` of one frame (see the module docstring).

    Args:
        image: (H, W, 3) RGB, uint8 or float in [0, 255] (not BGR: convert OpenCV frames first).
        bbox: (4,) x1, y1, x2, y2 px of the person (a detector's tight box).
    Returns:
        ``HybrIKCrop`` (normalised crop, expanded box, image centre).
    """
    center, scale = box_to_center_scale(bbox)
    return crop_square_box(image, center_scale_to_box(center, scale))


def check_square_box(box: Sequence[float] | np.ndarray) -> np.ndarray:
    """(4,) float64 xyxy of a finite box with x2 > x1, y2 > y1 and width == height (within ``SQUARE_RTOL``).

    Raises:
        ValueError: otherwise (a tight detector box is rarely square: give it to ``hybrik_crop`` instead).
    """
    box = np.asarray(box, dtype=np.float64).reshape(4)
    width, height = box[2] - box[0], box[3] - box[1]
    if not (np.isfinite(box).all() and width > 0 and height > 0):
        raise ValueError(f"box {box.tolist()} is not a finite xyxy box with x2 > x1 and y2 > y1")
    if abs(width - height) > SQUARE_RTOL * max(width, height):
        raise ValueError(f"box {np.round(box, 2).tolist()} is {width:.1f} x {height:.1f} px, not square: HybrIK's "
                         "expanded boxes are; a tight person box goes through hybrik_crop (padded and enlarged x1.25)")
    return box


def crop_square_box(image: np.ndarray, square_box: Sequence[float] | np.ndarray) -> HybrIKCrop:
    """HybrIK's crop of the region of a square box it already expanded (step 2 and 3 of the module docstring).

    Args:
        image: (H, W, 3) RGB, uint8 or float in [0, 255].
        square_box: (4,) xyxy px, square (HybrIK's ``bbox`` in ``res.pk``; ``check_square_box``).
    Returns:
        ``HybrIKCrop`` (normalised crop, the same box, image centre).
    """
    rgb = _as_rgb(image)
    box = check_square_box(square_box)
    center, side = (box[:2] + box[2:]) * 0.5, box[2:] - box[:2]
    crop = warp_bilinear(rgb, crop_to_source(center, side), INPUT_SIZE)  # (256, 256, 3) in [0, 255]
    height, width = rgb.shape[:2]
    return HybrIKCrop(image=normalize_image(crop), bbox=box.astype(np.float32),
                      image_center=np.array([width * 0.5, height * 0.5], dtype=np.float32))


def ready_crop(crop: np.ndarray, square_box: Sequence[float] | np.ndarray,
               image_size: Sequence[float] | np.ndarray) -> HybrIKCrop:
    """A crop the caller already made and normalised the HybrIK way, checked and packed as ``HybrIKCrop``.

    Args:
        crop: (256, 256, 3) float, normalised (``normalize_image`` of HybrIK's crop; NHWC as ``input_image``).
        square_box: (4,) xyxy px, the square region of the frame the crop covers.
        image_size: (W, H) px of the full frame.
    Raises:
        ValueError: a crop of another shape, raw pixels instead of normalised values, a box that is not square.
    """
    crop = np.asarray(crop)
    if crop.shape != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError(f"crop of shape {crop.shape}; expected ({INPUT_SIZE}, {INPUT_SIZE}, 3) (HybrIK's input_image)")
    low, high = (float(v) for v in (crop.min(), crop.max())) if crop.size else (0.0, 0.0)
    if not np.issubdtype(crop.dtype, np.floating) or not np.isfinite(crop).all() \
            or low < NORMALISED_RANGE[0] or high > NORMALISED_RANGE[1]:
        raise ValueError(f"crop of dtype {crop.dtype} with values in [{low:.3g}, {high:.3g}]; expected HybrIK's "
                         f"normalised input within {list(NORMALISED_RANGE)} ((RGB / 255 - mean) / std, "
                         "lib.hybrik.preprocess.normalize_image)")
    width, height = (float(v) for v in np.asarray(image_size, dtype=np.float64).reshape(2))
    return HybrIKCrop(image=crop.astype(np.float32), bbox=check_square_box(square_box).astype(np.float32),
                      image_center=np.array([width * 0.5, height * 0.5], dtype=np.float32))


def hybrik_batch(images: Sequence[np.ndarray], boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``hybrik_crop`` of several frames, stacked as the HybrIK ONNX inputs.

    Args:
        images: N (H, W, 3) RGB frames (sizes may differ).
        boxes: (N, 4) xyxy px.
    Returns:
        input_image (N, 256, 256, 3) float32, bbox (N, 4) float32 (expanded), image_center (N, 2) float32.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) != len(images):
        raise ValueError(f"expected boxes of shape ({len(images)}, 4) for {len(images)} images, got {boxes.shape}")
    crops = [hybrik_crop(img, box) for img, box in zip(images, boxes)]
    return (np.stack([c.image for c in crops]), np.stack([c.bbox for c in crops]),
            np.stack([c.image_center for c in crops]))
