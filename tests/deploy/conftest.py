"""Fixtures of the deployment tests: a tiny trained-looking checkpoint, ONE export per session, and a
synthetic video (HybrIK-like results of the synthetic 3DPW test sequence) in every input format."""

from __future__ import annotations

import contextlib
import io
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[2]
HYPER_YAML = REPO / "hyper_config" / "method2" / "manual_joint_label1.yaml"
TASK_YAML = REPO / "configs" / "mesh" / "train_pw3d.yaml"
TINY = {"dim_rep": 32, "depth": 1, "num_heads": 4, "hidden_dim": 64,
        "smooth_kernel": 5}  # the optional PriorSmoother too: its replicate Pad goes through the export
PERTURB_STD = 0.005  # largest std of the random values given to zero-initialised parameters
PERTURB_GAIN = 0.5   # ... and at most this / sqrt(fan_in), so wide layers give moderate residuals


@dataclass
class TinySetup:
    task_cfg: Any
    hyper_cfg: Any
    options: Any
    model: torch.nn.Module
    checkpoint: Path
    task_yaml: Path


def perturb_zero_parameters(model: torch.nn.Module, seed: int) -> None:
    """Give every all-zero parameter (the zero-initialised residual, position tables) small random
    values, so an untrained model changes its input and depends on the frame position, as a trained one."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if not torch.any(param):
                fan_in = param.numel() / param.shape[0]
                std = min(PERTURB_STD, PERTURB_GAIN / fan_in ** 0.5)
                param.copy_(torch.randn(param.shape, generator=gen) * std)


@pytest.fixture(scope="session")
def tiny_setup(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> TinySetup:
    """A tiny refiner (random weights, residual perturbed) saved as a real checkpoint, and its YAML."""
    from lib.config.hyper import load_hyper_config
    from lib.config.task import load_task_config
    from lib.config.options import ModelOptions
    from lib.model.build import build_model
    from lib.train.checkpoint import atomic_save, build_checkpoint

    out = tmp_path_factory.mktemp("tiny_ckpt")
    raw = yaml.safe_load(TASK_YAML.read_text(encoding="utf-8"))
    raw.update(TINY, data_root=str(data_root))
    task_yaml = out / "train_pw3d_tiny.yaml"
    task_yaml.write_text(yaml.safe_dump(raw), encoding="utf-8")
    task_cfg = load_task_config(task_yaml)
    hyper_cfg = load_hyper_config(HYPER_YAML)
    options = ModelOptions(version=2, hyper_relation_bias="uniform")
    torch.manual_seed(0)
    model = build_model(task_cfg, hyper_cfg, options)
    perturb_zero_parameters(model, seed=0)
    model.eval()
    ckpt = build_checkpoint(model=model, optimizer=None, scheduler=None, scaler=None, epoch=3, best_metric=80.0,
                            best_epoch=3, task_cfg=task_cfg, hyper_cfg=hyper_cfg, options=options)
    path = atomic_save(ckpt, out / "best_epoch.bin")
    return TinySetup(task_cfg, hyper_cfg, options, model, path, task_yaml)


@dataclass
class Exported:
    path: Path
    stdout: str
    exit_code: int
    seconds: float


@pytest.fixture(scope="session")
def exported(tiny_setup: TinySetup, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """The seed's export command, run once per session through the CLI (export, verify, latency)."""
    from lib.deploy.export_cli import main

    out = tmp_path_factory.mktemp("onnx") / "refine_tiny.onnx"
    argv = ["--config", str(tiny_setup.task_yaml), "--hyper_cfg", str(HYPER_YAML), "--hyper_relation_bias", "uniform",
            "--version", "2", "--evaluate", str(tiny_setup.checkpoint), "--deployment", str(out),
            "--latency_repeats", "1"]
    buffer = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(buffer):
        code = main(argv)
    return Exported(out, buffer.getvalue(), code, time.perf_counter() - start)


# ------------------------------------------------------------------------------------- synthetic video


