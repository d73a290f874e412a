"""``infer_mesh.py``'s steps: HybrIK results (+ 2D) -> refined, stitched SMPL in HybrIK's camera frame.

1. HybrIK's per-frame predictions: a results file (``lib.deploy.inputs.read_hybrik_results``), or
   frames (+ boxes, else the whole frame) through our HybrIK port from a checkpoint or through a HybrIK
   ONNX (``lib.deploy.hybrik_run.hybrik_predict``, wired in ``lib.deploy.infer_cli``); its invalid frames
   (missing, non-finite, an empty box; ``lib.deploy.invalid_frames``) bridged (``bridge_sequence``) or
   refused, as ``--on_invalid`` says;
2. 2D keypoints: a keypoint file (H36M-17 or COCO-17; frames with every confidence 0 bridged or refused
   likewise), else HybrIK's own H36M-17 joints projected with its camera (confidence 1); normalised as the training data (``keypoints2d.pose2d_input``) with the
   video frame size;
3. the refiner, from a checkpoint (PyTorch) or an exported ONNX, over overlapping windows stitched
   smoothly, phase by phase under the checkpoint's ``sample_stride`` (``lib.windowed``), or online,
   frame by frame with a fixed lookahead (``lib.deploy.stream``);
4. SMPL of HybrIK's and of the refined rotations and betas, placed in the camera frame as HybrIK's
   demo places its mesh (``lib.hybrik.camera``), written to an npz (``RESULT_KEYS``), optionally rendered
   and exported as animation files (``export_animation``: glTF binary, BVH).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from lib.atomic_write import atomic_open
from lib.body.joint_names import H36M_ROOT, SMPL_NUM_JOINTS
from lib.body.smpl import HYBRIK_H36M_REGRESSOR_FILE, BodyModel, load_joint_regressor
from lib.config.task import TaskConfig
from lib.data.hybrik_fit import fit_hybrik_pose
from lib.data.keypoints2d import pose2d_input
from lib.deploy.inputs import HybrIKSequence
from lib.deploy.invalid_frames import bridge_linear, bridge_rotations
from lib.deploy.stream import refine_stream
from lib.errors import DataError
from lib.geometry.rotation import matrix_to_axis_angle
from lib.hybrik import camera as cam
from lib.windowed import WindowFn, refine_sequence, torch_window_fn, with_flip

log = logging.getLogger(__name__)

PROJECTED_CONFIDENCE = 1.0   # confidence of 2D obtained by projecting HybrIK's joints
SMPL_CHUNK = 256             # frames per SMPL forward
DEFAULT_FPS = 30.0
UNITS = {
    "pose_aa": "rad, SMPL axis-angle (24 x 3, global orientation first, camera frame)",
    "rot_mat": "SMPL rotation matrices (24 x 3 x 3), act on column vectors",
    "betas": "SMPL betas (10)",
    "vertices": "m, camera frame (x right, y down, z forward), placed as HybrIK's demo: V - pelvis(V) + transl",
    "keypoints_3d": "m, camera frame, H36M-17 (J_regressor_h36m_correct), same placement as vertices",
    "transl": "m, HybrIK's transl (the refined mesh keeps it)",
    "keypoints_2d": "px (x, y) and confidence in [0, 1], H36M-17, the refiner's 2D input before normalisation",
    "pose2d": "the refiner's normalised 2D input (x / W * 2 - 1, y / W * 2 - H / W, confidence)",
    "focal_px": "px, HybrIK's focal length 1000 / 256 * expanded box width; principal point (W / 2, H / 2)",
    "image_size": "px (W, H)",
    "fps": "frames per second",
    "valid": "bool per frame: False where HybrIK or the 2D keypoints had no usable estimate (missing, non-finite, "
             "empty box, every 2D confidence 0); such a frame was bridged from the nearest valid frames (rotations "
             "slerped, the rest linear, held at the ends) and its input_* / keypoints_2d arrays hold the bridged values",
}


@dataclass(frozen=True)
class Refiner:
    """A refiner back-end and the settings it was trained with.

    Attributes:
        window_fn: ``lib.windowed.WindowFn`` (without flip; ``refine`` adds it).
        clip_len, sample_stride, maxlen, in_channels: from the checkpoint's config or the ONNX metadata.
        flip: flip test-time augmentation by default (the config's ``flip``).
        description: where it came from, for logs and the npz.
        fit2d_prior, fit2d_steps, fit2d_robust: the 2D fit of HybrIK's input it was trained with (the config's
            keys or the ONNX metadata; ``fit2d_prior`` None: none), run by ``refine`` before the network.
    """

    window_fn: WindowFn
    clip_len: int
    sample_stride: int
    maxlen: int
    in_channels: int
    flip: bool
    description: str
    fit2d_prior: float | None = None
    fit2d_steps: int = 50
    fit2d_robust: float | None = None


def refiner_from_model(model: torch.nn.Module, task_cfg: TaskConfig, description: str,
                       device: torch.device | str = "cpu") -> Refiner:
    """A ``Refiner`` running a ``MeshRefiner`` in PyTorch (settings from its ``TaskConfig``)."""
    return Refiner(window_fn=torch_window_fn(model, device), clip_len=task_cfg.clip_len,
                   sample_stride=task_cfg.sample_stride, maxlen=task_cfg.maxlen, in_channels=model.in_channels,
                   flip=task_cfg.flip, description=description, fit2d_prior=task_cfg.fit2d_prior,
                   fit2d_steps=task_cfg.fit2d_steps, fit2d_robust=task_cfg.fit2d_robust)


def refiner_from_onnx(path: str | Path, threads: int = 2) -> Refiner:
    """A ``Refiner`` running an exported ONNX in onnxruntime (settings from its metadata)."""
    from lib.deploy.onnx_runner import RefinerSession

    session = RefinerSession(path, threads)
    return Refiner(window_fn=session.window_fn(), clip_len=session.clip_len, sample_stride=session.sample_stride,
                   maxlen=session.maxlen, in_channels=session.in_channels, flip=session.flip,
                   description=f"onnx:{Path(path)}", fit2d_prior=session.fit2d_prior, fit2d_steps=session.fit2d_steps,
                   fit2d_robust=session.fit2d_robust)


# ----------------------------------------------------------------------------------------- inputs


def image_sizes(seq: HybrIKSequence, image_size: tuple[int, int] | None) -> np.ndarray | None:
    """(F, 2) (W, H) px: ``image_size`` (the command line) wins over the results file."""
    if image_size is not None:
        return np.tile(np.asarray(image_size, dtype=np.float64), (seq.frames, 1))
    return seq.image_size


def bridge_sequence(seq: HybrIKSequence) -> HybrIKSequence:
    """``seq`` with its invalid frames bridged (``lib.deploy.invalid_frames``: rotations slerped on SO(3),
    betas, transl, joints, boxes and frame sizes linearly, held at the ends); ``issues`` is kept."""
    valid = seq.valid
    if valid.all():
        return seq

    def linear(value: np.ndarray | None) -> np.ndarray | None:
        return None if value is None else bridge_linear(value, valid)

    return dataclasses.replace(seq, rot_mat=bridge_rotations(seq.rot_mat, valid), betas=bridge_linear(seq.betas, valid),
                               transl=linear(seq.transl), xyz_17=linear(seq.xyz_17), bbox=linear(seq.bbox),
                               image_size=linear(seq.image_size))


# ---------------------------------------------------------------------------------------- SMPL


@dataclass(frozen=True)
class Placed:
    """SMPL meshes in HybrIK's camera frame (metres)."""

    vertices: np.ndarray      # (F, 6890, 3)
    keypoints_3d: np.ndarray  # (F, 17, 3) J_regressor_h36m_correct
    hybrik_17: np.ndarray     # (F, 17, 3) HybrIK's regressor (the demo's pred_xyz_17 joints), placed


