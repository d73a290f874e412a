"""The exported refiner in onnxruntime (CPU): loading, I/O checks, metadata, a window function.

The graph (``lib.deploy.export``): inputs ``pose2d`` [N, T, 17, C], ``hybrik_theta`` [N, T, 72],
``hybrik_shape`` [N, T, 10]; outputs ``rot_mat`` [N, T, 24, 3, 3], ``shape`` [N, T, 10],
``vertices`` [N, T, 6890, 3] mm, ``keypoint_3d`` [N, T, 17, 3] mm; N and T dynamic (T <= maxlen).
Its ``metadata_props`` (``METADATA_*`` keys) carry what a consumer needs: clip_len, sample_stride,
maxlen, the 2D normalisation, units and the model signature.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from lib.windowed import WindowFn
from lib.errors import CheckpointError
from lib.model.refiner import EXPORT_INPUT_NAMES, EXPORT_OUTPUT_NAMES

FORMAT = "ehg-mesh-refine-onnx/1"
# metadata_props keys written by the exporter (values are strings; JSON where structured).
METADATA_FORMAT = "format"
METADATA_CLIP_LEN = "clip_len"
METADATA_SAMPLE_STRIDE = "sample_stride"
METADATA_MAXLEN = "maxlen"
METADATA_FLIP = "flip_test"
METADATA_IN_CHANNELS = "pose2d_channels"
METADATA_SIGNATURE = "model_signature"
METADATA_UNITS = "units"
METADATA_NORMALISATION = "pose2d_normalisation"
METADATA_SOURCE = "checkpoint"
METADATA_EPOCH = "checkpoint_epoch"
METADATA_FIT2D = "fit2d"  # JSON {"prior_weight", "steps"} of the 2D fit of HybrIK's input, or "" (none)
METADATA_QUANTIZATION = "quantization"  # "none", or a JSON description (lib.deploy.quantize)
REQUIRED_METADATA = (METADATA_FORMAT, METADATA_CLIP_LEN, METADATA_SAMPLE_STRIDE, METADATA_MAXLEN)


def cpu_session(path: str | Path, threads: int = 2) -> Any:
    """An onnxruntime CPU session with ``threads`` intra-op threads and warnings silenced."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def open_session(path: Path, threads: int, *, missing_hint: str, what: str) -> Any:
    """``cpu_session`` of a user's file, with one-line errors for a missing or unloadable file.

    Raises:
        CheckpointError: the file does not exist (``missing_hint`` says what to do) or is not ONNX.
    """
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found (resolved to {path.resolve()}); {missing_hint}")
    try:
        return cpu_session(path, threads)
    except Exception as exc:  # noqa: BLE001 - any load failure is the same user error
        reason = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"{path}: not a loadable ONNX model ({reason})") from None


class RefinerSession:
    """An onnxruntime CPU session of an exported refiner, checked at load.

    Args:
        path: the .onnx file written by ``deployment/deployment_mesh.py``.
        threads: onnxruntime intra-op threads.
    Attributes:
        metadata: the model's ``metadata_props`` as a dict of strings.
        clip_len, sample_stride, maxlen, in_channels: ints from the metadata / input shape.
        flip: whether the checkpoint's config asked for flip test-time augmentation.
        fit2d_prior, fit2d_steps, fit2d_robust: the 2D fit of HybrIK's input the checkpoint was trained
            with (``fit2d_prior`` None: none; ``fit2d_robust`` None: squared 2D error).
    Raises:
        CheckpointError: missing / unloadable file, inputs or outputs not the refiner's, missing metadata.
    """

    def __init__(self, path: str | Path, threads: int = 2) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, threads, missing_hint="write one with deployment/deployment_mesh.py "
                                    "--deployment FILE", what="refiner ONNX")
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        if sorted(inputs) != sorted(EXPORT_INPUT_NAMES) or list(outputs) != list(EXPORT_OUTPUT_NAMES):
            raise CheckpointError(f"{self.path}: inputs {sorted(inputs)} and outputs {outputs}; a refiner ONNX has "
                                  f"inputs {list(EXPORT_INPUT_NAMES)} and outputs {list(EXPORT_OUTPUT_NAMES)} "
                                  "(is this the HybrIK model? pass it with --hybrik_onnx)")
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        missing = [k for k in REQUIRED_METADATA if k not in self.metadata]
        if missing:
            raise CheckpointError(f"{self.path}: metadata lacks {missing}; re-export it with "
                                  "deployment/deployment_mesh.py (it records clip_len, sample_stride, maxlen)")
        self.clip_len = int(self.metadata[METADATA_CLIP_LEN])
        self.sample_stride = int(self.metadata[METADATA_SAMPLE_STRIDE])
        self.maxlen = int(self.metadata[METADATA_MAXLEN])
        self.flip = self.metadata.get(METADATA_FLIP, "true").lower() == "true"
        fit2d = json.loads(self.metadata.get(METADATA_FIT2D) or "null")  # files written before the key: no fit
        self.fit2d_prior: float | None = None if fit2d is None else float(fit2d["prior_weight"])
        self.fit2d_steps: int = 50 if fit2d is None else int(fit2d["steps"])
        robust = None if fit2d is None else fit2d.get("robust")  # files written before the option: squared error
        self.fit2d_robust: float | None = None if robust is None else float(robust)
        channels = inputs["pose2d"][-1]
        self.in_channels = int(channels) if isinstance(channels, int) else 3

    def signature(self) -> dict[str, Any]:
        """The model signature recorded at export (``lib.train.checkpoint.model_signature``)."""
        return json.loads(self.metadata.get(METADATA_SIGNATURE, "{}"))

    def run(self, pose2d: np.ndarray, hybrik_theta: np.ndarray, hybrik_shape: np.ndarray) -> dict[str, np.ndarray]:
        """All four outputs for a batch of windows (float32 inputs; shapes in the module docstring)."""
        feeds = {"pose2d": np.ascontiguousarray(pose2d, dtype=np.float32),
                 "hybrik_theta": np.ascontiguousarray(hybrik_theta, dtype=np.float32),
                 "hybrik_shape": np.ascontiguousarray(hybrik_shape, dtype=np.float32)}
        if feeds["pose2d"].shape[1] > self.maxlen:
            raise ValueError(f"window of {feeds['pose2d'].shape[1]} frames exceeds the graph's maxlen {self.maxlen}")
        return dict(zip(EXPORT_OUTPUT_NAMES, self.session.run(list(EXPORT_OUTPUT_NAMES), feeds)))

    def window_fn(self) -> WindowFn:
        """A ``lib.windowed.WindowFn`` returning (rot_mat, shape) of each window."""

        def run(pose2d: np.ndarray, theta: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            out = self.session.run(["rot_mat", "shape"], {
                "pose2d": np.ascontiguousarray(pose2d, dtype=np.float32),
                "hybrik_theta": np.ascontiguousarray(theta, dtype=np.float32),
                "hybrik_shape": np.ascontiguousarray(betas, dtype=np.float32)})
            return out[0], out[1]

        return run
