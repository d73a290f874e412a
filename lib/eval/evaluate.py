"""Evaluation over a whole test split: every frame scored exactly once, memory flat in the split size.

Per test sequence, by the one windowed path of evaluation and inference (``lib.windowed``):
overlapping windows (``clip_len``, half overlap) are refined in batches, optionally with flip test-time
augmentation (the flipped pass is flipped back and the two rotation sets are averaged), the window
outputs are blended per frame (trapezoid weights) and the averaged rotation matrices are projected back
to SO(3). With ``sample_stride`` s > 1 each of the s phases is refined at
the training frame rate and the phases are interleaved back. SMPL is then re-run on the stitched
rotations, on HybrIK's input and on the ground truth, chunk by chunk, and per-frame errors are summed
(``MetricSums``); only the sequence's 17 joints are kept for its acceleration error.

Protocol (printed with the numbers and written to the JSON): H36M-17 joints regressed from the mesh
with ``J_regressor_h36m_correct``; root = H36M pelvis (or mid-hip, config ``eval_root``); MPJPE /
PA-MPJPE on the 14 standard joints, ``*_17j`` on all 17; MPVE after centring each mesh on its own root;
acceleration error per sequence on the root-aligned 14 joints; neutral-SMPL ground truth; mm.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from lib.body.joint_names import H36M_EVAL_14, H36M_JOINT_NAMES
from lib.body.smpl import posed_mesh_mm
from lib.config.task import TaskConfig
from lib.data.datasets import EvalSequence, EvalSequences, MeshSplit, load_split
from lib.eval.metrics import METRIC_KEYS, MetricSums, accel_error_mm, center_on_root, frame_errors_mm
from lib.geometry.rotation import axis_angle_to_matrix
from lib.model.checkpoint import unwrap
from lib.runtime import DistInfo, all_reduce_sum
from lib.windowed import refine_sequence as windowed_refine
from lib.windowed import torch_window_fn, with_flip

log = logging.getLogger(__name__)

# Frame rate of each dataset's pickles (3DPW is recorded at 30 Hz; our H36M pickles are treated as
# 50 Hz, the camera rate). Only used to convert the acceleration error to m/s^2.
DATASET_FPS = {"pw3d": 30.0, "h36m": 50.0}
SMPL_CHUNK = 256  # frames per SMPL forward when scoring


@dataclass
class EvalReport:
    """Metrics of one test split for HybrIK's input and for the refined output (mm)."""

    dataset: str
    frames: int
    sequences: int
    protocol: dict[str, Any]
    input: dict[str, float]
    refined: dict[str, float]
    per_joint: dict[str, list[float]] = field(default_factory=dict)  # 17-joint MPJPE per joint, mm
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["units"] = {**{k: "mm" for k in METRIC_KEYS if k != "accel_err"}, "accel_err": "mm/frame^2"}
        out["fps"] = DATASET_FPS.get(self.dataset)
        return out