def hybrik_pelvis_regressor(body: BodyModel, data_root: str | Path) -> np.ndarray:
    """(17, 6890) HybrIK's H36M regressor (``J_regressor_h36m.npy``), else SPIN's with a warning."""
    path = Path(data_root) / HYBRIK_H36M_REGRESSOR_FILE
    if path.is_file():
        return load_joint_regressor(path, 17)
    log.warning("%s not found: centring meshes on the pelvis of J_regressor_h36m_correct instead of HybrIK's own "
                "regressor (a few mm of difference in the placement)", path)
    return body.J_regressor_h36m.double().cpu().numpy()


@torch.no_grad()
def place_smpl(body: BodyModel, hybrik_regressor: np.ndarray, rot_mat: np.ndarray, betas: np.ndarray,
               transl: np.ndarray) -> Placed:
    """SMPL of (F, 24, 3, 3) rotations and (F, 10) betas, centred on HybrIK's pelvis, shifted by transl (F, 3) m."""
    frames = len(rot_mat)
    vertices = np.empty((frames, body.NUM_VERTICES, 3), dtype=np.float64)
    for lo in range(0, frames, SMPL_CHUNK):
        hi = min(lo + SMPL_CHUNK, frames)
        out = body(torch.as_tensor(rot_mat[lo:hi], dtype=torch.float32),
                   torch.as_tensor(betas[lo:hi], dtype=torch.float32))
        vertices[lo:hi] = out.vertices.double().numpy()
    hybrik_17 = np.einsum("jv,fvc->fjc", hybrik_regressor, vertices)  # (F, 17, 3)
    keypoints = np.einsum("jv,fvc->fjc", body.J_regressor_h36m.double().cpu().numpy(), vertices)  # (F, 17, 3)
    pelvis = hybrik_17[:, H36M_ROOT]
    return Placed(vertices=cam.place_in_camera(vertices, pelvis, transl),
                  keypoints_3d=cam.place_in_camera(keypoints, pelvis, transl),
                  hybrik_17=cam.place_in_camera(hybrik_17, pelvis, transl))


