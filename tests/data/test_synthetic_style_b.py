"""Synthetic data style "b": the real formats with other conventions (lib/data/synthetic_style_b.py)."""

from __future__ import annotations

import hashlib
import math
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lib.body.joint_names import H36M_EVAL_14, H36M_ROOT
from lib.data import synthetic
from lib.data import synthetic_style_b as style_b
from lib.data.keypoints2d import H36M_CAMERA_RES
from lib.data.schema import load_mesh_pickle
from lib.data.synthetic import MESH_FILES, generate_data_root

SEED = 0


@pytest.fixture(scope="module")
def b_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("data_root_b")
    return out, generate_data_root(out, seed=SEED, preset="tiny", style="b")


@pytest.fixture(scope="module")
def pickles(b_root: tuple[Path, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for dataset, name in MESH_FILES.items():
        with (b_root[0] / name).open("rb") as f:
            out[dataset] = pickle.load(f)
    return out


def _runs(source: list[str]) -> list[tuple[str, int, int]]:
    src = np.asarray(source)
    starts = np.flatnonzero(np.r_[True, src[1:] != src[:-1]])
    stops = np.r_[starts[1:], len(src)]
    return [(str(src[a]), int(a), int(b)) for a, b in zip(starts, stops)]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _angles(rotvec: np.ndarray) -> np.ndarray:
    return np.linalg.norm(rotvec.reshape(-1, 24, 3), axis=-1)


def test_schema_keys_dtypes_names_and_summary(b_root: tuple[Path, dict[str, Any]],
                                              pickles: dict[str, dict[str, Any]]) -> None:
    root, summary = b_root
    assert summary["style"] == "b" and summary["preset"] == "tiny"
    assert sorted(p.name for p in root.iterdir()) == summary["files"]
    assert summary["datasets"]["pw3d"]["fps"] == (25.0, 30.0)
    assert summary["datasets"]["coco"]["train"]["frames"] == style_b.PRESETS["tiny"].coco_train
    for dataset, name in MESH_FILES.items():
        load_mesh_pickle(root / name, dataset)                       # the project's schema check
        for split, arrays in pickles[dataset].items():
            n = len(arrays["source"])
            float_2d = np.float32 if split == "train" else np.float64
            expected = {"joint_2d": ((n, 17, 2), float_2d), "confidence": ((n, 17, 1), float_2d),
                        "joint_cam": ((n, 17, 3), np.float64), "smpl_pose": ((n, 72), np.float64),
                        "smpl_shape": ((n, 10), np.float64), "pred_smpl_pose": ((n, 72), np.float32),
                        "pred_smpl_shape": ((n, 10), np.float32)}
            for key, (shape, dtype) in expected.items():
                assert arrays[key].shape == shape and arrays[key].dtype == dtype, (dataset, split, key)
            assert len(arrays["img_hw"]) == n and arrays["image_id"][0].shape == (1,)
            assert isinstance(arrays["source"][0], str)
            if dataset == "h36m":
                assert set(arrays["camera_name"]) <= set(H36M_CAMERA_RES)
    for dataset in ("h36m", "pw3d"):
        names = {split: [r[0] for r in _runs(pickles[dataset][split]["source"])] for split in ("train", "test")}
        assert not set(names["train"]) & set(names["test"])
        lengths = [b - a for _, a, b in _runs(pickles[dataset]["test"]["source"])]
        assert min(lengths) < 16 and any(n % 16 for n in lengths if n >= 16)
    for name, _, _ in _runs(pickles["h36m"]["train"]["source"]):
        assert re.match(r"^S(1|5|6|7|8)_[A-Za-z]+_\d+\.\d{8}$", name), name
    for name, _, _ in _runs(pickles["pw3d"]["train"]["source"]):
        assert re.match(r"^[a-z]+_[A-Za-z]+_\d{3}$", name), name


def test_same_seed_same_bytes_and_differs_from_style_a(tmp_path: Path, b_root: tuple[Path, dict[str, Any]],
                                                       data_root: Path, capsys: pytest.CaptureFixture) -> None:
    root, summary = b_root
    synthetic.main(["--out", str(tmp_path / "b"), "--seed", str(SEED), "--preset", "tiny", "--style", "b"])
    assert "style b" in capsys.readouterr().out
    for name in summary["files"]:
        assert _sha256(tmp_path / "b" / name) == _sha256(root / name), name
    for name in (*MESH_FILES.values(), "SMPL_NEUTRAL.pkl"):             # data_root: style a, seed 0
        assert _sha256(root / name) != _sha256(data_root / name), name
    with pytest.raises(ValueError, match="style"):
        generate_data_root(tmp_path / "c", style="c")


def test_image_sizes(pickles: dict[str, dict[str, Any]]) -> None:
    def sizes(dataset: str) -> set[tuple[int, int]]:
        return {tuple(hw) for split in ("train", "test") for hw in pickles[dataset][split]["img_hw"]}

    assert sizes("pw3d") == {(1920, 1080), (1080, 1920)}            # (H, W): portrait and landscape
    assert sizes("h36m") <= {(h, w) for w, h in H36M_CAMERA_RES.values()}
    coco = sizes("coco")
    assert coco <= {(h, w) for w, h in style_b.COCO_SIZES} and len(coco) >= 4


def test_global_orientation_representations(pickles: dict[str, dict[str, Any]]) -> None:
    angles = {key: np.concatenate([_angles(pickles[d][s][key])[:, 0] for d in ("pw3d", "h36m")
                                   for s in ("train", "test")]) for key in ("smpl_pose", "pred_smpl_pose")}
    folded = np.minimum(angles["smpl_pose"], 2 * np.pi - angles["smpl_pose"])
    assert np.degrees(np.median(folded)) > 160                     # upright, camera y down: near pi
    for key, a in angles.items():
        assert (a < np.pi).any() and (a > np.pi + 1e-3).any(), key  # both representations are stored
    assert np.all(_angles(pickles["pw3d"]["train"]["smpl_pose"]) < 2 * np.pi)
    # Canonical sequences flip the axis when the angle crosses pi (short tiny sequences: the noisy
    # prediction crosses it for sure, the GT maybe not).
    flips = 0
    for arrays in (pickles[d][s] for d in ("pw3d", "h36m") for s in ("train", "test")):
        for _, a, b in _runs(arrays["source"]):
            g = arrays["pred_smpl_pose"][a:b, :3].astype(np.float64)
            flips += int(((g[1:] * g[:-1]).sum(-1) < 0).sum())
    assert flips > 0


def test_gt_rotations_agree_with_joint_cam_and_2d(b_root: tuple[Path, dict[str, Any]],
                                                   pickles: dict[str, dict[str, Any]]) -> None:
    from lib.body.smpl import BodyModel

    body = BodyModel(b_root[0])
    pose = np.concatenate([pickles[d][s]["smpl_pose"] for d in ("pw3d", "h36m") for s in ("train", "test")])
    betas = np.concatenate([pickles[d][s]["smpl_shape"] for d in ("pw3d", "h36m") for s in ("train", "test")])
    cam = np.concatenate([pickles[d][s]["joint_cam"] for d in ("pw3d", "h36m") for s in ("train", "test")])
    assert (_angles(pose)[:, 0] > np.pi).any()
    with torch.no_grad():
        out = body.forward_axis_angle(torch.as_tensor(pose, dtype=torch.float32),
                                      torch.as_tensor(betas, dtype=torch.float32))
        joints = body.h36m_joints(out.vertices).double().numpy() * 1000.0           # mm
    np.testing.assert_allclose(joints - joints[:, :1], cam - cam[:, :1], atol=0.5)
    arrays = pickles["pw3d"]["train"]
    cam = arrays["joint_cam"]
    for _, start, stop in _runs(arrays["source"]):
        points = cam[start:stop].reshape(-1, 3)
        uv = arrays["joint_2d"][start:stop].reshape(-1, 2).astype(np.float64)
        good = arrays["confidence"][start:stop].reshape(-1) > 0.5
        x, y = points[:, 0] / points[:, 2], points[:, 1] / points[:, 2]
        ones, zeros = np.ones_like(x), np.zeros_like(x)
        a = np.concatenate([np.stack([x, ones, zeros], 1), np.stack([y, zeros, ones], 1)])[np.r_[good, good]]
        b = np.concatenate([uv[:, 0], uv[:, 1]])[np.r_[good, good]]
        (f, cx, cy), *_ = np.linalg.lstsq(a, b, rcond=None)
        height, width = arrays["img_hw"][start]
        assert 0.9 * style_b.PW3D_FOCAL_PX[0] < f < 1.1 * style_b.PW3D_FOCAL_PX[1]
        assert abs(cx / width - 0.5) < 0.05 and abs(cy / height - 0.5) < 0.05
        residual = np.linalg.norm((a @ np.array([f, cx, cy]) - b).reshape(2, -1), axis=0)
        assert np.median(residual) < 0.02 * height


def _left_right(arrays: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    gt = Rotation.from_rotvec(arrays["smpl_pose"].reshape(-1, 3))
    pred = Rotation.from_rotvec(arrays["pred_smpl_pose"].reshape(-1, 3).astype(np.float64))
    return (pred * gt.inv()).as_rotvec().reshape(-1, 24, 3), (gt.inv() * pred).as_rotvec().reshape(-1, 24, 3)


def test_hybrik_noise_is_on_the_left_with_documented_magnitudes(pickles: dict[str, dict[str, Any]]) -> None:
    parts = [_left_right(pickles[d][s]) for d in ("pw3d", "h36m", "coco") for s in ("train", "test")]
    left = np.concatenate([p[0] for p in parts])
    right = np.concatenate([p[1] for p in parts])
    body = np.degrees(np.linalg.norm(left[:, 1:], axis=-1).mean())
    glob = np.degrees(np.linalg.norm(left[:, 0], axis=-1).mean())
    assert abs(body / style_b.MEAN_BODY_ANGLE_DEG - 1) < 0.15, body
    assert abs(glob / style_b.MEAN_GLOBAL_ANGLE_DEG - 1) < 0.25, glob
    # The global error is small about the camera's optical axis (z) in the camera frame, i.e. on the left;
    # seen from the body frame (R_gt^T R_pred) the axes mix.
    def z_ratio(v: np.ndarray) -> float:
        std = v[:, 0].std(axis=0)
        return float(std[2] / std[:2].mean())

    k = style_b.WHITE_GAMMA_SHAPE                                  # white: Gamma(k, mean / k) angle, random axis
    white = style_b.WHITE_MEAN_DEG / k * math.sqrt(k * (k + 1) / 3)   # its rms per axis
    expected = math.hypot(style_b.GLOBAL_DEG[2], white) / math.hypot(style_b.GLOBAL_DEG[0], white)
    assert abs(z_ratio(left) / expected - 1) < 0.25
    assert z_ratio(right) > 1.4 * z_ratio(left)
    # Structured, not white: correlated from frame to frame (AR(1) drift) and along the limbs.
    lag1, chain = [], []
    for dataset in ("pw3d", "h36m"):
        arrays = pickles[dataset]["train"]
        err, _ = _left_right(arrays)
        for _, a, b in _runs(arrays["source"]):
            e = err[a:b, 1:]
            lag1.append((e[1:] * e[:-1]).sum() / (e * e).sum())
        for first, second in ((1, 4), (2, 5), (16, 18), (17, 19)):   # hip-knee, shoulder-elbow
            chain.append(np.mean([np.corrcoef(err[:, first, k], err[:, second, k])[0, 1] for k in range(3)]))
    assert np.mean(lag1) > 0.4, lag1
    assert np.mean(chain) > 0.15, chain


def test_hybrik_betas_shrink(pickles: dict[str, dict[str, Any]]) -> None:
    arrays = pickles["pw3d"]["train"]
    gt, pred = arrays["smpl_shape"].ravel(), arrays["pred_smpl_shape"].astype(np.float64).ravel()
    slope = np.polyfit(gt, pred, 1)[0]
    assert abs(slope - style_b.BETAS_SHRINK) < 0.1
    residual = (pred - style_b.BETAS_SHRINK * gt).std()
    assert abs(residual / math.hypot(style_b.BETAS_OFFSET_STD, style_b.BETAS_JITTER_STD) - 1) < 0.25


def test_hybrik_mpjpe_band(b_root: tuple[Path, dict[str, Any]], pickles: dict[str, dict[str, Any]]) -> None:
    """14-joint pelvis-aligned MPJPE of the HybrIK-like input on 3DPW (train and test pooled: the tiny test
    split alone is three short sequences)."""
    from lib.body.smpl import BodyModel

    body = BodyModel(b_root[0])

    def joints(pose: np.ndarray, betas: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = body.forward_axis_angle(torch.as_tensor(pose, dtype=torch.float32),
                                          torch.as_tensor(betas, dtype=torch.float32))
            kp = body.h36m_joints(out.vertices).numpy() * 1000.0
        return (kp - kp[:, H36M_ROOT:H36M_ROOT + 1])[:, list(H36M_EVAL_14)]

    errors = {}
    for split in ("train", "test"):
        arrays = pickles["pw3d"][split]
        errors[split] = np.linalg.norm(joints(arrays["smpl_pose"], arrays["smpl_shape"])
                                       - joints(arrays["pred_smpl_pose"], arrays["pred_smpl_shape"]), axis=-1)
    pooled = np.concatenate(list(errors.values())).mean()
    print(f"style b, 3DPW, HybrIK-like MPJPE: test {errors['test'].mean():.1f} mm, all {pooled:.1f} mm")
    assert 60 < pooled < 90


def test_detections_missing_joints_and_heavy_tails(pickles: dict[str, dict[str, Any]]) -> None:
    for dataset in ("pw3d", "h36m", "coco"):
        conf = np.concatenate([pickles[dataset][s]["confidence"][..., 0] for s in ("train", "test")])
        assert (conf == 0).any() and conf.min() >= 0 and conf.max() <= 1, dataset
    arrays = pickles["pw3d"]["train"]
    kp, conf = arrays["joint_2d"].astype(np.float64), arrays["confidence"][..., 0]
    for _, a, b in _runs(arrays["source"]):
        for f, j in zip(*np.nonzero(conf[a:b] == 0)):              # missing: 0 or a stale position
            value = kp[a + f, j]
            assert np.all(value == 0) or any(np.array_equal(value, kp[a + g, j]) for g in range(f))
    # Heavy tails: the error's 99th percentile is far beyond a Gaussian's (~2.6 x the median).
    cam = arrays["joint_cam"]
    err = []
    for _, a, b in _runs(arrays["source"]):
        good = conf[a:b] > 0
        points, uv = cam[a:b][good], kp[a:b][good]
        x, y = points[:, 0] / points[:, 2], points[:, 1] / points[:, 2]
        ones, zeros = np.ones_like(x), np.zeros_like(x)
        m = np.concatenate([np.stack([x, ones, zeros], 1), np.stack([y, zeros, ones], 1)])
        rhs = np.concatenate([uv[:, 0], uv[:, 1]])
        fit = np.tile(conf[a:b][good] > 0.5, 2)                     # intrinsics from confident joints
        params = np.linalg.lstsq(m[fit], rhs[fit], rcond=None)[0]
        err.append(np.linalg.norm((m @ params - rhs).reshape(2, -1), axis=0))
    err = np.concatenate(err)
    assert np.percentile(err, 99) > 4 * np.median(err)
