"""HybrIK's input pose fitted to the 2D before the refiner sees it (task config ``fit2d_prior``).

``fit_hybrik_pose`` runs ``lib.body.fit2d.fit_to_2d`` over a sequence of frames in chunks of ``CHUNK``
(per-frame increments, weak-perspective scale and offset, an L2 prior of weight ``fit2d_prior``);
training, evaluation (``lib.data.datasets.MeshFiles``) and inference (``lib.deploy.pipeline.refine``) all
call it, so the refiner always sees the input it was trained on. Each frame has its own objective, but
the L-BFGS steps of a chunk are shared, and 50 iterations do not converge every frame: the same frames
fitted in chunks of 32 instead of 256 (style B's 3DPW test) differ by 0.36 mm mean joint position (0.17 deg
at the 99th percentile of joint rotations; 34 mm at the worst frame). A whole split (training) and one
video (inference) are chunked differently, so their fits of the same frame can differ by that much.

A split's fit is kept in a cache file beside its pickle (``<pickle>.fit2d/<split>-<key>.npy``, ``key``
a hash of the pickle's size and modification time, the prior weight, the iterations and
``CACHE_VERSION``), written atomically; a folder that cannot be written is warned about once and the
fit is simply recomputed next time. ~3 ms per frame on 2 cores (``BodyModel.h36m_joints_of_pose``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lib.atomic_write import atomic_open
from lib.body.fit2d import fit_to_2d
from lib.geometry.rotation import axis_angle_to_matrix, matrix_to_axis_angle

log = logging.getLogger(__name__)

CHUNK = 512  # frames fitted in one L-BFGS problem (frames are independent; this bounds memory)
CACHE_VERSION = 1  # bump when the fit's result for the same inputs changes
CACHE_SUFFIX = ".fit2d"


def fit_hybrik_pose(body: nn.Module, pose_aa: np.ndarray, betas: np.ndarray, pose2d: np.ndarray, *,
                    prior_weight: float, steps: int, robust: float | None = None) -> np.ndarray:
    """HybrIK's axis-angle pose of every frame fitted to the frame's 2D.

    Args:
        body: ``BodyModel`` (CPU).
        pose_aa: (F, 72) or (F, 24, 3) rad, HybrIK's pose.
        betas: (F, 10) HybrIK's betas (each frame's own).
        pose2d: (F, 17, C) H36M-17 2D (pixels or normalised: the fit does not depend on the unit); C = 3
            (x, y, confidence) or 2 (no confidence: every joint weighted 1).
        prior_weight, steps, robust: ``fit_to_2d``'s.
    Returns:
        (F, 72) float32 rad, the fitted pose (HybrIK's where a frame has fewer than 4 detected joints).
    """
    frames = len(pose_aa)
    pose = torch.as_tensor(np.asarray(pose_aa, dtype=np.float32)).reshape(frames, 24, 3)
    shape = torch.as_tensor(np.asarray(betas, dtype=np.float32)).reshape(frames, -1)
    keypoints = torch.as_tensor(np.asarray(pose2d, dtype=np.float32))
    if keypoints.shape[-1] == 2:
        keypoints = torch.cat([keypoints, torch.ones_like(keypoints[..., :1])], dim=-1)
    out = np.empty((frames, 72), dtype=np.float32)
    for lo in range(0, frames, CHUNK):
        hi = min(lo + CHUNK, frames)
        fitted = fit_to_2d(body, axis_angle_to_matrix(pose[lo:hi]), shape[lo:hi], keypoints[lo:hi],
                           prior_weight=prior_weight, steps=steps, robust=robust)  # (n, 24, 3, 3)
        out[lo:hi] = matrix_to_axis_angle(fitted).reshape(hi - lo, 72).numpy()
    return out


def cache_path(pickle_path: str | Path, split: str, prior_weight: float, steps: int,
               robust: float | None = None) -> Path:
    """Where the fit of ``split`` of ``pickle_path`` is cached (a new name whenever the pickle or a setting
    of the fit changes)."""
    path = Path(pickle_path)
    stat = path.stat()
    settings = (stat.st_size, stat.st_mtime_ns, float(prior_weight), int(steps), CACHE_VERSION)
    if robust is not None:  # squared-error fits keep the names they had before the robust option
        settings += (float(robust),)
    key = hashlib.sha1(repr(settings).encode()).hexdigest()[:16]
    return path.with_name(path.name + CACHE_SUFFIX) / f"{split}-{key}.npy"


def fitted_split_pose(pickle_path: str | Path, split: str, body: nn.Module, pose_aa: np.ndarray, betas: np.ndarray,
                      pose2d: np.ndarray, *, prior_weight: float, steps: int,
                      robust: float | None = None) -> np.ndarray:
    """``fit_hybrik_pose`` of one split of a pickle, read from its cache file when there is one (module
    docstring), else computed and cached."""
    cached = cache_path(pickle_path, split, prior_weight, steps, robust)
    if cached.is_file():
        pose = np.load(cached)
        if pose.shape == (len(pose_aa), 72):
            log.info("%s %s: HybrIK's pose fitted to the 2D read from %s", pickle_path, split, cached)
            return pose
        log.warning("%s: holds %s, expected (%d, 72); fitting again", cached, pose.shape, len(pose_aa))
    start = time.perf_counter()
    pose = fit_hybrik_pose(body, pose_aa, betas, pose2d, prior_weight=prior_weight, steps=steps, robust=robust)
    log.info("%s %s: HybrIK's pose of %d frames fitted to the 2D (prior %g, %d iterations, robust %s) in %.0f s",
             pickle_path, split, len(pose), prior_weight, steps, robust, time.perf_counter() - start)
    try:
        cached.parent.mkdir(exist_ok=True)
        with atomic_open(cached, "wb") as handle:
            np.save(handle, pose)
    except OSError as exc:
        log.warning("the fit could not be cached at %s (%s); it is recomputed on the next load", cached, exc)
    return pose