# ----------------------------------------------------------------------------------------- 2D


def projected_keypoints(seq: HybrIKSequence, sizes: np.ndarray | None, smpl_17: np.ndarray | None) -> np.ndarray:
    """HybrIK's H36M-17 joints projected with its camera: (F, 17, 3) px + confidence ``PROJECTED_CONFIDENCE``.

    Uses ``pred_xyz_17`` when the file has it, else ``smpl_17`` (the same joints regressed from the
    input mesh, already in the camera frame).

    Raises:
        DataError: the results lack ``transl``, ``bbox`` or the frame size (the camera is unknown).
    """
    missing = [name for name, value in (("transl", seq.transl), ("bbox", seq.bbox), ("width/height", sizes))
               if value is None]
    if missing:
        raise DataError(f"{seq.source}: no 2D keypoints given and {missing} missing, so HybrIK's joints cannot be "
                        "projected; pass --keypoints2d FILE (and --image_size W H), or use HybrIK's res.pk")
    joints = seq.xyz_17 + seq.transl[:, None] if seq.xyz_17 is not None else smpl_17  # (F, 17, 3) m, camera
    uv, depth = cam.project(joints, cam.focal_px(seq.bbox), sizes[:, 0], sizes[:, 1])
    if (depth <= 0).any():
        raise DataError(f"{seq.source}: HybrIK joints behind the camera (transl z <= 0 in some frame); "
                        "is 'transl' in metres with z forward?")
    return np.concatenate([uv, np.full(uv.shape[:-1] + (1,), PROJECTED_CONFIDENCE)], axis=-1)


def network_pose2d(keypoints_px: np.ndarray, sizes: np.ndarray | None, in_channels: int,
                   source: str = "2D keypoints") -> np.ndarray:
    """(F, 17, 3) px + confidence -> the refiner's input (F, 17, C), normalised with each frame's size.

    Raises:
        DataError: the frame size is unknown.
    """
    if sizes is None:
        raise DataError(f"{source}: the video frame size is unknown, so the 2D keypoints cannot be normalised; "
                        "pass --image_size W H")
    width, height = sizes[:, 0, None], sizes[:, 1, None]  # (F, 1) broadcast over joints
    pose2d = pose2d_input(keypoints_px[..., :2], keypoints_px[..., 2], width, height)  # (F, 17, 3)
    return pose2d[..., :in_channels]


# ------------------------------------------------------------------------------------------ run