def h36m_to_coco(kp: np.ndarray) -> np.ndarray:
    """(F, 17, 3) H36M-17 px + score -> COCO-17 as a 2D detector would give (eyes / ears placed around
    the nose, horizontally, at a tenth of the shoulder width)."""
    from lib.body.joint_names import COCO_JOINT_NAMES, H36M_JOINT_NAMES

    h = {name: kp[:, i] for i, name in enumerate(H36M_JOINT_NAMES)}
    width = np.linalg.norm(h["left_shoulder"][:, :2] - h["right_shoulder"][:, :2], axis=-1)[:, None]
    side = np.concatenate([width * 0.1, np.zeros_like(width), np.zeros_like(width)], axis=-1)
    up = np.concatenate([np.zeros_like(width), -width * 0.08, np.zeros_like(width)], axis=-1)
    face = {"left_eye": h["nose"] + up + side, "right_eye": h["nose"] + up - side,
            "left_ear": h["nose"] + 2 * side, "right_ear": h["nose"] - 2 * side}
    return np.stack([face[name] if name in face else h[name] for name in COCO_JOINT_NAMES], axis=1)


@dataclass
class SyntheticVideo:
    """HybrIK-like results of one synthetic 3DPW test sequence (F frames)."""

    res: dict[str, np.ndarray]      # the res.pk layout
    pose_aa: np.ndarray             # (F, 72) HybrIK's pose (the same rotations as res['pred_thetas'])
    keypoints_h36m: np.ndarray      # (F, 17, 3) px + score (the pickle's 2D detections)
    keypoints_coco: np.ndarray      # (F, 17, 3) the same as a COCO detector would give
    folder: Path

    @property
    def frames(self) -> int:
        return len(self.pose_aa)


