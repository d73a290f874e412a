"""Running a user-supplied HybrIK ONNX (the frozen per-frame stage) with the I/O the seed documents.

Inputs (seed ``doc/mesh.md``, CONTRACT "The HybrIK stage"):
    input_image  [N, 256, 256, 3] float32, the crop ALREADY normalised (``lib.hybrik.preprocess``)
    bbox         [N, 4] float32, the expanded square box xyxy px (``HybrIKCrop.bbox``)
    image_center [N, 2] float32, (W / 2, H / 2) px of the full frame
Outputs used here (others, e.g. ``pred_vertices``, ``pred_uvd_jts``, are allowed and ignored):
    pred_shape [N, 10], pred_theta_mats [N, 216] (24 row-major 3x3), transl [N, 3] m,
    pred_xyz_jts_17 [N, 51] (root-relative, units of ``DEPTH_FACTOR_M`` = 2.2 m); optional cam_root [N, 3].

``run_hybrik_on_frames`` turns frames + boxes into the same dict HybrIK's ``demo_video.py --save-pk``
writes (``res.pk``), so every later step is shared with that input.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from lib.deploy.onnx_runner import open_session
from lib.errors import CheckpointError, DataError
from lib.hybrik.preprocess import INPUT_NAMES, INPUT_SIZE, hybrik_batch

log = logging.getLogger(__name__)

# Expected shape of each input; None = dynamic (the batch N).
INPUT_SHAPES: dict[str, tuple[int | None, ...]] = {
    "input_image": (None, INPUT_SIZE, INPUT_SIZE, 3), "bbox": (None, 4), "image_center": (None, 2)}
# Outputs this module reads, with their per-sample size.
REQUIRED_OUTPUTS: dict[str, int] = {"pred_shape": 10, "pred_theta_mats": 216, "transl": 3, "pred_xyz_jts_17": 51}
OPTIONAL_OUTPUTS: dict[str, int] = {"cam_root": 3}
DEFAULT_BATCH = 8


def _dims(shape: Sequence[Any]) -> tuple[int | None, ...]:
    """ONNX shape entries -> ints, None for symbolic / unknown dimensions."""
    return tuple(d if isinstance(d, int) else None for d in shape)


def check_hybrik_io(inputs: Sequence[tuple[str, Sequence[Any]]], outputs: Sequence[str], path: str | Path) -> None:
    """Refuse an ONNX whose inputs or outputs do not match the seed's HybrIK signature.

    Args:
        inputs: (name, shape) of each graph input, shapes as onnxruntime reports them.
        outputs: graph output names.
    Raises:
        CheckpointError: one line naming the file, the expected and the actual names / shapes.
    """
    names = [name for name, _ in inputs]
    if sorted(names) != sorted(INPUT_NAMES):
        raise CheckpointError(f"{path}: HybrIK ONNX inputs are {names}; expected {list(INPUT_NAMES)} "
                              "(input_image [N,256,256,3] normalised crop, bbox [N,4] xyxy, image_center [N,2]); "
                              "export HybrIK with the seed's input names")
    for name, shape in inputs:
        want, got = INPUT_SHAPES[name], _dims(shape)
        if len(got) != len(want) or any(w is not None and g is not None and w != g for w, g in zip(want, got)):
            pretty = ["N" if w is None else w for w in want]
            raise CheckpointError(f"{path}: HybrIK ONNX input '{name}' has shape {list(shape)}; expected {pretty} "
                                  "(NHWC crop of 256 x 256 RGB, already normalised)")
    missing = [k for k in REQUIRED_OUTPUTS if k not in outputs]
    if missing:
        raise CheckpointError(f"{path}: HybrIK ONNX lacks output(s) {missing} (has {list(outputs)}); "
                              f"the refiner needs {list(REQUIRED_OUTPUTS)}")


class HybrIKOnnx:
    """An onnxruntime CPU session of a HybrIK model with the seed's I/O, checked at load.

    Args:
        path: the .onnx file.
        threads: onnxruntime intra-op threads.
    Raises:
        CheckpointError: missing / unreadable file, or inputs / outputs not as ``check_hybrik_io`` wants.
    """

    def __init__(self, path: str | Path, threads: int = 2) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, threads, missing_hint="pass the exported HybrIK model with --hybrik_onnx",
                                    what="HybrIK ONNX")
        check_hybrik_io([(i.name, i.shape) for i in self.session.get_inputs()],
                        [o.name for o in self.session.get_outputs()], self.path)
        self.outputs = [k for k in (*REQUIRED_OUTPUTS, *OPTIONAL_OUTPUTS)
                        if k in {o.name for o in self.session.get_outputs()}]

    def run(self, input_image: np.ndarray, bbox: np.ndarray, image_center: np.ndarray) -> dict[str, np.ndarray]:
        """One batch through HybrIK.

        Args:
            input_image: (N, 256, 256, 3) float32 normalised crops.
            bbox: (N, 4) expanded boxes xyxy px.
            image_center: (N, 2) px.
        Returns:
            the outputs of ``REQUIRED_OUTPUTS`` (and present ``OPTIONAL_OUTPUTS``), each (N, size) float32.
        Raises:
            DataError: an output of the wrong size.
        """
        feeds = {"input_image": np.ascontiguousarray(input_image, dtype=np.float32),
                 "bbox": np.ascontiguousarray(bbox, dtype=np.float32),
                 "image_center": np.ascontiguousarray(image_center, dtype=np.float32)}
        values = self.session.run(self.outputs, feeds)
        out = {}
        n = len(input_image)
        for name, value in zip(self.outputs, values):
            size = {**REQUIRED_OUTPUTS, **OPTIONAL_OUTPUTS}[name]
            value = np.asarray(value, dtype=np.float32)
            if value.size != n * size:
                raise DataError(f"{self.path}: output '{name}' has shape {value.shape} for a batch of {n}; "
                                f"expected ({n}, {size})")
            out[name] = value.reshape(n, size)
        return out


def run_hybrik_on_frames(hybrik: HybrIKOnnx | Callable[..., dict[str, np.ndarray]], frames: Iterable[np.ndarray],
                         boxes: np.ndarray, batch_size: int = DEFAULT_BATCH,
                         frame_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Frames + person boxes through HybrIK -> a dict in HybrIK's ``res.pk`` layout.

    Args:
        hybrik: a ``HybrIKOnnx`` (or any callable ``(input_image, bbox, image_center) -> outputs``).
        frames: F RGB frames (H, W, 3) uint8, in order (an iterator is consumed lazily).
        boxes: (F, 4) tight person boxes xyxy px, one per frame.
        batch_size: frames per HybrIK call.
        frame_names: optional (F,) names stored as ``img_path``.
    Returns:
        ``pred_thetas`` (F, 216), ``pred_betas`` (F, 10), ``pred_xyz_17`` (F, 17, 3) in units of 2.2 m,
        ``transl`` (F, 3) m, ``bbox`` (F, 4) expanded xyxy px, ``height`` and ``width`` (F,) px,
        ``pred_cam_root`` (F, 3) when the model returns ``cam_root``, and ``img_path`` (F,).
    Raises:
        DataError: a box count that differs from the frame count.
    """
    run = hybrik.run if isinstance(hybrik, HybrIKOnnx) else hybrik
    boxes = np.asarray(boxes, dtype=np.float64)
    acc: dict[str, list[np.ndarray]] = {}
    sizes: list[tuple[int, int]] = []
    pending: list[np.ndarray] = []
    count = 0

    def flush() -> None:
        lo = count - len(pending)
        crops, bbox, center = hybrik_batch(pending, boxes[lo:count])
        out = run(crops, bbox, center)
        out["bbox"] = bbox
        for key, value in out.items():
            acc.setdefault(key, []).append(np.asarray(value))
        pending.clear()

    for frame in frames:
        if count >= len(boxes):
            raise DataError(f"more frames than boxes ({len(boxes)}); give one xyxy box per frame")
        pending.append(frame)
        sizes.append(frame.shape[:2])
        count += 1
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    if count != len(boxes):
        raise DataError(f"{count} frames but {len(boxes)} boxes; give one xyxy box per frame")
    if count == 0:
        raise DataError("no frames to run HybrIK on")
    stacked = {k: np.concatenate(v) for k, v in acc.items()}
    result = {
        "pred_thetas": stacked["pred_theta_mats"],
        "pred_betas": stacked["pred_shape"],
        "pred_xyz_17": stacked["pred_xyz_jts_17"].reshape(count, 17, 3),
        "transl": stacked["transl"],
        "bbox": stacked["bbox"],
        "height": np.array([h for h, _ in sizes], dtype=np.int64),
        "width": np.array([w for _, w in sizes], dtype=np.int64),
        "img_path": np.array(list(frame_names) if frame_names is not None else [f"{i:06d}" for i in range(count)]),
    }
    if "cam_root" in stacked:
        result["pred_cam_root"] = stacked["cam_root"]
    log.info("HybrIK: %d frames", count)
    return result