def refine(refiner: Refiner, seq: HybrIKSequence, pose2d: np.ndarray, flip: bool | None = None,
           overlap: int | None = None, sample_stride: int | None = None, lookahead: int | None = None,
           on_push: Callable[[int, float], None] | None = None,
           body: BodyModel | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stitched refined rotations (F, 24, 3, 3) and betas (F, 10) of the whole sequence.

    With ``lookahead`` K the frames go through ``lib.deploy.stream`` one at a time, each refined when
    frame f + K has arrived (``on_push(frame, seconds)`` after each); else the offline path. When the
    refiner was trained on HybrIK's pose fitted to the 2D (``refiner.fit2d_prior``), every frame is fitted
    first (``lib.data.hybrik_fit``; ``body``, SMPL on the CPU, is then required). The online path fits
    the whole sequence before streaming it: its per-frame timings (``on_push``) leave the fit out.
    """
    pose_aa = seq.pose_aa  # (F, 72) rad
    if refiner.fit2d_prior is not None:
        if body is None:
            raise ValueError(f"{refiner.description} was trained on HybrIK's pose fitted to the 2D; pass body=")
        start = time.perf_counter()
        pose_aa = fit_hybrik_pose(body, pose_aa, seq.betas, pose2d, prior_weight=refiner.fit2d_prior,
                                  steps=refiner.fit2d_steps, robust=refiner.fit2d_robust)
        log.info("HybrIK's pose fitted to the 2D (prior %g, %d iterations, robust %s): %d frames in %.1f s",
                 refiner.fit2d_prior, refiner.fit2d_steps, refiner.fit2d_robust, seq.frames,
                 time.perf_counter() - start)
    flip = refiner.flip if flip is None else flip
    fn = with_flip(refiner.window_fn) if flip else refiner.window_fn
    stride = refiner.sample_stride if sample_stride is None else sample_stride
    shown_overlap = overlap if overlap is not None else refiner.clip_len // 2
    mode = "offline" if lookahead is None else f"online, lookahead {lookahead}"
    log.info("refining %d frames with %s (%s): clip_len %d, sample_stride %d, overlap %d, flip %s", seq.frames,
             refiner.description, mode, refiner.clip_len, stride, shown_overlap, flip)
    plan = dict(clip_len=refiner.clip_len, sample_stride=stride, overlap=overlap)
    if lookahead is None:
        return refine_sequence(fn, pose2d, pose_aa, seq.betas, **plan)
    return refine_stream(fn, pose2d, pose_aa, seq.betas, lookahead=lookahead, on_push=on_push, **plan)


def result_arrays(seq: HybrIKSequence, refined_rot: np.ndarray, refined_betas: np.ndarray, placed_input: Placed,
                  placed_refined: Placed, keypoints_px: np.ndarray, pose2d: np.ndarray, sizes: np.ndarray | None,
                  faces: np.ndarray, fps: float, settings: dict[str, Any],
                  valid: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Everything the npz holds (see ``UNITS``; float32 arrays, metres; ``valid`` (F,) bool, all True if None)."""
    transl = seq.transl if seq.transl is not None else np.zeros((seq.frames, 3))
    f32 = np.float32
    refined_aa = matrix_to_axis_angle(torch.from_numpy(refined_rot)).reshape(seq.frames, 3 * SMPL_NUM_JOINTS).numpy()
    out = {
        "pose_aa": refined_aa.astype(f32), "rot_mat": refined_rot.astype(f32), "betas": refined_betas.astype(f32),
        "vertices": placed_refined.vertices.astype(f32), "keypoints_3d": placed_refined.keypoints_3d.astype(f32),
        "transl": transl.astype(f32),
        "input_pose_aa": seq.pose_aa.astype(f32), "input_rot_mat": seq.rot_mat.astype(f32),
        "input_betas": seq.betas.astype(f32), "input_vertices": placed_input.vertices.astype(f32),
        "input_keypoints_3d": placed_input.keypoints_3d.astype(f32), "input_transl": transl.astype(f32),
        "keypoints_2d": keypoints_px.astype(f32), "pose2d": pose2d.astype(f32),
        "faces": np.asarray(faces, dtype=np.int32), "fps": np.float64(fps),
        "valid": np.ones(seq.frames, dtype=bool) if valid is None else np.asarray(valid, dtype=bool),
        "units": np.array(json.dumps(UNITS)), "settings": np.array(json.dumps(settings)),
    }
    if seq.bbox is not None:
        out["focal_px"] = cam.focal_px(seq.bbox).astype(f32)
    if sizes is not None:
        out["image_size"] = sizes.astype(np.int32)
    return out


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """``np.savez`` (plain arrays only: loadable with ``allow_pickle=False``) through ``lib.atomic_write``.

    Raises:
        WriteError: the file cannot be written (one line; no partial file, a previous file unchanged).
    """
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return Path(path)


def export_animation(paths: list[Path], arrays: dict[str, np.ndarray], body: BodyModel,
                     hybrik_regressor: np.ndarray) -> list[Path]:
    """The refined and HybrIK's motion (``result_arrays``) as animation files (``lib.deploy.animation``):
    a ``.glb`` holds both characters, a ``.bvh`` the refined one.

    Raises:
        WriteError: a file cannot be written.
    """
    from lib.deploy import animation, animation_bvh, animation_gltf

    rig = animation.rig_from_body(body)
    refined, hybrik_input = animation.motions_from_result(arrays, body, hybrik_regressor)
    camera = animation.camera_from_result(arrays)
    return [animation_gltf.write_glb(path, (refined, hybrik_input), rig, camera) if Path(path).suffix.lower() == ".glb"
            else animation_bvh.write_bvh(path, refined, rig) for path in paths]
