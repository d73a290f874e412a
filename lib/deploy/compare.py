"""A rendered comparison of ground truth, HybrIK and refined meshes on a test sequence (demo report).

Refines the first test sequence of the checkpoint's ``dataset`` exactly as ``infer_mesh.py`` refines a
video (``lib.windowed``: windows, phases, flip, stitching), then draws a few evenly spaced
frames, one row each: ground truth | HybrIK | refined, every mesh centred on its H36M pelvis and seen
by a default camera ``VIEW_DEPTH_M`` in front of it (the test pickles hold no camera translation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lib.atomic_write import atomic_open
from lib.body.joint_names import H36M_ROOT
from lib.deploy.render import GT_COLOR, HYBRIK_COLOR, REFINED_COLOR, PinholeCamera, render_panels
from lib.geometry.rotation import axis_angle_to_matrix
from lib.windowed import refine_sequence, torch_window_fn, with_flip

VIEW_DEPTH_M = 3.0
FOCAL_PER_SIZE = 1.2   # focal length / panel size: a 1.7 m person fills ~2/3 of the panel at 3 m


@torch.no_grad()
def _centred_mesh(body: torch.nn.Module, rot: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """(K, 6890, 3) m, centred on the H36M pelvis and moved ``VIEW_DEPTH_M`` along +z."""
    vertices = body(torch.as_tensor(rot, dtype=torch.float32), torch.as_tensor(betas, dtype=torch.float32)).vertices
    pelvis = body.h36m_joints(vertices)[:, H36M_ROOT:H36M_ROOT + 1]  # (K, 1, 3)
    return (vertices - pelvis).double().numpy() + np.array([0.0, 0.0, VIEW_DEPTH_M])


def render_comparison(checkpoint: str | Path, data_root: str | Path | None, out: str | Path, dataset: str = "pw3d",
                      num_frames: int = 3, panel_size: int = 320) -> Path:
    """Write a PNG of ``num_frames`` rows (ground truth | HybrIK | refined) of one test sequence.

    Args:
        checkpoint: a checkpoint written by ``train_mesh_refine.py`` (its configs are stored in it).
        data_root: SMPL files and the test pickles (default: the checkpoint's ``data_root``).
        out: the PNG to write.
        dataset: ``pw3d`` or ``h36m`` (the config must name its pickle).
    Returns:
        ``out``.
    """
    from lib.data.datasets import EvalSequences, load_split
    from lib.deploy.model_io import load_refiner_from_checkpoint

    model, cfg, _ = load_refiner_from_checkpoint(checkpoint, data_root)
    split = load_split(cfg, dataset, "test")
    sequence = next(iter(EvalSequences(split, cfg.sample_stride, cfg.clip_len)))
    arrays = {k: v.numpy() for k, v in sequence.frame_arrays().items()}
    window_fn = with_flip(torch_window_fn(model)) if cfg.flip else torch_window_fn(model)
    rot, betas = refine_sequence(window_fn, arrays["pose2d"], arrays["hybrik_pose"], arrays["hybrik_shape"],
                                 clip_len=cfg.clip_len, sample_stride=cfg.sample_stride)
    picks = np.unique(np.linspace(0, sequence.frames - 1, num_frames).round().astype(int))

    def axis_angle(pose: np.ndarray) -> np.ndarray:
        return axis_angle_to_matrix(torch.from_numpy(pose[picks].reshape(len(picks), 24, 3))).numpy()

    body = model.body_model
    meshes = {"ground truth": (_centred_mesh(body, axis_angle(arrays["gt_pose"]), arrays["gt_shape"][picks]), GT_COLOR),
              "HybrIK": (_centred_mesh(body, axis_angle(arrays["hybrik_pose"]), arrays["hybrik_shape"][picks]),
                         HYBRIK_COLOR),
              "refined": (_centred_mesh(body, rot[picks], betas[picks]), REFINED_COLOR)}
    camera = PinholeCamera(FOCAL_PER_SIZE * panel_size, panel_size, panel_size)
    rows = [render_panels(None, camera, body.faces,
                          [(vertices[i], color, f"{label} (frame {f})") for label, (vertices, color) in meshes.items()])
            for i, f in enumerate(picks)]
    path = Path(out)
    with atomic_open(path) as handle:
        Image.fromarray(np.concatenate(rows, axis=0)).save(handle, format=path.suffix.lstrip(".").upper() or "PNG")
    return path
