"""ONNX export of the HybrIK stage with the seed's I/O, and its verification against PyTorch.

Inputs (``lib.hybrik.preprocess.INPUT_NAMES``): ``input_image`` [N, 256, 256, 3] (the crop, already
normalised by ``lib.hybrik.preprocess``, channels last), ``bbox`` [N, 4] expanded square box xyxy px,
``image_center`` [N, 2] px. Outputs (``EXPORT_OUTPUT_NAMES``, the seed's list): ``pred_shape`` [N, 10],
``pred_theta_mats`` [N, 216], ``pred_uvd_jts`` [N, 87], ``pred_xyz_jts_29`` [N, 87], ``pred_xyz_jts_24``
[N, 72], ``pred_xyz_jts_24_struct`` [N, 72], ``pred_xyz_jts_17`` [N, 51], ``pred_vertices`` [N, 6890, 3],
``cam_scale`` [N, 1], ``cam_root`` [N, 3], ``transl`` [N, 3], ``pred_camera`` [N, 1]; N dynamic.

One self-contained file (weights and SMPL arrays inside), written through a temporary file and renamed,
by the TorchScript exporter (``exporter="torchscript"``, ``DEFAULT_EXPORTER``: deprecated by torch but
several times faster on this graph of ~330 convolutions plus the unrolled IK, with the same parity;
README "Deployment") or by torch's dynamo exporter (``"dynamo"``, as the refiner export). Both give the
same graph semantics.
``verify_hybrik_onnx`` runs ``onnx.checker`` and compares onnxruntime (CPU) with eager PyTorch on crops
of random frames made by ``lib.hybrik.preprocess`` at several N (``DEFAULT_TOLERANCES``: max abs
difference per output; the rotation tolerance widens with the IK's conditioning, see ``_conditioned``).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from lib.deploy.onnx_file import ExportInfo, export_info, write_onnx
from lib.deploy.onnx_runner import cpu_session
from lib.hybrik.camera import DEPTH_FACTOR_M
from lib.hybrik.ik import MIN_BONE_M
from lib.hybrik.model import HybrIKCam
from lib.hybrik.preprocess import INPUT_NAMES, INPUT_SIZE, hybrik_batch
from lib.hybrik.skeleton import HYBRIK_PARENTS

logger = logging.getLogger(__name__)

# The seed's outputs and their per-sample shapes.
EXPORT_OUTPUT_DIMS: dict[str, tuple[int, ...]] = {
    "pred_shape": (10,), "pred_theta_mats": (216,), "pred_uvd_jts": (87,), "pred_xyz_jts_29": (87,),
    "pred_xyz_jts_24": (72,), "pred_xyz_jts_24_struct": (72,), "pred_xyz_jts_17": (51,),
    "pred_vertices": (6890, 3), "cam_scale": (1,), "cam_root": (3,), "transl": (3,), "pred_camera": (1,),
}
EXPORT_OUTPUT_NAMES = tuple(EXPORT_OUTPUT_DIMS)
# Max abs difference onnxruntime vs PyTorch. Units: betas; rotation entries; uvd / xyz in [-0.5, 0.5]
# crop or 2.2 m units (1e-4 = 0.2 mm); vertices, cam_root, transl in m (1e-3 = 1 mm: the root depth is
# ~1000 / (256 * scale) m, so float32 rounding alone is ~1e-6 m); scales unitless.
DEFAULT_TOLERANCES: dict[str, float] = {
    "pred_shape": 1e-4, "pred_theta_mats": 1e-3, "pred_uvd_jts": 1e-4, "pred_xyz_jts_29": 1e-4,
    "pred_xyz_jts_24": 1e-4, "pred_xyz_jts_24_struct": 1e-3, "pred_xyz_jts_17": 1e-3, "pred_vertices": 1e-3,
    "cam_scale": 1e-4, "cam_root": 1e-3, "transl": 1e-3, "pred_camera": 1e-4,
}
IK_AMPLIFICATION_MARGIN = 10.0  # rotation tolerance >= margin * joint difference / shortest bone
FLOAT32_JOINT_ERROR_M = 1e-6    # floor of the joint difference used in that bound
TRACE_BATCH = 2  # example N while tracing (torch.export specialises 0 and 1)
EXPORTERS = ("torchscript", "dynamo")
DEFAULT_EXPORTER = "torchscript"  # HRNet-W48: 64 s vs 549 s for dynamo, parity held (benchmarks/results/hybrik_export.md)
BATCH_DIM = "N"
TORCHSCRIPT_OPSET = 17
FRAME_SIZE = (640, 480)  # (W, H) px of the random verification frames


class HybrIKForExport(nn.Module):
    """``HybrIKCam`` with the seed's ONNX signature: NHWC crops in, the 12 seed outputs (a tuple) out.

    Args:
        model: the network (eval mode: the camera scale is refined as in HybrIK's inference).
        flip_test: bake the flip test into the graph (HybrIK's demo runs with it; twice the compute).
    """

    def __init__(self, model: HybrIKCam, flip_test: bool) -> None:
        super().__init__()
        self.model = model
        self.flip_test = flip_test

    def forward(self, input_image: Tensor, bbox: Tensor, image_center: Tensor) -> tuple[Tensor, ...]:
        """(N, H, W, 3), (N, 4), (N, 2) -> ``EXPORT_OUTPUT_NAMES`` in order."""
        out = self.model(input_image.permute(0, 3, 1, 2), bbox, image_center, flip_test=self.flip_test)
        # Explicit per-sample shapes, so the graph declares them (exporters lose some through arithmetic).
        return tuple(out[name].reshape(-1, *dims) for name, dims in EXPORT_OUTPUT_DIMS.items())


@dataclass(frozen=True)
class ParityCheck:
    """onnxruntime vs PyTorch at one batch size: max abs difference per output."""

    n: int
    max_abs: dict[str, float]
    tolerances: dict[str, float]

    @property
    def ok(self) -> bool:
        return all(self.max_abs[k] <= self.tolerances[k] for k in self.max_abs)


def random_inputs(n: int, input_size: int = INPUT_SIZE, seed: int = 0) -> dict[str, np.ndarray]:
    """Real-format inputs: random-noise frames cropped by ``lib.hybrik.preprocess`` around random boxes.

    Boxes of 60..400 px anywhere in a 640 x 480 frame (partly outside it too). For a graph with a smaller
    crop (tests), the 256 px crops are average-pooled down to ``input_size`` (a divisor of 256).

    Returns:
        float32 ``input_image`` (n, size, size, 3) normalised, ``bbox`` (n, 4) expanded xyxy px,
        ``image_center`` (n, 2) px.
    """
    if INPUT_SIZE % input_size:
        raise ValueError(f"input_size {input_size} must divide {INPUT_SIZE}")
    rng = np.random.default_rng(seed)
    width, height = FRAME_SIZE
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]
    side = rng.uniform(60.0, 400.0, (n, 2))
    center = rng.uniform(0.0, 1.0, (n, 2)) * (width, height)
    boxes = np.concatenate([center - side / 2, center + side / 2], axis=1)
    image, bbox, image_center = hybrik_batch(frames, boxes)
    factor = INPUT_SIZE // input_size
    image = image.reshape(n, input_size, factor, input_size, factor, 3).mean(axis=(2, 4))
    return {"input_image": image.astype(np.float32), "bbox": bbox, "image_center": image_center}


def export_hybrik_onnx(model: HybrIKCam, path: str | os.PathLike, *, flip_test: bool = True,
                       input_size: int = INPUT_SIZE, exporter: str = DEFAULT_EXPORTER,
                       opset: int | None = None) -> ExportInfo:
    """Export ``HybrIKForExport(model)`` to one ONNX file with a dynamic batch N.

    Args:
        model: the network (set to eval mode here).
        path: the .onnx file to write (parent folders are created).
        flip_test: bake the flip test into the graph.
        input_size: crop side of the graph's ``input_image`` (HybrIK: 256; tests use smaller crops).
        exporter: ``"torchscript"`` (default) or ``"dynamo"`` (see the module docstring).
        opset: ONNX opset (default: the dynamo exporter's, ``TORCHSCRIPT_OPSET`` for TorchScript).
    Returns:
        ``ExportInfo`` (path, seconds, size, opset, graph inputs / outputs).
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter {exporter!r}; allowed: {list(EXPORTERS)}")
    path = Path(path)
    wrapper = HybrIKForExport(model.eval(), flip_test).eval()
    example = random_inputs(TRACE_BATCH, input_size)
    args = tuple(torch.from_numpy(example[name]) for name in INPUT_NAMES)

    def export(tmp: str) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
            if exporter == "dynamo":
                batch = torch.export.Dim(BATCH_DIM, min=1)
                kwargs: dict[str, Any] = {} if opset is None else {"opset_version": opset}
                torch.onnx.export(wrapper, args, tmp, dynamo=True, external_data=False,
                                  input_names=list(INPUT_NAMES), output_names=list(EXPORT_OUTPUT_NAMES),
                                  dynamic_shapes={name: {0: batch} for name in INPUT_NAMES}, verbose=False, **kwargs)
            else:
                axes = {name: {0: BATCH_DIM} for name in (*INPUT_NAMES, *EXPORT_OUTPUT_NAMES)}
                torch.onnx.export(wrapper, args, tmp, dynamo=False, input_names=list(INPUT_NAMES),
                                  output_names=list(EXPORT_OUTPUT_NAMES), dynamic_axes=axes,
                                  opset_version=TORCHSCRIPT_OPSET if opset is None else opset)

    proto, seconds = write_onnx(path, export, _declare_shapes)
    info = export_info(path, proto, seconds)
    logger.info("exported %s in %.1fs (%.1f MB, opset %d)", path, seconds, info.size_bytes / 1e6, info.opset)
    return info


def _declare_shapes(proto: Any) -> None:
    """Write N and the seed's per-sample shapes into the graph's inputs and outputs.

    Exporters declare some output dimensions as unnamed symbols when they are computed through
    arithmetic; consumers (and ``lib.deploy.hybrik_onnx.check_hybrik_io``) read the declared shapes.
    """
    declared = {**{v.name: None for v in proto.graph.input}, **EXPORT_OUTPUT_DIMS}
    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if declared.get(value.name) is not None:
            per_sample = declared[value.name]
            del dims[:]
            dims.add().dim_param = BATCH_DIM
            for size in per_sample:
                dims.add().dim_value = size
        elif dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = BATCH_DIM


@torch.no_grad()
def torch_outputs(model: HybrIKCam, inputs: dict[str, np.ndarray], flip_test: bool) -> dict[str, np.ndarray]:
    """Eager outputs the graph must reproduce: ``EXPORT_OUTPUT_NAMES`` -> arrays."""
    out = HybrIKForExport(model.eval(), flip_test)(*(torch.from_numpy(inputs[name]) for name in INPUT_NAMES))
    return {name: value.numpy() for name, value in zip(EXPORT_OUTPUT_NAMES, out)}


def onnx_session(path: str | os.PathLike, threads: int = 2) -> Any:
    """An onnxruntime CPU session of an exported HybrIK file."""
    return cpu_session(path, threads)


def _conditioned(tol: dict[str, float], expected: dict[str, np.ndarray], max_abs: dict[str, float]) -> dict[str, float]:
    """Widen the rotation tolerance where the IK is ill-conditioned.

    A bone of length L whose end moves by e turns by up to e / L, so joint differences between the two
    runtimes reach the rotations amplified by 1 / (shortest predicted bone). The joint difference is
    taken from the network's uvd (``pred_xyz_jts_29`` also moves with the fitted camera scale, which
    scales the skeleton without turning its bones), about 2.2 m per unit. Trained networks predict bones
    of several cm (the bound stays below the tolerance); untrained ones put joints within millimetres of
    each other, where float32 rounding alone moves rotations by 1e-3.
    """
    joints = expected["pred_xyz_jts_29"].reshape(len(expected["pred_xyz_jts_29"]), -1, 3) * DEPTH_FACTOR_M
    parents = list(HYBRIK_PARENTS[1:])
    shortest = float(np.linalg.norm(joints[:, 1:] - joints[:, parents], axis=-1).min())
    joint_error = max(max_abs["pred_uvd_jts"] * DEPTH_FACTOR_M, FLOAT32_JOINT_ERROR_M)
    bound = IK_AMPLIFICATION_MARGIN * joint_error / max(shortest, MIN_BONE_M)
    return dict(tol, pred_theta_mats=max(tol["pred_theta_mats"], bound))


def verify_hybrik_onnx(model: HybrIKCam, path: str | os.PathLike, *, flip_test: bool = True,
                       batches: Sequence[int] = (1, 3), input_size: int = INPUT_SIZE,
                       tolerances: dict[str, float] | None = None, seed: int = 0) -> list[ParityCheck]:
    """``onnx.checker`` plus onnxruntime vs PyTorch on random inputs at each batch size.

    Raises:
        onnx.checker.ValidationError: a malformed file.
    Returns:
        one ``ParityCheck`` per batch size (the caller decides what a failure means).
    """
    import onnx

    onnx.checker.check_model(str(path))
    session = onnx_session(path)
    names = [o.name for o in session.get_outputs()]
    tol = dict(DEFAULT_TOLERANCES if tolerances is None else tolerances)
    checks = []
    for i, n in enumerate(batches):
        inputs = random_inputs(n, input_size, seed=seed + i)
        expected = torch_outputs(model, inputs, flip_test)
        got = dict(zip(names, session.run(names, inputs)))
        max_abs = {k: float(np.abs(got[k].astype(np.float64) - expected[k]).max()) for k in EXPORT_OUTPUT_NAMES}
        checks.append(ParityCheck(n=n, max_abs=max_abs, tolerances=_conditioned(tol, expected, max_abs)))
        logger.info("onnxruntime vs PyTorch at N=%d: %s", n, ", ".join(f"{k} {v:.2e}" for k, v in max_abs.items()))
    return checks


def parity_table(checks: Sequence[ParityCheck]) -> str:
    """One line per output: the max abs difference at each N and the tolerance, ``ok`` or ``FAILED``."""
    lines = [f"  {'output':24s} " + " ".join(f"{'N=' + str(c.n):>9s}" for c in checks) + f" {'tolerance':>9s}"]
    for name in EXPORT_OUTPUT_NAMES:
        tolerance = max(c.tolerances[name] for c in checks)
        failed = any(c.max_abs[name] > c.tolerances[name] for c in checks)
        lines.append(f"  {name:24s} " + " ".join(f"{c.max_abs[name]:9.2e}" for c in checks)
                     + f" {tolerance:9.1e} {'FAILED' if failed else 'ok'}")
    return "\n".join(lines)