def refine_sequence(model: nn.Module, sequence: EvalSequence, device: torch.device, flip: bool,
                    max_windows_per_batch: int = 64,
                    pose: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stitched per-frame refinement of one test sequence at the full frame rate, by the one windowed
    path of evaluation and inference (``lib.windowed.refine_sequence``, ``with_flip`` when ``flip``).

    Args:
        pose: (F, 72) axis-angle refined instead of the sequence's HybrIK input (a diagnostic, e.g. the
            ground truth: what the refiner does to a perfect input); None: the HybrIK input.
    Returns:
        rot_mat (F,24,3,3) on SO(3) and shape (F,10), float32, CPU.
    """
    arrays = sequence.frame_arrays()
    theta = arrays["hybrik_pose"].numpy() if pose is None else np.asarray(pose, dtype=np.float32)
    window_fn = torch_window_fn(unwrap(model), device)
    rot, shape = windowed_refine(with_flip(window_fn) if flip else window_fn,
                                 arrays["pose2d"].numpy(), theta, arrays["hybrik_shape"].numpy(),
                                 clip_len=sequence.clip_len, sample_stride=sequence.sample_stride,
                                 overlap=sequence.plan.overlap, max_windows_per_batch=max_windows_per_batch)
    return torch.from_numpy(rot).float(), torch.from_numpy(shape).float()


@torch.no_grad()
def smpl_joints_vertices_mm(body: nn.Module, rot_mat: torch.Tensor, betas: torch.Tensor,
                            device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """SMPL of (F,24,3,3) rotations and (F,10) betas -> H36M-17 joints (F,17,3), vertices (F,6890,3), mm,
    float64 (pelvis-centred; the metrics re-centre on the protocol's root)."""
    vertices, joints = posed_mesh_mm(body, rot_mat.to(device)[None], betas.to(device)[None])
    return joints[0].double().cpu().numpy(), vertices[0].double().cpu().numpy()


def score_sequence(body: nn.Module, labels: dict[str, torch.Tensor],
                   variants: dict[str, tuple[torch.Tensor, torch.Tensor]], root: str, device: torch.device,
                   sums: dict[str, MetricSums], per_joint: dict[str, np.ndarray]) -> None:
    """Add one sequence's errors of every variant to ``sums`` and ``per_joint`` (in place).

    SMPL runs in chunks of ``SMPL_CHUNK`` frames, the ground truth once per chunk for all variants;
    per-frame errors (``frame_errors_mm``, root ``root``) and the 17 per-joint errors are summed; the
    acceleration error is taken over the whole sequence on the root-aligned ``H36M_EVAL_14`` joints.

    Args:
        labels: the sequence's ``frame_arrays()`` (``gt_pose`` (F, 72), ``gt_shape`` (F, 10)).
        variants: {name: (rotations (F, 24, 3, 3), betas (F, 10))}.
        sums, per_joint: {name: MetricSums} and {name: (17,) mm sums}, one entry per variant.
    """
    n = len(labels["gt_pose"])
    gt_rot = axis_angle_to_matrix(labels["gt_pose"].reshape(n, 24, 3))
    gt_joints = np.empty((n, 17, 3))
    joints = {name: np.empty((n, 17, 3)) for name in variants}
    for lo in range(0, n, SMPL_CHUNK):
        hi = min(lo + SMPL_CHUNK, n)
        gt_j, gt_v = smpl_joints_vertices_mm(body, gt_rot[lo:hi], labels["gt_shape"][lo:hi], device)
        gt_joints[lo:hi] = gt_j
        for name, (rot, shape) in variants.items():
            pred_j, pred_v = smpl_joints_vertices_mm(body, rot[lo:hi], shape[lo:hi], device)
            joints[name][lo:hi] = pred_j
            sums[name].add_all(frame_errors_mm(pred_j, gt_j, pred_v, gt_v, root=root))
            err = np.linalg.norm(center_on_root(pred_j, root) - center_on_root(gt_j, root), axis=-1)  # (f, 17) mm
            per_joint[name] += err.sum(axis=0)
    gt14 = center_on_root(gt_joints, root)[:, list(H36M_EVAL_14)]
    for name in variants:
        pred14 = center_on_root(joints[name], root)[:, list(H36M_EVAL_14)]
        sums[name].add("accel_err", accel_error_mm(pred14, gt14))


def protocol(cfg: TaskConfig, flip: bool, overlap: int) -> dict[str, Any]:
    return {
        "root": cfg.eval_root,
        "joints": "H36M-17 regressed from the mesh (J_regressor_h36m_correct); mpjpe/pa_mpjpe on 14 joints "
                  f"{list(H36M_EVAL_14)}, *_17j on all 17",
        "mpve": "6890 vertices, each mesh centred on its own root",
        "accel_err": "per sequence, second difference of the root-aligned 14 joints, mm/frame^2",
        "ground_truth": "neutral SMPL from the pickle's smpl_pose/smpl_shape",
        "flip_test": flip,
        "clip_len": cfg.clip_len,
        "window_overlap": overlap,
        "sample_stride": cfg.sample_stride,
    }


def hybrik_input_rotations(labels: Mapping[str, Tensor], frames: int) -> Tensor:
    """(F, 24, 3, 3) HybrIK's own rotations from a sequence's ``frame_arrays()``: the "input" of every report,
    also when the refiner is fed HybrIK's 2D fit (``fit2d_prior``: then ``hybrik_pose_unfitted``)."""
    pose = labels.get("hybrik_pose_unfitted", labels["hybrik_pose"])
    return axis_angle_to_matrix(pose.reshape(frames, 24, 3))


@torch.no_grad()
def evaluate_split(model: nn.Module, body: nn.Module, cfg: TaskConfig, dataset: str, device: torch.device, *,
                   split: MeshSplit | None = None, flip: bool | None = None, overlap: int | None = None,
                   max_windows_per_batch: int = 64, dist_info: DistInfo = DistInfo()) -> EvalReport:
    """Score HybrIK's input and the refined output on every frame of a test split.

    Under torchrun each process scores every ``world_size``-th sequence and the sums are reduced, so
    every frame is still scored exactly once and all processes return the same report.

    Args:
        model: the refiner (eval mode is set here and the previous mode restored).
        body: ``BodyModel`` on ``device``.
        cfg: ``TaskConfig`` (clip_len, sample_stride, flip, eval_root, data files).
        dataset: ``"h36m"`` or ``"pw3d"``.
        split: an already loaded test split (default: load ``cfg``'s file).
        flip: flip test-time augmentation (default ``cfg.flip``).
        overlap: frames shared by consecutive windows (default ``clip_len // 2``).
        dist_info: this process's rank and the number of processes.
    """
    flip = cfg.flip if flip is None else flip
    split = split if split is not None else load_split(cfg, dataset, "test")
    sequences = EvalSequences(split, cfg.sample_stride, cfg.clip_len, overlap)
    overlap = cfg.clip_len // 2 if overlap is None else overlap
    net = unwrap(model)
    was_training = net.training
    net.eval()
    sums = {"input": MetricSums(), "refined": MetricSums()}
    per_joint = {"input": np.zeros(17), "refined": np.zeros(17)}
    start = time.perf_counter()
    frames = 0
    try:
        bar = tqdm(sequences, desc=f"evaluate {dataset}", leave=False, unit="seq", dynamic_ncols=True,
                   disable=not dist_info.is_main)
        for index, sequence in enumerate(bar):
            if index % dist_info.world_size != dist_info.rank:
                continue
            refined_rot, refined_shape = refine_sequence(net, sequence, device, flip, max_windows_per_batch)
            labels = sequence.frame_arrays()
            n = sequence.frames
            input_rot = hybrik_input_rotations(labels, n)
            variants = {"input": (input_rot, labels["hybrik_shape"]), "refined": (refined_rot, refined_shape)}
            score_sequence(body, labels, variants, cfg.eval_root, device, sums, per_joint)
            frames += n
    finally:
        net.train(was_training)
    if dist_info.enabled:
        frames = reduce_over_processes(sums, per_joint, frames, dist_info, device)
    if frames != split.frames:  # the stitching guarantees it; a failure here is a bug, not user error
        raise RuntimeError(f"scored {frames} frames of {split.frames} in {split.path}")
    report = EvalReport(
        dataset=dataset, frames=frames, sequences=len(sequences), protocol=protocol(cfg, flip, overlap),
        input=sums["input"].means(), refined=sums["refined"].means(),
        per_joint={k: (v / max(frames, 1)).round(3).tolist() for k, v in per_joint.items()},
        seconds=time.perf_counter() - start)
    log.info("%s validation: %d frames, %d sequences, %.1fs, %.0f frames/s | %s", dataset, frames, len(sequences),
             report.seconds, frames / max(report.seconds, 1e-9),
             "  ".join(f"{k} {report.input[k]:.2f}->{report.refined[k]:.2f}" for k in METRIC_KEYS
                       if k in report.refined))
    return report


def reduce_over_processes(sums: dict[str, MetricSums], per_joint: dict[str, np.ndarray], frames: int,
                          dist_info: DistInfo, device: torch.device) -> int:
    """Sum metric sums, counts, per-joint sums and frame counts over all processes (in place)."""
    names = sorted(sums)
    packed = [v for n in names for k in METRIC_KEYS for v in (sums[n].sums[k], sums[n].counts[k])]
    packed += [v for n in names for v in per_joint[n].tolist()] + [frames]
    total = all_reduce_sum(torch.tensor(packed, dtype=torch.float64, device=device), dist_info).cpu().numpy()
    i = 0
    for n in names:
        for k in METRIC_KEYS:
            sums[n].sums[k], sums[n].counts[k] = float(total[i]), int(round(total[i + 1]))
            i += 2
    for n in names:
        per_joint[n] = total[i:i + 17].copy()
        i += 17
    return int(round(total[i]))


def format_report_table(report: EvalReport) -> str:
    """A fixed-width table: one row per metric, HybrIK input vs refined and the change."""
    lines = [f"{report.dataset} test: {report.frames} frames, {report.sequences} sequences, "
             f"root={report.protocol['root']}, flip_test={report.protocol['flip_test']}",
             f"{'metric':<14}{'unit':<12}{'input':>10}{'refined':>10}{'change':>10}"]
    for key in METRIC_KEYS:
        if key in report.refined and key in report.input:
            unit = "mm/frame^2" if key == "accel_err" else "mm"
            a, b = report.input[key], report.refined[key]
            lines.append(f"{key:<14}{unit:<12}{a:>10.2f}{b:>10.2f}{b - a:>+10.2f}")
    return "\n".join(lines)


def per_joint_names() -> tuple[str, ...]:
    return H36M_JOINT_NAMES