@pytest.fixture(scope="session")
def synthetic_video(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> SyntheticVideo:
    """res.pk of the first synthetic 3DPW test sequence: HybrIK's noisy pose and betas from the pickle,
    transl = the GT pelvis in the camera frame, boxes with the focal length of the synthetic camera."""
    from lib.data.clips import sequence_spans
    from lib.data.schema import load_mesh_pickle
    from lib.data.synthetic import MESH_FILES
    from lib.hybrik.preprocess import box_to_center_scale, center_scale_to_box
    from lib.geometry.rotation import axis_angle_to_matrix

    split = load_mesh_pickle(data_root / MESH_FILES["pw3d"], "pw3d")["test"]
    start, end = sequence_spans(split["source"])[0]
    rows = slice(start, end)
    pose = np.asarray(split["pred_smpl_pose"][rows], dtype=np.float64)
    frames = len(pose)
    height, width = (int(v) for v in np.asarray(split["img_hw"][start]))
    joint_cam = np.asarray(split["joint_cam"][rows], dtype=np.float64) / 1000.0  # (F, 17, 3) m
    kp2d = np.concatenate([np.asarray(split["joint_2d"][rows], dtype=np.float64)[..., :2],
                           np.asarray(split["confidence"][rows], dtype=np.float64).reshape(frames, 17, 1)], axis=-1)
    # The synthetic camera's focal length, fitted from the GT joints and the 2D detections.
    ratio = joint_cam[..., :2] / joint_cam[..., 2:]
    centred = kp2d[..., :2] - np.array([width / 2, height / 2])
    focal = float((centred * ratio).sum() / (ratio * ratio).sum())
    boxes = []
    for f in range(frames):
        lo, hi = kp2d[f, :, :2].min(0), kp2d[f, :, :2].max(0)
        centre, _ = box_to_center_scale([lo[0], lo[1], hi[0], hi[1]])
        side = focal * 256.0 / 1000.0  # HybrIK's focal 1000 / 256 * bbox_w = the camera's focal
        boxes.append(center_scale_to_box(centre, np.array([side, side])))
    rot = axis_angle_to_matrix(torch.from_numpy(pose.reshape(frames, 24, 3))).numpy()
    res = {
        "pred_thetas": rot.reshape(frames, 216).astype(np.float32),
        "pred_betas": np.asarray(split["pred_smpl_shape"][rows], dtype=np.float32),
        "pred_xyz_17": ((joint_cam - joint_cam[:, :1]) / 2.2).astype(np.float32),
        "transl": joint_cam[:, 0].astype(np.float32),
        "bbox": np.stack(boxes).astype(np.float32),
        "height": np.full(frames, height), "width": np.full(frames, width),
        "pred_scores": np.ones((frames, 29, 1), dtype=np.float32), "f": np.full(frames, 1000.0),
        "img_path": [f"frames/{i:06d}.jpg" for i in range(frames)],
    }
    folder = tmp_path_factory.mktemp("video")
    with (folder / "res.pk").open("wb") as handle:
        pickle.dump(res, handle)
    return SyntheticVideo(res=res, pose_aa=pose, keypoints_h36m=kp2d, keypoints_coco=h36m_to_coco(kp2d), folder=folder)


# ------------------------------------------------------------------------------------- HybrIK stand-in


class StandInHybrIK(torch.nn.Module):
    """A tiny model with the seed's HybrIK ONNX signature and plausible outputs.

    Its pose is a fixed SMPL pose whose global orientation turns about the camera's y axis with the
    crop's mean brightness, its betas grow with the brightness, and its ``transl`` puts the person at
    ``DEPTH_M`` behind the box centre (HybrIK's camera: focal 1000 / 256 * box width, principal point
    at ``image_center``), so the results depend on the frame and the box as HybrIK's do.
    """

    DEPTH_M = 4.0
    TURN_PER_UNIT = 0.2  # rad of global turn per unit of normalised brightness

    def __init__(self, pose_aa: np.ndarray, betas: np.ndarray, xyz_17: np.ndarray) -> None:
        super().__init__()
        from lib.geometry.rotation import axis_angle_to_matrix

        self.register_buffer("rot", axis_angle_to_matrix(torch.as_tensor(pose_aa, dtype=torch.float32).reshape(24, 3)))
        self.register_buffer("betas", torch.as_tensor(betas, dtype=torch.float32).reshape(1, 10))
        self.register_buffer("xyz", torch.as_tensor(xyz_17, dtype=torch.float32).reshape(1, 51))

    def forward(self, input_image: torch.Tensor, bbox: torch.Tensor, image_center: torch.Tensor):
        n = input_image.shape[0]
        brightness = input_image.mean(dim=(1, 2, 3))  # (N,)
        c, s = torch.cos(self.TURN_PER_UNIT * brightness), torch.sin(self.TURN_PER_UNIT * brightness)
        zero, one = torch.zeros_like(c), torch.ones_like(c)
        turn = torch.stack([c, zero, s, zero, one, zero, -s, zero, c], dim=-1).reshape(n, 3, 3)  # about y
        root = turn @ self.rot[0]  # (N, 3, 3)
        rot = torch.cat([root[:, None], self.rot[1:].expand(n, 23, 3, 3)], dim=1)  # (N, 24, 3, 3)
        focal = 1000.0 / 256.0 * (bbox[:, 2] - bbox[:, 0])
        centre = 0.5 * (bbox[:, :2] + bbox[:, 2:])
        xy = (centre - image_center) * self.DEPTH_M / focal[:, None]
        transl = torch.cat([xy, torch.full_like(xy[:, :1], self.DEPTH_M)], dim=-1)
        return (self.betas + 0.1 * brightness[:, None], rot.reshape(n, 216), transl,
                self.xyz.expand(n, 51), transl.clone(), torch.full_like(brightness[:, None], 0.9))


HYBRIK_OUTPUTS = ["pred_shape", "pred_theta_mats", "transl", "pred_xyz_jts_17", "cam_root", "pred_camera"]


def _export_standin(module: torch.nn.Module, path: Path, input_names=("input_image", "bbox", "image_center"),
                   output_names=tuple(HYBRIK_OUTPUTS), image_shape=(2, 256, 256, 3)) -> Path:
    """Export with the TorchScript exporter (fast; dynamic batch only, as HybrIK's own export)."""
    import warnings

    args = (torch.zeros(image_shape), torch.tensor([[0.0, 0.0, 100.0, 100.0]] * image_shape[0]),
            torch.tensor([[50.0, 50.0]] * image_shape[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, str(path), dynamo=False, opset_version=17,
                          input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes={name: {0: "N"} for name in (*input_names, *output_names)})
    return path


@pytest.fixture(scope="session")
def hybrik_standin(synthetic_video: SyntheticVideo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    res = synthetic_video.res
    module = StandInHybrIK(synthetic_video.pose_aa[0], res["pred_betas"][0], res["pred_xyz_17"][0])
    return _export_standin(module, tmp_path_factory.mktemp("hybrik") / "hybrik_standin.onnx")


@pytest.fixture
def export_standin():
    """``export(module, path, input_names=..., output_names=..., image_shape=...) -> path``."""
    return _export_standin
