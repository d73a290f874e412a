"""Windowed, stitched, optionally flip-averaged refinement of one whole sequence: the one path of
evaluation (``lib.eval.evaluate``) and inference (``lib.deploy``).

Plain arrays in, plain arrays out, the window plan of ``lib.data.clips.WindowPlan``, so a new video is
refined exactly as the test sets are scored:

1. with the checkpoint's ``sample_stride`` s > 1 the sequence is split into its s phases (frames
   p, p + s, ...; ``clips.phase_split``), each refined at the training frame rate;
2. each phase is cut into windows of ``clip_len`` overlapping by ``overlap`` (default half a window;
   the last window aligned to the end; a phase shorter than ``clip_len`` is one window of its own
   length, since the model and the exported graph accept any T <= maxlen);
3. windows of equal length are batched through a *window function* (a PyTorch model or an ONNX
   session, optionally flip-averaged), the per-window rotations and betas are blended per frame with
   trapezoid weights (``clips.stitch``: a linear cross-fade over each overlap, so there is no jump at
   a window border), the phases are interleaved back, and the blended matrices are projected to SO(3).

The blend removes jumps between windows; it does not make the model itself time-invariant. The refine
head's temporal convolutions are zero-padded (as the original's), so a window's first and last few
frames are refined differently from its middle, and a static input shows a small wobble with the
period of the window step. A larger ``overlap`` shrinks it (more windows per frame, more compute).

Meshes are NOT stitched: the caller runs SMPL on the stitched rotations and betas, so the mesh is
always an SMPL mesh and both refiner back-ends give the same result.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from lib.body.joint_names import SMPL_NUM_BETAS, SMPL_NUM_JOINTS
from lib.data.clips import WindowPlan
from lib.body.flip import flip_h36m_keypoints, flip_smpl_axis_angle, flip_smpl_rotmat
from lib.geometry.rotation import project_to_so3

# (pose2d (B, T, 17, C), hybrik_theta (B, T, 72) rad, hybrik_shape (B, T, 10)), float32
#   -> (rot_mat (B, T, 24, 3, 3), shape (B, T, 10)) as numpy arrays.
WindowFn = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
DEFAULT_MAX_WINDOWS_PER_BATCH = 32


def torch_window_fn(model: nn.Module, device: torch.device | str = "cpu") -> WindowFn:
    """A window function running ``MeshRefiner.refine_rotations`` (eval mode, no grad) on ``device``:
    the refiner without its SMPL forward, whose mesh the stitching would discard anyway (SMPL is run
    once on the stitched parameters)."""
    device = torch.device(device)

    @torch.no_grad()
    def run(pose2d: np.ndarray, theta: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        was_training = model.training
        model.eval()
        try:
            x, aa, b = (torch.as_tensor(a, dtype=torch.float32, device=device) for a in (pose2d, theta, betas))
            rot, shape = model.refine_rotations(x, aa, b)  # (B, T, 24, 3, 3), (B, T, 10)
        finally:
            model.train(was_training)
        return rot.cpu().numpy(), shape.cpu().numpy()

    return run


def with_flip(fn: WindowFn) -> WindowFn:
    """Flip test-time augmentation, as the evaluation: the mean of the rotations (and betas) of the
    input and of its mirror image (2D x negated and L/R swapped, pose mirrored), the latter flipped back.
    Both go through ``fn`` in one call (2B windows; flips in numpy): half the calls of a stream.
    """

    def run(pose2d: np.ndarray, theta: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = len(theta)
        both = [np.concatenate([a, b]) for a, b in ((pose2d, flip_h36m_keypoints(np.asarray(pose2d))),
                                                   (theta, flip_smpl_axis_angle(np.asarray(theta))), (betas, betas))]
        rot, shape = (np.asarray(a) for a in fn(*both))  # one call of 2B windows: plain, then mirrored
        back = flip_smpl_rotmat(rot[batch:])
        return 0.5 * (rot[:batch] + back), 0.5 * (shape[:batch] + shape[batch:])

    return run


def refine_sequence(window_fn: WindowFn, pose2d: np.ndarray, theta: np.ndarray, betas: np.ndarray, *,
                    clip_len: int, sample_stride: int = 1, overlap: int | None = None,
                    max_windows_per_batch: int = DEFAULT_MAX_WINDOWS_PER_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Refined rotations and betas of every frame of one sequence.

    Args:
        window_fn: see ``WindowFn`` (``torch_window_fn``, ``lib.deploy.onnx_runner.onnx_window_fn``,
            optionally wrapped in ``with_flip``).
        pose2d: (F, 17, C) normalised 2D keypoints (``lib.data.keypoints2d.pose2d_input``).
        theta: (F, 72) HybrIK axis-angle, rad.
        betas: (F, 10) HybrIK betas.
        clip_len: window length (the checkpoint's ``clip_len``).
        sample_stride: the checkpoint's ``sample_stride`` (phases refined at the training frame rate).
        overlap: frames shared by consecutive windows, 0 <= overlap < clip_len (default clip_len // 2).
        max_windows_per_batch: windows per call of ``window_fn``.
    Returns:
        rot_mat (F, 24, 3, 3) float64 on SO(3), betas (F, 10) float64.
    """
    frames = len(theta)
    if len(pose2d) != frames or len(betas) != frames:
        raise ValueError(f"pose2d, theta and betas have {len(pose2d)}, {frames} and {len(betas)} frames")
    plan = WindowPlan(frames, clip_len, sample_stride, overlap)
    inputs = [np.asarray(a, dtype=np.float32) for a in (pose2d, theta, betas)]
    rots: list[np.ndarray] = []
    shapes: list[np.ndarray] = []
    for group in plan.groups(max_windows_per_batch):
        rows = np.stack([plan.positions(w) for w in group])  # (B, T) frame positions
        rot, shape = window_fn(*(a[rows] for a in inputs))
        rots.extend(np.asarray(rot, dtype=np.float64))
        shapes.extend(np.asarray(shape, dtype=np.float64))
    rot, shape = plan.stitch(rots), plan.stitch(shapes)
    rot = project_to_so3(torch.from_numpy(rot.reshape(frames, SMPL_NUM_JOINTS, 3, 3))).numpy()
    return rot, shape.reshape(frames, SMPL_NUM_BETAS)
